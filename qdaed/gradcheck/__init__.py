"""Finite-difference gradient checking, shared by the tests and ``qdaed gradcheck``.

The check: pick a scalar ``L = Σ dy ⊙ y`` with a random upstream gradient ``dy`` (never all
ones, so that a transposed or mis-summed gradient cannot cancel), compute the analytic
gradient of every input and parameter with the op's hand-written backward, and compare it
with the central difference ``(L(x + h e_i) − L(x − h e_i)) / 2h`` in float64.

Relative error of one tensor (the figure every table and test reports):

    err(a, n) = max_i |a_i − n_i| / max(max_i |a_i|, max_i |n_i|)       (0 when both are 0)

Case modules (one per op family) each expose ``CASES``, a list of :class:`Case`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

# Central-difference step for float64: truncation error ~h², rounding ~1e-16/h.
STEP = 1e-6
TOLERANCE = 1e-6

CASE_MODULES = (
    "qdaed.gradcheck.student_cases",
    "qdaed.gradcheck.loss_quant_cases",
    "qdaed.gradcheck.resnet_cases",
)


@dataclass(frozen=True)
class Case:
    """One op checked by ``qdaed gradcheck``.

    run(rng) draws a small random case and returns {tensor name: relative error}.
    """

    op: str
    run: Callable[[np.random.Generator], dict]
    tolerance: float = TOLERANCE


def rel_error(analytic, numeric):
    """max |a − n| / max(max |a|, max |n|); 0 when both tensors are all zeros."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"gradient shapes differ: analytic {a.shape}, numeric {n.shape}")
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(n), initial=0.0))
    return 0.0 if scale == 0.0 else float(np.max(np.abs(a - n)) / scale)


def numerical_gradient(loss, x, h=STEP):
    """Central difference of the scalar ``loss()`` with respect to every entry of ``x``.

    ``x`` is perturbed in place (and restored), so ``loss`` must read it by reference.
    """
    if x.dtype != np.float64:
        raise ValueError("finite differences need float64 arrays")
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        v = flat[i]
        flat[i] = v + h
        up = loss()
        flat[i] = v - h
        down = loss()
        flat[i] = v
        gflat[i] = (up - down) / (2.0 * h)
    return g


def compare_gradients(loss, tensors, analytic, h=STEP):
    """{name: rel_error(analytic[name], numerical gradient of loss w.r.t. tensors[name])}."""
    return {name: rel_error(analytic[name], numerical_gradient(loss, tensors[name], h))
            for name in tensors}


def all_cases():
    """Every registered :class:`Case`, in a stable order."""
    cases = []
    for mod in CASE_MODULES:
        cases.extend(importlib.import_module(mod).CASES)
    return cases


def run(seed=0, repeats=3, progress=None):
    """Run every case ``repeats`` times; return rows (op, cases, max rel error, tol, passed)."""
    rng = np.random.default_rng(seed)
    rows = []
    for case in all_cases():
        worst = 0.0
        for _ in range(repeats):
            errs = case.run(rng)
            worst = max([worst, *errs.values()])
        rows.append((case.op, repeats, worst, case.tolerance, bool(worst < case.tolerance)))
        if progress is not None:
            progress(rows[-1])
    return rows
