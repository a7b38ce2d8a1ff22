"""The training schedules of docs/method/schedules.md, each a function usable from Python.

    teacher                 ResNet on hard labels
    student                 the same LSTM student architecture, hard labels only (baseline)
    distilled               L = (1 − λ) L_hard + λ T² L_soft against the frozen teacher's logits,
                            computed once per clip (BN in eval mode) and cached
    qd-{k}bit               quantized distillation (the paper's method; Polino Alg. 1), k-bit
                            weights with a straight-through gradient, starting from ``distilled``
    ptq-{k}bit              post-training quantization of ``distilled`` (no retraining)
    qat-{k}bit              quantization-aware training without distillation, starting from
                            ``student``

Every function takes a :class:`Split` of normalised features and returns the trained model and
its :class:`~qdaed.train.loop.History` (PTQ returns no history).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np

from qdaed.errors import InputError
from qdaed.models import ResNet, StudentLSTM
from qdaed.models.predict import predict_logits
from qdaed.models.quantized import QuantSpec, deploy_quantized
from qdaed.train.loop import fit


@dataclass
class Split:
    """Normalised features (N, T, F) float32 and labels (N, C) of train and validation."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def train(self):
        return self.x_train, self.y_train

    @property
    def val(self):
        return self.x_val, self.y_val


def train_teacher(split, arch, cfg, pretrain=None, pretrain_progress=None, **fit_kw):
    """ResNet(depth, width) on hard labels. arch: dict(depth=, width=).

    pretrain: None, or (Split, epochs): first ``epochs`` epochs on that split's clips (the
    synthetic corpus), early-stopped on its validation clips, then the run's training from
    those weights with a fresh optimiser (transfer learning: the pretrained network is the
    initialisation, nothing of the pretraining's optimiser state carries over).
    """
    model = ResNet(depth=arch["depth"], num_classes=split.y_train.shape[1], in_channels=1,
                   width=arch["width"], seed=cfg.seed)
    if pretrain is not None:
        pre, epochs = pretrain
        fit(model, pre.train, pre.val, dataclasses.replace(cfg, epochs=epochs),
            progress=pretrain_progress)
    return model, fit(model, split.train, split.val, cfg, **fit_kw)


def new_student(split, arch, seed):
    return StudentLSTM(split.x_train.shape[2], arch["hidden_size"], arch["num_layers"],
                       split.y_train.shape[1], pooling=arch.get("pooling", "mean"), seed=seed)


def train_student(split, arch, cfg, **fit_kw):
    """Baseline student: hard labels only."""
    model = new_student(split, arch, cfg.seed)
    return model, fit(model, split.train, split.val, cfg, **fit_kw)


def teacher_logits(teacher, x):
    """The frozen teacher's logits (N, C), BN in evaluation mode; computed once and cached."""
    return predict_logits(teacher, x)


def train_distilled(split, arch, cfg, distill, **fit_kw):
    """Distilled student: the soft term of ``distill`` (a :class:`~qdaed.train.loop.
    Distillation`: cached teacher logits or an on-the-fly teacher, T, λ, a transfer set);
    augmentations pass through ``fit_kw`` (see :func:`fit`)."""
    model = new_student(split, arch, cfg.seed)
    return model, fit(model, split.train, split.val, cfg, distill=distill, **fit_kw)


def fold_assignment(n, folds, seed):
    """Fold index (0 … folds − 1) of each of n training clips: a seeded permutation dealt
    round-robin, so fold sizes differ by at most one."""
    if not 2 <= folds <= n:
        raise InputError(f"folds: expected 2 <= folds <= {n} training clips, got {folds}")
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.default_rng([seed, 0x00F]).permutation(n)] = np.arange(n) % folds
    return fold


def out_of_fold_teacher_logits(split, arch, cfg, folds, x_transfer=None, fold_fit_kw=None):
    """Soft targets that are not memorised labels: out-of-fold (cross-fitted) predictions, as in
    stacked generalisation (Wolpert 1992), used as the student's targets:

        teacher_k trained on the clips with fold ≠ k (early stopping on the validation split)
        z[i] = teacher_{fold(i)}(x_i)        each clip scored by the one teacher that never saw it
        z_u  = 1/K Σ_k teacher_k(x_u)        transfer clips: the fold teachers' mean logit

    Returns (z (N_train, C), z_u (N_u, C) or None, fold assignment (N_train,)).
    fold_fit_kw: callable(k) → extra keyword arguments of fit for fold k (checkpoints).
    """
    fold = fold_assignment(split.x_train.shape[0], folds, cfg.seed)
    z = np.zeros(split.y_train.shape, dtype=np.float32)
    z_u = None if x_transfer is None else np.zeros((x_transfer.shape[0], split.y_train.shape[1]),
                                                   dtype=np.float64)
    for k in range(folds):
        rows, held = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        sub = Split(split.x_train[rows], split.y_train[rows], split.x_val, split.y_val)
        teacher, _ = train_teacher(sub, arch, cfg, **(fold_fit_kw(k) if fold_fit_kw else {}))
        z[held] = predict_logits(teacher, split.x_train[held])
        if z_u is not None:
            z_u += predict_logits(teacher, x_transfer) / folds
    return z, None if z_u is None else z_u.astype(np.float32), fold


def quantized_distillation(distilled, split, cfg, distill, spec, **fit_kw):
    """qd-{k}bit: quantized distillation (Polino et al. Alg. 1), starting from ``distilled``.

    ::

        ŵ = Q_k(w);  g = ∂L/∂ŵ on the distillation loss;  w ← update(w, g);  deploy Q_k(w)

    Parameters
    ----------
    distilled : StudentLSTM
        The distilled student; copied, not changed.
    split : Split
        Normalised features and labels of the training and validation splits.
    cfg : TrainConfig
        The schedule.
    distill : Distillation
        The soft term (T, λ, the teacher's logits).
    spec : QuantSpec
        Which tensors are quantized, and how.
    **fit_kw
        Passed to :func:`qdaed.train.loop.fit`.

    Returns
    -------
    (model, history, quantized) : tuple
        The trained student (holding Q_k(w)), its History, and {name: QuantizedTensor}.
    """
    model = copy.deepcopy(distilled)
    hist = fit(model, split.train, split.val, cfg, distill=distill, quant=spec, **fit_kw)
    return model, hist, deploy_quantized(model, spec)


def post_training_quantization(distilled, spec):
    """ptq-{k}bit: Q_k of the distilled student's weights, no retraining.

    Parameters
    ----------
    distilled : StudentLSTM
        The distilled student; copied, not changed.
    spec : QuantSpec
        Which tensors are quantized, and how.

    Returns
    -------
    (model, quantized) : tuple
        The student holding Q_k(w), and {name: QuantizedTensor}.
    """
    model = copy.deepcopy(distilled)
    return model, deploy_quantized(model, spec)


def quantization_aware_training(student, split, cfg, spec, **fit_kw):
    """qat-{k}bit: quantization-aware training without distillation, from the baseline student.

    The same steps as quantized distillation (ŵ = Q_k(w), straight-through gradient) on the hard
    labels alone, L = L_hard.

    Parameters
    ----------
    student : StudentLSTM
        The baseline student; copied, not changed.
    split : Split
        Normalised features and labels of the training and validation splits.
    cfg : TrainConfig
        The schedule.
    spec : QuantSpec
        Which tensors are quantized, and how.
    **fit_kw
        Passed to :func:`qdaed.train.loop.fit`.

    Returns
    -------
    (model, history, quantized) : tuple
        The trained student (holding Q_k(w)), its History, and {name: QuantizedTensor}.
    """
    model = copy.deepcopy(student)
    hist = fit(model, split.train, split.val, cfg, quant=spec, **fit_kw)
    return model, hist, deploy_quantized(model, spec)


__all__ = ["Split", "QuantSpec", "train_teacher", "train_student", "teacher_logits",
           "train_distilled", "fold_assignment", "out_of_fold_teacher_logits",
           "quantized_distillation", "post_training_quantization",
           "quantization_aware_training"]
