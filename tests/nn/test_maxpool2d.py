import numpy as np
import pytest
from hypothesis import example, given

from qdaed.errors import InputError
from qdaed.gradcheck import compare_gradients, rel_error
from qdaed.nn import maxpool2d
from tests.strategies import batch, conv_channels, rng_from, seeds, spatial
from tests.naive import maxpool2d as reference_pool


@given(batch, conv_channels, spatial, spatial, seeds)
@example(1, 1, 1, 1, 0)     # a 1×1 input: one window, mostly padding
@example(1, 2, 7, 5, 1)     # odd sizes
def test_forward_matches_reference_and_gradient_matches_central_differences(nb, c, h, w, seed):
    rng = rng_from(seed)
    # Distinct values (a permutation), so no tie sits within the finite-difference step.
    x = rng.permutation(nb * c * h * w).reshape(nb, c, h, w) * 0.01
    y, cache = maxpool2d.forward({}, x)
    np.testing.assert_array_equal(y, reference_pool(x))
    dy = rng.standard_normal(y.shape)
    dx, _ = maxpool2d.backward({}, cache, dy)
    # The gradient sums over overlapping windows, so it is conserved in total.
    assert np.isclose(dx.sum(), dy.sum())

    def loss():
        return float(np.sum(maxpool2d.forward({}, x)[0] * dy))

    assert compare_gradients(loss, {"x": x}, {"x": dx})["x"] < 1e-6


def test_ties_route_the_gradient_to_the_first_maximum_in_the_window():
    x = np.zeros((1, 1, 4, 4))
    y, cache = maxpool2d.forward({}, x)
    dx, _ = maxpool2d.backward({}, cache, np.ones(y.shape))
    # Windows start at rows/cols -1, 1 (padding 1): their first real pixels are (0,0), (0,1),
    # (1,0), (1,1).
    want = np.zeros((4, 4))
    want[0, 0] = want[0, 1] = want[1, 0] = want[1, 1] = 1
    np.testing.assert_array_equal(dx[0, 0], want)


def test_padding_larger_than_half_the_kernel_is_refused():
    with pytest.raises(InputError, match="padding"):
        maxpool2d.forward({}, np.zeros((1, 1, 4, 4)), kernel_size=3, stride=2, padding=2)


@pytest.mark.conformance
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch_max_pool(dtype):
    from tests.torch_ref import to_numpy, to_torch, torch

    rng = rng_from(3)
    x = rng.standard_normal((2, 3, 9, 6)).astype(dtype)
    y, cache = maxpool2d.forward({}, x)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, _ = maxpool2d.backward({}, cache, dy)
    xt = to_torch(x, True)
    yt = torch.nn.functional.max_pool2d(xt, 3, 2, 1)
    yt.backward(to_torch(dy))
    assert rel_error(y, to_numpy(yt)) == 0.0
    assert rel_error(dx, to_numpy(xt.grad)) < 1e-6
