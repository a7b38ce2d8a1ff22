"""The training loop's two specs: ``distill`` (a Distillation) and ``quant`` (a QuantSpec)."""

import numpy as np
import pytest

from qdaed.errors import InputError
from qdaed.models.quantized import QuantSpec
from qdaed.train import schedules as S
from qdaed.train.loop import Distillation, fit
from tests.helpers.training import STUDENT, cfg, learnable_split


@pytest.mark.parametrize("kw, match", [
    ({"temperature": 0.0, "lam": 0.5, "teacher_logits": np.zeros((2, 3))}, "temperature"),
    ({"temperature": 1.0, "lam": 1.5, "teacher_logits": np.zeros((2, 3))}, "lam"),
    ({"temperature": 1.0, "lam": 0.5}, "needs teacher_logits or a teacher"),
])
def test_a_distillation_is_checked_when_made(kw, match):
    with pytest.raises(InputError, match=match):
        Distillation(**kw)


def test_no_distillation_is_the_hard_loss_path_of_lambda_zero():
    split = learnable_split()
    a, b = S.new_student(split, STUDENT, 0), S.new_student(split, STUDENT, 0)
    ha = fit(a, split.train, split.val, cfg(epochs=2))
    hb = fit(b, split.train, split.val, cfg(epochs=2), distill=Distillation(3.0, 0.0))
    assert ha.train_loss == hb.train_loss
    for k, v in a.params.items():
        np.testing.assert_array_equal(v, b.params[k])


def test_a_distillation_of_lambda_one_ignores_the_labels():
    split = learnable_split()
    z = np.random.default_rng(0).standard_normal(split.y_train.shape).astype(np.float32)
    flipped = S.Split(split.x_train, 1.0 - split.y_train, split.x_val, split.y_val)
    a, b = S.new_student(split, STUDENT, 0), S.new_student(split, STUDENT, 0)
    fit(a, split.train, split.val, cfg(epochs=1), distill=Distillation(1.0, 1.0, z))
    fit(b, flipped.train, flipped.val, cfg(epochs=1), distill=Distillation(1.0, 1.0, z))
    for k, v in a.params.items():
        np.testing.assert_array_equal(v, b.params[k])


def test_quantized_training_keeps_full_precision_masters():
    split = learnable_split()
    model = S.new_student(split, STUDENT, 0)
    spec = QuantSpec(2)
    fit(model, split.train, split.val, cfg(epochs=2), quant=spec)
    for n, q in spec.quantize(model.params).items():     # the masters are not their codes
        assert not np.array_equal(model.params[n], q.dequantize())


def test_fit_refuses_a_distill_that_is_not_a_distillation():
    split = learnable_split()
    with pytest.raises(InputError, match="distill: expected a Distillation, got dict"):
        fit(S.new_student(split, STUDENT, 0), split.train, split.val, cfg(epochs=1),
            distill={"lam": 0.5})
