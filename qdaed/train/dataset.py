"""Clip-level feature sets for training: equal-length policy, normalisation, seeded batches.

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

from qdaed.data.manifest import SPLITS, UNLABELED
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
class FeatureSet:
    """N clips of equal length.

    features: (N, T, F) float32 LFBE; labels: (N, C) float32 in {0, 1}: what training and
    validation see (corpus v2: the observed, noisy labels); clips: N clip identifiers (relative
    paths or synthetic names); splits: N split names (``unlabeled``: a transfer set, whose
    labels no loss may use); clean_labels: the ground truth (N, C) the test metrics use
    (None: the labels are the truth).
    """

    features: np.ndarray
    labels: np.ndarray
    clips: list
    splits: np.ndarray
    classes: tuple
    feature_options: dict = None     # the LFBE options that made ``features``
    clean_labels: np.ndarray = None

    def __post_init__(self):
        n = self.features.shape[0]
        if self.labels.shape != (n, len(self.classes)):
            raise InputError(f"labels: expected shape ({n}, {len(self.classes)}), "
                             f"got {self.labels.shape}")
        if len(self.clips) != n or len(self.splits) != n:
            raise InputError("clips and splits must have one entry per clip")
        bad = sorted(set(self.splits) - set(SPLITS) - {UNLABELED})
        if bad:
            raise InputError(f"split: unknown split names {bad}; expected {SPLITS} or "
                             f"{UNLABELED!r}")
        if self.clean_labels is not None:
            self.clean_labels = np.asarray(self.clean_labels, dtype=np.float32)
        if self.clean_labels is not None and self.clean_labels.shape != self.labels.shape:
            raise InputError(f"clean_labels: expected shape {self.labels.shape}, got "
                             f"{self.clean_labels.shape}")

    @property
    def truth(self):
        """The ground truth (N, C): ``clean_labels``, or ``labels`` when they are the truth."""
        return self.labels if self.clean_labels is None else self.clean_labels

    def subset(self, split):
        """The clips of one split, in their original order."""
        idx = np.flatnonzero(self.splits == split)
        return FeatureSet(self.features[idx], self.labels[idx], [self.clips[i] for i in idx],
                          self.splits[idx], self.classes, self.feature_options,
                          None if self.clean_labels is None else self.clean_labels[idx])

    def __len__(self):
        return self.features.shape[0]


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


def batch_order(n, batch_size, seed, epoch):
    """Seeded shuffled mini-batches of ``range(n)`` for one epoch.

    The permutation depends only on (seed, epoch), never on earlier draws, so a run resumed
    at epoch e sees exactly the batches the uninterrupted run saw. The last batch may be short.
    """
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]
