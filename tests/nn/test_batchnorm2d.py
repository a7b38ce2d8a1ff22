import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from qdaed.errors import InputError
from qdaed.gradcheck import compare_gradients, rel_error
from qdaed.nn import batchnorm2d, relu
from tests.strategies import batch, conv_channels, rng_from, seeds, spatial
from tests.naive import batchnorm2d as reference


def draw(nb, c, h, w, seed, dtype=np.float64):
    rng = rng_from(seed)
    params = {"weight": rng.uniform(0.5, 1.5, c).astype(dtype),
              "bias": rng.standard_normal(c).astype(dtype)}
    buffers = {"running_mean": rng.standard_normal(c).astype(dtype),
               "running_var": rng.uniform(0.5, 2.0, c).astype(dtype)}
    x = (rng.standard_normal((nb, c, h, w)) * 2 + rng.standard_normal((1, c, 1, 1))).astype(dtype)
    return params, buffers, x, rng


@given(batch, conv_channels, spatial, spatial, st.booleans(), seeds)
@example(1, 2, 1, 2, True, 0)     # batch 1, two values per channel: the fewest training allows
def test_forward_and_running_statistics_match_the_formulas(nb, c, h, w, train, seed):
    assume(nb * h * w >= 2)
    params, buffers, x, _ = draw(nb, c, h, w, seed)
    want, rm, rv = reference(params, {k: v.copy() for k, v in buffers.items()}, x, train)
    y, _ = batchnorm2d.forward(params, x, buffers, train)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(buffers["running_mean"], rm, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(buffers["running_var"], rv, rtol=1e-12, atol=1e-12)


@given(batch, conv_channels, spatial, spatial, st.booleans(), st.booleans(), seeds)
@example(1, 1, 3, 1, True, False, 1)
@example(1, 3, 1, 3, True, True, 2)
@example(2, 2, 3, 3, False, True, 3)
@example(1, 2, 1, 1, False, False, 4)
def test_gradients_match_central_differences(nb, c, h, w, train, fuse_relu, seed):
    # Training with N = 2 values per channel makes x̂ = ±d/√(d² + eps) ≈ ±1 whatever x is: the
    # true dx is ~eps/d², below what a central difference resolves, so N ≥ 3 there.
    assume(nb * h * w >= 3 or not train)
    params, buffers, x, rng = draw(nb, c, h, w, seed)
    # Keep the fused ReLU's kink away from the finite-difference step.
    y, cache = batchnorm2d.forward(params, x, {k: v.copy() for k, v in buffers.items()}, train,
                                   relu=fuse_relu)
    if fuse_relu:
        pre, _ = batchnorm2d.forward(params, x, {k: v.copy() for k, v in buffers.items()}, train)
        assume(np.min(np.abs(pre)) > 1e-4)
    dy = rng.standard_normal(y.shape)
    dx, grads = batchnorm2d.backward(params, cache, dy)

    def loss():
        out, _ = batchnorm2d.forward(params, x, {k: v.copy() for k, v in buffers.items()},
                                     train, relu=fuse_relu)
        return float(np.sum(out * dy))

    errs = compare_gradients(loss, {"x": x, **params}, {"x": dx, **grads})
    assert max(errs.values()) < 1e-6, errs


@pytest.mark.parametrize("train", [True, False])
def test_fused_relu_equals_relu_after_batchnorm(train):
    params, buffers, x, rng = draw(2, 3, 4, 5, 8)
    y1, c1 = batchnorm2d.forward(params, x, {k: v.copy() for k, v in buffers.items()}, train,
                                 relu=True)
    z, c2 = batchnorm2d.forward(params, x, {k: v.copy() for k, v in buffers.items()}, train)
    y2, c3 = relu.forward({}, z)
    assert (y1 == 0).any() and (y1 > 0).any()
    np.testing.assert_array_equal(y1, y2)
    dy = rng.standard_normal(x.shape)
    dx1, g1 = batchnorm2d.backward(params, c1, dy)
    dz, _ = relu.backward({}, c3, dy)
    dx2, g2 = batchnorm2d.backward(params, c2, dz)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-13, atol=1e-13)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 3, 1), (3, 1, 7, 9)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_residual_equals_add_relu_after_batchnorm(train, shape, dtype):
    # The end of a residual block, max(BN(x) + r, 0), in one pass: bitwise what the two
    # layers give, and its backward (relu.backward on y, then BN alone) the same gradients.
    params, buffers, x, rng = draw(*shape, 9, dtype)
    r = rng.standard_normal(shape).astype(dtype)
    y1, c1 = batchnorm2d.forward(params, x, {k: v.copy() for k, v in buffers.items()}, train,
                                 residual=r)
    z, c2 = batchnorm2d.forward(params, x, {k: v.copy() for k, v in buffers.items()}, train)
    y2, c3 = relu.forward({}, z, residual=r)
    assert (y1 == 0).any() and (y1 > 0).any()
    np.testing.assert_array_equal(y1, y2)
    dy = rng.standard_normal(shape).astype(dtype)
    g, _ = relu.backward({}, (y1,), dy)
    dx1, g1 = batchnorm2d.backward(params, c1, g)
    dx2, g2 = batchnorm2d.backward(params, c2, relu.backward({}, c3, dy)[0])
    np.testing.assert_array_equal(dx1, dx2)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


def test_fused_residual_refuses_relu_and_a_wrong_shape():
    params, buffers, x, _ = draw(2, 3, 2, 2, 5)
    with pytest.raises(InputError, match="relu"):
        batchnorm2d.forward(params, x, buffers, True, relu=True, residual=x)
    with pytest.raises(InputError, match="residual"):
        batchnorm2d.forward(params, x, buffers, True, residual=x[:, :2])


@pytest.mark.parametrize("offset", [0.0, 1e3, -3e4])
@pytest.mark.parametrize("shape", [(1, 2, 1, 2), (2, 3, 5, 7), (8, 4, 33, 17)])
def test_one_pass_statistics_far_from_zero_match_the_two_pass_formulas(offset, shape):
    # The variance is accumulated about a value of the channel (one pass); with a mean 10⁴
    # standard deviations away from zero it still matches NumPy's two-pass float64 variance.
    params, buffers, _, rng = draw(*shape, 6)
    x = (offset + rng.standard_normal(shape)).astype(np.float32)
    want, rm, rv = reference(params, {k: v.copy() for k, v in buffers.items()},
                             x.astype(np.float64), True)
    got = {k: v.astype(np.float32) for k, v in buffers.items()}
    batchnorm2d.forward({k: v.astype(np.float32) for k, v in params.items()}, x, got, True)
    # float32 buffers: the statistics are exact to float32 resolution (a float32 one-pass
    # E[x²] − E[x]² would have no correct digit of the variance at offset 10⁴).
    np.testing.assert_allclose(got["running_mean"], rm, rtol=2e-7, atol=1e-7)
    np.testing.assert_allclose(got["running_var"], rv, rtol=5e-7)


def test_check_finite_false_skips_the_scan_only():
    params, buffers, x, _ = draw(1, 2, 2, 2, 7)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN or infinity"):
        batchnorm2d.forward(params, x, {k: v.copy() for k, v in buffers.items()}, False)
    y, _ = batchnorm2d.forward(params, x, buffers, False, check_finite=False)
    assert np.isnan(y[0, 0, 0, 0]) and np.isfinite(y.ravel()[1:]).all()


def test_constant_channel_normalises_to_bias_with_the_eps_only_gradient():
    # σ² = 0: x̂ = 0, y = β, and dx = γ/√eps · (g − mean g) (the x̂ term vanishes).
    params, buffers, _, rng = draw(2, 2, 3, 3, 4)
    x = np.full((2, 2, 3, 3), 3.25)
    y, cache = batchnorm2d.forward(params, x, buffers, True)
    np.testing.assert_allclose(y, np.broadcast_to(params["bias"][:, None, None], y.shape))
    dy = rng.standard_normal(x.shape)
    dx, grads = batchnorm2d.backward(params, cache, dy)
    want = (params["weight"][:, None, None] / np.sqrt(1e-5)
            * (dy - dy.mean(axis=(0, 2, 3), keepdims=True)))
    np.testing.assert_allclose(dx, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["weight"], 0.0, atol=1e-12)


def test_eval_mode_leaves_running_statistics_alone():
    params, buffers, x, _ = draw(2, 3, 2, 2, 5)
    before = {k: v.copy() for k, v in buffers.items()}
    batchnorm2d.forward(params, x, buffers, False)
    for k in buffers:
        np.testing.assert_array_equal(buffers[k], before[k])


def test_training_needs_two_values_per_channel():
    params, buffers, x, _ = draw(1, 2, 1, 1, 6)
    with pytest.raises(InputError, match="more than one value per channel"):
        batchnorm2d.forward(params, x, buffers, True)
    batchnorm2d.forward(params, x, buffers, False)   # evaluation needs no batch statistics


def test_bad_arguments_raise_input_error():
    params, buffers, x, _ = draw(2, 2, 2, 2, 7)
    with pytest.raises(InputError, match="weight"):
        batchnorm2d.forward({"weight": np.ones(3), "bias": params["bias"]}, x, buffers, True)
    with pytest.raises(InputError, match="train"):
        batchnorm2d.forward(params, x, buffers, "yes")
    with pytest.raises(InputError, match="momentum"):
        batchnorm2d.forward(params, x, buffers, True, momentum=1.5)


@pytest.mark.conformance
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("train", [True, False])
def test_matches_torch_batch_norm_including_running_statistics(dtype, tol, train):
    from tests.torch_ref import to_numpy, to_torch, torch

    params, buffers, x, rng = draw(3, 4, 5, 3, 9, dtype)
    rm_t, rv_t = to_torch(buffers["running_mean"]), to_torch(buffers["running_var"])
    y, cache = batchnorm2d.forward(params, x, buffers, train)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, g = batchnorm2d.backward(params, cache, dy)
    xt, wt, bt = to_torch(x, True), to_torch(params["weight"], True), to_torch(params["bias"], True)
    yt = torch.nn.functional.batch_norm(xt, rm_t, rv_t, wt, bt, train, 0.1, 1e-5)
    yt.backward(to_torch(dy))
    assert rel_error(y, to_numpy(yt)) < tol
    assert rel_error(dx, to_numpy(xt.grad)) < tol
    assert rel_error(g["weight"], to_numpy(wt.grad)) < tol
    assert rel_error(g["bias"], to_numpy(bt.grad)) < tol
    assert rel_error(buffers["running_mean"], to_numpy(rm_t)) < tol
    assert rel_error(buffers["running_var"], to_numpy(rv_t)) < tol
