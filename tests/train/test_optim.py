"""qdaed.train.optim: hand-computed updates, PyTorch conformance, exact resume, bad options."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdaed.errors import InputError
from qdaed.train.optim import SGD, Adam, ConstantLR, CosineLR, StepLR, clip_grad_norm
from tests.strategies import rng_from, seeds

SHAPES = {"weight_ih_l0": (8, 3), "bias_ih_l0": (8,), "fc.weight": (1, 2)}


@pytest.fixture(scope="module")
def torch():
    from tests.torch_ref import torch          # skips the tests that use it cleanly without torch
    return torch


def _params(rng, dtype=np.float64):
    return {n: rng.standard_normal(s).astype(dtype) for n, s in SHAPES.items()}


def _grads(rng, dtype=np.float64, scale=1.0):
    return {n: (scale * rng.standard_normal(s)).astype(dtype) for n, s in SHAPES.items()}


# --------------------------------------------------------------------------- hand-computed


def test_adam_first_step_moves_by_lr_times_sign():
    # t = 1: m̂ = g and v̂ = g² exactly, so w ← w − lr · g / (|g| + ε).
    w = np.array([1.0, -2.0, 0.5])
    g = np.array([0.3, -4.0, 0.0])
    Adam({"w": w}, lr=0.1, eps=1e-8).step({"w": g.copy()})
    np.testing.assert_allclose(w, [1.0 - 0.1 * 0.3 / (0.3 + 1e-8),
                                   -2.0 + 0.1 * 4.0 / (4.0 + 1e-8), 0.5], rtol=1e-14)


def test_adam_weight_decay_adds_l2_to_gradient():
    # g + λw = 0 → no movement at all.
    w = np.array([2.0])
    Adam({"w": w}, lr=0.1, weight_decay=0.5).step({"w": np.array([-1.0])})
    assert w[0] == 2.0


def test_sgd_momentum_two_steps_by_hand():
    # g = 1 each step, lr 0.1, μ 0.5: b = 1 → w = 0.9; b = 1.5 → w = 0.75.
    w = np.array([1.0])
    opt = SGD({"w": w}, lr=0.1, momentum=0.5)
    opt.step({"w": np.array([1.0])})
    assert w[0] == pytest.approx(0.9, abs=1e-15)
    opt.step({"w": np.array([1.0])})
    assert w[0] == pytest.approx(0.75, abs=1e-15)


def test_sgd_nesterov_two_steps_by_hand():
    # b = 1, step g + μb = 1.5 → 0.85; b = 1.5, step 1 + 0.75 = 1.75 → 0.675.
    w = np.array([1.0])
    opt = SGD({"w": w}, lr=0.1, momentum=0.5, nesterov=True)
    opt.step({"w": np.array([1.0])})
    assert w[0] == pytest.approx(0.85, abs=1e-15)
    opt.step({"w": np.array([1.0])})
    assert w[0] == pytest.approx(0.675, abs=1e-15)


def test_plain_sgd_has_no_state_arrays():
    w = np.array([1.0, 2.0])
    opt = SGD({"w": w}, lr=0.5)
    opt.step({"w": np.array([2.0, -2.0])})
    np.testing.assert_array_equal(w, [0.0, 3.0])
    assert opt.state_dict() == {"optimizer": "sgd", "step": 1}


def test_float32_parameters_stay_float32():
    rng = rng_from(0)
    p = _params(rng, np.float32)
    opt = Adam(p, lr=1e-2)
    opt.step(_grads(rng, np.float32))
    assert all(a.dtype == np.float32 for a in p.values())
    assert all(a.dtype == np.float32 for a in opt.state_dict().values()
               if isinstance(a, np.ndarray))


# --------------------------------------------------------------------------- clipping


def test_clip_grad_norm_scales_to_max_norm():
    # ‖(3, 4), (12,)‖ = 13 → factor 1 / (13 + 1e-6).
    grads = {"a": np.array([3.0, 4.0]), "b": np.array([[12.0]])}
    total = clip_grad_norm(grads, 1.0)
    assert total == 13.0
    np.testing.assert_allclose(grads["a"], np.array([3.0, 4.0]) / (13.0 + 1e-6), rtol=1e-15)
    np.testing.assert_allclose(grads["b"], [[12.0 / (13.0 + 1e-6)]], rtol=1e-15)


def test_clip_grad_norm_below_max_leaves_gradients_bit_identical():
    grads = {"a": np.array([0.3, -0.4])}
    before = grads["a"].copy()
    assert clip_grad_norm(grads, 1.0) == pytest.approx(0.5, abs=1e-16)
    np.testing.assert_array_equal(grads["a"], before)


def test_clip_grad_norm_nonfinite():
    grads = {"a": np.array([1.0, np.inf]), "b": np.array([2.0])}
    with pytest.raises(InputError, match="global gradient norm is inf"):
        clip_grad_norm(grads, 1.0)
    total = clip_grad_norm(grads, 1.0, error_if_nonfinite=False)
    assert math.isinf(total)
    assert grads["b"][0] == 2.0


@pytest.mark.parametrize("grads, max_norm, match", [
    ({"a": np.ones(2)}, 0.0, "max_norm"),
    ({"a": np.ones(2)}, -1.0, "max_norm"),
    ({}, 1.0, "non-empty dict"),
    ({"a": np.ones(2, dtype=int)}, 1.0, r"grads\['a'\]: expected a float32/float64 array"),
])
def test_clip_grad_norm_bad_input(grads, max_norm, match):
    with pytest.raises(InputError, match=match):
        clip_grad_norm(grads, max_norm)


# --------------------------------------------------------------------------- PyTorch


def _torch_params(torch, params):
    return {n: torch.nn.Parameter(torch.from_numpy(p.copy())) for n, p in params.items()}


def _run_against_torch(torch, ours, theirs, tparams, params, rng, lrs):
    for lr in lrs:
        grads = _grads(rng)
        for n, tp in tparams.items():
            tp.grad = torch.from_numpy(grads[n].copy())
        theirs.param_groups[0]["lr"] = lr
        theirs.step()
        ours.lr = lr
        ours.step(grads)
        for n, tp in tparams.items():
            np.testing.assert_allclose(params[n], tp.detach().numpy(), rtol=1e-12, atol=1e-14,
                                       err_msg=n)


@pytest.mark.conformance
@given(seed=seeds, weight_decay=st.sampled_from([0.0, 0.01]),
       betas=st.sampled_from([(0.9, 0.999), (0.5, 0.9), (0.0, 0.0)]))
def test_adam_matches_torch(torch, seed, weight_decay, betas):
    rng = rng_from(seed)
    params = _params(rng)
    tparams = _torch_params(torch, params)
    ours = Adam(params, lr=1e-2, betas=betas, eps=1e-8, weight_decay=weight_decay)
    theirs = torch.optim.Adam(tparams.values(), lr=1e-2, betas=betas, eps=1e-8,
                              weight_decay=weight_decay)
    _run_against_torch(torch, ours, theirs, tparams, params, rng, [1e-2, 3e-2, 5e-3, 1e-2, 0.1])
    sd = ours.state_dict()
    for n, tp in tparams.items():
        st_ = theirs.state[tp]
        assert int(st_["step"]) == sd["step"] == 5
        np.testing.assert_allclose(sd[f"exp_avg.{n}"], st_["exp_avg"].numpy(), rtol=1e-12,
                                   atol=1e-15)
        np.testing.assert_allclose(sd[f"exp_avg_sq.{n}"], st_["exp_avg_sq"].numpy(),
                                   rtol=1e-12, atol=1e-15)


@pytest.mark.conformance
@given(seed=seeds, momentum=st.sampled_from([0.0, 0.9]), nesterov=st.booleans(),
       weight_decay=st.sampled_from([0.0, 0.01]))
def test_sgd_matches_torch(torch, seed, momentum, nesterov, weight_decay):
    nesterov = nesterov and momentum > 0
    rng = rng_from(seed)
    params = _params(rng)
    tparams = _torch_params(torch, params)
    ours = SGD(params, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    theirs = torch.optim.SGD(tparams.values(), lr=0.1, momentum=momentum, nesterov=nesterov,
                             weight_decay=weight_decay)
    _run_against_torch(torch, ours, theirs, tparams, params, rng, [0.1, 0.05, 0.2, 0.1])
    if momentum:
        sd = ours.state_dict()
        for n, tp in tparams.items():
            np.testing.assert_allclose(sd[f"momentum_buffer.{n}"],
                                       theirs.state[tp]["momentum_buffer"].numpy(),
                                       rtol=1e-12, atol=1e-15)


@pytest.mark.conformance
@given(seed=seeds, scale=st.sampled_from([0.01, 1.0, 100.0]),
       max_norm=st.sampled_from([0.5, 5.0]))
def test_clip_grad_norm_matches_torch(torch, seed, scale, max_norm):
    rng = rng_from(seed)
    grads = _grads(rng, scale=scale)
    tgrads = [torch.from_numpy(g.copy()) for g in grads.values()]
    for g in tgrads:
        g.grad = g.clone()
    want = torch.nn.utils.clip_grad_norm_(tgrads, max_norm)
    got = clip_grad_norm(grads, max_norm)
    assert got == pytest.approx(float(want), rel=1e-13)
    for g, t in zip(grads.values(), tgrads):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-13, atol=0)


@pytest.mark.conformance
def test_schedules_match_torch(torch):
    def torch_lrs(make, n):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
        sched = make(opt)
        out = []
        for _ in range(n):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    cos = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7, eta_min=0.01), 7)
    np.testing.assert_allclose([CosineLR(0.3, 7, min_lr=0.01)(s) for s in range(7)], cos,
                               rtol=1e-12)
    stp = torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 3, gamma=0.5), 10)
    np.testing.assert_allclose([StepLR(0.3, 3, 0.5)(s) for s in range(10)], stp, rtol=1e-12)


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("make", [
    lambda p: Adam(p, lr=1e-2, weight_decay=0.01),
    lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    lambda p: SGD(p, lr=0.1),
], ids=["adam", "sgd-nesterov", "sgd-plain"])
def test_state_round_trip_continues_bit_for_bit(make):
    rng = rng_from(11)
    params = _params(rng)
    grads = [_grads(rng) for _ in range(6)]
    opt = make(params)
    for g in grads[:3]:
        opt.step({n: a.copy() for n, a in g.items()})
    saved_params = {n: a.copy() for n, a in params.items()}
    saved_state = opt.state_dict()
    for g in grads[3:]:
        opt.step({n: a.copy() for n, a in g.items()})
    # The saved dict holds copies: later steps did not change it.
    assert saved_state["step"] == 3

    resumed = make(saved_params)
    resumed.load_state_dict(saved_state)
    for g in grads[3:]:
        resumed.step({n: a.copy() for n, a in g.items()})
    assert resumed.steps == opt.steps == 6
    for n in params:
        np.testing.assert_array_equal(saved_params[n], params[n])
    for k, v in opt.state_dict().items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(resumed.state_dict()[k], v)


def test_state_dict_scalars_and_arrays_are_flat():
    opt = Adam({"w": np.zeros(2)}, lr=1e-3)
    sd = opt.state_dict()
    assert sd["optimizer"] == "adam" and sd["step"] == 0
    assert sorted(k for k, v in sd.items() if isinstance(v, np.ndarray)) == ["exp_avg.w",
                                                                            "exp_avg_sq.w"]


# --------------------------------------------------------------------------- schedules


def test_cosine_schedule_by_hand():
    # lr 1, 10 steps, 2 warm-up: 0.5, 1.0, then cos decay over 8 steps; step 6 is p = ½.
    s = CosineLR(1.0, total_steps=10, warmup_steps=2, min_lr=0.0)
    assert s(0) == 0.5 and s(1) == 1.0 and s(2) == 1.0
    assert s(6) == pytest.approx(0.5, abs=1e-15)
    assert s(4) == pytest.approx((1 + math.cos(math.pi / 4)) / 2, abs=1e-15)
    assert s(10) == pytest.approx(0.0, abs=1e-15) and s(50) == s(10)


def test_cosine_schedule_with_warmup_longer_than_run_stays_finite():
    s = CosineLR(1.0, total_steps=3, warmup_steps=5)
    assert [s(k) for k in range(3)] == [0.2, 0.4, 0.6]
    assert s(5) == 1.0 and s(6) == pytest.approx(0.0, abs=1e-15)


def test_constant_and_step_schedules_by_hand():
    assert ConstantLR(0.01)(0) == ConstantLR(0.01)(10 ** 6) == 0.01
    s = StepLR(1.0, step_size=2, gamma=0.5)
    assert [s(k) for k in range(6)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


@pytest.mark.parametrize("make, match", [
    (lambda: ConstantLR(0.0), "lr"),
    (lambda: CosineLR(1e-3, total_steps=0), "total_steps"),
    (lambda: CosineLR(1e-3, total_steps=10, warmup_steps=-1), "warmup_steps"),
    (lambda: CosineLR(1e-3, total_steps=10, min_lr=1.0), "min_lr"),
    (lambda: StepLR(1e-3, step_size=0), "step_size"),
    (lambda: StepLR(1e-3, step_size=2, gamma=0.0), "gamma"),
    (lambda: ConstantLR(1e-3)(-1), "step"),
    (lambda: CosineLR(1e-3, 10)(1.5), "step"),
])
def test_bad_schedule_options(make, match):
    with pytest.raises(InputError, match=match):
        make()


# --------------------------------------------------------------------------- bad options


def _w():
    return {"w": np.zeros(3)}


@pytest.mark.parametrize("make, match", [
    (lambda: Adam(_w(), lr=0.0), "lr: expected a number > 0"),
    (lambda: Adam(_w(), lr=-1e-3), "lr: expected a number > 0"),
    (lambda: Adam(_w(), lr=float("nan")), "lr: expected a finite number"),
    (lambda: Adam(_w(), betas=(1.0, 0.999)), r"betas\[0\]: expected a number in \[0, 1\)"),
    (lambda: Adam(_w(), betas=(0.9, 1.5)), r"betas\[1\]: expected a number in \[0, 1\)"),
    (lambda: Adam(_w(), betas=(-0.1, 0.9)), r"betas\[0\]"),
    (lambda: Adam(_w(), betas=0.9), "betas: expected a pair"),
    (lambda: Adam(_w(), eps=-1e-8), "eps"),
    (lambda: Adam(_w(), weight_decay=-0.1), "weight_decay"),
    (lambda: SGD(_w(), lr=0.0), "lr: expected a number > 0"),
    (lambda: SGD(_w(), lr=0.1, momentum=1.0), r"momentum: expected a number in \[0, 1\)"),
    (lambda: SGD(_w(), lr=0.1, momentum=-0.5), "momentum"),
    (lambda: SGD(_w(), lr=0.1, nesterov=True), "Nesterov momentum needs momentum > 0"),
    (lambda: SGD(_w(), lr=0.1, momentum=0.9, nesterov=1), "nesterov: expected True or False"),
    (lambda: Adam({}), "params: expected a non-empty dict"),
    (lambda: Adam({"w": np.zeros(3, dtype=np.int64)}), r"params\['w'\]: expected a float32"),
    (lambda: Adam({"w": np.broadcast_to(np.zeros(1), (3,))}), "read-only"),
])
def test_bad_optimizer_options(make, match):
    with pytest.raises(InputError, match=match):
        make()


def test_lr_attribute_refuses_negative_but_accepts_zero():
    opt = Adam(_w(), lr=1e-3)
    opt.lr = 0.0
    with pytest.raises(InputError, match="lr"):
        opt.lr = -1e-3


@pytest.mark.parametrize("grads, match", [
    ({}, r"missing \['w'\]"),
    ({"w": np.zeros(3), "v": np.zeros(3)}, r"unexpected \['v'\]"),
    ({"w": np.zeros(4)}, r"grads\['w'\]: expected float64 of shape \(3,\)"),
    ({"w": np.zeros(3, dtype=np.float32)}, r"grads\['w'\]: expected float64"),
    ([np.zeros(3)], "grads: expected a dict"),
])
def test_bad_gradients_refused_before_any_update(grads, match):
    params = {"w": np.ones(3)}
    opt = Adam(params, lr=0.1)
    with pytest.raises(InputError, match=match):
        opt.step(grads)
    assert opt.steps == 0
    np.testing.assert_array_equal(params["w"], np.ones(3))


@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd.update(optimizer="sgd"), "saved by optimiser 'sgd', cannot load into 'adam'"),
    (lambda sd: sd.update(step=-1), r"state\['step'\]"),
    (lambda sd: sd.pop("exp_avg.w"), r"missing \['exp_avg.w'\]"),
    (lambda sd: sd.update({"exp_avg.v": np.zeros(3)}), r"unexpected \['exp_avg.v'\]"),
    (lambda sd: sd.update({"exp_avg.w": np.zeros(2)}), r"expected float64 of shape \(3,\)"),
])
def test_bad_state_dict_refused(edit, match):
    opt = Adam(_w(), lr=0.1)
    opt.step({"w": np.ones(3)})
    sd = opt.state_dict()
    edit(sd)
    fresh = Adam(_w(), lr=0.1)
    with pytest.raises(InputError, match=match):
        fresh.load_state_dict(sd)
    assert fresh.steps == 0
