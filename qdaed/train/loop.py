"""One training loop for every schedule of docs/method/schedules.md.

Each step: a seeded mini-batch → forward → loss (hard, or distillation against cached teacher
logits) → hand-written backward → global-norm clipping → optimiser update. With ``quant`` set,
the step is Polino et al.'s Algorithm 1 (quantized distillation / quantization-aware training):

    ŵ = Q_k(w)                       for every quantized tensor (full-precision w kept)
    forward and backward with ŵ      → g = ∂L/∂ŵ
    w ← update(w, g)                 straight-through: ∂L/∂w := ∂L/∂ŵ

After every epoch the mean EER on the validation split decides early stopping; the best
epoch's weights are restored at the end. A checkpoint written after every epoch (atomic,
pickle-free) lets ``resume`` continue exactly: batch order depends only on (seed, epoch).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from qdaed.errors import InputError
from qdaed.io.checkpoint import load_checkpoint, save_checkpoint
from qdaed.metrics import compute_metrics
from qdaed.models.predict import model_input, predict_logits
from qdaed.models.quantized import quantized_weights
from qdaed.nn.losses import distillation_loss, sigmoid
from qdaed.nn.quant import ste_backward
from qdaed.train import optim
from qdaed.train.augment import augment_batch, step_rng
from qdaed.train.dataset import batch_order
from qdaed.train.recipes import check_temperature
from qdaed.validate import check_choice, check_float, check_int


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (written beside every result)."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"          # adam | sgd
    momentum: float = 0.9            # SGD only
    weight_decay: float = 0.0
    clip_norm: float = 5.0           # global-norm clipping; 0 disables
    schedule: str = "cosine"         # cosine | constant
    warmup_steps: int = 0
    patience: int = 5                # epochs without a better validation EER before stopping
    seed: int = 0

    def validate(self):
        check_int("epochs", self.epochs, lo=1)
        check_int("batch_size", self.batch_size, lo=1)
        check_float("lr", self.lr, lo=0.0, lo_open=True)
        check_choice("optimizer", self.optimizer, ("adam", "sgd"))
        check_float("momentum", self.momentum, lo=0.0, hi=0.999)
        check_float("weight_decay", self.weight_decay, lo=0.0)
        check_float("clip_norm", self.clip_norm, lo=0.0)
        check_choice("schedule", self.schedule, ("cosine", "constant"))
        check_int("warmup_steps", self.warmup_steps, lo=0)
        check_int("patience", self.patience, lo=1)
        check_int("seed", self.seed, lo=0)
        return self


@dataclass(frozen=True)
class Distillation:
    """The soft term of a training run (docs/method/losses.md): L = (1 − λ) L_hard + λ T² L_soft with
    q = σ(z_t / T), the teacher's logits z_t from

      teacher_logits  (N_train, C) cached logits, one row per training clip, or
      teacher         a frozen model evaluated on every batch, BN in evaluation mode, on the
                      view the student sees (consistent teaching);

    transfer: (x_u (N_u, T, F), z_u (N_u, C) or None with ``teacher``): an unlabelled transfer
    set, used only in the soft term. A recipe (qdaed.train.recipes.DistillSpec) says how these
    are made; this is what one training run receives. :func:`fit` takes it as ``distill``
    beside the quantization as ``quant``."""

    temperature: float
    lam: float
    teacher_logits: np.ndarray = None
    teacher: object = None
    transfer: tuple = None

    def __post_init__(self):
        check_temperature("temperature", self.temperature)
        check_float("lam", self.lam, lo=0.0, hi=1.0)
        if self.lam > 0 and self.teacher_logits is None and self.teacher is None:
            raise InputError("lam > 0 needs teacher_logits or a teacher")


@dataclass
class History:
    """Per-epoch record of one run."""

    train_loss: list = field(default_factory=list)
    val_mean_eer: list = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False


def _make_optimizer(cfg, params):
    if cfg.optimizer == "adam":
        return optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _lr_schedule(cfg, total_steps):
    if cfg.schedule == "constant":
        return optim.ConstantLR(cfg.lr)
    return optim.CosineLR(cfg.lr, total_steps=total_steps, warmup_steps=cfg.warmup_steps)


def _pool_batches(n_labelled, n_transfer, batch_size, seed, epoch):
    """Mini-batches of one epoch over labelled rows 0 … n_l − 1 and transfer rows n_l … n_l +
    n_u − 1: ceil(n_l / B) batches of B rows drawn from one (seed, epoch) permutation of the
    pool, so an epoch has the baseline's number of steps and clips (the same training budget)
    whatever the size of the transfer set. Each batch lists its labelled rows first.
    Without a transfer set this is exactly :func:`batch_order`."""
    if n_transfer == 0:
        return batch_order(n_labelled, batch_size, seed, epoch)
    steps = math.ceil(n_labelled / batch_size)
    perm = np.random.default_rng([seed, epoch, 1]).permutation(n_labelled + n_transfer)
    out = []
    for i in range(steps):
        idx = perm[i * batch_size:(i + 1) * batch_size]
        out.append(np.concatenate([np.sort(idx[idx < n_labelled]),
                                   np.sort(idx[idx >= n_labelled])]))
    return out


def fit(model, train, val, cfg, *, distill=None, quant=None, augment=None, bin_scale=None,
        checkpoint=None, resume=False, progress=None):
    """Train ``model`` in place (every schedule): return its :class:`History`.

    Each step: a seeded mini-batch → forward → loss (hard, or distillation) → hand-written
    backward → global-norm clipping → optimiser update. With ``quant`` set, the step is Polino
    et al.'s Algorithm 1::

        ŵ = Q_k(w)                       for every quantized tensor (full-precision w kept)
        forward and backward with ŵ      → g = ∂L/∂ŵ
        w ← update(w, g)                 straight-through: ∂L/∂w := ∂L/∂ŵ

    After every epoch the mean validation EER (with the deployed, quantized weights) decides
    early stopping; the best epoch's weights are restored at the end.

    Parameters
    ----------
    model : StudentLSTM or ResNet
        Trained in place.
    train, val : tuple of ndarray
        (x (N, T, F) normalised float32, y (N, C) float32).
    cfg : TrainConfig
        Epochs, batch size, optimiser, learning-rate schedule, clipping, patience, seed.
    distill : Distillation, optional
        The soft term (T, λ, teacher logits or teacher, transfer set); None for hard labels.
    quant : QuantSpec, optional
        k-bit weights with the straight-through gradient; None for full precision.
    augment : Augment, optional
        Applied to every batch (with a soft term it needs ``distill.teacher``, so that the
        soft targets belong to the augmented view).
    bin_scale : ndarray, optional
        1/σ_f per mel bin, for the augmentation's gain.
    checkpoint : str, optional
        Path written after every epoch; with ``resume`` an existing one is continued.
    resume : bool
        Continue from ``checkpoint``.
    progress : callable, optional
        Receives one dict per epoch.

    Returns
    -------
    History
        Per-epoch training loss and validation mean EER, the best epoch, early stopping.
    """
    cfg.validate()
    x_tr, y_tr = train
    x_va, y_va = val
    if distill is not None and not isinstance(distill, Distillation):
        raise InputError(f"distill: expected a Distillation, got {type(distill).__name__}")
    d = distill or Distillation(temperature=1.0, lam=0.0)
    temperature, lam, teacher_logits, teacher, transfer = (
        d.temperature, d.lam, d.teacher_logits, d.teacher, d.transfer)
    if teacher_logits is not None and teacher_logits.shape != y_tr.shape:
        raise InputError(f"teacher_logits: expected shape {y_tr.shape}, "
                         f"got {teacher_logits.shape}")
    n_lab, n_u = x_tr.shape[0], 0
    if transfer is not None:
        x_u, z_u = transfer
        if lam <= 0:
            raise InputError("transfer: an unlabelled transfer set needs a soft term (lam > 0)")
        if x_u.shape[1:] != x_tr.shape[1:]:
            raise InputError(f"transfer: clips of shape {x_u.shape[1:]}, the training clips "
                             f"are {x_tr.shape[1:]}")
        if z_u is None and teacher is None:
            raise InputError("transfer: needs its teacher logits or a teacher")
        if z_u is not None and z_u.shape != (x_u.shape[0], y_tr.shape[1]):
            raise InputError(f"transfer: teacher logits of shape {z_u.shape}, expected "
                             f"{(x_u.shape[0], y_tr.shape[1])}")
        n_u = x_u.shape[0]
    if augment is not None and augment.enabled and lam > 0 and teacher is None:
        raise InputError("augment: with a soft term the teacher must see the augmented view "
                         "(pass teacher=...; cached logits belong to the clean clip)")
    zt_all = None   # cached logits of the pool (labelled rows, then transfer rows)
    if teacher is None and teacher_logits is not None:
        zt_all = teacher_logits if n_u == 0 else np.concatenate([teacher_logits, z_u])
    history = History()
    best_state, best_eer, bad_epochs, start, opt_state = None, math.inf, 0, 0, None
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        start, best_state, best_eer, bad_epochs, history, opt_state = _load_checkpoint(
            checkpoint, model)
    # the optimiser updates these arrays in place; bind it after any state was loaded
    master = model.params
    opt = _make_optimizer(cfg, master)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    steps_per_epoch = math.ceil(n_lab / cfg.batch_size)
    schedule = _lr_schedule(cfg, cfg.epochs * steps_per_epoch)

    for epoch in range(start, cfg.epochs):
        losses = []
        for step, idx in enumerate(_pool_batches(n_lab, n_u, cfg.batch_size, cfg.seed, epoch)):
            opt.lr = schedule(epoch * steps_per_epoch + step)
            lab = idx[idx < n_lab]
            xb = x_tr[idx] if n_u == 0 else np.concatenate([x_tr[lab], x_u[idx[lab.size:] - n_lab]])
            yb = y_tr[lab] if lab.size else None
            if augment is not None and augment.enabled:
                xb, yb = augment_batch(augment, xb, yb, step_rng(cfg.seed, epoch, step),
                                       n_labelled=lab.size, bin_scale=bin_scale)
            if teacher is not None and lam > 0:
                zt = predict_logits(teacher, xb, batch_size=xb.shape[0])
            else:
                zt = None if zt_all is None else zt_all[idx]
            qts = {} if quant is None else quant.quantize(master, epoch * steps_per_epoch + step)
            with quantized_weights(model, qts):
                z, cache = model.forward(model_input(model, xb), train=True)
                loss, dz = distillation_loss(z, zt, yb, temperature, lam)
                grads = model.backward(cache, dz)
            if quant is not None:
                grads.update({n: ste_backward(grads[n], q) for n, q in qts.items()})
            if cfg.clip_norm > 0:
                optim.clip_grad_norm(grads, cfg.clip_norm)
            opt.step(grads)
            losses.append(float(loss))
        val_eer = _validation_eer(model, x_va, y_va, quant)
        history.train_loss.append(float(np.mean(losses)))
        history.val_mean_eer.append(val_eer)
        if val_eer < best_eer - 1e-9:
            best_eer, best_state, bad_epochs = val_eer, model.state_dict(), 0
            history.best_epoch = epoch
        else:
            bad_epochs += 1
        stop = bad_epochs >= cfg.patience
        history.stopped_early = stop and epoch + 1 < cfg.epochs
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, opt, epoch + 1, best_state, best_eer,
                             bad_epochs, history)
        if progress is not None:
            progress({"epoch": epoch + 1, "epochs": cfg.epochs, "loss": history.train_loss[-1],
                      "val_mean_eer": val_eer, "best_epoch": history.best_epoch + 1})
        if stop:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def _validation_eer(model, x, y, quant):
    """Mean EER over classes on the validation split, with the deployed (quantized) weights."""
    with quantized_weights(model, {} if quant is None else quant.quantize(model.params)):
        logits = predict_logits(model, x)
    eer = compute_metrics(sigmoid(logits), y)["eer"]["mean"]
    return 1.0 if not np.isfinite(eer) else float(eer)


def _save_checkpoint(path, model, opt, epoch, best_state, best_eer, bad_epochs, history):
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"opt/{k}": v for k, v in opt.state_dict().items()
                   if isinstance(v, np.ndarray)})
    if best_state is not None:
        arrays.update({f"best/{k}": v for k, v in best_state.items()})
    state = {"epoch": epoch, "best_eer": best_eer if math.isfinite(best_eer) else None,
             "bad_epochs": bad_epochs, "history": asdict(history),
             "opt_scalars": {k: v for k, v in opt.state_dict().items()
                             if not isinstance(v, np.ndarray)}}
    save_checkpoint(path, arrays, state)


def _load_checkpoint(path, model):
    arrays, state = load_checkpoint(path)
    model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
    opt_state = {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}
    opt_state.update(state["opt_scalars"])
    best = {k[5:]: v for k, v in arrays.items() if k.startswith("best/")} or None
    best_eer = math.inf if state["best_eer"] is None else state["best_eer"]
    return (state["epoch"], best, best_eer, state["bad_epochs"], History(**state["history"]),
            opt_state)
