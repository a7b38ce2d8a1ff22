"""Batch augmentations for consistent teaching (Beyer et al., "Knowledge distillation: a good
teacher is patient and consistent", CVPR 2022): teacher and student see the *same* augmented
view in each step, and the frozen teacher is evaluated on that view on the fly.

Every augmentation works on a batch of normalised LFBE x (B, T, F) (per-bin zero mean, unit
variance on the training split, so 0 is the training mean of each bin) and is drawn from one
``numpy.random.Generator`` that the training loop seeds with (seed, epoch, step), so a resumed
run sees the same views. Applied in this order:

    gain        x[b] += g_b · ln(10)/10 · s_f,  g_b ~ U[−gain_db, gain_db]     (a level change
                of g_b dB; s_f = 1/σ_f maps log energy to normalised units; ``bin_scale``)
    time shift  x[b] = roll(x[b], k_b, axis=time),  k_b ~ U{−max_shift … max_shift}  (clips
                are looped to their length, so a circular shift is another start point)
    time masks  ``time_masks`` bands of up to ``time_mask`` frames set to 0   (SpecAugment,
    freq masks  ``freq_masks`` bands of up to ``freq_mask`` bins set to 0      Park et al. 2019)
    mixup       x = m x_a + (1 − m) x_π(a),  y = m y_a + (1 − m) y_π(a),  m ~ Beta(α, α)
                per row (Zhang et al. 2018; for AudioSet tagging, Kong et al. 2020's PANNs),
                π a random permutation *within* the labelled rows and within the transfer
                rows, so mixed labels stay defined and transfer rows stay unlabelled.

With cached teacher logits (the paper's setting) the teacher saw the clean clip and the
student an augmented one: the "inconsistent" teaching that Beyer et al. found worse. qdaed
therefore uses augmentation only with the teacher evaluated on the fly (``fit(teacher=...)``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from qdaed.validate import check_float, check_int


@dataclass(frozen=True)
class Augment:
    """Which augmentations a training step applies (all off by default)."""

    mixup_alpha: float = 0.0     # Beta(α, α); 0 disables mixup
    max_shift: int = 0           # frames; 0 disables the time shift
    time_masks: int = 0
    time_mask: int = 0           # widest time mask (frames)
    freq_masks: int = 0
    freq_mask: int = 0           # widest frequency mask (bins)
    gain_db: float = 0.0

    def __post_init__(self):
        check_float("mixup_alpha", self.mixup_alpha, lo=0.0, hi=100.0)
        for name in ("max_shift", "time_masks", "time_mask", "freq_masks", "freq_mask"):
            check_int(name, getattr(self, name), lo=0)
        check_float("gain_db", self.gain_db, lo=0.0, hi=60.0)

    @property
    def enabled(self):
        return any(v for v in asdict(self).values())

    def to_dict(self):
        return asdict(self)


def step_rng(seed, epoch, step):
    """The generator of one training step's augmentations: depends on (seed, epoch, step) only."""
    return np.random.default_rng([seed, epoch, step, 0xA06])


def apply_gain(x, rng, gain_db, bin_scale):
    """x[b] + g_b · ln(10)/10 · bin_scale,  g_b ~ U[−gain_db, gain_db] (a copy)."""
    g = rng.uniform(-gain_db, gain_db, size=x.shape[0]) * (math.log(10.0) / 10.0)
    scale = np.ones(x.shape[2]) if bin_scale is None else np.asarray(bin_scale, np.float64)
    return (x + (g[:, None, None] * scale[None, None, :]).astype(x.dtype)).astype(x.dtype)


def apply_time_shift(x, rng, max_shift):
    """x[b] rolled by k_b ~ U{−max_shift … max_shift} frames along time (a copy)."""
    out = np.empty_like(x)
    for b, k in enumerate(rng.integers(-max_shift, max_shift + 1, size=x.shape[0])):
        out[b] = np.roll(x[b], int(k), axis=0)
    return out


def apply_masks(x, rng, count, width, axis):
    """``count`` bands of width w ~ U{0 … width} at random starts set to 0, per row, along
    ``axis`` (1: time, 2: mel bins). In place; returns x."""
    size = x.shape[axis]
    for b in range(x.shape[0]):
        for _ in range(count):
            w = int(rng.integers(0, min(width, size) + 1))
            start = int(rng.integers(0, size - w + 1))
            if axis == 1:
                x[b, start:start + w, :] = 0.0
            else:
                x[b, :, start:start + w] = 0.0
    return x


def mixup(x, y, rng, alpha, n_labelled):
    """Mix each row with a partner from its own group (labelled rows 0 … n_labelled − 1,
    transfer rows after them): x = m x_a + (1 − m) x_π(a), y likewise for labelled rows.

    Returns (x_mixed, y_mixed, partner, m): partner[a] = π(a) and the weights m (B,)."""
    b = x.shape[0]
    partner = np.concatenate([rng.permutation(n_labelled),
                              n_labelled + rng.permutation(b - n_labelled)]).astype(np.int64)
    m = rng.beta(alpha, alpha, size=b)
    mx = m.astype(x.dtype)[:, None, None]
    x_mixed = mx * x + (1 - mx) * x[partner]
    y_mixed = None
    if y is not None:
        my = m[:n_labelled].astype(y.dtype)[:, None]
        y_mixed = my * y + (1 - my) * y[partner[:n_labelled]]
    return x_mixed.astype(x.dtype), y_mixed, partner, m


def augment_batch(spec, x, y, rng, n_labelled=None, bin_scale=None):
    """The augmented view (x', y') of a batch: the first ``n_labelled`` rows of x are labelled
    by y (n_labelled = B when None), the rest are transfer rows. Never changes x or y."""
    n_labelled = x.shape[0] if n_labelled is None else n_labelled
    out = x.copy()
    if spec.gain_db > 0:
        out = apply_gain(out, rng, spec.gain_db, bin_scale)
    if spec.max_shift > 0:
        out = apply_time_shift(out, rng, spec.max_shift)
    if spec.time_masks > 0 and spec.time_mask > 0:
        apply_masks(out, rng, spec.time_masks, spec.time_mask, axis=1)
    if spec.freq_masks > 0 and spec.freq_mask > 0:
        apply_masks(out, rng, spec.freq_masks, spec.freq_mask, axis=2)
    if spec.mixup_alpha > 0:
        out, y, _, _ = mixup(out, y, rng, spec.mixup_alpha, n_labelled)
    return out, y
