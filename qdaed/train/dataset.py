"""Clip-level feature sets for training, and seeded mini-batches.

The equal-length policy and the per-bin normalisation that training and inference share live
in :mod:`qdaed.features.prepare`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qdaed.data.manifest import SPLITS, UNLABELED
from qdaed.errors import InputError



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


def batch_order(n, batch_size, seed, epoch):
    """Seeded shuffled mini-batches of ``range(n)`` for one epoch.

    The permutation depends only on (seed, epoch), never on earlier draws, so a run resumed
    at epoch e sees exactly the batches the uninterrupted run saw. The last batch may be short.
    """
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]
