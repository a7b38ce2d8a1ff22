"""Tests of qdaed.nn.losses: gradients, closed forms, the T² factor, extreme logits, bad input.

Expected values are written here from the formulas of docs/method/losses.md with plain NumPy, never with
the functions under test.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdaed.errors import InputError
from qdaed.gradcheck import numerical_gradient, rel_error
from qdaed.nn import losses
from tests import naive
from tests import strategies as S


def _case(seed, b, c, scale=3.0, dtype=np.float64):
    rng = S.rng_from(seed)
    z = (scale * rng.standard_normal((b, c))).astype(dtype)
    zt = (scale * rng.standard_normal((b, c))).astype(dtype)
    y = rng.random((b, c)).astype(dtype)
    return z, zt, y


def _sigmoid_ref(x):
    return 1.0 / (1.0 + np.exp(-x))


def _bce_ref(p_target, z):
    """−p log σ(z) − (1 − p) log(1 − σ(z)), the textbook form (fine for moderate z)."""
    p = _sigmoid_ref(z)
    return -p_target * np.log(p) - (1.0 - p_target) * np.log(1.0 - p)


# -- gradients by central differences (float64, rel < 1e-6) ---------------------------------

@given(S.seeds, S.batch, S.classes, st.floats(0.25, 4.0))
def test_hard_loss_gradient_matches_central_differences(seed, b, c, dloss):
    z, _, y = _case(seed, b, c)
    _, cache = losses.hard_forward(z, y)
    dz = losses.hard_backward(cache, dloss)
    num = numerical_gradient(lambda: dloss * losses.hard_forward(z, y)[0], z)
    assert rel_error(dz, num) < 1e-6


def _tempered_case(seed, b, c, t):
    """Logits whose tempered values z/T are moderate: where σ(z_s/T) and q both saturate the
    soft gradient is ~1e-7 and central differences of an O(1) loss cannot resolve it."""
    z, zt, y = _case(seed, b, c, scale=1.5)
    return t * z, t * zt, y


@given(S.seeds, S.batch, S.classes, S.temperatures, st.floats(0.25, 4.0))
def test_soft_loss_gradient_matches_central_differences(seed, b, c, t, dloss):
    z, zt, _ = _tempered_case(seed, b, c, t)
    _, cache = losses.soft_forward(z, zt, t)
    dz = losses.soft_backward(cache, dloss)
    num = numerical_gradient(lambda: dloss * losses.soft_forward(z, zt, t)[0], z)
    assert rel_error(dz, num) < 1e-6


@given(S.seeds, S.batch, S.classes, S.temperatures, S.lams, st.booleans())
def test_distillation_loss_gradient_matches_central_differences(seed, b, c, t, lam, teacher):
    z, zt, y = _tempered_case(seed, b, c, t)
    zt = zt if teacher else None
    _, dz = losses.distillation_loss(z, zt, y, t, lam)
    num = numerical_gradient(lambda: losses.distillation_loss(z, zt, y, t, lam)[0], z)
    assert rel_error(dz, num) < 1e-6


# -- closed forms --------------------------------------------------------------------------

@given(S.seeds, S.batch, S.classes)
def test_hard_loss_and_gradient_equal_the_textbook_formulas(seed, b, c):
    z, _, y = _case(seed, b, c)
    loss, dz = losses.distillation_loss(z, None, y, 1.0, 0.0)
    assert loss == pytest.approx(np.mean(_bce_ref(y, z)), rel=1e-12)
    np.testing.assert_allclose(dz, (_sigmoid_ref(z) - y) / (b * c), rtol=1e-12, atol=0)


@given(S.seeds, S.batch, S.classes, S.temperatures)
def test_soft_part_carries_t_squared_in_loss_and_t_in_gradient(seed, b, c, t):
    # λ = 1: L = T² mean ℓ(z_s/T, q) and ∂L/∂z_s = T²·(σ(z_s/T) − q)/(T·BC) = T(σ(z_s/T) − q)/(BC).
    # (Moderate z/T: the textbook log(1 − σ) of the reference loses digits when σ → 1.)
    z, zt, y = _tempered_case(seed, b, c, t)
    q = _sigmoid_ref(zt / t)
    loss, dz = losses.distillation_loss(z, zt, y, t, 1.0)
    assert loss == pytest.approx(t * t * np.mean(_bce_ref(q, z / t)), rel=1e-10)
    np.testing.assert_allclose(dz, t * (_sigmoid_ref(z / t) - q) / (b * c), rtol=1e-10,
                               atol=1e-300)


@pytest.mark.parametrize("t", [1e3, 2e3, 8e3])
def test_soft_gradient_scale_is_independent_of_large_temperature(t):
    # Hinton 2015: T·(σ(a/T) − σ(b/T)) → (a − b)/4, so with the T² the gradient tends to
    # (z_s − z_t)/(4BC) whatever T; without it the gradient would shrink as 1/T².
    z, zt, y = _case(7, 3, 4)
    _, dz = losses.distillation_loss(z, zt, y, t, 1.0)
    np.testing.assert_allclose(dz, (z - zt) / (4 * z.size), rtol=1e-5)


@given(S.seeds, S.batch, S.classes, S.temperatures, S.lams)
def test_distillation_loss_is_the_lambda_mix_of_hard_and_t2_soft(seed, b, c, t, lam):
    # The reference is written out here (tests/naive.py's stable BCE and sigmoid), not taken
    # from the module's own hard_/soft_ functions.
    z, zt, y = _case(seed, b, c)
    q = naive.sigmoid(zt / t)
    loss, dz = losses.distillation_loss(z, zt, y, t, lam)
    assert loss == pytest.approx((1 - lam) * naive.bce(z, y) + lam * t * t * naive.bce(z / t, q),
                                 rel=1e-12)
    want = ((1 - lam) * (naive.sigmoid(z) - y) / z.size
            + lam * t * t * (naive.sigmoid(z / t) - q) / (t * z.size))
    np.testing.assert_allclose(dz, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("z, zt, y, t, lam, loss, dz", [
    # σ(0) = 1/2: hard = soft = ln 2, the soft gradient is 0
    (0.0, 0.0, 1.0, 2.0, 0.5, 2.5 * math.log(2), -0.25),
    # λ = 1, z/T = 1, q = σ(−1): L = T²(ln(1 + e) − σ(−1)), ∂L/∂z = T(σ(1) − σ(−1)) = T tanh(1/2)
    (2.0, -2.0, 0.0, 2.0, 1.0, 4 * (math.log1p(math.e) - 1 / (1 + math.e)), 2 * math.tanh(0.5)),
    # λ = 0: the hard loss alone, ln(1 + e^−3) and (σ(3) − 1)
    (3.0, 9.0, 1.0, 5.0, 0.0, math.log1p(math.exp(-3)), 1 / (1 + math.exp(-3)) - 1),
])
def test_distillation_loss_on_hand_computed_cases(z, zt, y, t, lam, loss, dz):
    a = np.array([[z]])
    got, grad = losses.distillation_loss(a, np.array([[zt]]), np.array([[y]]), t, lam)
    assert got == pytest.approx(loss, rel=1e-14)
    assert grad[0, 0] == pytest.approx(dz, rel=1e-14, abs=1e-16)


def test_no_teacher_or_zero_lambda_gives_the_hard_loss_and_lambda_one_ignores_labels():
    z, zt, y = _case(3, 4, 3)
    hard = losses.distillation_loss(z, None, y, 2.0, 0.7)
    for got in (losses.distillation_loss(z, zt, y, 2.0, 0.0), hard):
        assert got[0] == pytest.approx(np.mean(_bce_ref(y, z)), rel=1e-12)
        np.testing.assert_allclose(got[1], (_sigmoid_ref(z) - y) / z.size, rtol=1e-12)
    a = losses.distillation_loss(z, zt, y, 2.0, 1.0)
    b = losses.distillation_loss(z, zt, 1.0 - y, 2.0, 1.0)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])


def test_soft_loss_is_minimal_where_student_equals_teacher():
    # ∂L_soft/∂z_s = 0 at z_s = z_t, and L_soft there is the mean binary entropy of q.
    _, zt, _ = _case(5, 2, 3)
    t = 3.0
    loss, cache = losses.soft_forward(zt.copy(), zt, t)
    q = _sigmoid_ref(zt / t)
    assert loss == pytest.approx(np.mean(-q * np.log(q) - (1 - q) * np.log(1 - q)), rel=1e-12)
    np.testing.assert_allclose(losses.soft_backward(cache), 0.0, atol=1e-17)


# -- extreme logits ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_finite_with_finite_gradients_for_logits_of_1e4(dtype):
    z = np.array([[1e4, -1e4], [1e4, -1e4]], dtype)
    zt = np.array([[-1e4, 1e4], [1e4, -1e4]], dtype)
    y = np.array([[0.0, 0.0], [1.0, 0.3]], dtype)
    for t, lam in [(1.0, 0.0), (1.0, 0.5), (4.0, 1.0), (0.5, 0.3)]:
        loss, dz = losses.distillation_loss(z, zt, y, t, lam)
        assert np.isfinite(loss) and np.isfinite(dz).all() and dz.dtype == dtype
    # ℓ(1e4, 0) = 1e4, ℓ(−1e4, 0) = 0, ℓ(1e4, 1) = 0, ℓ(−1e4, 0.3) = 0.3e4 (exp(−1e4) = 0).
    loss, dz = losses.distillation_loss(z, None, y, 1.0, 0.0)
    assert loss == pytest.approx((1e4 + 0 + 0 + 3e3) / 4, rel=1e-6)
    np.testing.assert_allclose(dz, np.array([[1.0, 0.0], [0.0, -0.3]]) / 4, rtol=1e-6, atol=0)


# -- dtypes ------------------------------------------------------------------------------

def test_float32_inputs_give_float32_gradients_close_to_float64():
    z, zt, y = _case(11, 3, 3)
    l64, d64 = losses.distillation_loss(z, zt, y, 2.5, 0.4)
    l32, d32 = losses.distillation_loss(*(a.astype(np.float32) for a in (z, zt, y)), 2.5, 0.4)
    assert d32.dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-6)
    assert rel_error(d32, d64) < 1e-6


# -- conformance with PyTorch ------------------------------------------------------------
#
# A gradient σ(z) − y is a difference of two numbers of order one: where they nearly cancel,
# torch's float32 result carries an error of float32 eps relative to σ(z) and y, not to their
# difference (observed: 1.05e-5 relative on a gradient of 0.0079). Gradients are therefore
# compared relative to max(|ours|, |torch|, the size of the cancelling terms / (BC)), and ours
# is also held to the float64 result at 1e-6 on that scale: its own float32 error is the
# rounding of the inputs (and of z/T), far below torch's.

def _grad_error(ours, theirs, terms):
    scale = max(np.abs(ours).max(), np.abs(theirs).max(), terms)
    return float(np.abs(ours.astype(np.float64) - theirs).max() / scale)


@pytest.mark.conformance
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@given(seed=S.seeds, b=S.batch, c=S.classes)
def test_hard_loss_matches_torch_bce_with_logits(dtype, tol, seed, b, c):
    from tests.torch_ref import to_numpy, to_torch, torch

    z, _, y = _case(seed, b, c, dtype=dtype)
    tz = to_torch(z, requires_grad=True)
    tl = torch.nn.functional.binary_cross_entropy_with_logits(tz, to_torch(y))
    tl.backward()
    loss, cache = losses.hard_forward(z, y)
    dz = losses.hard_backward(cache)
    assert abs(loss - tl.item()) / abs(tl.item()) < tol
    assert _grad_error(dz, to_numpy(tz.grad), 1.0 / z.size) < tol
    z64, y64 = z.astype(np.float64), y.astype(np.float64)
    dz64 = losses.hard_backward(losses.hard_forward(z64, y64)[1])
    assert _grad_error(dz, dz64, 1.0 / z.size) < 1e-6


@pytest.mark.conformance
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@given(seed=S.seeds, b=S.batch, c=S.classes, t=S.temperatures, lam=S.lams)
def test_distillation_loss_matches_torch_composition(dtype, tol, seed, b, c, t, lam):
    from tests.torch_ref import to_numpy, to_torch, torch

    f = torch.nn.functional
    z, zt, y = _case(seed, b, c, dtype=dtype)
    tz = to_torch(z, requires_grad=True)
    q = torch.sigmoid(to_torch(zt) / t)
    tl = ((1 - lam) * f.binary_cross_entropy_with_logits(tz, to_torch(y))
          + lam * t * t * f.binary_cross_entropy_with_logits(tz / t, q))
    tl.backward()
    loss, dz = losses.distillation_loss(z, zt, y, t, lam)
    assert abs(loss - tl.item()) / abs(tl.item()) < tol
    assert _grad_error(dz, to_numpy(tz.grad), ((1 - lam) + lam * t) / z.size) < tol
    _, dz64 = losses.distillation_loss(*(a.astype(np.float64) for a in (z, zt, y)), t, lam)
    assert _grad_error(dz, dz64, ((1 - lam) + lam * t) / z.size) < 1e-6


# -- bad input ---------------------------------------------------------------------------

def _bad_inputs():
    z, zt, y = _case(1, 2, 3)
    nan = z.copy()
    nan[0, 1] = np.nan
    return [
        ("z_student", dict(z_student=z[0])),
        ("z_student", dict(z_student=nan)),
        ("z_student", dict(z_student=z.astype(np.int64))),
        ("z_student", dict(z_student=z.tolist())),
        ("z_teacher", dict(z_teacher=zt[:, :2])),
        ("z_teacher", dict(z_teacher=zt.astype(np.float32))),
        ("z_teacher", dict(z_teacher=nan)),
        ("y", dict(y=y.T)),
        ("y", dict(y=y.astype(np.float32))),
        ("y", dict(y=nan)),
        ("y", dict(y=y + 1.0)),
        ("y", dict(y=-y)),
        ("temperature", dict(temperature=0.0)),
        ("temperature", dict(temperature=-1.0)),
        ("temperature", dict(temperature=float("nan"))),
        ("lam", dict(lam=1.5)),
        ("lam", dict(lam=-0.1)),
        ("lam", dict(lam="half")),
    ], dict(z_student=z, z_teacher=zt, y=y, temperature=2.0, lam=0.5)


@pytest.mark.parametrize("index", range(len(_bad_inputs()[0])))
def test_bad_input_raises_input_error_naming_the_argument(index):
    cases, good = _bad_inputs()
    name, change = cases[index]
    with pytest.raises(InputError, match=name):
        losses.distillation_loss(**{**good, **change})


def test_bad_upstream_gradient_and_soft_arguments_raise_input_error():
    z, zt, y = _case(2, 2, 2)
    _, cache = losses.hard_forward(z, y)
    with pytest.raises(InputError, match="dloss"):
        losses.hard_backward(cache, float("inf"))
    with pytest.raises(InputError, match="temperature"):
        losses.soft_forward(z, zt, 0.0)
    with pytest.raises(InputError, match="z_teacher"):
        losses.soft_forward(z, None, 1.0)


# -- the optional single-label softmax/KL variant ------------------------------------------

def _labels(seed, b, c):
    return S.rng_from(seed + 1).integers(0, c, size=b)


@given(S.seeds, S.batch, S.classes, S.temperatures, S.lams, st.booleans())
def test_softmax_distillation_gradient_matches_central_differences(seed, b, c, t, lam, teacher):
    # z moderate for the cross-entropy and z/T moderate for the KL part (see _tempered_case)
    z, zt, _ = _case(seed, b, c, scale=1.5)
    z, zt = min(t, 1.0) * z, (t * zt if teacher else None)
    labels = _labels(seed, b, c)
    _, dz = losses.softmax_distillation_loss(z, zt, labels, t, lam)
    num = numerical_gradient(lambda: losses.softmax_distillation_loss(z, zt, labels, t, lam)[0], z)
    assert rel_error(dz, num) < 1e-6


def test_softmax_soft_gradient_scale_is_independent_of_large_temperature():
    # T²·(softmax(z_s/T) − softmax(z_t/T))/(T·B) → ((z_s − z̄_s) − (z_t − z̄_t))/(C·B) as T → ∞
    # (first order of softmax(x/T) = (1 + (x − x̄)/T)/C, x̄ the row mean); the next order is
    # O(|z|/T) relative, so T = 1e5 leaves ~3e-5.
    z, zt, _ = _case(4, 3, 5)
    for t in (1e5, 4e5):
        _, dz = losses.softmax_distillation_loss(z, zt, _labels(4, 3, 5), t, 1.0)
        centred = (z - z.mean(axis=1, keepdims=True)) - (zt - zt.mean(axis=1, keepdims=True))
        np.testing.assert_allclose(dz, centred / (5 * 3), rtol=2e-4, atol=1e-7)


@pytest.mark.conformance
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@given(seed=S.seeds, b=S.batch, c=S.classes, t=S.temperatures, lam=S.lams)
def test_softmax_distillation_matches_torch_cross_entropy_and_kl_div(dtype, tol, seed, b, c, t,
                                                                     lam):
    from tests.torch_ref import to_numpy, to_torch, torch

    f = torch.nn.functional
    z, zt, _ = _case(seed, b, c, dtype=dtype)
    labels = _labels(seed, b, c)
    tz = to_torch(z, requires_grad=True)
    tl = ((1 - lam) * f.cross_entropy(tz, torch.from_numpy(labels))
          + lam * t * t * f.kl_div(f.log_softmax(tz / t, dim=1),
                                   f.softmax(to_torch(zt) / t, dim=1), reduction="batchmean"))
    tl.backward()
    loss, dz = losses.softmax_distillation_loss(z, zt, labels, t, lam)
    # KL is a sum of p_t·(log p_t − log r_s) that cancels to a small number which T² then
    # magnifies: the loss, too, is compared relative to the size of its terms, (1 − λ) + λT².
    assert abs(loss - tl.item()) <= tol * max(abs(tl.item()), (1 - lam) + lam * t * t)
    assert _grad_error(dz, to_numpy(tz.grad), ((1 - lam) + lam * t) / b) < tol


@pytest.mark.parametrize("labels", [np.array([0, 3]), np.array([-1, 0]), np.array([0.0, 1.0]),
                                    np.array([0, 1, 2]), [0, 1]])
def test_softmax_distillation_refuses_bad_labels(labels):
    z, zt, _ = _case(1, 2, 3)
    with pytest.raises(InputError, match="labels"):
        losses.softmax_distillation_loss(z, zt, labels, 2.0, 0.5)
