"""Augmentations of consistent teaching: mixup pairs and mixed labels, masks, shifts, gain."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdaed.errors import InputError
from qdaed.train.augment import (Augment, apply_gain, apply_masks, apply_time_shift,
                                 augment_batch, mixup, step_rng)
from tests.strategies import rng_from, seeds


def batch(rng, b=6, t=10, f=5):
    x = rng.standard_normal((b, t, f)).astype(np.float32)
    y = (rng.random((b, 3)) < 0.5).astype(np.float32)
    return x, y


@given(seeds, st.integers(1, 6), st.integers(0, 6), st.floats(0.1, 4.0))
@settings(deadline=None)
def test_mixup_pairs_within_groups_and_mixes_labels_with_the_same_weight(seed, n_lab, n_u, alpha):
    rng = rng_from(seed)
    x, y = batch(rng, b=n_lab + n_u)
    y = y[:n_lab]
    xm, ym, partner, m = mixup(x, y, rng_from(seed + 1), alpha, n_lab)
    # labelled rows pair with labelled rows, transfer rows with transfer rows
    assert set(partner[:n_lab]) == set(range(n_lab))
    assert set(partner[n_lab:]) == set(range(n_lab, n_lab + n_u))
    assert np.all((m >= 0) & (m <= 1))
    for a in range(n_lab + n_u):
        ref = m[a] * x[a].astype(np.float64) + (1 - m[a]) * x[partner[a]]
        np.testing.assert_allclose(xm[a], ref, atol=1e-5)
    for a in range(n_lab):
        ref = m[a] * y[a].astype(np.float64) + (1 - m[a]) * y[partner[a]]
        np.testing.assert_allclose(ym[a], ref, atol=1e-6)
    assert ym.shape == (n_lab, 3) and ym.min() >= 0 and ym.max() <= 1


def test_mixup_of_a_row_with_itself_changes_nothing():
    rng = np.random.default_rng(0)
    x, y = batch(rng, b=1)
    xm, ym, partner, _ = mixup(x, y, rng, 0.5, 1)
    assert partner.tolist() == [0]
    np.testing.assert_allclose(xm, x, atol=1e-6)
    np.testing.assert_allclose(ym, y, atol=1e-7)


@given(seeds, st.integers(0, 4), st.integers(0, 12))
@settings(deadline=None)
def test_masks_zero_whole_bands_and_nothing_else(seed, count, width):
    rng = rng_from(seed)
    x = rng.uniform(1.0, 2.0, size=(3, 10, 6)).astype(np.float32)  # no zeros before masking
    for axis in (1, 2):
        out = apply_masks(x.copy(), rng_from(seed + 1), count, width, axis)
        zero = out == 0
        other = 2 if axis == 1 else 1
        # a zero anywhere means the whole band across the other axis is zero
        assert np.array_equal(zero.any(axis=other), zero.all(axis=other))
        per_row = zero.all(axis=other).sum(axis=1)
        assert np.all(per_row <= count * min(width, x.shape[axis]))
        np.testing.assert_array_equal(out[~zero], x[~zero])


def test_time_shift_is_a_circular_roll_of_each_row():
    x = np.arange(2 * 7 * 2, dtype=np.float32).reshape(2, 7, 2)
    out = apply_time_shift(x, np.random.default_rng(3), 3)
    for b in range(2):
        matches = [k for k in range(-3, 4) if np.array_equal(out[b], np.roll(x[b], k, axis=0))]
        assert matches


def test_gain_adds_decibels_in_log_energy_scaled_per_bin():
    x = np.zeros((4, 3, 2), dtype=np.float64)
    scale = np.array([1.0, 0.5])
    out = apply_gain(x, np.random.default_rng(1), 10.0, scale)
    g = np.random.default_rng(1).uniform(-10, 10, size=4)
    for b in range(4):
        np.testing.assert_allclose(out[b, :, 0], g[b] * math.log(10) / 10)
        np.testing.assert_allclose(out[b, :, 1], 0.5 * g[b] * math.log(10) / 10)


def test_augment_batch_leaves_inputs_alone_and_is_determined_by_the_step():
    x, y = batch(np.random.default_rng(0))
    spec = Augment(mixup_alpha=0.4, max_shift=3, time_masks=1, time_mask=4, freq_masks=1,
                   freq_mask=2, gain_db=6.0)
    y = y[:4].copy()
    x0, y0 = x.copy(), y.copy()
    a = augment_batch(spec, x, y, step_rng(1, 2, 3), n_labelled=4)
    b = augment_batch(spec, x, y[:4], step_rng(1, 2, 3), n_labelled=4)
    c = augment_batch(spec, x, y[:4], step_rng(1, 2, 4), n_labelled=4)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(b[0], c[0])


def test_disabled_augment_is_the_identity():
    x, y = batch(np.random.default_rng(0))
    assert not Augment().enabled
    xa, ya = augment_batch(Augment(), x, y, step_rng(0, 0, 0))
    np.testing.assert_array_equal(xa, x)
    np.testing.assert_array_equal(ya, y)


@pytest.mark.parametrize("bad", [{"mixup_alpha": -1}, {"max_shift": -2}, {"gain_db": 1e9},
                                 {"time_mask": 1.5}])
def test_bad_augment_options_are_input_errors(bad):
    with pytest.raises(InputError):
        Augment(**bad)
