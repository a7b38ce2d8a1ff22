"""`qdaed pipeline` and the model-file commands refuse bad input cleanly: exit status 2, a
message naming the problem, no traceback, and nothing already in --out destroyed."""

import csv

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qdaed.cli import main
from qdaed.errors import InputError


@pytest.fixture
def out_with_file(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    keep = out / "keep.txt"
    keep.write_text("precious")
    return out, keep


def run_cli(capsys, *argv):
    status = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, err


@pytest.mark.parametrize("args, needle", [
    (["--bits", "0"], "--bits"),
    (["--bits", "4,x"], "--bits"),
    (["--bits", "17"], "--bits"),
    (["--seed", "-1"], "--seed"),
    (["--seeds", "0"], "--seeds"),
    (["--temperature", "0"], "--temperature"),
    (["--temperature", "-2"], "--temperature"),
    (["--lam", "1.5"], "--lam"),
    (["--preset", "huge"], "--preset"),
    (["--manifest", "m.csv"], "--audio-root"),
])
def test_nonsensical_options_exit_2_and_keep_out_dir(capsys, out_with_file, args, needle):
    out, keep = out_with_file
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--out", str(out), *args)
    assert status == 2 and needle in err
    assert keep.read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("manifest, needle", [
    ("", "empty manifest"),
    ("path,labels\n", "lists no clips"),
    ("path,split\na.wav,train\n", "labels"),
    ("path,labels\na.wav,cat\n", "unknown label"),
    ("path,labels\na.wav,dog\nb.wav,\n", "none of the 2 clip"),
])
def test_bad_manifests_exit_2_and_leave_out_dir_as_it_was(capsys, tmp_path, manifest, needle):
    m = write(tmp_path / "m.csv", manifest)
    empty, new = tmp_path / "empty", tmp_path / "new"
    empty.mkdir()
    for out in (empty, new):
        status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--out", str(out),
                              "--manifest", str(m), "--audio-root", str(tmp_path), "--jobs", "1")
        assert status == 2 and needle in err, err
    assert list(empty.iterdir()) == [] and not new.exists()   # the start was rolled back


def test_existing_run_is_not_overwritten_without_resume(capsys, out_with_file):
    out, keep = out_with_file
    (out / "config.json").write_text('{"preset": "demo"}')
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--out", str(out))
    assert status == 2 and "already holds a run" in err
    assert (out / "config.json").read_text() == '{"preset": "demo"}'
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--out", str(out), "--resume")
    assert status == 2 and "differs" in err
    assert keep.read_text() == "precious"


def test_resume_without_a_run_is_refused(capsys, tmp_path):
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--resume",
                          "--out", str(tmp_path / "nothing"))
    assert status == 2 and "no config.json" in err


@pytest.mark.parametrize("command", ["info", "detect"])
def test_model_commands_refuse_a_file_that_is_not_a_model(capsys, tmp_path, command):
    bogus = write(tmp_path / "bogus.safetensors", "not a model")
    extra = [str(bogus)] if command == "detect" else []
    status, err = run_cli(capsys, command, str(bogus), *extra)
    assert status == 2 and "bogus.safetensors" in err


# ------------------------------------------------------------------ run directories


def test_an_empty_out_is_refused_and_nothing_is_written(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--out", "")
    assert status == 2 and "--out: an empty path" in err
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_directory_without_a_run_is_refused_untouched(capsys, out_with_file):
    out, keep = out_with_file
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--out", str(out))
    assert status == 2 and "is not empty and holds no qdaed run" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert keep.read_text() == "precious"


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_an_out_that_cannot_be_written_exits_2(capsys, tmp_path, where):
    if where == "under_a_file":
        f = tmp_path / "file"
        f.write_text("x")
        out = f / "run"
    else:
        out = "/proc/qdaed-run"
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--out", str(out))
    assert status == 2 and "--out" in err, err
    if where == "under_a_file":
        assert (tmp_path / "file").read_text() == "x"


# ------------------------------------------------------------------ manifests


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """30 labelled wav clips of 0.5 s with their manifest rows (path, labels, split)."""
    from qdaed.data.synth import corpus_config, write_corpus

    root = tmp_path_factory.mktemp("corpus")
    rows = write_corpus(root, 30, seed=11, config=corpus_config("v1", 0.5),
                        validation_fraction=0.2, test_fraction=0.2)
    return root, rows


def manifest_text(rows, columns=("path", "labels", "split"), edit=None):
    lines = [",".join(columns)]
    for r in rows:
        r = dict(r) if edit is None else edit(dict(r))
        lines.append(",".join(f'"{r.get(c, "")}"' for c in columns))
    return "\n".join(lines) + "\n"


def run_manifest(capsys, tmp_path, corpus, text, *extra):
    root, _ = corpus
    m = write(tmp_path / "m.csv", text)
    out = tmp_path / "run"
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--recipe", "paper", "--out",
                          str(out), "--manifest", str(m), "--audio-root", str(root),
                          "--jobs", "1", "--bits", "4", *extra)
    return status, err, out


@pytest.mark.parametrize("case, needle", [
    ("no_validation", "the validation split is empty"),
    ("one_clip", "split is empty"),
    ("no_positives", "no positive"),
    ("all_gunshot", "no negative"),
])
def test_a_split_too_small_for_the_metrics_is_refused_before_training(
        capsys, tmp_path, corpus, case, needle):
    _, rows = corpus
    if case == "no_validation":
        rows = [{**r, "split": "train" if r["split"] == "validation" else r["split"]}
                for r in rows]
    elif case == "one_clip":
        rows = rows[:1]
    elif case == "no_positives":
        rows = [{**r, "labels": ""} for r in rows]
    else:
        rows = [{**r, "labels": "gunshot"} for r in rows]
    status, err, out = run_manifest(capsys, tmp_path, corpus, manifest_text(rows))
    assert status == 2 and needle in err, err
    assert not out.exists()                 # the start was rolled back: nothing to clean up


def test_a_source_recording_in_two_splits_is_refused_before_any_audio_is_read(
        capsys, tmp_path, corpus):
    _, rows = corpus
    # rows 0 (train) and 29 (test) share recording "rec-a"; every other row is its own
    text = manifest_text(rows, columns=("path", "labels", "split", "group"), edit=lambda r: {
        **r, "group": "rec-a" if r["path"] in (rows[0]["path"], rows[29]["path"])
        else r["path"]})
    assert rows[0]["split"] == "train" and rows[29]["split"] == "test"
    status, err, out = run_manifest(capsys, tmp_path, corpus, text)
    assert status == 2, err
    assert "group 'rec-a' is in train (line 2) and test (line 31)" in err, err
    assert not out.exists()           # refused before features: nothing was written


def test_a_clip_listed_twice_is_refused_naming_both_lines(capsys, tmp_path, corpus):
    _, rows = corpus
    status, err, out = run_manifest(capsys, tmp_path, corpus, manifest_text(rows + rows[3:4]))
    assert status == 2 and "line 32" in err and "first at line 5" in err, err
    assert not out.exists()


def test_the_same_audio_under_two_names_is_refused(capsys, tmp_path, corpus):
    import shutil

    root, rows = corpus
    copy = "audio/copy_of_clip_0.wav"
    shutil.copy(root / rows[0]["path"], root / copy)
    try:
        text = manifest_text(rows + [{**rows[0], "path": copy, "split": "test"}])
        status, err, out = run_manifest(capsys, tmp_path, corpus, text)
    finally:
        (root / copy).unlink()
    assert status == 2 and "has the same audio as" in err and copy in err, err


def test_too_few_synthetic_clips_are_refused_before_training(capsys, tmp_path):
    out = tmp_path / "run"
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--clips", "10", "--out",
                          str(out), "--jobs", "1")
    assert status == 2 and "too small for the metrics" in err, err
    assert not out.exists()


def _snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


_CLASSES = ["dog", "baby_cry", "gunshot"]
_GOOD_LABELS = st.sets(st.sampled_from(_CLASSES)).map(lambda s: ";".join(sorted(s)))
_BAD_LABELS = st.sampled_from(["cat", "dog;", "dog;dog"])
_SPLITS = st.sampled_from(["train", "validation", "test", "unlabeled", ""])


@st.composite
def _manifests(draw, paths):
    """A small manifest: rows of the corpus (now and then a missing file, a repeated row, a bad
    label or split), random labels, splits and groups; a BOM, CRLF, a dropped column."""
    columns = draw(st.sampled_from([("path", "labels", "split"), ("path", "labels"),
                                    ("path", "labels", "split", "group"), ("labels", "split"),
                                    ("path", "labels", "clean_labels", "split")]))
    chosen = draw(st.lists(st.sampled_from(paths), unique=True, max_size=12))
    extra = draw(st.lists(st.sampled_from(["audio/missing.wav", "../x.wav", *chosen[:1]]),
                          max_size=1))
    rows = []
    for path in chosen + extra:
        rare = draw(st.integers(0, 19)) == 0          # one row in 20 is malformed
        row = {"path": path,
               "labels": draw(_BAD_LABELS if rare else _GOOD_LABELS),
               "split": "bogus" if rare and draw(st.booleans()) else draw(_SPLITS),
               "group": draw(st.sampled_from(["a", "b", 'x"y', "r\n1", ""])),
               "clean_labels": draw(_GOOD_LABELS)}
        rows.append(",".join('"' + row[c].replace('"', '""') + '"' for c in columns))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join([",".join(columns), *rows]) + eol
    return ("\ufeff" if draw(st.booleans()) else "") + text


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_small_manifests_never_give_a_traceback_nor_touch_anything_else(
        capsys, tmp_path_factory, corpus, data):
    root, rows = corpus
    text = data.draw(_manifests([r["path"] for r in rows]))
    work = tmp_path_factory.mktemp("prop")
    m = work / "m.csv"
    m.write_text(text, encoding="utf-8", newline="")
    before_root, before_work = _snapshot(root), _snapshot(work)
    recipe = data.draw(st.sampled_from(["paper", "transfer"]))
    status = main(["pipeline", "--preset", "tiny", "--recipe", recipe, "--bits", "2",
                   "--out", str(work / "run"), "--manifest", str(m), "--audio-root", str(root),
                   "--jobs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert status in (0, 2) and "Traceback" not in err, err
    assert _snapshot(root) == before_root
    after = {p: v for p, v in _snapshot(work).items() if work / "run" not in (p, *p.parents)}
    assert after == before_work
    if status == 2:
        assert not (work / "run").exists()     # a refused start leaves nothing behind


def test_quiet_prints_nothing_not_even_the_feature_progress_bar(capsys, tmp_path, corpus):
    _, rows = corpus
    status, err, out = run_manifest(capsys, tmp_path, corpus, manifest_text(rows), "--quiet")
    assert status == 0 and err == "", err
    assert (out / "results.md").exists()


# ------------------------------------------------------------------ the default recipe
def resolve_args(*argv):
    from qdaed.cli import build_parser
    from qdaed.commands.pipeline import resolve_run

    return resolve_run(build_parser("pipeline").parse_args(["pipeline", *argv]))


def test_default_recipe_without_unlabeled_rows_is_paper_and_says_why(tmp_path, corpus):
    root, rows = corpus
    m = write(tmp_path / "m.csv", manifest_text(rows))
    cfg, choice = resolve_args("--preset", "tiny", "--manifest", str(m), "--audio-root",
                               str(root), "--out", str(tmp_path / "run"))
    assert cfg.distill.recipe == "paper" and not cfg.distill.transfer
    assert (cfg.distill.temperature, cfg.distill.lam) == (2.0, 0.5)     # the paper recipe's
    assert choice["recipe"] == "paper" and choice["named"] is False
    assert choice["transfer_clips"] == 0 and "no rows with split 'unlabeled'" in choice["reason"]


def test_default_recipe_with_unlabeled_rows_is_transfer(tmp_path, corpus):
    root, rows = corpus
    text = manifest_text(rows, edit=lambda r: {**r, "split": "unlabeled"}
                         if r["path"] in {x["path"] for x in rows[:3]} else r)
    m = write(tmp_path / "m.csv", text)
    cfg, choice = resolve_args("--preset", "tiny", "--manifest", str(m), "--audio-root",
                               str(root), "--out", str(tmp_path / "run"))
    assert cfg.distill.recipe == "transfer" and cfg.distill.transfer
    assert choice == {"recipe": "transfer", "named": False, "transfer_clips": 3,
                      "reason": f"the default; manifest {m} has 3 unlabelled transfer clips"}


def test_options_set_over_the_fallback_recipe_and_a_named_recipe_is_kept(tmp_path):
    cfg, choice = resolve_args("--preset", "tiny", "--transfer", "0", "--lam", "0.3",
                               "--out", str(tmp_path / "run"))
    assert cfg.distill.recipe == "paper" and cfg.distill.lam == 0.3
    assert cfg.distill.temperature == 2.0 and "n_transfer 0" in choice["reason"]
    cfg, choice = resolve_args("--preset", "tiny", "--recipe", "oof", "--out",
                               str(tmp_path / "run"))
    assert cfg.distill.recipe == "oof" and choice["named"] and choice["reason"] == "as requested"
    config = write(tmp_path / "c.json", '{"distill": {"recipe": "transfer"}}')
    with pytest.raises(InputError, match="needs an unlabelled transfer set"):
        resolve_args("--preset", "tiny", "--transfer", "0", "--config", str(config),
                     "--out", str(tmp_path / "run"))


def test_a_named_transfer_recipe_without_unlabeled_rows_stays_an_error(capsys, tmp_path,
                                                                        corpus):
    root, rows = corpus
    m = write(tmp_path / "m.csv", manifest_text(rows))
    out = tmp_path / "run"
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--recipe", "transfer",
                          "--out", str(out), "--manifest", str(m), "--audio-root", str(root),
                          "--jobs", "1")
    assert status == 2 and "recipe 'transfer': needs an unlabelled transfer set" in err, err
    assert not out.exists()


def test_the_run_logs_and_records_the_chosen_recipe(capsys, tmp_path, corpus):
    import json

    root, rows = corpus
    m = write(tmp_path / "m.csv", manifest_text(rows))
    out = tmp_path / "run"
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--out", str(out),
                          "--manifest", str(m), "--audio-root", str(root), "--jobs", "1",
                          "--bits", "4", "--quiet")
    assert status == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["recipe_choice"]["recipe"] == "paper"
    assert results["recipe_choice"]["named"] is False
    assert results["distill"]["recipe"] == "paper"
    assert "recipe paper: no recipe was named" in (out / "log.txt").read_text()


def test_missing_or_unreadable_manifest_clips_refuse_the_run_unless_skip_missing(capsys,
                                                                                tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(0)
    root = tmp_path / "audio"
    root.mkdir()
    rows = ["path,labels,split"]
    for i in range(24):
        split = ("train", "validation", "test")[i % 3]
        labels = ("dog", "baby_cry", "gunshot", "")[(i // 3) % 4]
        sf.write(root / f"c{i}.wav", rng.normal(scale=0.1, size=16000), 16000)
        rows.append(f"c{i}.wav,{labels},{split}")
    rows += ["gone.wav,dog,train", "bad.mp3,gunshot,train"]
    (root / "bad.mp3").write_bytes(b"ID3 not really an mp3")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    args = ["pipeline", "--preset", "tiny", "--manifest", str(tmp_path / "m.csv"),
            "--audio-root", str(root), "--out", str(out), "--quiet"]
    status, err = run_cli(capsys, *args)
    assert status == 2 and "2 of 26 clip(s) missing or unreadable" in err
    assert "gone.wav" in err and "bad.mp3" in err and "--skip-missing" in err
    assert not out.exists()                  # the new run's first writes were rolled back
    assert "Traceback" not in err
    status, err = run_cli(capsys, *args, "--skip-missing")
    assert status == 0, err
    assert (out / "results.json").is_file()
    with open(out / "features" / "bad_audio.csv", newline="") as fh:
        assert {r["path"] for r in csv.DictReader(fh)} == {"gone.wav", "bad.mp3"}
