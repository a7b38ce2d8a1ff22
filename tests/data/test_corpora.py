"""Manifests of real corpora (qdaed.data.corpora): the shipped real_corpus*.csv against their
generator and their invariants; UrbanSound8K, ESC-50 and donateacry read from small fake
official layouts written here; missing datasets as exit-2 errors naming what is missing."""

import csv
import io
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from qdaed.cli import main
from qdaed.data.corpora import (REAL_CORPUS_UNLABELED, check_positives, donateacry_rows,
                                esc50_rows, real_corpus_rows, urbansound8k_rows)
from qdaed.data.manifest import read_manifest
from qdaed.errors import DataError, InputError

REPO = Path(__file__).resolve().parents[2]
SHARED_LABELS = REPO / ".." / "shared" / "data" / "real_corpus" / "labels.csv"
MANIFESTS = REPO / "data_manifests"


def run_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


def rows_of(text):
    return list(csv.DictReader(io.StringIO(text)))


def tiny_wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(160, dtype=np.float32), 16000, subtype="PCM_16")


# ------------------------------------------------------------------------ the shipped corpus
needs_shared = pytest.mark.skipif(not SHARED_LABELS.is_file(),
                                  reason="../shared/data/real_corpus/labels.csv not present")


@needs_shared
@pytest.mark.parametrize("name, fraction", [("real_corpus", 0.0),
                                            ("real_corpus_transfer", REAL_CORPUS_UNLABELED)])
def test_the_shipped_manifest_is_what_the_command_builds_byte_for_byte(capsys, tmp_path, name,
                                                                       fraction):
    out = tmp_path / f"{name}.csv"
    status, stdout, _ = run_cli(capsys, "manifests", "real-corpus", "--labels", SHARED_LABELS,
                                "--out", out, "--unlabeled-fraction", fraction)
    assert status == 0 and "wrote" in stdout
    assert out.read_bytes() == (MANIFESTS / f"{name}.csv").read_bytes()


def _splits_by_group(path):
    where = defaultdict(set)
    for c in read_manifest(path):
        where[c.group].add(c.split)
    return where


def test_the_shipped_real_corpus_manifests_are_group_disjoint_with_one_validation_and_test():
    plain = _splits_by_group(MANIFESTS / "real_corpus.csv")
    transfer = _splits_by_group(MANIFESTS / "real_corpus_transfer.csv")
    assert all(len(s) == 1 for s in plain.values()) and all(len(s) == 1 for s in transfer.values())
    assert set(plain) == set(transfer)
    assert {s for v in plain.values() for s in v} == {"train", "validation", "test"}
    for g, (s,) in ((g, tuple(v)) for g, v in plain.items()):
        (t,) = transfer[g]
        if s in ("validation", "test"):
            assert t == s, f"{g}: {s} in real_corpus.csv, {t} in the transfer variant"
        else:                                    # the unlabelled part: training groups only
            assert t in ("train", "unlabeled")
    assert any(next(iter(v)) == "unlabeled" for v in transfer.values())


def _counts(path):
    """{split: {class: (clips, recordings)}} counted here, not by qdaed."""
    clips, recs = defaultdict(lambda: defaultdict(int)), defaultdict(lambda: defaultdict(set))
    for c in read_manifest(path):
        for k in (c.labels or ("negative",)):
            clips[c.split][k] += 1
            recs[c.split][k].add(c.group)
    return {s: {k: (clips[s][k], len(recs[s][k])) for k in clips[s]} for s in clips}


@pytest.mark.parametrize("name", ["real_corpus", "real_corpus_transfer"])
def test_every_class_has_positives_in_every_labelled_split_of_the_shipped_files(name):
    counts = _counts(MANIFESTS / f"{name}.csv")
    for split in ("train", "validation", "test"):
        for cls in ("dog", "baby_cry", "gunshot", "negative"):
            assert counts[split][cls][0] > 0, (split, cls)
    total = sum(v[0] for s in counts.values() for k, v in s.items())
    assert total == 1597                       # one row per clip: the corpus's 1,597 clips


def test_the_readme_table_states_the_shipped_counts():
    text = (MANIFESTS / "README.md").read_text()
    for name in ("real_corpus", "real_corpus_transfer"):
        counts = _counts(MANIFESTS / f"{name}.csv")
        block = text[text.index(f"<!-- counts {name} -->"):]
        for split, c in counts.items():
            cells = " | ".join(f"{c[k][0]} ({c[k][1]})"
                               for k in ("dog", "baby_cry", "gunshot", "negative"))
            assert re.search(rf"\| {split} \| {re.escape(cells)} \|", block), (name, split)


def _labels_csv(path, rows):
    cols = ("path", "labels", "group_id", "source", "source_class", "us8k_fold", "salience",
            "license")
    path.write_text(",".join(cols) + "\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def _small_corpus(n_gun_groups):
    rows = []
    for label, source, k in (("dog", "urbansound8k", 10), ("baby_cry", "donateacry", 10),
                             ("gunshot", "urbansound8k", n_gun_groups),
                             ("", "urbansound8k", 10)):
        for g in range(k):
            rows.append((f"audio/{label or 'neg'}{g}.flac", label, f"{label}:{g}", source,
                         label or "siren", "1", "1", "CC"))
    return rows


def test_real_corpus_rows_split_a_small_labels_file_by_group(tmp_path):
    built = real_corpus_rows(_labels_csv(tmp_path / "labels.csv", _small_corpus(5)), seed=0)
    split = {r["path"]: r["split"] for r in built.rows}
    # 10 single-clip groups per class → 6 / 2 / 2 (hand count, test_splits); 5 → 3 / 1 / 1
    for cls, want in (("dog", (6, 2, 2)), ("gunshot", (3, 1, 1))):
        got = [s for p, s in split.items() if f"/{cls}" in p]
        assert (got.count("train"), got.count("validation"), got.count("test")) == want
    assert [r["path"] for r in built.rows] == [r[0] for r in _small_corpus(5)]   # file order


def test_a_class_too_small_for_three_splits_is_refused_naming_class_and_split(tmp_path):
    with pytest.raises(DataError, match=r"no positive clip of gunshot in (validation|test)"):
        real_corpus_rows(_labels_csv(tmp_path / "labels.csv", _small_corpus(2)), seed=0)


def test_check_positives_ignores_the_unlabeled_part():
    rows = [{"labels": lab, "split": s, "group": f"{lab}{s}"}
            for s in ("train", "validation", "test") for lab in ("dog", "baby_cry", "gunshot")]
    check_positives(rows + [{"labels": "", "split": "unlabeled", "group": "u"}], "x")
    with pytest.raises(DataError, match="dog in test"):
        check_positives([r for r in rows if (r["labels"], r["split"]) != ("dog", "test")], "x")


# ------------------------------------------------------------------------ UrbanSound8K
US8K_META = """slice_file_name,fsID,start,end,salience,fold,classID,class
100032-3-0-0.wav,100032,0.0,0.317551,1,5,3,dog_bark
7061-6-0-0.wav,7061,0.0,2.0,2,10,6,gun_shot
7062-6-0-0.wav,7062,0.0,2.0,1,9,6,gun_shot
5000-8-0-1.wav,5000,0.5,4.5,1,1,8,siren
180937-7-0-1.wav,180937,1.0,5.0,1,1,7,jackhammer
180937-7-0-2.wav,180937,5.0,9.0,1,1,7,jackhammer
180937-4-0-3.wav,180937,9.0,13.0,1,9,4,drilling
"""


def fake_us8k(root, flac=(), missing=()):
    (root / "metadata").mkdir(parents=True)
    (root / "metadata" / "UrbanSound8K.csv").write_text(US8K_META)
    for f in range(1, 11):
        (root / "audio" / f"fold{f}").mkdir(parents=True)
    for r in rows_of(US8K_META):
        name = r["slice_file_name"]
        if name in missing:
            continue
        stem = name[:-4]
        tiny_wav(root / "audio" / f"fold{r['fold']}" / (stem + (".flac" if name in flac
                                                                 else ".wav")))
    return root


def test_urbansound8k_official_layout_to_manifest_rows(tmp_path):
    root = fake_us8k(tmp_path / "UrbanSound8K", flac={"7061-6-0-0.wav"},
                     missing={"5000-8-0-1.wav"})
    built = urbansound8k_rows(root)
    got = [(r["path"], r["labels"], r["split"], r["group"]) for r in built.rows]
    assert got == [
        ("audio/fold5/100032-3-0-0.wav", "dog", "train", "freesound:100032"),
        ("audio/fold10/7061-6-0-0.flac", "gunshot", "test", "freesound:7061"),   # .flac found
        ("audio/fold9/7062-6-0-0.wav", "gunshot", "validation", "freesound:7062"),
        ("audio/fold1/5000-8-0-1.wav", "", "train", "freesound:5000"),           # missing
        ("audio/fold1/180937-7-0-1.wav", "", "train", "freesound:180937"),
        ("audio/fold1/180937-7-0-2.wav", "", "train", "freesound:180937"),
        # fold 9 (validation), but its recording has 2 slices in fold 1: moved to train
        ("audio/fold9/180937-4-0-3.wav", "", "train", "freesound:180937"),
    ]
    assert built.missing == ["audio/fold1/5000-8-0-1.wav"]
    assert built.moves == [("freesound:180937", {"train": 2, "validation": 1}, "train")]
    assert [r["source_class"] for r in built.rows][:2] == ["dog_bark", "gun_shot"]


def test_urbansound8k_other_folds_and_the_command(capsys, tmp_path):
    root = fake_us8k(tmp_path / "u")
    built = urbansound8k_rows(root, validation_fold=5, test_fold=1)
    assert [r["split"] for r in built.rows] == ["validation", "train", "train", "test", "test",
                                                "test", "test"]     # 180937: 2 test, 1 train
    out = tmp_path / "us8k.csv"
    status, stdout, _ = run_cli(capsys, "manifests", "urbansound8k", "--root", root, "--out",
                                out)
    assert status == 0 and "freesound:180937: 2 in train, 1 in validation -> train" in stdout
    clips = read_manifest(out)
    assert [c.split for c in clips] == [r["split"] for r in urbansound8k_rows(root).rows]
    assert clips[1].labels == ("gunshot",) and clips[1].group == "freesound:7061"
    with pytest.raises(InputError, match="two different folds"):
        urbansound8k_rows(root, validation_fold=3, test_fold=3)


@pytest.mark.parametrize("layout, needle", [
    ("nothing", "the UrbanSound8K folder not found"),
    ("no_metadata", "metadata/UrbanSound8K.csv"),
    ("no_fold3", "audio/fold3 not found"),
    ("bad_fold", "fold '11' is not one of 1..10"),
    ("bad_header", "no column(s) fsID"),
])
def test_a_missing_or_broken_urbansound8k_exits_2_naming_what(capsys, tmp_path, layout, needle):
    root = tmp_path / "u"
    if layout != "nothing":
        fake_us8k(root)
    if layout == "no_metadata":
        (root / "metadata" / "UrbanSound8K.csv").unlink()
    elif layout == "no_fold3":
        for p in (root / "audio" / "fold3").iterdir():
            p.unlink()
        (root / "audio" / "fold3").rmdir()
    elif layout == "bad_fold":
        (root / "metadata" / "UrbanSound8K.csv").write_text(
            US8K_META.replace(",1,5,3,dog_bark", ",1,11,3,dog_bark"))
    elif layout == "bad_header":
        (root / "metadata" / "UrbanSound8K.csv").write_text(
            US8K_META.replace("fsID", "fs_id", 1))
    out = tmp_path / "m.csv"
    status, stdout, err = run_cli(capsys, "manifests", "urbansound8k", "--root", root,
                                  "--out", out)
    assert status == 2 and needle in err, err
    assert not out.exists()


# ------------------------------------------------------------------------ ESC-50
ESC_META = """filename,fold,target,category,esc10,src_file,take
1-100032-A-0.wav,1,0,dog,True,100032,A
1-100032-B-0.wav,1,0,dog,True,100032,B
4-187207-A-20.wav,4,20,crying_baby,True,187207,A
5-200-A-1.wav,5,1,rooster,False,200,A
5-201-A-20.wav,5,20,crying_baby,True,201,A
2-300-A-40.wav,2,40,helicopter,False,300,A
"""


def fake_esc50(root):
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text(ESC_META)
    for r in rows_of(ESC_META):
        tiny_wav(root / "audio" / r["filename"])
    return root


def test_esc50_official_layout_to_manifest_rows(tmp_path):
    built = esc50_rows(fake_esc50(tmp_path / "ESC-50-master"))
    got = [(r["path"], r["labels"], r["split"], r["group"]) for r in built.rows]
    assert got == [
        ("audio/1-100032-A-0.wav", "dog", "train", "freesound:100032"),
        ("audio/1-100032-B-0.wav", "dog", "train", "freesound:100032"),
        ("audio/4-187207-A-20.wav", "baby_cry", "validation", "freesound:187207"),
        ("audio/5-200-A-1.wav", "", "test", "freesound:200"),
        ("audio/5-201-A-20.wav", "baby_cry", "test", "freesound:201"),
        ("audio/2-300-A-40.wav", "", "train", "freesound:300"),
    ]
    assert built.missing == [] and built.moves == []


def test_esc50_without_its_audio_folder_exits_2_naming_it(capsys, tmp_path):
    root = fake_esc50(tmp_path / "e")
    for p in (root / "audio").iterdir():
        p.unlink()
    (root / "audio").rmdir()
    status, _, err = run_cli(capsys, "manifests", "esc50", "--root", root, "--out",
                             tmp_path / "m.csv")
    assert status == 2 and "audio folder (audio/) not found" in err, err
    status, _, err = run_cli(capsys, "manifests", "esc50", "--root", tmp_path / "none",
                             "--out", tmp_path / "m.csv")
    assert status == 2 and "the ESC-50 folder not found" in err


# ------------------------------------------------------------------------ donateacry
UUIDS = ["549a46d8-9c84-430e-ade8-97eae2bef787", "643D64AD-B711-469A-AF69-55C0D5D3E30F",
         "02ead89b-aa02-453e-8b83-6ebde9fe7551", "035c6b30-a145-42b9-8d0f-445cd9003d2c"]


def test_donateacry_cleaned_layout_groups_by_install_uuid(tmp_path):
    data = tmp_path / "donateacry-corpus" / "donateacry_corpus_cleaned_and_updated_data"
    names = [("belly_pain", f"{UUIDS[0]}-1430130772174-1.7-m-48-bp.wav"),
             ("hungry", f"{UUIDS[0]}-1430130772999-1.7-m-48-hu.wav"),
             ("hungry", f"{UUIDS[1]}-1430138495-1.0-m-72-hu.wav"),
             ("tired", f"{UUIDS[2]}-1430233132879-1.7-m-26-ti.wav"),
             ("tired", f"{UUIDS[3]}-1435948197257-1.7-m-04-ti.flac")]
    for reason, name in names:
        tiny_wav(data / reason / name)
    (data / "README.txt").write_text("not a folder of audio")
    built = donateacry_rows(tmp_path / "donateacry-corpus", seed=0)
    assert [(r["path"].split("/", 1)[1], r["labels"], r["group"], r["source_class"])
            for r in built.rows] == [
        (f"{reason}/{name}", "baby_cry", f"donateacry:{name[:36]}", reason)
        for reason, name in names]
    split = {r["group"]: set() for r in built.rows}
    for r in built.rows:
        split[r["group"]].add(r["split"])
    assert all(len(s) == 1 for s in split.values())     # both rows of UUIDS[0] together


def test_donateacry_file_not_named_by_uuid_and_missing_folder_are_errors(capsys, tmp_path):
    data = tmp_path / "d" / "donateacry_corpus_cleaned_and_updated_data"
    tiny_wav(data / "hungry" / "baby.wav")
    with pytest.raises(DataError, match="baby.wav: the file name does not start with"):
        donateacry_rows(tmp_path / "d")
    (tmp_path / "e").mkdir()
    status, _, err = run_cli(capsys, "manifests", "donateacry", "--root", tmp_path / "e",
                             "--out", tmp_path / "m.csv")
    assert status == 2 and "donateacry_corpus_cleaned_and_updated_data" in err
