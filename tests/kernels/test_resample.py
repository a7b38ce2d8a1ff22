"""The polyphase resampling kernel (qdaed/kernels/resample.py) called directly, against
tests/naive.py's sum over every valid filter index."""

import numpy as np
import pytest

from qdaed.data.resampler import resample_filter
from qdaed.kernels.resample import polyphase_block
from tests import naive


def test_polyphase_kernel_equals_naive_sum():
    rng = np.random.default_rng(0)
    x = rng.normal(size=37)
    h, half = resample_filter(3, 2)
    n_out = -(-x.size * 3 // 2)
    out = np.empty(n_out)
    polyphase_block(x, 0, x.size, h, 3, 2, half, 0, out)
    np.testing.assert_allclose(out, naive.polyphase_resample(x, h, 3, 2, half, n_out),
                               rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("up, down, n", [(1, 2, 1), (2, 1, 1), (1, 3, 2), (160, 441, 50),
                                         (3, 2, 1)])
def test_polyphase_kernel_at_the_edges_and_for_tiny_inputs(up, down, n):
    """One or two samples, the 44.1 kHz → 16 kHz ratio: every output is the naive sum."""
    h, half = resample_filter(up, down)
    n_out = -(-n * up // down)
    x = np.random.default_rng(n).normal(size=n)
    out = np.full(n_out, np.nan)
    polyphase_block(x, 0, x.size, h, up, down, half, 0, out)
    np.testing.assert_allclose(out, naive.polyphase_resample(x, h, up, down, half, n_out),
                               rtol=1e-12, atol=1e-14)


def test_polyphase_kernel_with_a_one_tap_filter_is_the_identity_and_a_block_is_a_slice():
    x = np.random.default_rng(3).normal(size=20)
    out = np.full(20, np.nan)
    polyphase_block(x, 0, x.size, np.array([1.0]), 1, 1, 0, 0, out)
    np.testing.assert_array_equal(out, x)
    # a block of outputs from m0 = 5 with the input held from x0 = 3: the same values
    part = np.full(6, np.nan)
    polyphase_block(x[3:], 3, x.size, np.array([1.0]), 1, 1, 0, 5, part)
    np.testing.assert_array_equal(part, x[5:11])
