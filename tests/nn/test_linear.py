import numpy as np
import pytest
from hypothesis import given

from qdaed.errors import InputError
from qdaed.gradcheck import rel_error
from qdaed.gradcheck.student_cases import check_linear
from qdaed.nn import linear
from tests import strategies as S


@given(S.batch, S.features, S.classes, S.seeds)
def test_linear_gradients_match_central_differences(b, i, o, seed):
    errs = check_linear(S.rng_from(seed), b, i, o)
    assert max(errs.values()) < 1e-6, errs


def test_linear_forward_matches_hand_computed_values():
    params = {"weight": np.array([[1.0, 2.0], [0.0, -1.0], [0.5, 0.5]]),
              "bias": np.array([0.1, 0.2, 0.3])}
    y, _ = linear.forward(params, np.array([[3.0, 4.0]]))
    np.testing.assert_array_equal(y, [[11.1, -3.8, 3.8]])


def test_linear_without_bias_has_no_bias_gradient():
    rng = np.random.default_rng(0)
    params = {"weight": rng.standard_normal((3, 2))}
    x = rng.standard_normal((4, 2))
    y, cache = linear.forward(params, x)
    np.testing.assert_allclose(y, x @ params["weight"].T, rtol=1e-15)
    _, grads = linear.backward(params, cache, rng.standard_normal((4, 3)))
    assert set(grads) == {"weight"}


@pytest.mark.conformance
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("lead", [(5,), (2, 7), (1,)])
def test_linear_matches_torch_forward_and_every_gradient(dtype, tol, lead):
    tr = pytest.importorskip("tests.torch_ref")
    torch = tr.torch
    rng = np.random.default_rng(len(lead))
    ref = torch.nn.Linear(4, 3).to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(dtype)))
    params = {n: tr.to_numpy(p).copy() for n, p in ref.named_parameters()}
    x = rng.standard_normal((*lead, 4)).astype(dtype)
    dy = rng.standard_normal((*lead, 3)).astype(dtype)

    y, cache = linear.forward(params, x)
    dx, grads = linear.backward(params, cache, dy)
    xt = tr.to_torch(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(tr.to_torch(dy))

    assert rel_error(y, tr.to_numpy(yt)) < tol
    assert rel_error(dx, tr.to_numpy(xt.grad)) < tol
    for name, p in ref.named_parameters():
        assert rel_error(grads[name], tr.to_numpy(p.grad)) < tol, name


def _params():
    return {"weight": np.ones((3, 2)), "bias": np.zeros(3)}


@pytest.mark.parametrize("x, arg", [
    (np.ones((4, 5)), "x"),                      # wrong feature size
    (np.ones((4, 2), np.int64), "x"),            # integer dtype
    (np.array([[1.0, np.nan]]), "x"),            # NaN
    (np.ones((4, 2), np.float32), "dtype"),      # float32 input, float64 parameters
])
def test_linear_rejects_bad_input_naming_the_argument(x, arg):
    with pytest.raises(InputError, match=arg):
        linear.forward(_params(), x)


def test_linear_rejects_a_weight_that_is_not_a_matrix():
    with pytest.raises(InputError, match="weight"):
        linear.forward({"weight": np.ones(3)}, np.ones((1, 3)))


def test_linear_backward_rejects_dy_of_the_wrong_shape():
    _, cache = linear.forward(_params(), np.ones((4, 2)))
    with pytest.raises(InputError, match="dy"):
        linear.backward(_params(), cache, np.ones((4, 2)))
