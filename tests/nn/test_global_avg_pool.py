import numpy as np
from hypothesis import given

from qdaed.gradcheck import compare_gradients
from qdaed.nn import global_avg_pool
from tests.strategies import batch, conv_channels, rng_from, seeds, spatial


@given(batch, conv_channels, spatial, spatial, seeds)
def test_mean_over_space_and_its_gradient(nb, c, h, w, seed):
    rng = rng_from(seed)
    x = rng.standard_normal((nb, c, h, w))
    y, cache = global_avg_pool.forward({}, x)
    np.testing.assert_allclose(y, [[x[i, j].sum() / (h * w) for j in range(c)] for i in range(nb)],
                               rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx, _ = global_avg_pool.backward({}, cache, dy)

    def loss():
        return float(np.sum(global_avg_pool.forward({}, x)[0] * dy))

    assert compare_gradients(loss, {"x": x}, {"x": dx})["x"] < 1e-6


def test_constant_plane_pools_to_its_value_in_float32():
    x = np.full((2, 3, 5, 7), 0.7, np.float32)
    y, _ = global_avg_pool.forward({}, x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, 0.7, rtol=1e-6)
