"""The embedded synthetic AED corpus: qdaed's default data (docs/design/data.md).

Each clip is a background plus 0–3 *target* events (dog, baby_cry, gunshot) and 0–3
*distractor* events (door_slam, meow, clap, whistle), every one drawn with random parameters
and mixed at a random signal-to-noise ratio. Labels are multi-hot over the target classes
present; distractors never add a label. The task is built so that model capacity matters:

* each target has a distractor that shares its coarse spectrum and duration, and differs
  only in finer structure a small model finds hard to use:
  dog (harmonic bursts, 0.08–0.25 s, f0 300–800 Hz, falling pitch, barks in groups) vs
  meow (harmonic, similar f0, one longer rising-then-falling glide, no groups);
  baby_cry (harmonic, f0 350–600 Hz, 5–9 Hz vibrato, cries of 0.4–1.5 s separated by
  inhales) vs meow and whistle (a near-pure tone with a glide and a slower, shallower warble);
  gunshot (broadband crack, noise body decaying in 20–150 ms, 1–3 echoes 40–400 ms later) vs
  door_slam (low thump, a rattle instead of echoes) and clap (short high bursts in a row);
* SNRs are low (targets −8…+10 dB in v1, −15…+10 dB in v2, distractors −6…+15 dB, measured
  over each event's own span against the background's mean power), so events are often
  buried;
* backgrounds vary per clip: a mix of 1–3 of pink noise, brown noise, mains hum with
  harmonics, babble (formant-filtered voice-like pulse trains with syllable-rate envelopes)
  and wind (slowly modulated low-passed noise);
* event parameters (pitch, contour, vibrato, formants, decay, echo delays, counts) are drawn
  per event, and events may overlap each other.

A measured check of "capacity matters" (1,200 clips of 3 s, seed 7, 40-bin LFBE, 900 train /
300 test, scikit-learn, a one-off script, not a test): logistic regression on the time-mean of
the LFBE gets mean ROC AUC 0.73 (dog 0.55, baby_cry 0.91, gunshot 0.72); the same on mean, std,
max, 90th percentile and mean |Δ| gets 0.90, and a 256-128 MLP on those gets 0.91 (dog 0.81,
baby_cry 0.92, gunshot 0.99). Dog is the hardest class; gunshot nearly saturates once
max-pooled statistics are available.

Knobs (fields of :class:`SynthConfig`): ``duration`` (s, default 10), ``sample_rate`` (16000),
``snr_db`` and ``distractor_snr_db`` (ranges), ``event_count_probs`` and
``distractor_count_probs`` (P(0), P(1), … events per clip), ``classes`` (which targets may be
drawn), ``distractors`` (which distractor kinds), ``backgrounds`` (which background kinds),
``peak_range`` (final peak level of the clip, so loudness carries no information),
``label_noise`` (:class:`LabelNoise` of the observed labels; none by default).

Determinism: clip ``i`` of corpus seed ``s`` is generated from
``numpy.random.default_rng([s, i])`` alone, so it does not depend on how many clips are made
or in what order, and ``qdaed synth`` with the same seed writes byte-identical files (on the
same machine and library versions; floating point across platforms may differ in the last
bit before quantisation). Waveforms are quantised to 16-bit PCM in memory too
(``int16 / 32768``), so the in-memory clip equals what ``soundfile`` reads back from the file.

Corpus versions (:func:`corpus_config`; ``qdaed synth --corpus``; the pipeline's
``data.corpus``):

* ``v1``: the corpus above with clean labels (the labels are exactly the target events). Kept
  unchanged for comparison: clip ``i`` of seed ``s`` is byte-identical to what qdaed made
  before v2 existed (pinned by tests).
* ``v2``: AudioSet-like weak, noisy labels over the same generator. (1) Target SNRs reach
  down to barely audible: ``snr_db`` = (−15, +10) dB, drawn uniformly, so every level of the
  range is equally likely (graded, not a few fixed levels); distractors keep (−6, +15) dB.
  The SNR is one ``rng.uniform`` draw in both versions, so clip ``i`` of v2 has the same
  background, events, onsets and durations as clip ``i`` of v1; only the target events'
  levels differ (a monotone map of the same draw). (2) The *observed* labels
  (:attr:`SynthClip.observed_labels`: what a trainer sees) are the clean ones passed through
  :class:`LabelNoise`: each present class is dropped with its per-class ``missing`` rate
  (default 20 %), each absent class of the corpus is added with rate ``false_positive``
  (default 2 % of the negative (clip, class) pairs). The clean truth (``labels``, every
  event's onset, duration and SNR) is kept beside them.

Why this noise model. AudioSet's labels are weak (one label set per 10 s segment, no onsets)
and came from human raters confirming or rejecting candidate labels proposed for each segment
(Gemmeke et al., "Audio Set: An ontology and human-labeled dataset for audio events", ICASSP
2017). A sound nobody proposed is never rated, so its label is simply absent: missing
positives are the typical error, at rates that differ between classes. Wrong positives occur
too; the release gives a per-class quality estimate from experts re-rating a sample of each
class's positive segments, and it varies widely between classes. Fonseca et al. studied these
errors and training despite them: missing labels in AudioSet with a teacher-student framework
and loss masking (IEEE Signal Processing Letters, 2020), and noisy web-audio labels
(FSDnoisy18k, ICASSP 2019; FSD50K, IEEE/ACM TASLP 2022). The defaults here (20 % missing, 2 %
false positives) are *our* round numbers in that spirit, not rates measured on AudioSet.

Label-noise determinism: the noise of clip ``i`` of seed ``s`` comes from its own generator,
:func:`noise_rng` = ``default_rng([s, i, 1])``: one uniform number u_c per class c of
``CLASSES`` (always all of them, in that order, whatever the clip holds or the run uses). A
present class is observed iff u_c ≥ missing_c, an absent class of the corpus iff
u_c < false_positive. So the noise never changes the audio and the audio never changes the
noise draws, a class's observed label does not depend on which other classes a run uses, and
raising a rate only adds flips (the same u_c meets a higher threshold). :func:`observe_labels`
applies the noise to any clean labels without synthesising audio.

API: :func:`generate_clip` (one clip from a generator), :func:`corpus_clip` (clip ``i`` of
seed ``s``, label noise included), :func:`iter_corpus` / :func:`generate_corpus` (n clips
from a seed, in memory), :func:`write_corpus` (wav files, a manifest with observed and clean
labels, and an events table; ``qdaed synth``), :func:`corpus_config` (the config of a corpus
version), :class:`LabelNoise`, :func:`observe_labels`.

One module of about 800 lines, on purpose: the sound models, the scene assembly and the label
noise are one seeded recipe whose random draws must come in a fixed order for the corpus to be
byte-identical from a seed; split, that order would be spread over files.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os

import numpy as np
import soundfile as sf
from scipy.signal import butter, lfilter, sosfilt
from tqdm import tqdm

from qdaed.data.manifest import CLASSES, UNLABELED, write_manifest
from qdaed.data.rates import SAMPLE_RATE
from qdaed.errors import InputError
from qdaed.io.atomic import atomic_write_bytes
from qdaed.validate import check_float, check_int

DISTRACTORS = ("door_slam", "meow", "clap", "whistle")
BACKGROUNDS = ("pink", "brown", "hum", "babble", "wind")
CORPORA = ("v1", "v2")
# v2's events reach down to barely audible: target SNRs uniform over −15 … +10 dB (v1: −8 … +10)
V2_SNR_DB = (-15.0, 10.0)


def _rate(name, value):
    """A noise rate as float in [0, 1), else InputError naming the field."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise InputError.at(name, f"a noise rate must be in [0, 1), got {value!r}")
    v = float(value)
    if not 0.0 <= v < 1.0:          # also refuses NaN
        raise InputError.at(name, f"a noise rate must be in [0, 1), got {value!r}")
    return v


@dataclasses.dataclass(frozen=True)
class LabelNoise:
    """What an annotator of weak clip-level labels gets wrong (corpus v2; the module
    docstring gives the model and its sources).

    missing:         P(a present class is not labelled): one rate for every class, a tuple
                     with one rate per class of ``CLASSES`` (in that order), or a dict
                     ``{class: rate}`` (classes left out: 0; stored as the tuple). The
                     default 20 % is a stated choice, not a measured AudioSet figure.
    false_positive:  P(an absent class of the corpus is labelled), per negative
                     (clip, class) pair; default 2 %.

    Every rate must be in [0, 1) (a rate of 1 would leave no information), else
    ``InputError`` naming the field. The clean ground truth is kept beside the observed
    labels; training and validation see the observed ones, test metrics use the clean ones.
    """

    missing: object = 0.2
    false_positive: float = 0.02

    def __post_init__(self):
        m = self.missing
        if isinstance(m, dict):
            bad = [k for k in m if k not in CLASSES]
            if bad:
                raise InputError(f"missing: unknown class(es) {bad}; expected names among "
                                 f"{', '.join(CLASSES)}")
            m = tuple(_rate(f"missing[{c}]", m.get(c, 0.0)) for c in CLASSES)
        elif isinstance(m, (tuple, list, np.ndarray)):
            if len(m) != len(CLASSES):
                raise InputError(f"missing: expected one rate, or {len(CLASSES)} (one per "
                                 f"class: {', '.join(CLASSES)}), got {len(m)}")
            m = tuple(_rate(f"missing[{c}]", v) for c, v in zip(CLASSES, m))
        else:
            m = _rate("missing", m)
        object.__setattr__(self, "missing", m)
        object.__setattr__(self, "false_positive",
                           _rate("false_positive", self.false_positive))

    @classmethod
    def of(cls, value):
        """A LabelNoise from a LabelNoise, a dict of its fields (a config's), or None (none)."""
        if value is None:
            return NO_NOISE
        if isinstance(value, LabelNoise):
            return value
        if isinstance(value, dict):
            bad = sorted(set(value) - {"missing", "false_positive"})
            if bad:
                raise InputError(f"label_noise: unknown field(s) {bad}; expected missing, "
                                 "false_positive")
            return cls(**value)
        raise InputError(f"label_noise: expected a LabelNoise or a dict with missing and "
                         f"false_positive, got {value!r}")

    def missing_rates(self, classes=CLASSES):
        """The missing rate of each of ``classes`` (array)."""
        if isinstance(self.missing, tuple):
            return np.array([self.missing[CLASSES.index(c)] for c in classes], dtype=float)
        return np.full(len(classes), float(self.missing))

    @property
    def active(self):
        """True if any rate is above 0."""
        return self.false_positive > 0 or bool((self.missing_rates() > 0).any())

    def to_dict(self):
        """``{"missing": rate or {class: rate}, "false_positive": rate}`` (JSON-ready)."""
        m = self.missing
        return {"missing": dict(zip(CLASSES, m)) if isinstance(m, tuple) else m,
                "false_positive": self.false_positive}

    def describe(self):
        """One line for logs, e.g. ``missing positives 20%, false positives 2%``."""
        m = self.missing
        miss = (", ".join(f"{c} {100 * r:g}%" for c, r in zip(CLASSES, m))
                if isinstance(m, tuple) else f"{100 * m:g}%")
        return f"missing positives {miss}, false positives {100 * self.false_positive:g}%"


def parse_label_noise(text, option="--label-noise", default_false_positive=0.02):
    """Label noise written as an option's value: ``"MISSING[,FALSE_POSITIVE]"``.

    Parameters
    ----------
    text : str
        One or two comma-separated rates.
    option : str
        The option's name, for the error messages.
    default_false_positive : float
        The false-positive rate when ``text`` gives only the missing rate.

    Returns
    -------
    dict
        ``{"missing": m, "false_positive": f}``, checked as :class:`LabelNoise` checks them.

    Raises
    ------
    InputError
        ``text`` is not one or two numbers, or a rate is out of [0, 1); the message names
        ``option``.
    """
    try:
        rates = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"{option}: expected MISSING[,FALSE_POSITIVE] such as 0.2,0.02, "
                         f"got {text!r}") from None
    if len(rates) not in (1, 2):
        raise InputError(f"{option}: expected one or two rates, got {text!r}")
    if len(rates) == 1:
        rates.append(default_false_positive)
    try:
        noise = LabelNoise(*rates)
    except InputError as exc:
        raise InputError(f"{option}: {exc}") from None
    return {"missing": noise.missing, "false_positive": noise.false_positive}


NO_NOISE = LabelNoise(0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator (see the module docstring)."""

    duration: float = 10.0
    sample_rate: int = SAMPLE_RATE
    snr_db: tuple = (-8.0, 10.0)
    distractor_snr_db: tuple = (-6.0, 15.0)
    event_count_probs: tuple = (0.3, 0.35, 0.25, 0.1)
    distractor_count_probs: tuple = (0.3, 0.35, 0.25, 0.1)
    classes: tuple = CLASSES
    distractors: tuple = DISTRACTORS
    backgrounds: tuple = BACKGROUNDS
    peak_range: tuple = (0.1, 0.9)
    label_noise: LabelNoise = NO_NOISE

    def __post_init__(self):
        object.__setattr__(self, "label_noise", LabelNoise.of(self.label_noise))
        check_float("duration", self.duration, 0.0, lo_open=True)
        check_int("sample_rate", self.sample_rate, lo=8000)
        for name in ("snr_db", "distractor_snr_db", "peak_range"):
            lo, hi = _pair(name, getattr(self, name))
            if name == "peak_range" and not (0 < lo <= hi <= 1):
                raise InputError(f"peak_range: expected 0 < low <= high <= 1, got {(lo, hi)}")
        for name in ("event_count_probs", "distractor_count_probs"):
            p = np.asarray(getattr(self, name), dtype=float)
            if p.ndim != 1 or p.size == 0 or (p < 0).any() or abs(p.sum() - 1) > 1e-9:
                raise InputError(f"{name}: expected probabilities of 0, 1, … events summing to "
                                 f"1, got {getattr(self, name)}")
        for name, known in (("classes", CLASSES), ("distractors", DISTRACTORS),
                            ("backgrounds", BACKGROUNDS)):
            values = tuple(getattr(self, name))
            bad = [v for v in values if v not in known]
            if bad or len(set(values)) != len(values):
                raise InputError(f"{name}: expected distinct names among {', '.join(known)}, "
                                 f"got {values}")
        if not self.classes and self.event_count_probs[0] != 1:
            raise InputError("classes: empty, so event_count_probs must be (1.0,)")
        if not self.distractors and self.distractor_count_probs[0] != 1:
            raise InputError("distractors: empty, so distractor_count_probs must be (1.0,)")
        if not self.backgrounds:
            raise InputError("backgrounds: expected at least one background kind")


def _pair(name, value):
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a (low, high) pair, got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise InputError(f"{name}: expected finite low <= high, got {value!r}")
    return lo, hi


@dataclasses.dataclass(frozen=True)
class Event:
    """One sound placed in a clip. ``label`` is the target class, or None for a distractor."""

    kind: str
    label: str | None
    onset: float
    duration: float
    snr_db: float


@dataclasses.dataclass(frozen=True)
class SynthClip:
    """A generated clip: mono float32 waveform in [−1, 1) on the 16-bit grid, and its truth.

    labels: the clean labels (exactly the target classes among ``events``);
    observed_labels: the labels a trainer sees (corpus v2: ``labels`` through the config's
    :class:`LabelNoise`; without noise, or when made by :func:`generate_clip` without a
    ``noise_rng``, equal to ``labels``).
    """

    waveform: np.ndarray
    pcm16: np.ndarray
    sample_rate: int
    labels: tuple
    events: tuple
    background: tuple
    observed_labels: tuple = None

    def __post_init__(self):
        if self.observed_labels is None:
            object.__setattr__(self, "observed_labels", self.labels)

    def targets(self, classes=CLASSES):
        """Multi-hot tuple over ``classes`` of the clean labels (the ground truth)."""
        return tuple(int(c in self.labels) for c in classes)

    def observed_targets(self, classes=CLASSES):
        """Multi-hot tuple over ``classes`` of the observed (possibly noisy) labels."""
        return tuple(int(c in self.observed_labels) for c in classes)


# ---------------------------------------------------------------------------------------------
# building blocks


def _harmonic_tone(rng, f0, sr, formants, max_harmonics=40):
    """Sum of harmonics of the f0 contour (Hz per sample), each weighted by a formant envelope.

    formants: list of (centre Hz, bandwidth Hz, gain); weights follow the envelope at h·f0(t),
    so the spectral shape stays put while the pitch moves (as in a voice).
    """
    phase = 2 * np.pi * np.cumsum(f0) / sr
    nyq = 0.5 * sr
    out = np.zeros_like(f0)
    top = int(min(max_harmonics, nyq * 0.95 // max(f0.min(), 1.0)))
    start_phases = rng.uniform(0, 2 * np.pi, size=max(top, 1))
    for h in range(1, top + 1):
        fh = h * f0
        gain = sum(g / (1.0 + ((fh - fc) / bw) ** 2) for fc, bw, g in formants)
        gain = np.where(fh < 0.95 * nyq, gain, 0.0) / h ** 0.5
        out += gain * np.sin(h * phase + start_phases[h - 1])
    return out


def _envelope(n, sr, attack, decay_tau, hold=0.0):
    """Linear attack (s), flat hold (s), exponential decay with time constant decay_tau (s)."""
    t = np.arange(n) / sr
    a = max(attack, 1.0 / sr)
    env = np.minimum(t / a, 1.0)
    after = np.maximum(t - a - hold, 0.0)
    return env * np.exp(-after / max(decay_tau, 1e-4))


def _smooth_arc(n, rng):
    """A rising-then-falling contour from 0 to 1 to ~0, peak at a random point (pitch arcs)."""
    peak = rng.uniform(0.2, 0.6)
    x = np.linspace(0.0, 1.0, n)
    rise = np.sin(0.5 * np.pi * np.minimum(x / peak, 1.0))
    fall = np.cos(0.5 * np.pi * np.clip((x - peak) / (1 - peak), 0.0, 1.0)) ** 1.5
    return np.where(x < peak, rise, np.maximum(fall, 0.0))


def _band_noise(rng, n, sr, lo, hi, order=2):
    nyq = 0.5 * sr
    lo, hi = max(lo, 20.0), min(hi, 0.95 * nyq)
    sos = butter(order, [lo / nyq, hi / nyq], btype="band", output="sos")
    return sosfilt(sos, rng.standard_normal(n))


def _lowpass(x, sr, cutoff, order=2):
    return sosfilt(_butter_lowpass(order, min(cutoff, 0.45 * sr) / (0.5 * sr)), x)


@functools.lru_cache(maxsize=64)
def _butter_lowpass(order, wn):
    """SciPy's Butterworth low-pass design, remembered per (order, normalised cutoff): the
    corpus asks for a few fixed cutoffs (2 Hz drifts, 30 Hz jitter) thousands of times, and
    designing one costs more than filtering a clip with it. The same array every time: the
    caller only reads it."""
    return butter(order, wn, btype="low", output="sos")


def _place(out, x, start):
    end = min(out.size, start + x.size)
    if end > start:
        out[start:end] += x[:end - start]


# ---------------------------------------------------------------------------------------------
# target events


def dog(rng, sr):
    """1–4 barks of 0.08–0.25 s: harmonic (f0 300–800 Hz, quick rise then fall) plus breath
    noise, two formants, sharp attack; barks 0.15–0.5 s apart."""
    count = int(rng.integers(1, 5))
    pieces, t = [], 0
    f1, f2 = rng.uniform(450, 1100), rng.uniform(1400, 3200)
    for _ in range(count):
        n = int(rng.uniform(0.08, 0.25) * sr)
        f0_top = rng.uniform(300, 800)
        contour = _smooth_arc(n, rng)
        f0 = f0_top * (0.7 + 0.3 * contour) * (1 + 0.01 * rng.standard_normal())
        voiced = _harmonic_tone(rng, f0, sr, [(f1, 250, 1.0), (f2, 400, 0.6)])
        voiced /= np.sqrt(np.mean(voiced ** 2)) + 1e-12
        breath = _band_noise(rng, n, sr, 0.5 * f1, 2 * f2)
        breath /= np.sqrt(np.mean(breath ** 2)) + 1e-12
        mix = voiced + rng.uniform(0.2, 0.7) * breath
        bark = mix * _envelope(n, sr, rng.uniform(0.004, 0.015), rng.uniform(0.03, 0.08),
                               hold=rng.uniform(0.0, 0.04))
        pieces.append((t, bark))
        t += n + int(rng.uniform(0.15, 0.5) * sr)
    return _assemble(pieces)


def baby_cry(rng, sr):
    """1–3 cries of 0.4–1.5 s: harmonic, f0 350–600 Hz on a pitch arc, vibrato 5–9 Hz of
    1.5–5 % depth with jitter, formants F1 0.8–1.3 kHz / F2 1.8–3.2 kHz; 0.2–0.6 s inhales."""
    count = int(rng.integers(1, 4))
    pieces, t = [], 0
    f1, f2 = rng.uniform(800, 1300), rng.uniform(1800, 3200)
    for _ in range(count):
        n = int(rng.uniform(0.4, 1.5) * sr)
        base = rng.uniform(350, 600)
        tt = np.arange(n) / sr
        rate, depth = rng.uniform(5, 9), rng.uniform(0.015, 0.05)
        jitter = _lowpass(rng.standard_normal(n), sr, 30.0) * 0.3
        f0 = base * (0.85 + 0.25 * _smooth_arc(n, rng)) * (
            1 + depth * np.sin(2 * np.pi * rate * tt + rng.uniform(0, 2 * np.pi)) + 0.01 * jitter)
        voiced = _harmonic_tone(rng, f0, sr, [(f1, 300, 1.0), (f2, 500, 0.7), (4500, 900, 0.2)])
        env = _envelope(n, sr, rng.uniform(0.03, 0.1), rng.uniform(0.1, 0.4),
                        hold=0.6 * n / sr)
        pieces.append((t, voiced * env))
        gap = int(rng.uniform(0.2, 0.6) * sr)
        inhale = _band_noise(rng, gap // 2, sr, 1000, 4000) * 0.05 * np.hanning(gap // 2)
        pieces.append((t + n + gap // 4, inhale))
        t += n + gap
    return _assemble(pieces)


def gunshot(rng, sr):
    """1–3 shots: 1–4 ms broadband crack (0–2× the body's peak), noise body (low-passed
    1–5 kHz, decay 20–150 ms), 1–3 echoes 40–400 ms later at 0.15–0.5 of the level, each
    darker than the last."""
    count = int(rng.integers(1, 4))
    pieces, t = [], 0
    for _ in range(count):
        body_n = int(0.7 * sr)
        crack_n = max(int(rng.uniform(0.001, 0.004) * sr), 2)
        body = _lowpass(rng.standard_normal(body_n), sr, rng.uniform(1000, 5000))
        body *= _envelope(body_n, sr, 0.0005, rng.uniform(0.02, 0.15))
        body /= np.abs(body).max() + 1e-12
        crack = rng.standard_normal(crack_n) * rng.uniform(0.0, 2.0)
        shot = body.copy()
        shot[:crack_n] += crack
        total = shot.copy()
        delay, gain, dark = 0, 1.0, rng.uniform(2000, 5000)
        for _ in range(int(rng.integers(1, 4))):
            delay += int(rng.uniform(0.04, 0.4) * sr)
            gain *= rng.uniform(0.15, 0.5)
            echo = _lowpass(shot, sr, dark) * gain
            dark *= 0.7
            total = np.concatenate([total, np.zeros(max(0, delay + echo.size - total.size))])
            total[delay:delay + echo.size] += echo
        pieces.append((t, total))
        t += int(rng.uniform(0.1, 1.0) * sr)
    return _assemble(pieces)


# ---------------------------------------------------------------------------------------------
# distractors


def door_slam(rng, sr):
    """Thump (decaying 60–200 Hz tone) plus a noise body low-passed at 0.8–5 kHz with a 20–150 ms
    decay, often a rattle: one or two weaker impacts 50–300 ms later (echoes' look-alike)."""
    n = int(0.6 * sr)
    t = np.arange(n) / sr
    tau = rng.uniform(0.02, 0.15)
    thump = np.sin(2 * np.pi * rng.uniform(60, 200) * t) * np.exp(-t / tau)
    body = _lowpass(rng.standard_normal(n), sr, rng.uniform(800, 5000))
    body *= _envelope(n, sr, 0.001, tau * rng.uniform(0.5, 1.0))
    slam = rng.uniform(0.2, 1.0) * thump / (np.abs(thump).max() + 1e-12) \
        + body / (np.abs(body).max() + 1e-12)
    pieces, delay = [(0, slam)], 0
    for _ in range(int(rng.choice(3, p=(0.4, 0.4, 0.2)))):
        delay += int(rng.uniform(0.05, 0.3) * sr)
        pieces.append((delay, slam * rng.uniform(0.2, 0.6)))
    return _assemble(pieces)


def meow(rng, sr):
    """One 0.4–1.5 s harmonic glide, f0 350–700 Hz rising then falling, formants drawn from the
    same ranges as the cry's, slow warble of at most 1 %: a cry without vibrato or repeats."""
    n = int(rng.uniform(0.4, 1.5) * sr)
    tt = np.arange(n) / sr
    f0 = rng.uniform(350, 700) * (0.8 + 0.35 * _smooth_arc(n, rng)) * (
        1 + rng.uniform(0, 0.01) * np.sin(2 * np.pi * rng.uniform(1, 3) * tt))
    tone = _harmonic_tone(rng, f0, sr, [(rng.uniform(800, 1300), 300, 1.0),
                                        (rng.uniform(1800, 3200), 500, 0.7),
                                        (4500, 900, 0.2)])
    return tone * _envelope(n, sr, rng.uniform(0.03, 0.1), rng.uniform(0.1, 0.4),
                            hold=0.6 * n / sr)


def clap(rng, sr):
    """2–8 claps at 2–6 per second: 5–50 ms decays of noise band-passed (0.4–1.2 to 2.5–6 kHz)."""
    count = int(rng.integers(2, 9))
    period = 1.0 / rng.uniform(2, 6)
    pieces = []
    for k in range(count):
        n = int(0.08 * sr)
        burst = _band_noise(rng, n, sr, rng.uniform(400, 1200), rng.uniform(2500, 6000))
        burst *= _envelope(n, sr, 0.0005, rng.uniform(0.005, 0.05))
        pieces.append((int((k * period + rng.uniform(-0.02, 0.02) * (k > 0)) * sr), burst))
    return _assemble(pieces)


def whistle(rng, sr):
    """A near-pure 1–3 kHz tone, 0.3–1.5 s, gliding ±20 %, warble 2–5 Hz of ≤ 2 % depth."""
    n = int(rng.uniform(0.3, 1.5) * sr)
    tt = np.arange(n) / sr
    f = rng.uniform(1000, 3000) * (1 + rng.uniform(-0.2, 0.2) * tt / tt[-1]) * (
        1 + rng.uniform(0, 0.02) * np.sin(2 * np.pi * rng.uniform(2, 5) * tt))
    tone = np.sin(2 * np.pi * np.cumsum(f) / sr) + 0.1 * np.sin(4 * np.pi * np.cumsum(f) / sr)
    return tone * _envelope(n, sr, rng.uniform(0.02, 0.1), rng.uniform(0.05, 0.2),
                            hold=0.6 * n / sr)


EVENT_MAKERS = {"dog": dog, "baby_cry": baby_cry, "gunshot": gunshot,
                "door_slam": door_slam, "meow": meow, "clap": clap, "whistle": whistle}


def _assemble(pieces):
    end = max(start + x.size for start, x in pieces)
    out = np.zeros(end)
    for start, x in pieces:
        out[start:start + x.size] += x
    # trim the silent tail so that the event's duration and SNR span its audible part
    loud = np.flatnonzero(np.abs(out) > 1e-3 * np.abs(out).max())
    return out[:loud[-1] + 1] if loud.size else out


# ---------------------------------------------------------------------------------------------
# backgrounds


def _coloured_noise(rng, n, exponent):
    """Noise with power spectrum ∝ 1/f^exponent (pink: 1, brown: 2), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=float)
    f[0] = 1.0
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    x -= x.mean()
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def _hum(rng, n, sr):
    base = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(n) / sr
    x = sum(rng.uniform(0.1, 1.0) / h * np.sin(2 * np.pi * h * base * t + rng.uniform(0, 6.3))
            for h in range(1, 8))
    return x + 0.3 * _coloured_noise(rng, n, 1.0)


def _babble(rng, n, sr):
    """3–6 voice-like sources: pulse trains (f0 90–250 Hz, drifting) through two resonances,
    gated by a 3–6 Hz syllable envelope."""
    out = np.zeros(n)
    for _ in range(int(rng.integers(3, 7))):
        drift = _lowpass(rng.standard_normal(n), sr, 2.0)
        drift /= np.abs(drift).max() + 1e-12
        f0 = rng.uniform(90, 250) * (1 + 0.15 * drift)
        saw = 2 * (np.cumsum(f0 / sr) % 1.0) - 1
        voice = saw
        for fc in (rng.uniform(300, 900), rng.uniform(900, 2500)):
            r = np.exp(-np.pi * 120.0 / sr)
            voice = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / sr), r * r], voice)
        syll = _lowpass(rng.standard_normal(n), sr, rng.uniform(3, 6))
        syll = np.maximum(syll / (np.abs(syll).max() + 1e-12), 0.0)
        out += voice * syll * rng.uniform(0.5, 1.0)
    return out


def _wind(rng, n, sr):
    gust = _lowpass(rng.standard_normal(n), sr, rng.uniform(0.3, 1.5))
    gust = 0.5 + (gust - gust.min()) / (np.ptp(gust) + 1e-12)
    return _lowpass(rng.standard_normal(n), sr, rng.uniform(200, 800)) * gust


def background(rng, n, sr, kinds):
    """Sum of the given background kinds at random relative gains, unit RMS."""
    makers = {"pink": lambda: _coloured_noise(rng, n, 1.0),
              "brown": lambda: _coloured_noise(rng, n, 2.0),
              "hum": lambda: _hum(rng, n, sr), "babble": lambda: _babble(rng, n, sr),
              "wind": lambda: _wind(rng, n, sr)}
    out = np.zeros(n)
    for k in kinds:
        x = makers[k]()
        out += rng.uniform(0.3, 1.0) * x / (np.sqrt(np.mean(x ** 2)) + 1e-12)
    return out / (np.sqrt(np.mean(out ** 2)) + 1e-12)


# ---------------------------------------------------------------------------------------------
# clips and corpora


def generate_clip(rng, config=None, *, noise_rng=None, **overrides):
    """One clip drawn with ``rng`` (a ``numpy.random.Generator``); returns :class:`SynthClip`.

    config: :class:`SynthConfig` (default: the defaults); overrides: its fields by name.
    noise_rng: the generator of the config's label noise (:func:`noise_rng` for clip ``i`` of
        a corpus; :func:`corpus_clip` passes it). Without it the observed labels are the clean
        ones. It never touches ``rng``: the audio is the same with or without noise.
    """
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    if noise_rng is not None and not isinstance(noise_rng, np.random.Generator):
        raise InputError(f"noise_rng: expected a numpy.random.Generator or None, got "
                         f"{type(noise_rng).__name__}")
    cfg = _config(config, overrides)
    sr = cfg.sample_rate
    n = int(round(cfg.duration * sr))
    n_bg = int(rng.integers(1, min(3, len(cfg.backgrounds)) + 1))
    bg_kinds = tuple(sorted(rng.choice(cfg.backgrounds, size=n_bg, replace=False).tolist()))
    mix = background(rng, n, sr, bg_kinds)  # unit RMS: SNR in dB is the event's power in dB

    events = []
    n_targets = int(rng.choice(len(cfg.event_count_probs), p=cfg.event_count_probs))
    n_distract = int(rng.choice(len(cfg.distractor_count_probs), p=cfg.distractor_count_probs))
    draws = [(str(rng.choice(cfg.classes)), True) for _ in range(n_targets)]
    draws += [(str(rng.choice(cfg.distractors)), False) for _ in range(n_distract)]
    for kind, is_target in draws:
        x = EVENT_MAKERS[kind](rng, sr)[:n]
        lo, hi = cfg.snr_db if is_target else cfg.distractor_snr_db
        snr = float(rng.uniform(lo, hi))
        x = x * (10 ** (snr / 20) / (np.sqrt(np.mean(x ** 2)) + 1e-12))
        start = int(rng.integers(0, n - x.size + 1))
        _place(mix, x, start)
        events.append(Event(kind, kind if is_target else None, round(start / sr, 4),
                            round(x.size / sr, 4), round(snr, 2)))

    peak = rng.uniform(*cfg.peak_range)
    mix *= peak / (np.abs(mix).max() + 1e-12)
    pcm = np.clip(np.rint(mix * 32768.0), -32768, 32767).astype(np.int16)
    labels = tuple(c for c in CLASSES if any(e.label == c for e in events))
    events.sort(key=lambda e: (e.onset, e.kind))
    observed = labels
    if noise_rng is not None and cfg.label_noise.active:
        observed = _observe(labels, cfg.label_noise, noise_rng, cfg.classes)
    return SynthClip(waveform=pcm.astype(np.float32) / np.float32(32768.0), pcm16=pcm,
                     sample_rate=sr, labels=labels, events=tuple(events), background=bg_kinds,
                     observed_labels=observed)


def _observe(labels, noise, rng, classes):
    """Observed labels (in CLASSES order) from clean ``labels``; false positives only among
    ``classes``. One uniform draw per class of CLASSES, whatever ``labels`` holds."""
    u = rng.random(len(CLASSES))
    miss = noise.missing_rates(CLASSES)
    return tuple(c for k, c in enumerate(CLASSES)
                 if (u[k] >= miss[k] if c in labels
                     else c in classes and u[k] < noise.false_positive))


def observe_labels(targets, noise, seed, index, classes=CLASSES):
    """Observed (noisy) multi-hot labels (float32, like ``targets``) of clip ``index`` of
    corpus ``seed`` whose clean multi-hot ``targets`` are over ``classes``: what
    :func:`corpus_clip` observes for that clip, without synthesising its audio.

    noise: :class:`LabelNoise`, a dict of its fields, or None (no noise). Each present class
    is dropped if its draw from :func:`noise_rng` falls below its missing rate, each absent
    one of ``classes`` added if its draw falls below ``false_positive`` (module docstring).
    """
    classes = tuple(classes)
    bad = [c for c in classes if c not in CLASSES]
    if bad or len(set(classes)) != len(classes):
        raise InputError(f"classes: expected distinct names among {', '.join(CLASSES)}, "
                         f"got {classes}")
    y = np.asarray(targets, dtype=np.float32)
    if y.shape != (len(classes),) or not np.isin(y, (0.0, 1.0)).all():
        raise InputError(f"targets: expected {len(classes)} values in {{0, 1}} (one per class "
                         f"of {classes}), got {targets!r}")
    noise = LabelNoise.of(noise)
    if not noise.active:
        return y.copy()
    present = tuple(c for c, v in zip(classes, y) if v)
    observed = _observe(present, noise, noise_rng(seed, index), classes)
    return np.array([c in observed for c in classes], dtype=np.float32)


def _config(config, overrides):
    if config is None:
        return SynthConfig(**overrides)
    if not isinstance(config, SynthConfig):
        raise InputError(f"config: expected a SynthConfig, got {type(config).__name__}")
    return dataclasses.replace(config, **overrides) if overrides else config


def clip_rng(seed, index):
    """The generator of clip ``index`` of corpus ``seed``: ``default_rng([seed, index])``."""
    return np.random.default_rng([check_int("seed", seed, lo=0), check_int("index", index, lo=0)])


def noise_rng(seed, index):
    """The generator of clip ``index``'s label noise: ``default_rng([seed, index, 1])``, its
    own stream, so the noise never changes the audio (:func:`clip_rng`) and the audio never
    the noise."""
    return np.random.default_rng([check_int("seed", seed, lo=0),
                                  check_int("index", index, lo=0), 1])


def corpus_config(version, duration=10.0, sample_rate=SAMPLE_RATE, *, label_noise=None,
                  **overrides):
    """The :class:`SynthConfig` of corpus ``version`` (v1 | v2) for clips of ``duration`` s.

    label_noise: v2 only: :class:`LabelNoise` or a dict of its fields (default
        ``LabelNoise()``: 20 % missing, 2 % false positives; ``{"missing": 0,
        "false_positive": 0}`` gives v2's audio with clean labels). v1 has none.
    overrides: other SynthConfig fields (e.g. ``snr_db`` to replace v2's (−15, 10) dB).
    """
    if version not in CORPORA:
        raise InputError(f"corpus: expected one of {', '.join(CORPORA)}, got {version!r}")
    if "label_noise" in overrides:
        raise InputError("label_noise: pass it as corpus_config's keyword argument")
    if version == "v1":
        if LabelNoise.of(label_noise).active:
            raise InputError("label_noise: corpus v1 has clean labels; label noise is part of "
                             "corpus v2")
        return SynthConfig(duration=duration, sample_rate=sample_rate, **overrides)
    noise = LabelNoise() if label_noise is None else LabelNoise.of(label_noise)
    return SynthConfig(**{"snr_db": V2_SNR_DB, **overrides}, duration=duration,
                       sample_rate=sample_rate, label_noise=noise)


def corpus_clip(seed, index, config=None, **overrides):
    """Clip ``index`` of corpus ``seed``: audio from :func:`clip_rng`, observed labels from
    the config's label noise drawn with :func:`noise_rng`."""
    cfg = _config(config, overrides)
    return generate_clip(clip_rng(seed, index), cfg,
                         noise_rng=noise_rng(seed, index) if cfg.label_noise.active else None)


def iter_corpus(n, seed, config=None, *, start=0, **overrides):
    """Yield clips ``start … start+n−1`` of corpus ``seed`` one at a time (constant memory),
    each from :func:`corpus_clip`."""
    n = check_int("n", n, lo=0)
    start = check_int("start", start, lo=0)
    cfg = _config(config, overrides)
    for i in range(start, start + n):
        yield corpus_clip(seed, i, cfg)


def generate_corpus(n, seed, duration=10.0, config=None, **overrides):
    """List of ``n`` clips of corpus ``seed`` with the given clip ``duration`` (s), in memory."""
    return list(iter_corpus(n, seed, config, duration=duration, **overrides))


def format_events(events):
    """``kind:onset:duration:snr`` per event, ``|``-separated (the manifest's events column)."""
    return "|".join(f"{e.kind}:{e.onset:.4f}:{e.duration:.4f}:{e.snr_db:.2f}" for e in events)


def write_corpus(out_dir, n, seed, config=None, *, validation_fraction=0.1,
                 test_fraction=0.1, n_transfer=0, progress=False, **overrides):
    """Write ``n`` clips as 16-bit PCM wav files plus ``manifest.csv`` and ``events.csv``.

    Layout: OUT/audio/synth_{seed}_{i:06d}.wav; OUT/manifest.csv with path (relative to OUT),
    labels (the observed labels: what a trainer sees), clean_labels (the ground truth; equal
    to labels without label noise), split, background, events (clean truth); OUT/events.csv
    with one row per event (path, kind, label, observed, onset_seconds, duration_seconds,
    snr_db), where ``observed`` is 1 if the event's class is among the clip's observed labels,
    0 if the label noise dropped it, empty for a distractor (a false positive has no event).
    Splits: the last round(test_fraction·n) clips are test, the round(validation_fraction·n)
    before them validation, the rest train (clips are i.i.d., so contiguous blocks are fair).

    n_transfer: that many more clips, indices n … n+n_transfer−1 of the same corpus (so none
    is one of the labelled clips), with split ``unlabeled``: a transfer set. Their ``labels``
    are the clean truth (nobody annotated them; the truth is kept for analysis only, never to
    train on).
    """
    n = check_int("n", n, lo=1)
    seed = check_int("seed", seed, lo=0)
    n_transfer = check_int("n_transfer", n_transfer, lo=0)
    vf = check_float("validation_fraction", validation_fraction, 0.0, 1.0)
    tf = check_float("test_fraction", test_fraction, 0.0, 1.0)
    if vf + tf > 1.0:
        raise InputError("validation_fraction + test_fraction: expected at most 1, got "
                         f"{vf + tf}")
    n_test, n_val = int(round(tf * n)), int(round(vf * n))
    cfg = _config(config, overrides)
    os.makedirs(os.path.join(out_dir, "audio"), exist_ok=True)

    rows, event_rows = [], []
    total = n + n_transfer
    clips = iter_corpus(total, seed, cfg)
    for i, clip in enumerate(tqdm(clips, total=total, desc="synth", unit="clip",
                                  disable=not progress)):
        rel = f"audio/synth_{seed}_{i:06d}.wav"
        buf = io.BytesIO()
        sf.write(buf, clip.pcm16, clip.sample_rate, format="WAV", subtype="PCM_16")
        atomic_write_bytes(os.path.join(out_dir, rel), buf.getvalue())
        split = UNLABELED if i >= n else "test" if i >= n - n_test \
            else "validation" if i >= n - n_test - n_val else "train"
        observed = clip.labels if split == UNLABELED else clip.observed_labels
        rows.append({"path": rel, "labels": ";".join(observed),
                     "clean_labels": ";".join(clip.labels), "split": split,
                     "background": "+".join(clip.background),
                     "events": format_events(clip.events)})
        event_rows += [{"path": rel, "kind": e.kind, "label": e.label or "",
                        "observed": "" if e.label is None else int(e.label in observed),
                        "onset_seconds": f"{e.onset:.4f}", "duration_seconds": f"{e.duration:.4f}",
                        "snr_db": f"{e.snr_db:.2f}"} for e in clip.events]
    write_manifest(os.path.join(out_dir, "manifest.csv"), rows,
                   ("path", "labels", "clean_labels", "split", "background", "events"))
    write_manifest(os.path.join(out_dir, "events.csv"), event_rows,
                   ("path", "kind", "label", "observed", "onset_seconds", "duration_seconds",
                    "snr_db"))
    return rows
