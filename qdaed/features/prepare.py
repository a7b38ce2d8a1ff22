"""LFBE prepared for a network: the equal-length policy and the per-bin normalisation.

Shared by training, evaluation and inference (``qdaed detect``).

Policy for clips of unequal length (one rule, applied everywhere: training, evaluation,
``qdaed detect``): every clip's LFBE matrix is brought to exactly ``frames`` frames. A longer
clip keeps its first ``frames`` frames; a shorter one is *looped* (repeated from its start)
until it fills ``frames`` — the convention UrbanSound8K uses for short slices — so that no
padding value reaches the mean-pooled LSTM state or the ResNet's batch statistics. ``frames``
is a config value (by default the frame count of the preset's clip duration).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qdaed.errors import InputError
from qdaed.validate import check_array, check_int


def fix_length(feats, frames):
    """(T, F) → (frames, F): truncate to the first ``frames`` rows, or loop from the start."""
    feats = check_array("features", feats, ndim=2)
    frames = check_int("frames", frames, lo=1)
    t = feats.shape[0]
    if t >= frames:
        return np.ascontiguousarray(feats[:frames])
    reps = -(-frames // t)
    return np.ascontiguousarray(np.tile(feats, (reps, 1))[:frames])



@dataclass
class Normalizer:
    """Per-bin mean/variance normalisation fitted on the training split only:

        x̂[t, f] = (x[t, f] − μ_f) / σ_f,   μ_f, σ_f over every training frame

    σ_f is floored at 1e-5 so that a constant bin (e.g. above a band limit) maps to 0.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features):
        """features: (N, T, F) training clips."""
        x = np.asarray(features, dtype=np.float64).reshape(-1, features.shape[-1])
        mean = x.mean(axis=0)
        std = np.maximum(x.std(axis=0), 1e-5)
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def apply(self, features):
        """(…, F) → normalised float32 copy."""
        if features.shape[-1] != self.mean.shape[0]:
            raise InputError(f"features: expected {self.mean.shape[0]} mel bins (the model's "
                             f"normalisation), got {features.shape[-1]}")
        return ((features - self.mean) / self.std).astype(np.float32)
