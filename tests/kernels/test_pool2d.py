"""The max-pool loops (qdaed/kernels/pool2d.py) called directly, against tests/naive.py's
max-pool and its backward (gradient to the first largest value of each window)."""

import numpy as np
import pytest

from qdaed.kernels import pool2d as kp
from tests import naive

# (B, C, H, W, k, stride, padding): B = 1 and one channel, a 1×1 input, ResNet's 3×3/2/1,
# windows wider than the input with padding, k = stride (no overlap)
CASES = [(1, 1, 1, 1, 3, 2, 1), (1, 2, 5, 4, 3, 2, 1), (2, 3, 8, 8, 3, 2, 1),
         (1, 1, 2, 3, 3, 1, 1), (2, 1, 6, 4, 2, 2, 0)]


def _out(n, k, s, p):
    return (n + 2 * p - k) // s + 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_max_pool_forward_and_backward_equal_the_reference(case, dtype):
    B, C, H, W, k, s, p = case
    rng = np.random.default_rng(H * W)
    x = rng.standard_normal((B, C, H, W)).astype(dtype)
    y = np.full((B, C, _out(H, k, s, p), _out(W, k, s, p)), np.nan, dtype)
    argmax = np.full(y.shape, -1, np.int64)
    kp.max_pool_forward(x, k, k, s, s, p, p, y, argmax)
    np.testing.assert_array_equal(y, naive.maxpool2d(x, k, s, p))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = np.full(x.shape, np.nan, dtype)                 # overwritten, not accumulated into
    kp.max_pool_backward(dy, argmax, dx)
    np.testing.assert_allclose(dx, naive.maxpool2d_backward(x, dy, k, s, p), rtol=1e-6,
                               atol=1e-6)


def test_a_constant_input_sends_each_gradient_to_the_first_pixel_of_its_window():
    x = np.full((1, 1, 4, 4), 7.0)
    y, argmax = np.empty((1, 1, 2, 2)), np.empty((1, 1, 2, 2), np.int64)
    kp.max_pool_forward(x, 3, 3, 2, 2, 1, 1, y, argmax)
    assert np.all(y == 7.0)
    # windows start at rows/cols −1 and 1: their first real pixels are (0, 0), (0, 1), (1, 0)
    # and (1, 1)
    assert argmax.reshape(-1).tolist() == [0, 1, 4, 5]
    dx = np.empty_like(x)
    kp.max_pool_backward(np.ones((1, 1, 2, 2)), argmax, dx)
    np.testing.assert_array_equal(dx, naive.maxpool2d_backward(x, np.ones((1, 1, 2, 2)), 3, 2, 1))
