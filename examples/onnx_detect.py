#!/usr/bin/env python
"""``qdaed detect --json`` with ONNX Runtime only: audio files in, the same JSON lines out.

    qdaed export MODEL --onnx detector.onnx --with-frontend
    python examples/onnx_detect.py detector.onnx AUDIO [AUDIO ...] [--hop SECONDS] [--windows]

Imports onnxruntime, numpy, scipy and soundfile — not qdaed: everything it needs (window
length, hop, frame sizes, class names, thresholds) is in the ONNX model's metadata_props,
written by ``qdaed export --with-frontend`` (docs/guides/onnx_and_pytorch.md).

What it does around the graph, as ``qdaed detect`` does (``qdaed.streaming``):

1. read the file as float64 samples in [-1, 1] (soundfile's scaling of integer PCM) and mix
   it down to mono as the mean over channels;
2. resample to 16 kHz with ``scipy.signal.resample_poly(x, up, down)``, up/down the reduced
   ratio 16000/rate, scipy's default filter (qdaed's streaming resampler computes exactly
   this, block by block); nothing at 16 kHz;
3. cut the signal into windows of W frames (``window_frames``) every hop frames (default
   ``hop_frames``, half a window; ``--hop SECONDS`` as ``qdaed detect --hop``): starts 0, hop,
   2·hop, … while the window fits, plus one window ending at the last frame if the regular
   ones do not end there; window s is samples [s·S, s·S + (W − 1)·S + L); a file shorter
   than one window is one window of all its samples (the graph loops its frames to W);
4. run the graph on each window. A student's graph also takes the LSTM state (h, c) at the
   window's first frame (zeros at the start of the file) and returns the state ``advance``
   frames later: passing advance = the next window's start − this one's carries the state
   from window to window exactly as ``qdaed detect`` runs its LSTM once over the whole file.
   When the hop is longer than a window the frames between windows are run too, W at a time;
5. the file's score per class is the maximum over its windows; a class is detected when its
   score reaches the stored threshold.

Output: one JSON object per file, ``{"file", "duration", "windows", "scores", "detected"}``
plus ``"note"`` (a short file, a mixdown, an unusual rate) — or ``{"file", "error"}`` —, as
``qdaed detect --json`` prints them; ``--windows`` adds ``"window_times"`` (onset, offset in
s) and ``"window_scores"`` (one list of C scores per window). Exit status 0: every file
scored; 3: some could not be read; 2: none could.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import onnxruntime
import soundfile
from scipy.signal import resample_poly

USUAL_RATES = (16000, 22050, 24000, 32000, 44100, 48000)   # resampled without a note


class OnnxDetector:
    """The graph of ``qdaed export --with-frontend`` and its metadata."""

    def __init__(self, path):
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("input") != "samples":
            raise SystemExit(f"{path}: not a graph from samples; export it with "
                             f"`qdaed export MODEL --onnx OUT.onnx --with-frontend`")
        self.classes = json.loads(meta["classes"])
        self.thresholds = np.array(json.loads(meta["thresholds"]))
        self.rate = int(meta["sample_rate"])
        self.length, self.shift = int(meta["frame_length"]), int(meta["frame_shift"])
        self.window, self.hop = int(meta["window_frames"]), int(meta["hop_frames"])
        features = json.loads(meta["features"])
        self.shift_s = features["frame_shift_ms"] / 1000.0
        self.length_s = features["frame_length_ms"] / 1000.0
        self.student = meta["architecture"] == "StudentLSTM"
        if self.student:
            cfg = json.loads(meta["arch_config"])
            self.state_shape = (cfg["num_layers"], 1, cfg["hidden_size"])

    def hop_frames(self, seconds):
        return self.hop if seconds is None else max(1, int(round(seconds / self.shift_s)))

    def _run(self, samples, state, advance):
        feeds = {"samples": samples}
        if self.student:
            feeds.update(h=state[0], c=state[1], advance=np.array([advance], np.int64))
            scores, h, c = self.session.run(None, feeds)
            return scores[0], (h, c)
        return self.session.run(None, feeds)[0][0], state

    def segment(self, x, start):
        """The samples of the W frames starting at frame ``start``."""
        a = start * self.shift
        return x[a:a + (self.window - 1) * self.shift + self.length]

    def window_scores(self, x, hop):
        """(starts, scores (N, C)) of a 16 kHz mono signal ``x``; starts None: a short file."""
        frames = 0 if x.size < self.length else 1 + (x.size - self.length) // self.shift
        w = self.window
        state = None
        if self.student:
            state = (np.zeros(self.state_shape, np.float32), np.zeros(self.state_shape,
                                                                       np.float32))
        if frames < w:
            return None, self._run(x, state, w)[0][None]
        starts = list(range(0, frames - w + 1, hop))
        if starts[-1] != frames - w:
            starts.append(frames - w)
        scores = []
        for i, s in enumerate(starts):
            nxt = starts[i + 1] if i + 1 < len(starts) else s + w
            score, state = self._run(self.segment(x, s), state, min(nxt - s, w))
            scores.append(score)
            a = s + w
            while self.student and a < nxt:        # a hop longer than the window: the gap
                _, state = self._run(self.segment(x, a), state, min(nxt - a, w))
                a += w
        return np.array(starts), np.array(scores, np.float64)


def read_mono(path):
    """(float64 mono samples, rate, channels) as qdaed reads a file."""
    x, rate = soundfile.read(os.fsencode(path), dtype="float64", always_2d=True)
    channels = x.shape[1]
    return (x.mean(axis=1) if channels > 1 else x[:, 0]), rate, channels


def to_rate(x, rate, target):
    if rate == target:
        return x
    g = math.gcd(rate, target)
    return resample_poly(x, target // g, rate // g)


def notes(det, short, duration, channels, rate):
    out = []
    if short:
        out.append(f"shorter than one window ({duration:.2f} s < "
                   f"{(det.window - 1) * det.shift_s + det.length_s:.2f} s): its frames were "
                   f"looped to the window's length, as in training")
    if channels > 1:
        out.append(f"{channels} channels mixed down to mono (their mean)")
    if rate < det.rate:
        out.append(f"upsampled from {rate} Hz to {det.rate} Hz: the model sees nothing above "
                   f"{rate // 2} Hz")
    elif rate not in USUAL_RATES:
        out.append(f"resampled from {rate} Hz to {det.rate} Hz")
    return out


def detect(det, path, hop_seconds=None, windows=False):
    """The result object ``qdaed detect --json`` prints for one file."""
    name = os.fsencode(path).decode("utf-8", "backslashreplace")
    try:
        x, rate, channels = read_mono(path)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        return {"file": name, "error": f"{name}: unreadable ({exc})"}
    if x.size == 0:
        return {"file": name, "error": f"{name}: empty (0 samples)"}
    if not np.isfinite(x).all():
        return {"file": name, "error": f"{name}: non-finite sample(s) (NaN or infinity)"}
    x16 = to_rate(x, rate, det.rate)
    if x16.size < det.length:
        return {"file": name, "error": f"{name}: too short ({x.size} samples at {rate} Hz; "
                f"need at least one LFBE frame, {det.length} samples at {det.rate} Hz)"}
    starts, scores = det.window_scores(x16, det.hop_frames(hop_seconds))
    duration = x.size / rate
    best = scores.max(axis=0)
    out = {"file": name, "duration": round(duration, 4), "windows": len(scores),
           "scores": dict(zip(det.classes, map(float, best))),
           "detected": [c for c, s, t in zip(det.classes, best, det.thresholds) if s >= t]}
    note = notes(det, starts is None, duration, channels, rate)
    if note:
        out["note"] = "; ".join(note)
    if windows:
        if starts is None:
            times = [[0.0, duration]]
        else:
            off = (starts + det.window - 1) * det.shift_s + det.length_s
            times = np.stack([starts * det.shift_s, np.minimum(off, duration)], 1).tolist()
        out["window_times"] = times
        out["window_scores"] = scores.tolist()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="ONNX file from `qdaed export MODEL --onnx OUT --with-frontend`")
    p.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, ...)")
    p.add_argument("--hop", type=float, metavar="SECONDS",
                   help="window hop in seconds (default: half the model's window)")
    p.add_argument("--windows", action="store_true",
                   help="also print each window's times and scores")
    args = p.parse_args(argv)
    if args.hop is not None and not args.hop > 0:
        p.error(f"--hop: expected a positive number of seconds, got {args.hop}")
    det = OnnxDetector(args.model)
    failed = 0
    for path in args.audio:
        result = detect(det, path, args.hop, args.windows)
        failed += "error" in result
        print(json.dumps(result), flush=True)
    return 0 if not failed else 2 if failed == len(args.audio) else 3


if __name__ == "__main__":
    sys.exit(main())
