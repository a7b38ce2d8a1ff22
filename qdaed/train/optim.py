"""Optimisers, learning-rate schedules and global-norm gradient clipping, PyTorch semantics.

Parameters live in a flat dict ``name → ndarray`` (float32 or float64); an optimiser is bound to
that dict when it is built and updates its arrays **in place** each :meth:`step`, given a dict
of gradients with the same names, shapes and dtypes. Elementwise work is plain NumPy with
in-place updates (memory-bound; no kernel would change its cost noticeably).

Adam (Kingma & Ba 2015, as ``torch.optim.Adam`` with amsgrad=False), step t = 1, 2, …::

    g ← g + λ w                                  (weight_decay λ: L2 added to the gradient)
    m ← β₁ m + (1 − β₁) g,     v ← β₂ v + (1 − β₂) g²
    w ← w − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)      (ε added after the square root)

SGD with momentum μ (as ``torch.optim.SGD`` with dampening 0)::

    g ← g + λ w
    b ← μ b + g                                  (b starts at 0, so the first b is g)
    w ← w − η (g + μ b)   with nesterov,   w ← w − η b   otherwise

The learning rate η is the attribute ``lr``; a training loop sets it from a schedule before each
step (``opt.lr = schedule(step)``). It is configuration, not state: :meth:`state_dict` holds the
step counter and the moment buffers only, as a flat dict of arrays (copies) and scalars, so a
checkpoint can store it in safetensors + JSON and :meth:`load_state_dict` continues bit for bit.

Schedules are small callables ``step → lr`` (step counted from 0 over the whole run):
:class:`ConstantLR`, :class:`CosineLR` (optional linear warm-up), :class:`StepLR`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qdaed.errors import InputError
from qdaed.validate import FLOAT_DTYPES, check_float, check_int

# --------------------------------------------------------------------------- clipping


def clip_grad_norm(grads, max_norm, error_if_nonfinite=True):
    """Scale every gradient by min(1, max_norm / (‖g‖ + 1e-6)), ‖g‖ the global 2-norm.

    ‖g‖ = sqrt(Σ_tensors Σ g²), accumulated in float64. Gradients are scaled in place, as
    ``torch.nn.utils.clip_grad_norm_`` does (including its 1e-6 in the denominator, so a norm
    just above max_norm is scaled by a factor a hair below max_norm / ‖g‖). Returns ‖g‖ before
    clipping. A non-finite norm (NaN/inf gradients: training diverged) raises ``InputError``,
    or with ``error_if_nonfinite=False`` leaves the gradients untouched and is returned so the
    caller can skip the step.
    """
    max_norm = check_float("max_norm", max_norm, lo=0.0, lo_open=True)
    if not isinstance(grads, dict) or not grads:
        raise InputError("grads: expected a non-empty dict of arrays")
    total_sq = 0.0
    for name, g in grads.items():
        if not isinstance(g, np.ndarray) or g.dtype not in FLOAT_DTYPES:
            raise InputError(f"grads[{name!r}]: expected a float32/float64 array")
        flat = g.ravel().astype(np.float64, copy=False)
        total_sq += float(np.dot(flat, flat))
    total = math.sqrt(total_sq)
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise InputError(f"grads: the global gradient norm is {total} (NaN or infinite "
                             f"gradients; lower the learning rate or check the loss)")
        return total
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads.values():
            g *= g.dtype.type(coef)
    return total


# --------------------------------------------------------------------------- optimisers


class _Optimizer:
    """Shared bookkeeping: bound parameters, the lr attribute, step counter, state dicts."""

    kind = ""
    buffers = ()          # names of the per-parameter state arrays

    def __init__(self, params, lr):
        if not isinstance(params, dict) or not params:
            raise InputError("params: expected a non-empty dict name -> array")
        for name, p in params.items():
            if not isinstance(p, np.ndarray) or p.dtype not in FLOAT_DTYPES:
                raise InputError(f"params[{name!r}]: expected a float32/float64 numpy array, "
                                 f"got {getattr(p, 'dtype', type(p).__name__)}")
            if not p.flags.writeable:
                raise InputError(f"params[{name!r}]: the array is read-only; the optimiser "
                                 f"updates parameters in place")
        self.params = params
        self.lr = check_float("lr", lr, lo=0.0, lo_open=True)
        self.steps = 0
        self.state = {b: {n: np.zeros_like(p) for n, p in params.items()} for b in self.buffers}

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        # A schedule may reach 0 (end of a cosine); negative or non-finite is a bug.
        self._lr = check_float("lr", value, lo=0.0)

    def _check_grads(self, grads):
        if not isinstance(grads, dict):
            raise InputError(f"grads: expected a dict name -> array, got {type(grads).__name__}")
        missing = sorted(set(self.params) - set(grads))
        extra = sorted(set(grads) - set(self.params))
        if missing or extra:
            raise InputError(f"grads: names must match the parameters; missing {missing}, "
                             f"unexpected {extra}")
        for name, p in self.params.items():
            g = grads[name]
            if not isinstance(g, np.ndarray) or g.shape != p.shape or g.dtype != p.dtype:
                got = (g.shape, g.dtype) if isinstance(g, np.ndarray) else type(g).__name__
                raise InputError(f"grads[{name!r}]: expected {p.dtype} of shape {p.shape}, "
                                 f"got {got}")

    def step(self, grads):
        """One update of every parameter, in place (see the module docstring)."""
        self._check_grads(grads)
        self.steps += 1
        for name, p in self.params.items():
            self._update(name, p, grads[name])

    def state_dict(self):
        """``{"optimizer": kind, "step": t, "<buffer>.<param>": array copy, …}``."""
        out = {"optimizer": self.kind, "step": self.steps}
        for b in self.buffers:
            for n, a in self.state[b].items():
                out[f"{b}.{n}"] = a.copy()
        return out

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict` of an optimiser of the same kind over the same params."""
        if not isinstance(state, dict):
            raise InputError(f"state: expected a dict, got {type(state).__name__}")
        if state.get("optimizer") != self.kind:
            raise InputError(f"state: saved by optimiser {state.get('optimizer')!r}, "
                             f"cannot load into {self.kind!r}")
        steps = check_int("state['step']", state.get("step"), lo=0)
        want = {f"{b}.{n}" for b in self.buffers for n in self.params}
        have = set(state) - {"optimizer", "step"}
        if want != have:
            raise InputError(f"state: buffers do not match the parameters; missing "
                             f"{sorted(want - have)}, unexpected {sorted(have - want)}")
        new = {b: {} for b in self.buffers}
        for b in self.buffers:
            for n, p in self.params.items():
                a = state[f"{b}.{n}"]
                if not isinstance(a, np.ndarray) or a.shape != p.shape or a.dtype != p.dtype:
                    got = (a.shape, a.dtype) if isinstance(a, np.ndarray) else type(a).__name__
                    raise InputError(f"state[{b}.{n!r}]: expected {p.dtype} of shape "
                                     f"{p.shape}, got {got}")
                new[b][n] = a.copy()
        self.state, self.steps = new, steps


class Adam(_Optimizer):
    """Adam with bias correction, ε after the square root, optional L2 weight decay."""

    kind = "adam"
    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise InputError(f"betas: expected a pair (beta1, beta2), got {betas!r}") from None
        self.beta1 = check_float("betas[0]", b1, lo=0.0)
        self.beta2 = check_float("betas[1]", b2, lo=0.0)
        for i, b in enumerate((self.beta1, self.beta2)):
            if b >= 1.0:
                raise InputError(f"betas[{i}]: expected a number in [0, 1), got {b}")
        self.eps = check_float("eps", eps, lo=0.0)
        self.weight_decay = check_float("weight_decay", weight_decay, lo=0.0)
        super().__init__(params, lr)

    def _update(self, name, p, g):
        b1, b2, t = self.beta1, self.beta2, self.steps
        m, v = self.state["exp_avg"][name], self.state["exp_avg_sq"][name]
        if self.weight_decay:
            g = g + self.weight_decay * p
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        step_size = self.lr / (1.0 - b1 ** t)
        denom = np.sqrt(v)
        denom /= math.sqrt(1.0 - b2 ** t)
        denom += self.eps
        p -= step_size * (m / denom)


class SGD(_Optimizer):
    """SGD with optional (Nesterov) momentum and L2 weight decay."""

    kind = "sgd"

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.momentum = check_float("momentum", momentum, lo=0.0)
        if self.momentum >= 1.0:
            raise InputError(f"momentum: expected a number in [0, 1), got {self.momentum}")
        if not isinstance(nesterov, bool):
            raise InputError(f"nesterov: expected True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0.0:
            raise InputError("nesterov: Nesterov momentum needs momentum > 0")
        self.nesterov = nesterov
        self.weight_decay = check_float("weight_decay", weight_decay, lo=0.0)
        self.buffers = ("momentum_buffer",) if self.momentum else ()
        super().__init__(params, lr)

    def _update(self, name, p, g):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = self.state["momentum_buffer"][name]
            buf *= self.momentum
            buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


# --------------------------------------------------------------------------- schedules


@dataclass(frozen=True)
class ConstantLR:
    """lr(step) = lr."""

    lr: float

    def __post_init__(self):
        check_float("lr", self.lr, lo=0.0, lo_open=True)

    def __call__(self, step):
        check_int("step", step, lo=0)
        return float(self.lr)


@dataclass(frozen=True)
class CosineLR:
    """Linear warm-up, then cosine decay from lr to min_lr over the remaining steps.

    step < W:       lr · (step + 1) / W                      (W = warmup_steps; never 0)
    otherwise:      min_lr + (lr − min_lr) · (1 + cos(π p)) / 2,
                    p = min(1, (step − W) / max(1, total_steps − W))
    With W = 0 this is ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=total_steps,
    eta_min=min_lr)``; steps past total_steps stay at min_lr.
    """

    lr: float
    total_steps: int
    warmup_steps: int = 0
    min_lr: float = 0.0

    def __post_init__(self):
        check_float("lr", self.lr, lo=0.0, lo_open=True)
        check_int("total_steps", self.total_steps, lo=1)
        check_int("warmup_steps", self.warmup_steps, lo=0)
        check_float("min_lr", self.min_lr, lo=0.0, hi=self.lr)

    def __call__(self, step):
        step = check_int("step", step, lo=0)
        w = self.warmup_steps
        if step < w:
            return self.lr * (step + 1) / w
        p = min(1.0, (step - w) / max(1, self.total_steps - w))
        return self.min_lr + (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * p)) / 2.0


@dataclass(frozen=True)
class StepLR:
    """lr(step) = lr · gamma^⌊step / step_size⌋ (``torch.optim.lr_scheduler.StepLR``)."""

    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        check_float("lr", self.lr, lo=0.0, lo_open=True)
        check_int("step_size", self.step_size, lo=1)
        check_float("gamma", self.gamma, lo=0.0, hi=1.0, lo_open=True)

    def __call__(self, step):
        step = check_int("step", step, lo=0)
        return self.lr * self.gamma ** (step // self.step_size)


__all__ = ["clip_grad_norm", "Adam", "SGD", "ConstantLR", "CosineLR", "StepLR"]
