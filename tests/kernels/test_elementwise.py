"""The element-wise and per-channel kernels called directly, against the textbook formulas
in plain NumPy (float64): ReLU (qdaed/kernels/relu.py), the batch-norm passes
(qdaed/kernels/batchnorm.py), the sigmoid cross-entropy loops (qdaed/kernels/losses.py).
Shapes include a single value, B = 1, one channel, constant tensors and boundary values."""

import numpy as np
import pytest

from qdaed.kernels import batchnorm as kbn
from qdaed.kernels import losses as kloss
from qdaed.kernels import relu as krelu
from tests import naive

SIZES = [1, 7, 1000]          # one value, a short tail, several vector widths


# ---- ReLU -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_relu_kernels_equal_the_formula(dtype, n):
    rng = np.random.default_rng(n)
    x, r, dy = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    x[0] = 0.0                                  # the boundary: max(0, 0) = 0, no gradient
    y = np.full(n, np.nan, dtype)
    krelu.relu_forward(x, y)
    np.testing.assert_array_equal(y, np.where(x > 0, x, 0))
    yr = np.full(n, np.nan, dtype)
    krelu.add_relu_forward(x, r, yr)
    np.testing.assert_array_equal(yr, np.maximum(x + r, 0))
    dx = np.full(n, np.nan, dtype)
    krelu.relu_backward(y, dy, dx)
    np.testing.assert_array_equal(dx, np.where(y > 0, dy, 0))
    assert dx[0] == 0


# ---- batch-norm passes ----------------------------------------------------------------------

BN_SHAPES = [(1, 1, 1), (1, 3, 5), (2, 4, 17), (3, 2, 64)]   # (B, C, L = H·W)


def _bn_case(shape, dtype, constant=False):
    rng = np.random.default_rng(sum(shape))
    x = 3.0 + 2.0 * rng.standard_normal(shape)
    if constant:
        x[:] = 1.25
    return x.astype(dtype), rng


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("constant", [False, True])
def test_channel_mean_var_equals_numpy(shape, dtype, tol, constant):
    x, _ = _bn_case(shape, dtype, constant)
    mean, var = np.full(shape[1], np.nan), np.full(shape[1], np.nan)
    kbn.channel_mean_var(x, mean, var)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2)), rtol=tol, atol=tol)
    np.testing.assert_allclose(var, x64.var(axis=(0, 2)), rtol=tol, atol=tol)
    if constant:
        assert np.all(var == 0)                  # exactly: the shift is a value of the channel


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("relu", [False, True])
def test_scale_shift_passes_equal_the_formula(shape, relu):
    x, rng = _bn_case(shape, np.float64)
    scale, shift = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    r = rng.standard_normal(shape)
    y = np.full(shape, np.nan)
    kbn.scale_shift(x, scale, shift, relu, y)
    want = x * scale[None, :, None] + shift[None, :, None]
    np.testing.assert_allclose(y, np.maximum(want, 0) if relu else want, rtol=1e-15, atol=0)
    kbn.scale_shift_add_relu(x, scale, shift, r, y)
    np.testing.assert_allclose(y, np.maximum(want + r, 0), rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("relu", [False, True])
def test_batchnorm_backward_passes_give_the_reference_input_gradient(shape, relu):
    """grad_sums + train_input_grad / eval_input_grad, composed as nn.batchnorm composes them,
    against tests/naive.py's batch-norm gradient (with the ReLU's mask applied to dy)."""
    x, rng = _bn_case(shape, np.float64)
    C, n = shape[1], shape[0] * shape[2]
    weight, eps = rng.uniform(0.5, 2.0, C), 1e-5
    dy, y = rng.standard_normal(shape), rng.standard_normal(shape)
    g = np.where(y > 0, dy, 0) if relu else dy
    mean, var = x.mean(axis=(0, 2)), x.var(axis=(0, 2))
    invstd = 1 / np.sqrt(var + eps)
    sum_g, sum_gx = np.full(C, np.nan), np.full(C, np.nan)
    kbn.grad_sums(x, mean, invstd, dy, y, relu, sum_g, sum_gx)
    xhat = (x - mean[None, :, None]) * invstd[None, :, None]
    np.testing.assert_allclose(sum_g, g.sum(axis=(0, 2)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sum_gx, (g * xhat).sum(axis=(0, 2)), rtol=1e-12, atol=1e-12)
    x4, g4 = x[..., None], g[..., None]                    # (B, C, L, 1) for the reference
    for train in (True, False):
        ref_dx, ref_dw, ref_db = naive.batchnorm2d_backward(weight, x4, g4, mean, var, train, eps)
        dx = np.full(shape, np.nan)
        k = weight * invstd
        if train:
            kbn.train_input_grad(x, mean, invstd, dy, y, relu, k, sum_g / n, sum_gx / n, dx)
        else:
            kbn.eval_input_grad(dy, y, relu, k, dx)
        np.testing.assert_allclose(dx, ref_dx[..., 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sum_gx, ref_dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sum_g, ref_db, rtol=1e-12, atol=1e-12)


# ---- sigmoid cross-entropy loops ----------------------------------------------------------

EXTREMES = np.array([0.0, 1e-8, -1e-8, 1.0, -1.0, 36.0, -36.0, 745.0, -745.0, 1e4, -1e4])


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-6), (np.float64, 1e-14)])
def test_sigmoid_and_bce_loops_equal_the_stable_formulas(dtype, tol):
    z = np.concatenate([EXTREMES, np.random.default_rng(0).normal(0, 5, 40)]).astype(dtype)
    y = np.random.default_rng(1).random(z.size).astype(dtype)
    z64, y64 = z.astype(np.float64), y.astype(np.float64)
    out = np.full(z.size, np.nan, dtype)
    kloss.sigmoid(z, out)
    np.testing.assert_allclose(out, naive.sigmoid(z64), rtol=tol, atol=1e-300)
    total = kloss.sigmoid_bce_sum(z, y)
    assert np.isfinite(total)
    assert total == pytest.approx(naive.bce(z64, y64) * z.size, rel=tol)
    scaled = np.full(z.size, np.nan, dtype)
    kloss.scaled_sigmoid_minus_target(z, y, 0.25, scaled)
    np.testing.assert_allclose(scaled, 0.25 * (naive.sigmoid(z64) - y64), rtol=tol,
                               atol=tol * 1e-3)


def test_bce_of_one_value_by_hand():
    # ℓ(0, y) = ln 2 whatever y; ℓ(z, 1) = ln(1 + e^−z); ℓ(−1e4, 1) = 1e4 (no overflow)
    assert kloss.sigmoid_bce_sum(np.array([0.0]), np.array([0.3])) == pytest.approx(np.log(2))
    assert kloss.sigmoid_bce_sum(np.array([2.0]), np.array([1.0])) == pytest.approx(
        np.log1p(np.exp(-2.0)), rel=1e-15)
    assert kloss.sigmoid_bce_sum(np.array([-1e4]), np.array([1.0])) == pytest.approx(1e4)


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (4, 5)])
def test_log_softmax_rows_equals_the_formula(shape):
    z = np.random.default_rng(shape[1]).normal(0, 10, shape)
    z[0, 0] = 1e4                                        # the max shift keeps it finite
    out = np.full(shape, np.nan)
    kloss.log_softmax_rows(z, out)
    top = z.max(axis=1, keepdims=True)
    want = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(out, want, rtol=1e-14, atol=1e-14)
    if shape[1] == 1:
        assert np.all(out == 0)                           # one class: log 1
