"""Model sizes (DESIGN 2.7) at the ``paper`` preset's shapes, without training anything.

Builds the paper preset's ResNet-50 teacher and 2-layer, 512-unit LSTM student, quantizes the
student's weight matrices as the pipeline does (``QuantSpec``: every weight matrix, per-row
groups) for k = 8, 4, 2, and prints parameters, accounted bytes (64-bin normalisation
included, as in every model file) and the ratios the paper reports. The bytes depend only on
the shapes, so random weights give the trained models' figures.

    python bench/paper_sizes.py
"""

import dataclasses
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from qdaed.detector import Detector  # noqa: E402
from qdaed.models import ResNet, StudentLSTM  # noqa: E402
from qdaed.pipeline.presets import preset_config  # noqa: E402
from qdaed.features.prepare import Normalizer  # noqa: E402
from qdaed.models.quantized import QuantSpec  # noqa: E402


def main():
    cfg = preset_config("paper")
    bins = cfg.features.num_mel_bins
    norm = Normalizer(np.zeros(bins, np.float32), np.ones(bins, np.float32))

    def detector(model, quantized=None):
        return Detector(model, norm, 998, cfg.classes, {}, np.zeros(3),
                        quantized or {})

    teacher = detector(ResNet(num_classes=3, **dataclasses.asdict(cfg.teacher)))
    student = StudentLSTM(bins, num_classes=3, **dataclasses.asdict(cfg.student))
    fp = detector(student)
    rows = [("teacher", 32, teacher), ("student", 32, fp)]
    for k in (8, 4, 2):
        rows.append((f"{k}-bit student", k, detector(student, QuantSpec(k).quantize(
            student.params))))
    print("| model | bits | params | bytes | % of teacher | % of FP student |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, bits, det in rows:
        b = det.accounted_bytes()
        print(f"| {name} | {bits} | {det.num_parameters():,} | {b:,} | "
              f"{100 * b / teacher.accounted_bytes():.2f} | {100 * b / fp.accounted_bytes():.1f} |")


if __name__ == "__main__":
    main()
