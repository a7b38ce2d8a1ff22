"""``qdaed integer-accuracy RUN``: the integer student's mean EER against its float and k-bit
versions on a finished run's test split, paired by seed, and its size
(:func:`qdaed.pipeline.integer_accuracy.integer_accuracy`).

For each seed the float student (``--student``, default distilled) is calibrated on the run's
first ``--clips`` training clips (``RUN/arrays/x_train.npy``) and the three models score the
run's test split, rebuilt by :func:`qdaed.pipeline.testsplit.run_test_split` (the synthetic
corpus generated again from the run's config, or the manifest's test clips read again from
the audio root) and checked against the run's scores.csv. Writes
``RUN/integer_accuracy.json`` and ``RUN/integer_accuracy.md`` (atomically, at the end; a bad
run, a missing model or unreadable audio is a qdaed error, exit 2, and nothing is written),
and prints the markdown.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from qdaed._version import __version__
from qdaed.commands.options import common
from qdaed.errors import InputError
from qdaed.formats.tflite_export import check_available
from qdaed.io.atomic import atomic_write_text
from qdaed.pipeline.integer_accuracy import integer_accuracy
from qdaed.pipeline.testsplit import run_test_split
from qdaed.validate import check_int

DEFAULT_CLIPS = 200
HELP = "the integer (int8, TFLite Micro) student's EER and size against its float and k-bit " \
       "versions on a run's test split"


def register(sub):
    p = sub.add_parser("integer-accuracy", help=HELP, description=__doc__.split("\n\n")[1],
                       # --jobs 1: the test features of one run, from a cache when present
                       parents=[common("jobs", jobs=1)])
    p.add_argument("run", help="a finished `qdaed pipeline` output directory")
    p.add_argument("--student", default="distilled",
                   help="the float student to calibrate (default distilled)")
    p.add_argument("--quantized", default="qd-8bit",
                   help="the k-bit student to compare with (default qd-8bit)")
    p.add_argument("--clips", type=int, default=DEFAULT_CLIPS,
                   help=f"calibration clips: the run's first N training clips (default "
                        f"{DEFAULT_CLIPS})")
    p.add_argument("--audio-root", metavar="DIR",
                   help="manifest runs: the folder of the audio (default: the run's)")
    p.add_argument("--manifest", help="manifest runs: the manifest, when the run's recorded "
                                      "path no longer exists (a path or a shipped name)")
    p.set_defaults(func=_run)


def accuracy_document(acc, *, run, clips, student, quantized, n_test):
    """The JSON document of an :class:`~qdaed.pipeline.integer_accuracy.IntegerAccuracy`."""
    return {"run": str(run), "qdaed": __version__,
            "machine": platform.machine(), "student": student, "quantized": quantized,
            "calibration_clips": clips, "test_clips": n_test, "seeds": acc.seeds,
            "mean_eer": acc.mean_eer, "comparisons": acc.comparisons,
            "tflite_bytes": acc.tflite_bytes, "accounted_bytes": acc.accounted_bytes}


def _pct(v):
    return f"{100 * v:.2f}"


def accuracy_markdown(doc):
    """The markdown table of :func:`accuracy_document`'s document."""
    names = {"float": doc["student"], "quantized": doc["quantized"],
             "integer": f"{doc['student']}, int8 (TFLite Micro)"}
    n = len(doc["seeds"])
    lines = [f"Integer student of {doc['run']}: mean EER over classes on the test split "
             f"({doc['test_clips']} clips), {n} seed(s); calibration on the first "
             f"{doc['calibration_clips']} training clips.", "",
             "| model | mean EER (%), mean ± std over seeds | accounted bytes |",
             "|---|---|---|"]
    for m in ("float", "quantized", "integer"):
        v = np.array(doc["mean_eer"][m])
        sd = f" ± {_pct(np.std(v, ddof=1))}" if n > 1 else ""
        lines.append(f"| {names[m]} | {_pct(v.mean())}{sd} | {doc['accounted_bytes'][m]:,} |")
    lines += ["", "| paired by seed | mean Δ EER (points) | 95% t-interval | per seed |",
              "|---|---|---|---|"]
    for key, c in doc["comparisons"].items():
        per = ", ".join(f"{100 * d:+.2f}" for d in c["per_seed"])
        if "mean" in c:
            lines.append(f"| {key} | {100 * c['mean']:+.2f} | [{100 * c['ci_low']:+.2f}, "
                         f"{100 * c['ci_high']:+.2f}] | {per} |")
        else:
            lines.append(f"| {key} | {100 * c['per_seed'][0]:+.2f} | (one seed) | {per} |")
    sizes = sorted(set(doc["tflite_bytes"]))
    lines += ["", f".tflite file (batch 1): {', '.join(f'{s:,}' for s in sizes)} bytes. "
              "Accounted bytes: float32 tensors at 4 bytes, k-bit tensors as packed codes + 8 "
              "bytes per group; the integer student's int8 weights, int32 biases, float32 "
              "scales and the per-bin normalisation."]
    return "\n".join(lines) + "\n"


def _run(args):
    clips = check_int("--clips", args.clips, lo=1)
    jobs = check_int("--jobs", args.jobs, lo=0)
    run = Path(args.run)
    if not run.is_dir():
        raise InputError(f"{run}: no such run directory")
    for name in (args.student, args.quantized):
        if not (run / "models").is_dir() or not any(
                (run / "models").glob(f"seed*/{name}.safetensors")):
            raise InputError(f"{run}: the run has no model {name!r}")
    check_available()        # the .tflite sizes need the tflm extra: say so before any work
    x, y, names = run_test_split(run, audio_root=args.audio_root, manifest=args.manifest,
                                 jobs=jobs, check_model=args.student)
    acc = integer_accuracy(run, x, y, student=args.student, quantized=args.quantized,
                           clips=clips)
    n_train = int(min(clips, _train_clips(run)))
    doc = accuracy_document(acc, run=run, clips=n_train, student=args.student,
                            quantized=args.quantized, n_test=len(names))
    text = accuracy_markdown(doc)
    atomic_write_text(run / "integer_accuracy.json", json.dumps(doc, indent=2) + "\n")
    atomic_write_text(run / "integer_accuracy.md", text)
    print(text, end="")
    print(f"wrote {run / 'integer_accuracy.json'} and {run / 'integer_accuracy.md'}")
    return 0


def _train_clips(run):
    return np.load(run / "arrays" / "x_train.npy", mmap_mode="r", allow_pickle=False).shape[0]
