import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdaed.errors import InputError
from qdaed.gradcheck import compare_gradients
from qdaed.nn import relu
from tests.strategies import batch, conv_channels, rng_from, seeds, spatial


def away_from_kink(rng, shape):
    v = rng.uniform(0.1, 2.0, shape)
    return v * rng.choice([-1.0, 1.0], shape)


@given(batch, conv_channels, spatial, spatial, st.booleans(), seeds)
def test_forward_and_gradient_with_and_without_residual(nb, c, h, w, with_residual, seed):
    rng = rng_from(seed)
    x = away_from_kink(rng, (nb, c, h, w))
    r = rng.uniform(-0.04, 0.04, x.shape) if with_residual else None
    y, cache = relu.forward({}, x, residual=r)
    np.testing.assert_array_equal(y, np.maximum(x + (0 if r is None else r), 0))
    dy = rng.standard_normal(x.shape)
    dx, grads = relu.backward({}, cache, dy)
    assert grads == {}
    tensors = {"x": x} if r is None else {"x": x, "residual": r}
    analytic = {"x": dx} if r is None else {"x": dx, "residual": dx}

    def loss():
        return float(np.sum(relu.forward({}, x, residual=r)[0] * dy))

    assert max(compare_gradients(loss, tensors, analytic).values()) < 1e-6


def test_zero_input_passes_no_gradient_as_pytorch():
    y, cache = relu.forward({}, np.zeros((1, 2, 2, 2), np.float32))
    dx, _ = relu.backward({}, cache, np.ones((1, 2, 2, 2), np.float32))
    assert y.dtype == dx.dtype == np.float32
    assert not dx.any()


def test_residual_shape_mismatch_raises():
    with pytest.raises(InputError, match="residual"):
        relu.forward({}, np.zeros((1, 2, 2, 2)), residual=np.zeros((1, 2, 2, 1)))
