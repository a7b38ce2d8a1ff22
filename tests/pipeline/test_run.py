"""The tiny pipeline end to end: outputs, recomputable metrics, model files, resume."""

import csv
import json
from collections import defaultdict

import numpy as np
import pytest

from qdaed.detector import Detector
from qdaed.metrics import compute_metrics
from qdaed.pipeline.featuresets import load_dataset
from qdaed.pipeline.config import RunConfig
from qdaed.pipeline.run import run_pipeline
from tests.helpers.configs import tiny_config
from tests.helpers.references import sklearn_eer

MODEL_NAMES = ["teacher", "student", "distilled", "qd-4bit", "ptq-4bit", "qat-4bit"]


def read_scores(path):
    rows = defaultdict(dict)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows[(int(r["seed"]), r["model"])][(r["clip"], r["class"])] = (int(r["label"]),
                                                                          float(r["score"]))
    return rows


def test_tiny_pipeline_writes_every_output_and_model(tiny_run):
    out, results = tiny_run
    for name in ("results.json", "results.md", "scores.csv", "config.json", "log.txt"):
        assert (out / name).is_file(), name
    assert [m["name"] for m in results["models"]] == MODEL_NAMES
    for name in MODEL_NAMES:
        assert (out / "models" / "seed0" / f"{name}.safetensors").is_file()
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["preset"] == "tiny" and set(on_disk) >= {"config", "versions", "models"}
    for m in on_disk["models"]:
        assert set(m) >= {"name", "schedule", "bits", "params", "bytes", "ratio_to_teacher",
                          "ratio_to_fp_student", "auc", "eer", "ap"}
        assert set(m["eer"]) == {"dog", "baby_cry", "gunshot", "mean"}
    md = (out / "results.md").read_text()
    assert "| qd-4bit | 4 |" in md and "Relative mean-EER change" in md


def test_every_metric_in_results_json_recomputes_from_scores_csv(tiny_run):
    out, results = tiny_run
    rows = read_scores(out / "scores.csv")
    classes = results["config"]["classes"]
    for m in json.loads((out / "results.json").read_text())["models"]:
        table = rows[(0, m["name"])]
        clips = sorted({clip for clip, _ in table})
        scores = np.array([[table[(c, k)][1] for k in classes] for c in clips])
        labels = np.array([[table[(c, k)][0] for k in classes] for c in clips])
        recomputed = compute_metrics(scores, labels, classes)
        for metric in ("auc", "eer", "ap"):
            for k in [*classes, "mean"]:
                a, b = m[metric][k], recomputed[metric][k]
                assert (a is None and np.isnan(b)) or a == b, (m["name"], metric, k)


def test_metrics_in_results_json_agree_with_scikit_learn_on_scores_csv(tiny_run):
    """The same figures from an independent implementation (the test above recomputes them
    with qdaed's own compute_metrics, which checks the plumbing, not the values)."""
    sk = pytest.importorskip("sklearn.metrics")
    out, results = tiny_run
    rows = read_scores(out / "scores.csv")
    classes = results["config"]["classes"]
    for m in json.loads((out / "results.json").read_text())["models"]:
        table = rows[(0, m["name"])]
        clips = sorted({clip for clip, _ in table})
        for k in classes:
            s = np.array([table[(c, k)][1] for c in clips])
            y = np.array([table[(c, k)][0] for c in clips])
            if y.min() == y.max():
                continue                                  # undefined: checked above
            assert m["auc"][k] == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
            assert m["ap"][k] == pytest.approx(sk.average_precision_score(y, s), abs=1e-12)
            assert m["eer"][k] == pytest.approx(sklearn_eer(s, y), abs=1e-9)


def test_quantized_model_sizes_follow_the_accounting(tiny_run):
    _, results = tiny_run
    by = {m["name"]: m for m in results["models"]}
    fp, q = by["student"], by["qd-4bit"]
    assert q["params"] == fp["params"]
    # 4-bit codes are 1/8 of float32; biases and per-group (alpha, beta) add a little.
    assert 0.125 < q["bytes"] / fp["bytes"] < 0.5
    assert by["ptq-4bit"]["bytes"] == q["bytes"] == by["qat-4bit"]["bytes"]
    assert by["teacher"]["ratio_to_teacher"] == 1.0
    assert q["ratio_to_teacher"] == pytest.approx(q["bytes"] / by["teacher"]["bytes"])


def test_model_file_round_trip_reproduces_recorded_scores(tiny_run):
    out, results = tiny_run
    cfg = RunConfig.from_dict(results["config"])
    data = load_dataset(cfg.data, cfg.features, cfg.classes, out, lambda msg: None)
    test = data.subset("test")
    rows = read_scores(out / "scores.csv")
    for name in ("teacher", "qd-4bit"):
        det = Detector.load(out / "models" / "seed0" / f"{name}.safetensors")
        scores = det.scores(det.prepare(list(test.features)))
        table = rows[(0, name)]
        expected = np.array([[table[(c, k)][1] for k in cfg.classes] for c in test.clips])
        np.testing.assert_array_equal(scores, expected)


def test_resume_after_interruption_reaches_the_same_weights(tiny_run, tmp_path):
    out_full, _ = tiny_run
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(tiny_config(), out, quiet=True, stop_after=3)
    assert not (out / "results.json").exists()
    assert json.loads((out / "config.json").read_text())["status"] == "started"
    orphans = [out / "models" / "seed0" / ".student.safetensors.abc123.tmp",
               out / "arrays" / "x_train.npy.tmp"]
    for o in orphans:                          # what a kill during an atomic write leaves
        o.write_bytes(b"partial")
    run_pipeline(tiny_config(), out, resume=True, quiet=True)
    assert not any(o.exists() for o in orphans)
    assert json.loads((out / "config.json").read_text())["status"] == "finished"
    for name in MODEL_NAMES:
        a = Detector.load(out_full / "models" / "seed0" / f"{name}.safetensors")
        b = Detector.load(out / "models" / "seed0" / f"{name}.safetensors")
        for k, v in a.model.state_dict().items():
            np.testing.assert_array_equal(v, b.model.state_dict()[k], err_msg=f"{name} {k}")


def test_info_detect_and_evaluate_commands_on_a_pipeline_model(tiny_run, tmp_path, capsys):
    from qdaed.cli import main
    from qdaed.data.synth import write_corpus

    out, _ = tiny_run
    model = str(out / "models" / "seed0" / "qd-4bit.safetensors")
    assert main(["info", model]) == 0
    text = capsys.readouterr().out
    assert "qd-4bit" in text and "4-bit" in text and "StudentLSTM" in text

    rows = write_corpus(tmp_path, 12, seed=5, duration=1.0, validation_fraction=0.0,
                        test_fraction=0.5)
    wavs = [str(tmp_path / r["path"]) for r in rows[:2]]
    assert main(["detect", model, *wavs, "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert set(first["scores"]) == {"dog", "baby_cry", "gunshot"}
    assert all(0.0 <= v <= 1.0 for v in first["scores"].values())

    assert main(["evaluate", model, "--manifest", str(tmp_path / "manifest.csv"),
                 "--audio-root", str(tmp_path), "--jobs", "1", "--split", "test"]) == 0
    text = capsys.readouterr().out
    assert "6 clips evaluated" in text and "mean" in text
