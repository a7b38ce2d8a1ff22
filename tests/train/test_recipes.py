"""Distillation recipes: their specs, transfer rows kept out of the hard loss, equal training
budgets, out-of-fold targets that never let a teacher score its own training clip."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdaed.errors import InputError
from qdaed.nn import losses
from qdaed.train import schedules as S
from qdaed.train.augment import Augment
from qdaed.train.loop import Distillation, _pool_batches, batch_order, fit
from qdaed.train.recipes import RECIPES, DistillSpec, recipe_config
from tests.strategies import lams, rng_from, seeds, temperatures
from tests.helpers.training import STUDENT, cfg, learnable_split


@given(seeds, st.integers(0, 4), st.integers(1, 4), temperatures, lams)
@settings(deadline=None)
def test_transfer_rows_never_reach_the_hard_loss(seed, n_lab, n_u, t, lam):
    """Changing the labels can only move the labelled rows' gradient; the transfer rows'
    gradient is exactly the soft term's."""
    rng = rng_from(seed)
    b = n_lab + n_u
    z, zt = rng.standard_normal((b, 3)), rng.standard_normal((b, 3))
    y = None if n_lab == 0 else (rng.random((n_lab, 3)) < 0.5).astype(np.float64)
    loss, dz = losses.distillation_loss(z, zt, y, t, lam if lam > 0 else 0.5)
    lam = lam if lam > 0 else 0.5
    soft, cache = losses.soft_forward(z, zt, t)
    d_soft = losses.soft_backward(cache, lam * t * t)
    np.testing.assert_allclose(dz[n_lab:], d_soft[n_lab:], rtol=1e-12, atol=1e-15)
    if n_lab:
        hard, hcache = losses.hard_forward(z[:n_lab], y)
        d_hard = losses.hard_backward(hcache, 1 - lam)
        np.testing.assert_allclose(dz[:n_lab], d_soft[:n_lab] + d_hard, rtol=1e-12, atol=1e-15)
        # the hard mean is over the labelled rows only: 1/(B_l C), not 1/(B C)
        np.testing.assert_allclose(loss, lam * t * t * soft + (1 - lam) * hard, rtol=1e-12)
    else:
        np.testing.assert_allclose(loss, lam * t * t * soft, rtol=1e-12)


def test_unlabelled_rows_need_a_soft_term():
    z = np.zeros((3, 3))
    with pytest.raises(InputError, match="every row needs a label"):
        losses.distillation_loss(z, None, np.zeros((2, 3)), 1.0, 0.0)
    with pytest.raises(InputError, match="rows"):
        losses.distillation_loss(z, z, np.zeros((4, 3)), 1.0, 0.5)


@given(st.integers(1, 70), st.integers(0, 200), st.integers(1, 16), seeds, st.integers(0, 5))
@settings(deadline=None)
def test_pool_batches_keep_the_baseline_budget_and_put_labelled_rows_first(n_l, n_u, b, seed,
                                                                          epoch):
    batches = _pool_batches(n_l, n_u, b, seed, epoch)
    base = batch_order(n_l, b, seed, epoch)
    assert len(batches) == len(base)                              # same number of steps
    assert sum(map(len, batches)) == min(sum(map(len, base)) if n_u == 0 else len(base) * b,
                                         n_l + n_u)
    seen = np.concatenate(batches)
    assert len(set(seen.tolist())) == seen.size                   # no clip twice in an epoch
    for idx in batches:
        lab = idx < n_l
        assert not np.any(lab[np.argmax(~lab):]) if (~lab).any() else True
    if n_u == 0:
        for a, c in zip(batches, base):
            np.testing.assert_array_equal(a, c)


@given(st.integers(2, 60), st.integers(2, 6), seeds)
@settings(deadline=None)
def test_fold_assignment_is_balanced_and_seeded(n, k, seed):
    if k > n:
        with pytest.raises(InputError):
            S.fold_assignment(n, k, seed)
        return
    fold = S.fold_assignment(n, k, seed)
    counts = np.bincount(fold, minlength=k)
    assert counts.max() - counts.min() <= 1 and counts.sum() == n
    np.testing.assert_array_equal(fold, S.fold_assignment(n, k, seed))


def test_out_of_fold_targets_come_from_the_teacher_that_never_saw_the_clip(monkeypatch):
    """Each fold teacher records the clips it trained on; every clip's target must come from a
    teacher whose training set did not hold it, and transfer targets average all teachers."""
    split = learnable_split(n=24, t=32, f=32)
    trained_on, scored = [], []
    real_train = S.train_teacher

    def spy_train(sub, arch, c, **kw):
        ids = {tuple(np.round(x[:2, :2].ravel(), 6)) for x in sub.x_train}
        trained_on.append(ids)
        return real_train(sub, arch, c, **kw)

    real_predict = S.predict_logits

    def spy_predict(model, x, **kw):
        z = real_predict(model, x, **kw)
        scored.append((len(trained_on) - 1, {tuple(np.round(r[:2, :2].ravel(), 6)) for r in x}))
        return z

    monkeypatch.setattr(S, "train_teacher", spy_train)
    monkeypatch.setattr(S, "predict_logits", spy_predict)
    x_u = split.x_val[:5]
    z, z_u, fold = S.out_of_fold_teacher_logits(split, {"depth": 18, "width": 2},
                                                cfg(epochs=1, lr=3e-3), 3, x_u)
    assert len(trained_on) == 3 and z.shape == split.y_train.shape and z_u.shape == (5, 3)
    train_ids = {tuple(np.round(x[:2, :2].ravel(), 6)) for x in split.x_train}
    for teacher, ids in scored:
        if ids <= train_ids:            # a held-out fold, not the transfer set
            assert not (ids & trained_on[teacher])
            assert ids | trained_on[teacher] == train_ids
    assert np.isfinite(z).all() and np.isfinite(z_u).all()


def test_distillation_with_a_transfer_set_trains_and_uses_the_baseline_step_count():
    split = learnable_split()
    teacher, _ = S.train_teacher(split, {"depth": 18, "width": 2}, cfg(epochs=2, lr=3e-3))
    z = S.teacher_logits(teacher, split.x_train)
    x_u = split.x_val.copy()
    z_u = S.teacher_logits(teacher, x_u)
    steps = []
    model = S.new_student(split, STUDENT, 0)
    from qdaed.train import optim
    real = optim.Adam.step

    def count(self, grads):
        steps.append(1)
        return real(self, grads)

    optim.Adam.step = count
    try:
        h = fit(model, split.train, split.val, cfg(epochs=3),
                distill=Distillation(1.0, 0.9, teacher_logits=z, transfer=(x_u, z_u)))
    finally:
        optim.Adam.step = real
    assert len(steps) == 3 * len(batch_order(split.x_train.shape[0], 16, 0, 0))
    assert len(h.train_loss) == 3 and all(np.isfinite(h.train_loss))
    on_the_fly = S.new_student(split, STUDENT, 0)
    fit(on_the_fly, split.train, split.val, cfg(epochs=1),
        distill=Distillation(1.0, 0.9, teacher=teacher, transfer=(x_u, None)))


_Z = np.zeros((48, 3), np.float32)


@pytest.mark.parametrize("distill, kw, match", [
    (Distillation(1.0, 0.0, transfer=(np.zeros((3, 32, 32), np.float32), None)), {},
     "needs a soft term"),
    (Distillation(1.0, 0.5, _Z), {"augment": Augment(max_shift=2)}, "augmented view"),
    (Distillation(1.0, 0.5, _Z, transfer=(np.zeros((3, 16, 32), np.float32),
                                          np.zeros((3, 3), np.float32))), {}, "clips of shape"),
])
def test_fit_refuses_inconsistent_distillation_options(distill, kw, match):
    split = learnable_split()
    with pytest.raises(InputError, match=match):
        fit(S.new_student(split, STUDENT, 0), split.train, split.val, cfg(epochs=1),
            distill=distill, **kw)


def test_named_recipes_round_trip_through_the_config():
    for name in RECIPES:
        d = recipe_config(name)
        assert DistillSpec.from_config(d).to_config() == d and d["recipe"] == name
    assert recipe_config("paper")["temperature"] == 2.0 and recipe_config("paper")["lam"] == 0.5


@pytest.mark.parametrize("change, match", [
    ({"temperature": 0.0}, "temperature"), ({"temperature": 1e-300}, "temperature"),
    ({"temperature": float("inf")}, "temperature"), ({"lam": 1.5}, "lam"),
    ({"lam": -0.1}, "lam"), ({"recipe": "magic"}, "recipe"), ({"targets": "x"}, "targets"),
    ({"folds": 1}, "folds"), ({"colour": 1}, "unknown fields"),
    ({"augment": {"max_shift": 3}}, "on_the_fly"),
])
def test_bad_recipe_options_are_input_errors(change, match):
    with pytest.raises(InputError, match=match):
        DistillSpec.from_config({**recipe_config("transfer"), **change})
