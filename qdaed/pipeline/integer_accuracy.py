"""Accuracy and size of the integer student against its float and k-bit versions, on a
finished run (issue 26, item 7).

    integer_accuracy(run_dir, x, y, student="distilled", quantized="qd-8bit", clips=200)

For every seed of the run (``run_dir/models/seed{s}/``): the float student ``student`` is
calibrated (:func:`qdaed.integer.calibrate`) on the run's first ``clips`` training clips
(``run_dir/arrays/x_train.npy``, already normalised), and the float student, its k-bit
version ``quantized`` and the integer student score the clips ``x`` (normalised (N, frames,
F), e.g. the run's test split: a run stores its training and validation arrays, not its test
features) against the labels ``y`` (N, C). The mean EER over classes of each
(:func:`qdaed.metrics.compute_metrics`), and the paired per-seed differences integer −
quantized and integer − float (:func:`qdaed.stats.paired_comparison`: mean, t-interval; with
one seed the difference alone).

Sizes: the .tflite file of each integer student (batch 1, the run's frames) and the
accounted bytes of the three models: float and k-bit as :meth:`Detector.accounted_bytes`; the
integer student as its int8 weights (1 byte), int32 biases (4) and float32 scales (4) — the
tensors its model file and .tflite hold — plus the per-bin normalisation (2F float32), which a
device stores for every model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qdaed.detector import Detector
from qdaed.errors import InputError
from qdaed.formats.tflite_export import export_tflite
from qdaed.integer.calibrate import calibrate
from qdaed.integer.store import document
from qdaed.metrics import compute_metrics
from qdaed.stats import paired_comparison, paired_differences
from qdaed.validate import check_int

MODELS = ("float", "quantized", "integer")


@dataclass
class IntegerAccuracy:
    """seeds; mean_eer[model] per seed (model in MODELS); comparisons["integer - quantized"]
    and ["integer - float"] (paired_comparison's dict, or {"per_seed": [...]} for one seed);
    tflite_bytes per seed; accounted_bytes[model] (of the first seed)."""

    seeds: list
    mean_eer: dict
    comparisons: dict
    tflite_bytes: list
    accounted_bytes: dict


def integer_bytes(student, bins):
    """Accounted bytes of an integer student (module docstring)."""
    _, tensors = document(student)
    return int(sum(a.nbytes for _, a in tensors)) + 8 * int(bins)


def _seeds(run_dir):
    models = Path(run_dir) / "models"
    seeds = sorted(int(p.name[4:]) for p in models.glob("seed*") if p.name[4:].isdigit())
    if not seeds:
        raise InputError(f"{run_dir}: no models/seed*/ folder; not a finished run")
    return seeds


def _compare(a, b, confidence):
    if len(a) < 2:
        return {"per_seed": [float(v) for v in paired_differences(a, b)]}
    return paired_comparison(a, b, confidence)


def integer_accuracy(run_dir, x, y, *, student="distilled", quantized="qd-8bit", clips=200,
                     confidence=0.95):
    """:class:`IntegerAccuracy` of ``run_dir`` on clips ``x`` with labels ``y`` (module
    docstring)."""
    clips = check_int("clips", clips, lo=1)
    x = np.asarray(x)
    y = np.asarray(y, np.float64)
    if x.ndim != 3 or x.dtype.kind != "f" or y.shape != (x.shape[0], y.shape[-1]):
        raise InputError(f"x, y: expected normalised clips (N, frames, F) and labels (N, C), "
                         f"got {x.shape} and {y.shape}")
    train = np.load(Path(run_dir) / "arrays" / "x_train.npy", allow_pickle=False)[:clips]
    seeds = _seeds(run_dir)
    eer = {m: [] for m in MODELS}
    sizes, accounted = [], {}
    for seed in seeds:
        folder = Path(run_dir) / "models" / f"seed{seed}"
        dets = {}
        for model, name in (("float", student), ("quantized", quantized)):
            path = folder / f"{name}.safetensors"
            if not path.is_file():
                raise InputError(f"{path}: missing; the run has no model {name!r}")
            dets[model] = Detector.load(path, expect_arch="StudentLSTM")
        if dets["quantized"].quantized == {}:
            raise InputError(f"{quantized!r}: not a k-bit model")
        det = dets["float"]
        integer = calibrate(det.model, train)
        classes = list(det.classes)
        scores = {m: d.scores(x) for m, d in dets.items()}
        scores["integer"] = integer.scores(integer.quantize_input(x))
        for m in MODELS:
            eer[m].append(float(compute_metrics(scores[m], y, classes)["eer"]["mean"]))
        sizes.append(len(export_tflite(integer, x.shape[1])))
        if not accounted:
            accounted = {"float": det.accounted_bytes(),
                         "quantized": dets["quantized"].accounted_bytes(),
                         "integer": integer_bytes(integer, det.normalizer.mean.size)}
    comparisons = {"integer - quantized": _compare(eer["quantized"], eer["integer"], confidence),
                   "integer - float": _compare(eer["float"], eer["integer"], confidence)}
    return IntegerAccuracy(seeds, eer, comparisons, sizes, accounted)


__all__ = ["IntegerAccuracy", "integer_accuracy", "integer_bytes"]
