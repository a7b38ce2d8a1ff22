import numpy as np
import pytest
from hypothesis import given

from qdaed.errors import InputError
from qdaed.gradcheck import rel_error
from qdaed.gradcheck.student_cases import check_temporal_pool
from qdaed.nn import temporal_pool
from tests import strategies as S

# (B=1, T=3, H=2): columns chosen so mean, last and max all differ.
X = np.array([[[1.0, -4.0], [5.0, -1.0], [0.0, -2.0]]])


@pytest.mark.parametrize("mode, expected", [
    ("mean", [[2.0, -7.0 / 3.0]]), ("last", [[0.0, -2.0]]), ("max", [[5.0, -1.0]]),
])
def test_pooling_forward_matches_hand_computed_values(mode, expected):
    p, _ = temporal_pool.forward(None, X, mode)
    np.testing.assert_allclose(p, expected, rtol=1e-15)


@pytest.mark.parametrize("mode, expected", [
    ("mean", [[[1 / 3, 2 / 3]] * 3]),
    ("last", [[[0, 0], [0, 0], [1, 2]]]),
    ("max", [[[0, 0], [1, 2], [0, 0]]]),
])
def test_pooling_backward_matches_hand_computed_values(mode, expected):
    _, cache = temporal_pool.forward(None, X, mode)
    dx, grads = temporal_pool.backward(None, cache, np.array([[1.0, 2.0]]))
    np.testing.assert_allclose(dx, expected, rtol=1e-15)
    assert grads == {}


@given(S.batch, S.frames, S.hidden, S.pool_modes, S.seeds)
def test_pooling_gradients_match_central_differences(b, t, h, mode, seed):
    errs = check_temporal_pool(S.rng_from(seed), b, t, h, mode)
    assert max(errs.values()) < 1e-6, errs


def test_max_pooling_routes_a_tie_to_the_earliest_step_only():
    x = np.full((1, 4, 1), 3.0)  # constant over time
    _, cache = temporal_pool.forward(None, x, "max")
    dx, _ = temporal_pool.backward(None, cache, np.array([[2.0]]))
    np.testing.assert_array_equal(dx[0, :, 0], [2.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("mode", ["mean", "last", "max"])
def test_single_step_pooling_is_the_identity_with_identity_gradient(mode):
    x = np.random.default_rng(0).standard_normal((2, 1, 3)).astype(np.float32)
    p, cache = temporal_pool.forward(None, x, mode)
    assert p.dtype == np.float32
    np.testing.assert_array_equal(p, x[:, 0])
    dp = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    dx, _ = temporal_pool.backward(None, cache, dp)
    np.testing.assert_array_equal(dx[:, 0], dp)


def test_pooling_accepts_a_non_contiguous_batch_first_view():
    x = np.random.default_rng(0).standard_normal((4, 2, 3))  # time-major (T, B, H)
    p, _ = temporal_pool.forward(None, x.transpose(1, 0, 2), "mean")
    np.testing.assert_allclose(p, x.mean(axis=0), rtol=1e-14)


@pytest.mark.conformance
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("mode", ["mean", "last", "max"])
def test_pooling_matches_torch(dtype, tol, mode):
    tr = pytest.importorskip("tests.torch_ref")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 6, 4)).astype(dtype)
    dp = rng.standard_normal((3, 4)).astype(dtype)
    p, cache = temporal_pool.forward(None, x, mode)
    dx, _ = temporal_pool.backward(None, cache, dp)
    xt = tr.to_torch(x, requires_grad=True)
    pt = {"mean": lambda v: v.mean(1), "last": lambda v: v[:, -1],
          "max": lambda v: v.max(1).values}[mode](xt)
    pt.backward(tr.to_torch(dp))
    assert rel_error(p, tr.to_numpy(pt)) < tol
    assert rel_error(dx, tr.to_numpy(xt.grad)) < tol


@pytest.mark.parametrize("call, arg", [
    (lambda: temporal_pool.forward(None, X, "median"), "mode"),
    (lambda: temporal_pool.forward(None, X[0], "mean"), "x"),
    (lambda: temporal_pool.forward(None, X.astype(np.int64), "mean"), "x"),
    (lambda: temporal_pool.forward(None, np.where(X > 4, np.nan, X), "max"), "x"),
    (lambda: temporal_pool.forward({"weight": X}, X, "mean"), "params"),
    (lambda: temporal_pool.backward(None, temporal_pool.forward(None, X)[1], np.ones((1, 3))),
     "dp"),
    (lambda: temporal_pool.backward(None, temporal_pool.forward(None, X)[1],
                                    np.ones((1, 2), np.float32)), "dp"),
])
def test_pooling_rejects_bad_input_naming_the_argument(call, arg):
    with pytest.raises(InputError, match=arg):
        call()
