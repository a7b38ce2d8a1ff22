"""FeatureSet: observed and clean labels, the unlabeled split, subsets."""

import numpy as np
import pytest

from qdaed.data.manifest import CLASSES
from qdaed.errors import InputError
from qdaed.train.dataset import FeatureSet


def make(splits, clean="same", classes=CLASSES):
    n, c = len(splits), len(classes)
    rng = np.random.default_rng(len(splits))
    labels = (rng.random((n, c)) < 0.5).astype(np.float32)
    if isinstance(clean, str):
        clean = None if clean == "same" else 1 - labels     # "flipped"
    return FeatureSet(rng.standard_normal((n, 4, 2)).astype(np.float32), labels,
                      [f"c{i}" for i in range(n)], np.array(splits), tuple(classes),
                      clean_labels=clean)


def test_clean_labels_follow_every_subset_including_unlabeled():
    data = make(["train", "unlabeled", "test", "train", "validation", "unlabeled"], "flipped")
    for split in ("train", "validation", "test", "unlabeled"):
        part = data.subset(split)
        idx = np.flatnonzero(data.splits == split)
        np.testing.assert_array_equal(part.labels, data.labels[idx])
        np.testing.assert_array_equal(part.clean_labels, 1 - data.labels[idx])
        np.testing.assert_array_equal(part.truth, part.clean_labels)
        assert part.clips == [f"c{i}" for i in idx]
    assert len(data.subset("unlabeled")) == 2


def test_without_clean_labels_the_truth_is_the_labels():
    data = make(["train", "test"])
    assert data.clean_labels is None and data.subset("test").clean_labels is None
    np.testing.assert_array_equal(data.truth, data.labels)


def test_one_class_and_lists_are_accepted():
    data = make(["train", "test", "unlabeled"], [[1], [0], [1]], classes=("dog",))
    assert data.clean_labels.dtype == np.float32 and data.clean_labels.shape == (3, 1)


def test_bad_clean_labels_and_splits_are_input_errors():
    with pytest.raises(InputError, match="clean_labels"):
        make(["train", "test"], np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(InputError, match="unknown split"):
        make(["train", "transfer"])
