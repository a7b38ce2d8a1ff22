"""Accuracy and size of the integer student on a finished (tiny) run (issue 26, item 7): its
mean EER recomputed from TFLite Micro's scores of the exported file with scikit-learn's ROC,
the paired differences, the .tflite and accounted sizes counted from the shapes."""

import json

import numpy as np
import pytest

from qdaed.detector import Detector
from qdaed.errors import InputError
from qdaed.formats.tflite_export import export_tflite
from qdaed.integer import calibrate
from qdaed.pipeline.integer_accuracy import integer_accuracy
from tests.integer.cases import run_tflm
from tests.helpers.references import sklearn_eer

runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
pytest.importorskip("sklearn.metrics")


@pytest.fixture(scope="module")
def measured(tiny_run):
    out, _ = tiny_run
    x = np.load(out / "arrays" / "x_val.npy")
    y = np.load(out / "arrays" / "y_val.npy")
    return out, x, y, integer_accuracy(out, x, y, quantized="qd-4bit", clips=20)


def _mean_eer(scores, y):
    return float(np.mean([sklearn_eer(scores[:, c], y[:, c]) for c in range(y.shape[1])]))


def test_integer_mean_eer_is_that_of_tflm_running_the_exported_file(measured):
    out, x, y, acc = measured
    train = np.load(out / "arrays" / "x_train.npy")[:20]
    for k, seed in enumerate(acc.seeds):
        det = Detector.load(out / "models" / f"seed{seed}" / "distilled.safetensors")
        assert acc.mean_eer["float"][k] == pytest.approx(_mean_eer(det.scores(x), y), abs=1e-9)
        integer = calibrate(det.model, train)
        (q,) = run_tflm(runtime, export_tflite(integer, x.shape[1], x.shape[0]),
                        [integer.quantize_input(x)])
        tflm_scores = (q.astype(np.float64) + 128) / 256
        assert acc.mean_eer["integer"][k] == pytest.approx(_mean_eer(tflm_scores, y), abs=1e-9)
        qd = Detector.load(out / "models" / f"seed{seed}" / "qd-4bit.safetensors")
        assert acc.mean_eer["quantized"][k] == pytest.approx(_mean_eer(qd.scores(x), y),
                                                             abs=1e-9)


def test_paired_differences_are_integer_minus_reference_per_seed(measured):
    _, _, _, acc = measured
    for ref, key in (("quantized", "integer - quantized"), ("float", "integer - float")):
        want = [i - r for i, r in zip(acc.mean_eer["integer"], acc.mean_eer[ref])]
        assert acc.comparisons[key]["per_seed"] == pytest.approx(want, abs=1e-15)
        if len(acc.seeds) > 1:
            c = acc.comparisons[key]
            assert c["ci_low"] <= c["mean"] <= c["ci_high"]


def test_integer_student_tracks_the_float_student_within_ten_eer_points(measured):
    """On the tiny run's validation clips (a sanity bound, not the paper's 1-point target,
    which needs the demo's test split and seeds)."""
    _, _, _, acc = measured
    assert all(abs(i - f) <= 0.10 for i, f in zip(acc.mean_eer["integer"],
                                                  acc.mean_eer["float"]))


def test_sizes_count_int8_weights_int32_biases_and_scales(measured):
    out, x, _, acc = measured
    cfg = json.loads((out / "config.json").read_text())
    det = Detector.load(out / "models" / f"seed{acc.seeds[0]}" / "distilled.safetensors")
    I, H, L, C = (det.model.config[k] for k in ("input_size", "hidden_size", "num_layers",
                                                  "num_classes"))
    weights = 4 * H * I + 4 * H * H * L + 4 * H * H * (L - 1) + C * H
    want = weights + 4 * (4 * H * L + C) + 4 * (8 * L + C) + 8 * I
    assert acc.accounted_bytes["integer"] == want
    assert acc.accounted_bytes["float"] == det.accounted_bytes() > want
    assert cfg["status"] == "finished"
    for size in acc.tflite_bytes:      # the weights and biases, plus the graph's overhead
        assert want - 8 * I < size < want + 16384


def test_a_run_without_the_quantized_model_is_refused(measured):
    out, x, y, _ = measured
    with pytest.raises(InputError, match="the run has no model 'qd-8bit'"):
        integer_accuracy(out, x, y, clips=5)
    with pytest.raises(InputError, match="not a k-bit model"):
        integer_accuracy(out, x, y, quantized="student", clips=5)
