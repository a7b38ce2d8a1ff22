"""The golden cases, one module per family; every case is built from qdaed's public ops.

Each module registers its cases with :func:`register` at import. A case is built by a
function ``fn(b, **kwargs)`` that draws its inputs from ``b.rng``, stores them with
:meth:`Builder.input` (rounded to the export dtype) and computes every output in float64 from
the stored values, stored with :meth:`Builder.output` (rounded once to the export dtype, with
its tolerance from ``qdaed.vectors.tolerance``). Cases whose arithmetic is defined for one
dtype (the quantizer's float32 α and β, LFBE's float32 output, the deployed float32
detector) say so in their description.

The generator of a case is seeded by (seed, CRC-32 of its name), so a case has the same values
whether it is exported alone or with all the others.
"""

from __future__ import annotations

import fnmatch
import importlib
import zlib

import numpy as np

from qdaed.vectors.format import Case
from qdaed.vectors.tolerance import tolerance

CASE_MODULES = (
    "qdaed.vectors.cases.layers",
    "qdaed.vectors.cases.losses",
    "qdaed.vectors.cases.quantizer",
    "qdaed.vectors.cases.lfbe",
    "qdaed.vectors.cases.networks",
    "qdaed.vectors.cases.training",
    "qdaed.vectors.cases.integer",
)
INTEGER_OP = "int8_student"     # cases exported only with --integer (qdaed.vectors.cases.integer)

_REGISTRY = {}


def register(name, op, description, fn, **kwargs):
    """Add case ``name`` (op, one-line description, builder fn(b, **kwargs))."""
    if name in _REGISTRY:
        raise ValueError(f"golden case {name} registered twice")
    _REGISTRY[name] = (op, description, fn, kwargs)


def _load():
    for mod in CASE_MODULES:
        importlib.import_module(mod)


def names():
    """Every case name, in export order."""
    _load()
    return list(_REGISTRY)


def describe(name):
    """(op, description) of case ``name``."""
    _load()
    op, description, _, _ = _REGISTRY[name]
    return op, description


def select(patterns=None, integer=False):
    """Case names matching any of the shell-style ``patterns`` (all when None), in order;
    the integer student's cases only with ``integer``."""
    all_names = [n for n in names() if integer or _REGISTRY[n][0] != INTEGER_OP]
    if not patterns:
        return all_names
    return [n for n in all_names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


class Builder:
    """Collects one case's inputs and outputs; see the module docstring."""

    def __init__(self, name, op, description, dtype, seed, context=None):
        self.case = Case(name, op, description)
        self.dtype = np.dtype(dtype)
        self.seed = int(seed)
        self.rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
        self.context = dict(context or {})

    @property
    def options(self):
        return self.case.options

    def normal(self, *shape, scale=1.0):
        """Standard normal draws times ``scale``, float64."""
        return scale * self.rng.standard_normal(shape)

    def uniform(self, lo, hi, *shape):
        return self.rng.uniform(lo, hi, shape)

    def input(self, name, value, dtype=None):
        """Store ``value`` rounded to ``dtype`` (default: the export dtype) and return the
        stored value, widened to float64 for a float tensor."""
        value = np.asarray(value)
        if value.dtype.kind == "f" or dtype is not None:
            value = value.astype(dtype or self.dtype)
        stored = self.case.add_input(name, value)
        return stored.astype(np.float64) if stored.dtype.kind == "f" else stored

    def output(self, name, value, kind, note="", dtype=None, tol=None):
        """Store output ``value`` (float: rounded to ``dtype``, default the export dtype)
        with the tolerance of class ``kind`` ('exact', 'elementwise', 'reduction',
        'recurrent'), or ``tol`` = (rtol, atol, reason) where a class does not fit."""
        value = np.asarray(value)
        if value.dtype.kind == "f":
            value = value.astype(dtype or self.dtype)
        elif value.dtype.kind == "b":
            value = value.astype(np.uint8)
            kind = "exact"
        rtol, atol, reason = tol if tol is not None else tolerance(kind, value.dtype, value,
                                                                   note)
        self.case.add_output(name, value, rtol, atol, reason)
        return value


def build(name, dtype, seed, context=None):
    """The :class:`~qdaed.vectors.format.Case` ``name`` for export dtype and seed.
    ``context``: extra inputs of some cases (``audio``: paths of real recordings)."""
    _load()
    op, description, fn, kwargs = _REGISTRY[name]
    b = Builder(name, op, description, dtype, seed, context)
    fn(b, **kwargs)
    return b.case


__all__ = ["Builder", "build", "describe", "names", "register", "select"]
