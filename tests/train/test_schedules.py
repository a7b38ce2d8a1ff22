"""Training schedules on tiny, learnable data: every schedule lowers its training loss, the
quantized ones deploy weights on the k-bit grid, and the loop's bookkeeping holds."""

import numpy as np
import pytest

from qdaed.train import schedules as S
from qdaed.models.quantized import QuantSpec
from qdaed.train.loop import Distillation, TrainConfig, fit
from qdaed.models.predict import predict_logits
from tests.helpers.training import STUDENT, cfg, learnable_split

@pytest.fixture(scope="module")
def split():
    return learnable_split()


@pytest.fixture(scope="module")
def trained(split):
    teacher, th = S.train_teacher(split, {"depth": 18, "width": 2}, cfg(epochs=4, lr=3e-3))
    student, sh = S.train_student(split, STUDENT, cfg())
    z = S.teacher_logits(teacher, split.x_train)
    distilled, dh = S.train_distilled(split, STUDENT, cfg(), Distillation(2.0, 0.5, z))
    return teacher, th, student, sh, distilled, dh, z


def soft_target_floor(z_teacher, temperature, lam):
    """The distillation loss cannot go below λ T² · mean binary entropy of q = σ(z_t / T)."""
    q = 1.0 / (1.0 + np.exp(-z_teacher.astype(np.float64) / temperature))
    entropy = -(q * np.log(q) + (1 - q) * np.log(1 - q))
    return lam * temperature ** 2 * entropy.mean()


def test_teacher_student_and_distilled_reduce_training_loss(trained):
    _, th, _, sh, _, dh, z = trained
    floor = soft_target_floor(z, 2.0, 0.5)
    for name, h, f in (("teacher", th, 0.0), ("student", sh, 0.0), ("distilled", dh, floor)):
        assert min(h.train_loss) > f
        assert h.train_loss[-1] - f < 0.9 * (h.train_loss[0] - f), (name, h.train_loss, f)


@pytest.mark.parametrize("bits", [4, 2])
def test_quantized_distillation_and_qat_reduce_loss_and_deploy_grid_weights(trained, split,
                                                                            bits):
    _, _, student, _, distilled, _, z = trained
    spec = QuantSpec(bits, group="row")
    for model, hist, qt in (
        S.quantized_distillation(distilled, split, cfg(epochs=4, lr=5e-3),
                                 Distillation(2.0, 0.5, z), spec),
        S.quantization_aware_training(student, split, cfg(epochs=4, lr=5e-3), spec),
    ):
        assert hist.train_loss[-1] < hist.train_loss[0], hist.train_loss
        assert set(qt) == {"lstm.weight_ih_l0", "lstm.weight_hh_l0", "fc.weight"}
        for name, q in qt.items():
            w = model.params[name]
            np.testing.assert_array_equal(w, q.dequantize())
            for row in w:
                assert np.unique(row).size <= 2 ** bits


def test_post_training_quantization_leaves_the_source_model_alone(trained):
    _, _, _, _, distilled, _, _ = trained
    before = distilled.state_dict()
    model, qt = S.post_training_quantization(distilled, QuantSpec(2))
    for k, v in distilled.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert any(not np.array_equal(model.params[n], before[n]) for n in qt)
    np.testing.assert_array_equal(model.params["lstm.bias_ih_l0"], before["lstm.bias_ih_l0"])


def test_early_stopping_restores_the_best_epoch(split):
    model = S.new_student(split, STUDENT, seed=3)
    # a learning rate this large wrecks the model after the first epochs
    h = fit(model, split.train, split.val,
            TrainConfig(epochs=12, batch_size=16, lr=0.5, patience=2, clip_norm=0.0,
                        schedule="constant"))
    best = int(np.argmin(h.val_mean_eer))
    assert h.best_epoch == best
    assert len(h.val_mean_eer) <= 12
    if h.stopped_early:
        assert len(h.val_mean_eer) == best + 1 + 2
    from qdaed.metrics import compute_metrics
    from qdaed.nn.losses import sigmoid

    eer = compute_metrics(sigmoid(predict_logits(model, split.x_val)), split.y_val)["eer"]["mean"]
    assert eer == pytest.approx(h.val_mean_eer[best])


def test_distillation_needs_teacher_logits_of_the_right_shape(split):
    from qdaed.errors import InputError

    model = S.new_student(split, STUDENT, seed=0)
    with pytest.raises(InputError, match="teacher_logits"):
        fit(model, split.train, split.val, cfg(epochs=1),
            distill=Distillation(2.0, 0.5, np.zeros((3, 3))))
    with pytest.raises(InputError, match="lam"):
        Distillation(2.0, 0.5)
    with pytest.raises(InputError, match="distill: expected a Distillation"):
        fit(model, split.train, split.val, cfg(epochs=1), distill={"lam": 0.5})


def test_teacher_pretraining_is_the_initialisation_of_the_run_training(split):
    """With pretrain=(P, E): E epochs on P first, then the run's schedule from those weights
    (a fresh optimiser) — the same as fitting the pretrained network by hand."""
    arch, c = {"depth": 18, "width": 2}, cfg(epochs=2, lr=3e-3)
    pre = learnable_split(n=32, seed=5)
    epochs_seen = []
    teacher, _ = S.train_teacher(split, arch, c, pretrain=(pre, 1),
                                 pretrain_progress=lambda rec: epochs_seen.append(rec["epoch"]))
    assert epochs_seen == [1]
    plain, _ = S.train_teacher(split, arch, c)
    by_hand, _ = S.train_teacher(pre, arch, cfg(epochs=1, lr=3e-3))   # the pretraining alone
    fit(by_hand, split.train, split.val, c)
    for name, v in teacher.state_dict().items():
        np.testing.assert_array_equal(v, by_hand.state_dict()[name])
    assert any(not np.array_equal(v, plain.state_dict()[name])
               for name, v in teacher.state_dict().items())
