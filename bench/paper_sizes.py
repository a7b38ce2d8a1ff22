"""Model sizes (docs/method/size.md) at the ``paper`` preset's shapes, without training anything.

Builds the paper preset's ResNet-50 teacher and 2-layer, 512-unit LSTM student, quantizes the
student's weight matrices as the pipeline does (``QuantSpec``: every weight matrix, per-row
groups) for k = 8, 4, 2, and prints parameters, accounted bytes (64-bin normalisation
included, as in every model file) and the ratios the paper reports. The bytes depend only on
the shapes, so random weights give the trained models' figures.

With ``--out DIR`` it also writes each model file (format 3) to DIR, plus the ``demo`` preset's
float and 4-bit students, and prints each file's size and overhead (the 8-byte length and the
JSON table: file size − accounted bytes); ``qdaed info DIR/NAME.safetensors`` shows the same.

    python -m bench.paper_sizes [--out DIR]
"""

import argparse
import dataclasses
import os

import numpy as np

from qdaed.detector import Detector
from qdaed.features.prepare import Normalizer
from qdaed.models import ResNet, StudentLSTM
from qdaed.models.quantized import QuantSpec
from qdaed.pipeline.presets import preset_config


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="also write every model file to this folder")
    args = ap.parse_args(argv)
    cfg = preset_config("paper")
    bins = cfg.features.num_mel_bins
    norm = Normalizer(np.zeros(bins, np.float32), np.ones(bins, np.float32))

    def detector(model, quantized=None):
        return Detector(model, norm, 998, cfg.classes, {}, np.full(3, 0.5),
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
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        demo = preset_config("demo")
        d_student = StudentLSTM(bins, num_classes=3, **demo["student"])
        files = [("paper-teacher", teacher), ("paper-student", fp)]
        files += [(f"paper-student-{k}bit", det) for (_, k, det) in rows[2:]]
        files += [("demo-student", detector(d_student)),
                  ("demo-student-4bit", detector(d_student, QuantSpec(4).quantize(
                      d_student.params)))]
        print()
        print("| model file | tensors | accounted bytes | file bytes | overhead | % of file |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, det in files:
            path = os.path.join(args.out, f"{name}.safetensors")
            det.save(path)
            size, acc = os.path.getsize(path), det.accounted_bytes()
            n = len(det.model.state_dict()) + len(det.quantized) + 2
            print(f"| {name} | {n} | {acc:,} | {size:,} | {size - acc:,} | "
                  f"{100 * (size - acc) / size:.3f} |")


if __name__ == "__main__":
    main()
