"""Golden cases of the LFBE front end (docs/method/lfbe.md, ``qdaed.features.fbank``).

Input ``waveform``: mono samples at 16 kHz as floats in [−1, 1] (the export dtype); options:
every field of ``LfbeOptions`` written out, plus ``sample_rate``. Output ``lfbe`` (T, 64) float32
(qdaed's LFBE is float32 by definition; its arithmetic inside is float64). Signals: a tone, a
chirp, white noise, an impulse train, silence (every value at the floor, ln(float32 eps)), the
same noise on Kaldi's int16 scale (+2 ln 32768 above the floor), a synthetic dog bark from
qdaed's corpus generator, a signal of exactly one frame, and with ``--audio FILE`` the first
two seconds of real recordings (decoded and resampled to 16 kHz by qdaed, so the case's input
is already the 16 kHz waveform). ``mel_filterbank_htk_64`` holds the (257, 64) filter matrix
itself, for implementations that take it as a constant.

Tolerance: absolute, in the log domain (an error δ in ln E is a relative error δ of the
energy E): 1e-2 everywhere. Bins far below the frame's peak carry the float32 rounding of the
whole spectrum: torch's float32 rfft in this pipeline was off by up to 4.1e-3 on the chirp
(5.7e-4 on the tone, 3e-5 on noise), its float64 rfft by under 1e-6; a wrong option moves
values by a tenth or more.
"""

from __future__ import annotations

import os
import re

import numpy as np

from qdaed.data.audio import load_clip
from qdaed.data.rates import SAMPLE_RATE
from qdaed.data.synth import dog
from qdaed.features.fbank import LfbeOptions, lfbe, mel_filterbank
from qdaed.vectors.cases import register

RATE = SAMPLE_RATE
REAL_SECONDS = 2.0
LOG_ATOL = 1e-2
_TOL = (0.0, LOG_ATOL, "log energies: absolute error in the log domain (= relative error of "
        "the energy); a float32 FFT is within 4.1e-3 on these signals (the chirp's deepest "
        "bins), a float64 one within 1e-6; a wrong option (window, mel scale, pre-emphasis, "
        "DC removal, int16 scale, dither) moves values by 0.1 or more")


def _signal(b, kind):
    t = np.arange(int(0.5 * RATE)) / RATE
    if kind == "tone":
        return 0.5 * np.sin(2 * np.pi * 1000.0 * t + 0.3)
    if kind == "chirp":   # 100 Hz -> 7 kHz, linear
        return 0.3 * np.sin(2 * np.pi * (100.0 * t + 0.5 * (6900.0 / t[-1]) * t ** 2))
    if kind in ("noise", "noise_int16"):
        return np.clip(0.1 * b.normal(t.size), -1.0, 1.0)
    if kind == "impulses":
        x = np.zeros(t.size)
        x[::1234] = 0.9
        return x
    if kind == "silence":
        return np.zeros(t.size)
    if kind == "one_frame":
        return 0.2 * b.normal(400)
    if kind == "dog":
        x = np.zeros(RATE)
        bark = dog(b.rng, RATE)[:RATE]
        x[:bark.size] = 0.5 * bark / (np.abs(bark).max() + 1e-12)
        return x + 1e-3 * b.normal(RATE)
    raise ValueError(kind)


def _lfbe_case(b, waveform, int16_scale=False):
    opts = LfbeOptions(int16_scale=int16_scale)
    b.options.update(sample_rate=RATE, **opts.to_dict())
    x = b.input("waveform", waveform)
    b.output("lfbe", lfbe(x, RATE, options=opts), "", dtype=np.float32, tol=_TOL)


def _synthetic(b, kind):
    _lfbe_case(b, _signal(b, kind), int16_scale=kind == "noise_int16")


_SIGNALS = {
    "tone": "0.5 s of a 1 kHz tone, amplitude 0.5",
    "chirp": "0.5 s linear chirp 100 Hz - 7 kHz",
    "noise": "0.5 s white Gaussian noise, std 0.1",
    "noise_int16": "the noise case's kind of signal with int16_scale=True (Kaldi's scale: "
                   "+2 ln 32768 = 20.79)",
    "impulses": "0.5 s impulse train (every 1234 samples)",
    "silence": "0.5 s of zeros: every value is ln(float32 eps) = -15.942385",
    "one_frame": "exactly 400 samples: one frame",
    "dog": "1 s synthetic dog bark from qdaed's corpus generator, with faint noise",
}
for _kind, _what in _SIGNALS.items():
    register(f"lfbe_{_kind}", "lfbe", f"LFBE (64 HTK mel bins, 25/10 ms, Povey, "
             f"pre-emphasis 0.97, DC removal) of {_what}", _synthetic, kind=_kind)


def _filterbank(b):
    b.options.update(sample_rate=RATE, fft_size=512, num_mel_bins=64, low_freq=20.0,
                     high_freq=8000.0, mel_scale="htk", mel_norm=None)
    b.output("weights", mel_filterbank(RATE, 512, 64, 20.0, 8000.0, "htk", None),
             "elementwise", "triangles in mel at FFT bin centres k r / N, Nyquist bin 0")


register("mel_filterbank_htk_64", "mel_filterbank", "the (257, 64) HTK mel filter matrix "
         "(power spectrum @ weights = mel energies), no inputs", _filterbank)


def real_case_name(path):
    """``lfbe_real_<file stem>``, the stem reduced to safe characters (at most 60)."""
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return "lfbe_real_" + (re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:60] or "clip")


def real_case(b, path):
    """LFBE of the first REAL_SECONDS of a real recording (``qdaed.data.audio.load_clip``)."""
    x = load_clip(path, RATE, min_samples=400)[:int(REAL_SECONDS * RATE)]
    b.options["source"] = os.path.basename(os.fspath(path))
    _lfbe_case(b, x.astype(np.float64))
