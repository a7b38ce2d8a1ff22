"""``qdaed integer-accuracy RUN`` (issue 26, item 7): the run's test split rebuilt exactly (the
synthetic corpus through the pipeline's own data path; a manifest run's clips read again), the
float student's mean EER equal to that of the run's own scores.csv, the files written, and bad
input refused with exit 2 and nothing written."""

import json

import numpy as np
import pytest

from qdaed.cli import main
from qdaed.errors import DataError, InputError
from qdaed.pipeline.testsplit import run_test_split
from tests.helpers.references import sklearn_eer

pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
pytest.importorskip("sklearn.metrics")

OUTPUTS = ("integer_accuracy.json", "integer_accuracy.md")


def _recorded_mean_eer(run, seed, model):
    """Mean EER over classes from scores.csv's rows (the run's own record), sklearn's ROC."""
    import csv

    rows = [r for r in csv.DictReader(open(run / "scores.csv"))
            if int(r["seed"]) == seed and r["model"] == model]
    classes = list(dict.fromkeys(r["class"] for r in rows))
    eers = []
    for c in classes:
        s = np.array([float(r["score"]) for r in rows if r["class"] == c])
        y = np.array([int(r["label"]) for r in rows if r["class"] == c])
        eers.append(sklearn_eer(s, y))
    return float(np.mean(eers))


def test_the_synthetic_test_split_is_the_pipelines(tiny_run):
    """The test clips generated through the pipeline's whole data path (every clip of the
    corpus, then the test subset, normalised with the run's statistics) are the rebuilt ones,
    bit for bit."""
    from qdaed.features.prepare import Normalizer
    from qdaed.pipeline.config import read_config
    from qdaed.pipeline.featuresets import load_dataset

    out, _ = tiny_run
    cfg = read_config(out / "config.json")
    data = load_dataset(cfg.data, cfg.features, cfg.classes, out, lambda msg: None, jobs=1)
    test = data.subset("test")
    norm = Normalizer(np.load(out / "arrays" / "norm_mean.npy"),
                      np.load(out / "arrays" / "norm_std.npy"))
    x, y, names = run_test_split(out)
    np.testing.assert_array_equal(x, norm.apply(test.features))
    np.testing.assert_array_equal(y, test.clean_labels)
    assert names == list(test.clips)


def test_the_command_writes_the_table_and_its_float_eer_is_the_runs(tiny_run, capsys):
    out, _ = tiny_run
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    assert main(["integer-accuracy", str(out), "--quantized", "qd-4bit", "--clips", "20"]) == 0
    text = capsys.readouterr().out
    doc = json.loads((out / "integer_accuracy.json").read_text())
    assert (out / "integer_accuracy.md").read_text() in text
    assert doc["calibration_clips"] == 20 and doc["quantized"] == "qd-4bit"
    for k, seed in enumerate(doc["seeds"]):
        for model, name in (("float", "distilled"), ("quantized", "qd-4bit")):
            assert doc["mean_eer"][model][k] == pytest.approx(
                _recorded_mean_eer(out, seed, name), abs=1e-9)
    want = [i - q for i, q in zip(doc["mean_eer"]["integer"], doc["mean_eer"]["quantized"])]
    assert doc["comparisons"]["integer - quantized"]["per_seed"] == pytest.approx(want)
    assert doc["test_clips"] == len(run_test_split(out)[2])
    assert "| integer - quantized |" in text and "accounted bytes" in text


@pytest.mark.parametrize("argv, needle", [
    (["{run}/nope"], "no such run directory"),
    (["{run}", "--quantized", "qd-3bit"], "no model 'qd-3bit'"),
    (["{run}", "--quantized", "qd-4bit", "--clips", "0"], "--clips"),
    (["{run}", "--quantized", "qd-4bit", "--audio-root", "{run}"], "synthetic corpus"),
    (["{run}/models"], "no model"),
])
def test_bad_input_exits_2_and_writes_nothing(tiny_run, capsys, argv, needle):
    out, _ = tiny_run
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    status = main(["integer-accuracy", *[a.format(run=out) for a in argv]])
    err = capsys.readouterr().err
    assert status == 2 and needle in err and "Traceback" not in err, err
    assert not any((out / name).exists() for name in OUTPUTS)


def test_an_unfinished_run_is_refused(tiny_run, tmp_path):
    import shutil

    out, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(out / "arrays", copy / "arrays")
    shutil.copy(out / "scores.csv", copy / "scores.csv")
    cfg = json.loads((out / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**cfg, "status": "started"}))
    with pytest.raises(InputError, match="not finished"):
        run_test_split(copy)


@pytest.fixture(scope="module")
def manifest_run(tmp_path_factory):
    """A tiny run on 30 wav clips listed in a manifest (path, labels, split)."""
    from qdaed.data.synth import corpus_config, write_corpus

    root = tmp_path_factory.mktemp("corpus")
    rows = write_corpus(root, 30, seed=11, config=corpus_config("v1", 0.5),
                        validation_fraction=0.2, test_fraction=0.2)
    lines = ["path,labels,split"] + [f'"{r["path"]}","{r["labels"]}","{r["split"]}"'
                                     for r in rows]
    (root / "m.csv").write_text("\n".join(lines) + "\n")
    out = root / "run"
    assert main(["pipeline", "--preset", "tiny", "--recipe", "paper", "--out", str(out),
                 "--manifest", str(root / "m.csv"), "--audio-root", str(root), "--jobs", "1",
                 "--bits", "4", "--quiet"]) == 0
    return root, rows, out


def test_a_manifest_runs_test_clips_are_read_again_and_checked(manifest_run, tmp_path):
    root, rows, out = manifest_run
    x, y, names = run_test_split(out, jobs=1)
    assert names == [r["path"] for r in rows if r["split"] == "test"]
    assert x.shape[0] == len(names) and np.isfinite(x).all()
    # other audio under the same names: the scores no longer match the run's
    import shutil

    other = tmp_path / "other"
    shutil.copytree(root, other, ignore=shutil.ignore_patterns("run"))
    a, b = names[0], names[1]
    shutil.copy(root / b, other / a)
    with pytest.raises(DataError, match="do not reproduce the run's scores"):
        run_test_split(out, audio_root=other, jobs=1)
    # a manifest that lacks a test clip
    (tmp_path / "m.csv").write_text("path,labels,split\n" + "".join(
        f'"{r["path"]}","{r["labels"]}","{r["split"]}"\n' for r in rows if r["path"] != a))
    with pytest.raises(DataError, match="not in the manifest"):
        run_test_split(out, manifest=str(tmp_path / "m.csv"), jobs=1)


def test_the_command_on_a_manifest_run(manifest_run, capsys):
    _, _, out = manifest_run
    assert main(["integer-accuracy", str(out), "--quantized", "qd-4bit", "--clips", "10"]) == 0
    doc = json.loads((out / "integer_accuracy.json").read_text())
    assert doc["mean_eer"]["float"][0] == pytest.approx(
        _recorded_mean_eer(out, doc["seeds"][0], "distilled"), abs=1e-9)
