"""AudioSet manifest building on small fixture lists written here."""

import csv
import json

import pytest

from qdaed.cli import main
from qdaed.data.audioset import build_manifest, count_classes, read_segments
from qdaed.data.manifest import read_manifest
from qdaed.errors import DataError

DOG, BARK, CRY = "/m/0bt9lr", "/m/05tny_", "/t/dd00002"
GUN, MG, SPEECH = "/m/032s66", "/m/04zjc", "/m/09x0r"


def _line(ytid, mids, start=0.0):
    return f'{ytid}, {start:.3f}, {start + 10:.3f}, "{",".join(mids)}"\n'


def make_audioset(root, n_neg=30):
    """balanced: 2 dog, 1 cry, 1 bark-only, 1 dog+cry; eval: 1 gun, 1 machine-gun-only;
    unbalanced in 2 parts with 'empty' header lines; n_neg speech negatives per list."""
    root.mkdir(parents=True, exist_ok=True)
    head = ("# Segments csv created\n# num_ytids=…\n"
            "# YTID, start_seconds, end_seconds, positive_labels\n")
    bal = [("b1", [DOG]), ("b2", [DOG, SPEECH]), ("b3", [CRY]), ("b4", [BARK]), ("b5", [DOG, CRY])]
    bal += [(f"bn{i}", [SPEECH]) for i in range(n_neg)]
    (root / "balanced_train_segments.csv").write_text(head + "".join(_line(y, m) for y, m in bal))
    ev = [("e1", [GUN]), ("e2", [MG])] + [(f"en{i}", [SPEECH]) for i in range(n_neg)]
    (root / "eval_segments.csv").write_text(head + "".join(_line(y, m) for y, m in ev))
    parts = root / "unbalanced_partial_csvs"
    parts.mkdir()
    unb0 = [("u1", [DOG]), ("u2", [GUN, MG])] + [(f"un{i}", [SPEECH]) for i in range(n_neg)]
    unb1 = [("u3", [CRY]), ("u4", [MG])] + [(f"um{i}", [SPEECH]) for i in range(n_neg)]
    for i, rows in enumerate([unb0, unb1]):
        (parts / f"unbalanced_train_segments_part{i:02d}.csv").write_text(
            "empty\nempty\nempty\n" + "".join(_line(y, m, 30.0) for y, m in rows))
    onto = [{"id": DOG, "child_ids": [BARK]}, {"id": BARK, "child_ids": []},
            {"id": CRY, "child_ids": []}, {"id": GUN, "child_ids": [MG]},
            {"id": MG, "child_ids": []}, {"id": SPEECH, "child_ids": []}]
    (root / "ontology.json").write_text(json.dumps(onto))
    return root


def test_comment_and_empty_lines_are_skipped_and_fields_parsed(tmp_path):
    root = make_audioset(tmp_path / "as", n_neg=1)
    part = root / "unbalanced_partial_csvs" / "unbalanced_train_segments_part00.csv"
    rows = list(read_segments(part))
    assert rows[0] == (4, "u1", 30.0, 40.0, (DOG,))
    assert rows[1][4] == (GUN, MG)


def test_malformed_line_names_file_and_line(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("# c\nabc, 0.000, 10.000\n")
    with pytest.raises(DataError, match=r"x.csv, line 2: expected 4 fields"):
        list(read_segments(p))
    p.write_text('abc, zero, 10.000, "/m/0bt9lr"\n')
    with pytest.raises(DataError, match="line 1"):
        list(read_segments(p))


def test_counts_by_definition(tmp_path):
    t = count_classes(make_audioset(tmp_path / "as", n_neg=3))
    assert t["balanced"] == {"rows": 8, "dog": (3, 4), "baby_cry": (2, 2), "gunshot": (0, 0)}
    assert t["eval"]["gunshot"] == (1, 2)
    assert t["unbalanced"]["gunshot"] == (1, 2) and t["unbalanced"]["rows"] == 10
    assert t["all"]["dog"] == (4, 5) and t["train"]["baby_cry"] == (3, 3)


def test_build_positives_negatives_and_splits(tmp_path):
    rows = build_manifest(make_audioset(tmp_path / "as"), negative_ratio=2.0,
                          validation_fraction=0.5, seed=3)
    by = {r["ytid"]: r for r in rows}
    assert by["b5"]["labels"] == "dog;baby_cry" and by["b1"]["labels"] == "dog"
    assert by["u2"]["labels"] == "gunshot" and by["e1"]["split"] == "test"
    # descendant-only clips are neither positives nor negatives by default
    assert not {"b4", "e2", "u4"} & by.keys()
    neg = [r for r in rows if not r["labels"]]
    assert all(r["ytid"][1] == "n" or r["ytid"][1] == "m" for r in neg)
    # 2 negatives per positive from each list: balanced 4 positives, eval 1, unbalanced 3
    assert sum(r["source"] == "balanced" for r in neg) == 8
    assert sum(r["source"] == "eval" for r in neg) == 2
    assert sum(r["source"] == "unbalanced" for r in neg) == 6
    assert {r["split"] for r in rows if r["source"] == "eval"} == {"test"}
    assert {r["split"] for r in rows if r["source"] != "eval"} == {"train", "validation"}
    # per label set, round(0.5 n) to validation: negatives from training lists: 14 -> 7
    assert sum(r["split"] == "validation" and not r["labels"] for r in rows) == 7


def test_build_is_deterministic_per_seed_and_descendants_option_widens(tmp_path):
    root = make_audioset(tmp_path / "as")
    a = build_manifest(root, seed=1)
    assert a == build_manifest(root, seed=1)
    assert a != build_manifest(root, seed=2)
    wide = {r["ytid"]: r["labels"] for r in build_manifest(root, with_descendants=True)}
    assert wide["b4"] == "dog" and wide["e2"] == "gunshot" and wide["u4"] == "gunshot"


def test_manifests_command_writes_a_manifest_the_reader_accepts(tmp_path, capsys):
    root = make_audioset(tmp_path / "as")
    out = tmp_path / "m.csv"
    assert main(["manifests", "build", "--audioset", str(root), "--out", str(out)]) == 0
    clips = read_manifest(out)
    assert len(clips) == 16 and all(c.ytid and c.split for c in clips)
    assert main(["manifests", "count", "--audioset", str(root)]) == 0
    assert "13460" in capsys.readouterr().out
    assert main(["manifests", "build", "--audioset", str(tmp_path), "--out", str(out)]) == 2
