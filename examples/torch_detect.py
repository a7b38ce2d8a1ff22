#!/usr/bin/env python
"""``qdaed detect --json`` in PyTorch: a state_dict from ``qdaed export --torch``, audio files
in, the same JSON lines out.

    qdaed export MODEL --torch detector.safetensors
    python examples/torch_detect.py detector.safetensors AUDIO [AUDIO ...] [--hop S] [--windows]

Imports torch, safetensors, numpy, scipy and soundfile — not qdaed, and not torchaudio or
torchvision. Everything besides the weights is in the file's metadata ``qdaed_export``:
architecture, classes, thresholds, the window (``frames``), the LFBE options and the
normalisation. The steps, as ``qdaed detect`` takes them (docs/guides/onnx_and_pytorch.md):

1. read the file as float64 in [-1, 1], mix down to mono (mean over channels), resample to
   16 kHz with ``scipy.signal.resample_poly`` (the reduced ratio, scipy's default filter);
2. LFBE of the whole signal, in float64 with torch ops, then float32 (Kaldi-style, the
   options stored: frames of L samples every S, DC removal, pre-emphasis, the analysis
   window, ``torch.fft.rfft`` of N points, power, the HTK mel filterbank, log of the energies
   floored at ``log_floor``); normalised with ``normalizer_mean`` / ``normalizer_std``;
3. windows of W frames every hop frames (default half a window): 0, hop, … while the window
   fits, plus one ending at the last frame; a file shorter than a window: its frames looped
   to W and scored once;
4. the student: ``torch.nn.LSTM`` once over all frames from a zero state — its state carries
   from window to window — and a window's logit pooled from its frames (mean: the mean of
   the frame logits fc(h_t); max: fc of the max of h_t; last: fc(h) at its last frame); the
   teacher (ResNet, built here with torchvision's module names): each window on its own;
5. scores σ(logit); the file's score per class is the maximum over windows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import safetensors
import safetensors.torch
import soundfile
import torch
from scipy.signal import resample_poly

RATE = 16000
USUAL_RATES = (16000, 22050, 24000, 32000, 44100, 48000)   # resampled without a note
nn = torch.nn


# ---------------------------------------------------------------------------- networks


class Student(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, num_classes, pooling="mean"):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)
        self.pooling = pooling


class Block(nn.Module):
    """torchvision's BasicBlock (``bottleneck`` False) or Bottleneck (stride on the 3×3)."""

    def __init__(self, cin, planes, stride, bottleneck):
        super().__init__()
        out = planes * (4 if bottleneck else 1)
        if bottleneck:
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out)
        else:
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(planes), nn.BatchNorm2d(planes)
        self.bottleneck = bottleneck
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.bottleneck:
            y = self.bn3(self.conv3(torch.relu(y)))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """torchvision's ResNet-18/34/50 layout, one input channel, stem width ``width``."""

    STAGES = {18: (False, (2, 2, 2, 2)), 34: (False, (3, 4, 6, 3)), 50: (True, (3, 4, 6, 3))}

    def __init__(self, depth, num_classes, in_channels=1, width=64):
        super().__init__()
        bottleneck, counts = self.STAGES[depth]
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for stage, n in enumerate(counts):
            planes = width * 2 ** stage
            blocks = []
            for i in range(n):
                blocks.append(Block(cin, planes, 2 if stage > 0 and i == 0 else 1, bottleneck))
                cin = planes * (4 if bottleneck else 1)
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):                              # x: (N, 1, T, F)
        y = torch.relu(self.bn1(self.conv1(x)))
        y = nn.functional.max_pool2d(y, 3, 2, 1)
        for stage in range(1, 5):
            y = getattr(self, f"layer{stage}")(y)
        return self.fc(y.mean(dim=(2, 3)))


# ---------------------------------------------------------------------------- front end


def window_function(name, length, blackman_coeff):
    n = torch.arange(length, dtype=torch.float64)
    a = 2 * math.pi / (length if name == "hann" else length - 1)
    if name in ("hanning", "hann"):
        return 0.5 - 0.5 * torch.cos(a * n)
    if name == "povey":
        return (0.5 - 0.5 * torch.cos(a * n)) ** 0.85
    if name == "hamming":
        return 0.54 - 0.46 * torch.cos(a * n)
    if name == "sine":
        return torch.sin(0.5 * a * n)
    if name == "blackman":
        return blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(
            2 * a * n)
    return torch.ones(length, dtype=torch.float64)


def mel_filterbank(nfft, opts):
    """(N/2 + 1, M) HTK triangles in mel at the FFT bin centres (Kaldi; Nyquist bin left
    out); Slaney scale or norm: refused here (qdaed.features.fbank has them)."""
    if opts["mel_scale"] != "htk" or opts["mel_norm"] is not None:
        raise SystemExit("this example implements the HTK mel filterbank only")
    mel = lambda f: 1127.0 * torch.log1p(torch.as_tensor(f, dtype=torch.float64) / 700.0)  # noqa
    high = opts["high_freq"] if opts["high_freq"] > 0 else RATE / 2 + opts["high_freq"]
    lo, hi, m = mel(opts["low_freq"]), mel(high), opts["num_mel_bins"]
    edges = lo + (hi - lo) / (m + 1) * torch.arange(m + 2, dtype=torch.float64)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    bins = torch.arange(nfft // 2 + 1, dtype=torch.float64)
    x = mel(bins * (RATE / nfft))[:, None]
    w = torch.where(x <= centre, (x - left) / (centre - left), (right - x) / (right - centre))
    keep = (bins < nfft // 2)[:, None] & (x > left) & (x < right)
    return torch.where(keep, w, torch.zeros(()))


def lfbe(x, opts):
    """(T, M) float32 LFBE of a 16 kHz float64 signal (snip_edges framing)."""
    if opts["dither"] > 0 or not opts["snip_edges"]:
        raise SystemExit("this example implements snip_edges framing without dither only")
    length = int(RATE * opts["frame_length_ms"] / 1000 + 1e-9)
    shift = int(RATE * opts["frame_shift_ms"] / 1000 + 1e-9)
    nfft = opts["fft_size"] or 1 << (length - 1).bit_length()
    x = torch.from_numpy(x) * (32768.0 if opts["int16_scale"] else 1.0)
    frames = x.unfold(0, length, shift).clone()                     # (T, L)
    if opts["remove_dc"]:
        frames -= frames.mean(dim=1, keepdim=True)
    p = opts["preemphasis"]
    if p:
        frames = torch.cat([frames[:, :1] * (1 - p), frames[:, 1:] - p * frames[:, :-1]], 1)
    frames = frames * window_function(opts["window"], length, opts["blackman_coeff"])
    power = torch.fft.rfft(frames, n=nfft, dim=1).abs() ** 2
    if not opts["use_power"]:
        power = power.sqrt()
    energies = torch.clamp(power @ mel_filterbank(nfft, opts), min=opts["log_floor"])
    return (energies.log() if opts["use_log"] else energies).float()


# ---------------------------------------------------------------------------- detector


class TorchDetector:
    def __init__(self, path):
        with safetensors.safe_open(path, "pt") as f:
            meta = json.loads(f.metadata()["qdaed_export"])
        self.classes, self.frames = meta["classes"], meta["frames"]
        self.thresholds = np.array(meta["thresholds"])
        self.opts = meta["features"]
        self.mean = torch.tensor([float(v) for v in meta["normalizer_mean"]], dtype=torch.float32)
        self.std = torch.tensor([float(v) for v in meta["normalizer_std"]], dtype=torch.float32)
        cfg = meta["arch_config"]
        self.student = meta["architecture"] == "StudentLSTM"
        self.net = Student(**cfg) if self.student else ResNet(**cfg)
        self.net.load_state_dict(safetensors.torch.load_file(path), strict=True)
        self.net.eval()
        self.length_s = self.opts["frame_length_ms"] / 1000
        self.shift_s = self.opts["frame_shift_ms"] / 1000

    def window_logits(self, x, hop):
        """(starts or None for a short file, logits (N, C) float64) of normalised frames."""
        w, t = self.frames, x.shape[0]
        if t < w:
            x = x.repeat(-(-w // t), 1)[:w]
            starts = None
        else:
            starts = list(range(0, t - w + 1, hop))
            if starts[-1] != t - w:
                starts.append(t - w)
        with torch.no_grad():
            if not self.student:
                wins = [x] if starts is None else [x[s:s + w] for s in starts]
                return starts, torch.cat([self.net(v[None, None]) for v in wins]).double()
            y, _ = self.net.lstm(x[None])                        # (1, T, H), zero state
            y = y[0]
            z = self.net.fc(y).double()                          # frame logits (T, C)
            starts_ = [0] if starts is None else starts
            if self.net.pooling == "mean":
                logits = [z[s:s + w].mean(0) for s in starts_]
            elif self.net.pooling == "max":
                logits = [self.net.fc(y[s:s + w].amax(0)).double() for s in starts_]
            else:
                logits = [z[s + w - 1] for s in starts_]
            return starts, torch.stack(logits)

    def detect(self, path, hop_seconds=None, windows=False):
        name = os.fsencode(path).decode("utf-8", "backslashreplace")
        try:
            x, rate = soundfile.read(os.fsencode(path), dtype="float64", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
            return {"file": name, "error": f"{name}: unreadable ({exc})"}
        channels, n = x.shape[1], x.shape[0]
        x = x.mean(axis=1) if channels > 1 else x[:, 0]
        if rate != RATE:
            g = math.gcd(rate, RATE)
            x = resample_poly(x, RATE // g, rate // g)
        length = int(RATE * self.length_s + 1e-9)
        if x.size < length:
            return {"file": name, "error": f"{name}: too short ({n} samples at {rate} Hz; need "
                    f"at least one LFBE frame, {length} samples at {RATE} Hz)"}
        feats = (lfbe(x, self.opts) - self.mean) / self.std
        hop = max(1, self.frames // 2) if hop_seconds is None else \
            max(1, int(round(hop_seconds / self.shift_s)))
        starts, logits = self.window_logits(feats, hop)
        scores = torch.sigmoid(logits).numpy()
        best, duration = scores.max(axis=0), n / rate
        out = {"file": name, "duration": round(duration, 4), "windows": len(scores),
               "scores": dict(zip(self.classes, map(float, best))),
               "detected": [c for c, s, t in zip(self.classes, best, self.thresholds)
                            if s >= t]}
        notes = []
        if starts is None:
            notes.append(f"shorter than one window ({duration:.2f} s < "
                         f"{(self.frames - 1) * self.shift_s + self.length_s:.2f} s): its "
                         f"frames were looped to the window's length, as in training")
        if channels > 1:
            notes.append(f"{channels} channels mixed down to mono (their mean)")
        if rate < RATE:
            notes.append(f"upsampled from {rate} Hz to {RATE} Hz: the model sees nothing "
                         f"above {rate // 2} Hz")
        elif rate not in USUAL_RATES:
            notes.append(f"resampled from {rate} Hz to {RATE} Hz")
        if notes:
            out["note"] = "; ".join(notes)
        if windows:
            if starts is None:
                out["window_times"] = [[0.0, duration]]
            else:
                s = np.array(starts)
                off = np.minimum((s + self.frames - 1) * self.shift_s + self.length_s, duration)
                out["window_times"] = np.stack([s * self.shift_s, off], 1).tolist()
            out["window_scores"] = scores.tolist()
        return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="state_dict from `qdaed export MODEL --torch OUT`")
    p.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, ...)")
    p.add_argument("--hop", type=float, metavar="SECONDS",
                   help="window hop in seconds (default: half the model's window)")
    p.add_argument("--windows", action="store_true",
                   help="also print each window's times and scores")
    args = p.parse_args(argv)
    if args.hop is not None and not args.hop > 0:
        p.error(f"--hop: expected a positive number of seconds, got {args.hop}")
    torch.set_num_threads(1)
    det = TorchDetector(args.model)
    failed = 0
    for path in args.audio:
        result = det.detect(path, args.hop, args.windows)
        failed += "error" in result
        print(json.dumps(result), flush=True)
    return 0 if not failed else 2 if failed == len(args.audio) else 3


if __name__ == "__main__":
    sys.exit(main())
