#!/usr/bin/env python
"""Do ``examples/onnx_detect.py`` (ONNX Runtime, no qdaed) and ``examples/torch_detect.py``
(PyTorch) give ``qdaed detect``'s scores?

    python bench/onnx_detect_check.py AUDIO_DIR [--models MODEL ...] [--hop S] [--limit N]

For each model (default: three detectors built here with the real preset's shapes and random
weights — a float student, its 4-bit version and a ResNet-18 teacher, 4 s windows, 64 mel
bins up to 4 kHz, the normalisation fitted on the first recordings' LFBE), writes the graph
with ``qdaed export MODEL --onnx OUT --with-frontend``, then scores every audio file under
AUDIO_DIR with the example driver's code and with qdaed (``qdaed.streaming.scan_file``, what
``qdaed detect`` runs; default hop, or ``--hop``) and prints the largest absolute difference
of the window scores and of the file scores per model, with the number of files and windows
compared. When torch is installed, the same for ``examples/torch_detect.py`` with the state_dict
of ``qdaed export MODEL --torch``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time

import numpy as np

from qdaed.cli import main as qdaed_main
from qdaed.detector import Detector
from qdaed.features.fbank import LfbeOptions, lfbe
from qdaed.features.prepare import Normalizer
from qdaed.data.audiofiles import find_audio
from qdaed.models import ResNet, StudentLSTM
from qdaed.nn.quant import quantize
from qdaed.streaming import scan_file

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = ("dog", "baby_cry", "gunshot")


def _example(name):
    path = os.path.join(HERE, "..", "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def built_models(files, out):
    """Paths of the three default detectors (module docstring), saved under ``out``."""
    from qdaed.data.audio import load_clip

    opts = LfbeOptions(high_freq=4000.0)
    feats = np.concatenate([lfbe(load_clip(f), 16000, options=opts) for f in files[:20]])
    norm = Normalizer.fit(feats[None])
    frames = 398                                 # 4 s at 10 ms
    rng = np.random.default_rng(0)
    paths = []
    for name, model, bits in (("student", StudentLSTM(64, 32, 1, 3, "mean", seed=1), None),
                              ("student-4bit", StudentLSTM(64, 32, 1, 3, "mean", seed=1), 4),
                              ("resnet18", ResNet(18, 3, 1, 16, seed=2), None)):
        quantized = {}
        if bits:
            quantized = {n: quantize(v, bits, group="row") for n, v in model.params.items()
                         if n.rsplit(".", 1)[-1].startswith("weight") and v.ndim >= 2}
            model.load_state_dict({**model.state_dict(),
                                   **{n: q.dequantize() for n, q in quantized.items()}})
        det = Detector(model, norm, frames, CLASSES, opts.to_dict(),
                       rng.uniform(0.3, 0.7, 3), quantized, {"name": name})
        path = os.path.join(out, f"{name}.safetensors")
        det.save(path)
        paths.append(path)
    return paths


def check(model, files, out, examples, hop=None):
    """[(what, worst window difference, worst file difference)] for ``model``."""
    det = Detector.load(model)
    base = os.path.join(out, os.path.basename(model))
    runners = {}
    if qdaed_main(["export", model, "--onnx", base + ".onnx", "--with-frontend"]) != 0:
        raise SystemExit(f"{model}: export failed")
    odet = examples["onnx_detect"].OnnxDetector(base + ".onnx")
    runners["ONNX"] = lambda f: examples["onnx_detect"].detect(odet, f, hop, windows=True)
    if "torch_detect" in examples:
        if qdaed_main(["export", model, "--torch", base + ".torch.safetensors"]) != 0:
            raise SystemExit(f"{model}: export failed")
        tdet = examples["torch_detect"].TorchDetector(base + ".torch.safetensors")
        runners["torch"] = lambda f: tdet.detect(f, hop, windows=True)
    worst = {k: [0.0, 0.0] for k in runners}
    windows = 0
    t0 = time.perf_counter()
    hop_frames = None if hop is None else max(1, int(round(hop / 0.01)))
    for f in files:
        sc = scan_file(det, f, hop=hop_frames)
        windows += len(sc.starts)
        for what, run in runners.items():
            res = run(f)
            got = np.array(res["window_scores"])
            if got.shape != sc.scores.shape or res["windows"] != len(sc.starts):
                raise SystemExit(f"{f}: {got.shape} windows from {what}, {sc.scores.shape} "
                                 f"from qdaed")
            w = worst[what]
            w[0] = max(w[0], float(np.abs(got - sc.scores).max()))
            file_scores = np.array([res["scores"][c] for c in det.classes])
            w[1] = max(w[1], float(np.abs(file_scores - sc.file_scores).max()))
    for what, (w, f) in worst.items():
        print(f"{os.path.basename(model)}, {what}: {len(files)} files, {windows} windows; max "
              f"|{what} − qdaed| window scores {w:.2e}, file scores {f:.2e}", flush=True)
    print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    return [(what, w, f) for what, (w, f) in worst.items()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("audio_dir")
    p.add_argument("--models", nargs="*", default=None)
    p.add_argument("--limit", type=int, default=None, help="only the first N files")
    p.add_argument("--hop", type=float, default=None, help="window hop in seconds (default: "
                                                           "half a window, as qdaed detect)")
    args = p.parse_args(argv)
    files = [f for f, _ in find_audio([args.audio_dir]).entries][:args.limit]
    examples = {"onnx_detect": _example("onnx_detect")}
    try:
        examples["torch_detect"] = _example("torch_detect")
    except ImportError:
        print("torch is not installed: the PyTorch example is not checked")
    with tempfile.TemporaryDirectory() as out:
        models = args.models or built_models(files, out)
        worst = [r for m in models for r in check(m, files, out, examples, args.hop)]
    for what in dict.fromkeys(w for w, _, _ in worst):
        print(f"overall max |{what} − qdaed|: "
              f"{max(max(a, b) for k, a, b in worst if k == what):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
