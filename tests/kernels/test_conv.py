"""im2col / col2im (qdaed/kernels/conv.py) called directly, against tests/naive.py."""

import numpy as np
import pytest

from qdaed.kernels import conv as kconv
from tests.naive import col2im as reference_col2im
from tests.naive import im2col as reference_im2col
from tests.strategies import rng_from

# (B, C, H, W, kh, kw, stride, padding): B = 1, odd sizes, "same" width with stride 1 (the
# contiguous-run path), stride 2 and mixed strides, padding at the edges, padding as wide as the
# kernel (whole rows and columns of padding), a 1-wide input, the stem's 7×7/2.
KERNEL_CASES = [
    (1, 1, 5, 5, 3, 3, (1, 1), (1, 1)),
    (2, 3, 7, 16, 3, 3, (1, 1), (1, 1)),
    (2, 2, 9, 7, 3, 3, (2, 2), (1, 1)),
    (1, 2, 6, 9, 3, 3, (1, 2), (0, 1)),
    (3, 1, 5, 4, 3, 3, (2, 1), (2, 2)),
    (1, 2, 4, 1, 3, 3, (1, 1), (1, 1)),
    (2, 1, 11, 8, 7, 7, (2, 2), (3, 3)),
    (1, 2, 5, 6, 1, 1, (2, 2), (0, 0)),
    (2, 2, 5, 5, 2, 3, (1, 1), (0, 1)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", KERNEL_CASES)
def test_im2col_and_col2im_kernels_match_references(case, dtype):
    nb, c, h, w, kh, kw, s, p = case
    rng = rng_from(21)
    x = rng.standard_normal((nb, c, h, w)).astype(dtype)
    ref = reference_im2col(x, kh, kw, s, p)
    cols = np.full(ref.shape, np.nan, dtype)   # every entry must be written
    kconv.im2col(x, kh, kw, s[0], s[1], p[0], p[1], cols)
    np.testing.assert_array_equal(cols, ref)
    g = rng.standard_normal(ref.shape).astype(dtype)
    dx = np.full(x.shape, np.nan, dtype)       # overwritten, not accumulated into
    kconv.col2im(g, kh, kw, s[0], s[1], p[0], p[1], dx)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(dx, reference_col2im(g, x.shape, kh, kw, s, p), rtol=tol,
                               atol=tol)
    # The adjoint identity <im2col(x), g> = <x, col2im(g)>.
    assert abs(np.vdot(cols, g) - np.vdot(x, dx)) <= tol * np.abs(cols).sum() * 10


def test_im2col_of_a_constant_input_is_the_constant_or_padding():
    x = np.full((1, 1, 4, 5), 2.5)
    cols = np.empty((1, 9, 20))
    kconv.im2col(x, 3, 3, 1, 1, 1, 1, cols)
    np.testing.assert_array_equal(cols, reference_im2col(x, 3, 3, (1, 1), (1, 1)))
    assert set(np.unique(cols)) == {0.0, 2.5}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", KERNEL_CASES)
def test_gather_and_scatter_kernels_match_references_and_the_run_kernels_bit_for_bit(case,
                                                                                     dtype):
    nb, c, h, w, kh, kw, s, p = case
    rng = rng_from(22)
    x = rng.standard_normal((nb, c, h, w)).astype(dtype)
    index = kconv.gather_index(h, w, kh, kw, s[0], s[1], p[0], p[1])
    ref = reference_im2col(x, kh, kw, s, p)
    cols = np.full(ref.shape, np.nan, dtype)   # every entry must be written
    kconv.im2col_gather(x, index, cols)
    np.testing.assert_array_equal(cols, ref)
    g = rng.standard_normal(ref.shape).astype(dtype)
    dx = np.full(x.shape, np.nan, dtype)       # overwritten, not accumulated into
    kconv.col2im_scatter(g, index, dx)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(dx, reference_col2im(g, x.shape, kh, kw, s, p), rtol=tol,
                               atol=tol)
    runs = np.empty_like(dx)                  # the same terms in the same order as col2im
    kconv.col2im(g, kh, kw, s[0], s[1], p[0], p[1], runs)
    np.testing.assert_array_equal(dx, runs)


def test_gather_index_names_plane_positions_and_marks_padding():
    # a 2 × 3 plane, 3 × 3 kernel, stride 1, padding 1: the centre tap (row 4) is the plane
    # itself; the top-left tap (row 0) reaches padding on the top row and the left column
    index = kconv.gather_index(2, 3, 3, 3, 1, 1, 1, 1)
    assert index.shape == (9, 6)
    np.testing.assert_array_equal(index[4], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(index[0], [-1, -1, -1, -1, 0, 1])
    np.testing.assert_array_equal(index[8], [4, 5, -1, -1, -1, -1])
    # stride 2 on a 1 × 5 row, 1 × 3 kernel, no padding: outputs at 0 and 2
    np.testing.assert_array_equal(kconv.gather_index(1, 5, 1, 3, 1, 2, 0, 0),
                                  [[0, 2], [1, 3], [2, 4]])
