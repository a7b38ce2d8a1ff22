"""Argument checks shared by the public layers (``qdaed.nn``, ``qdaed.models``, ...).

Kernels in ``qdaed.kernels`` trust their inputs; the layers above call these checks first so
that a user sees a ``qdaed.errors.InputError`` naming the argument, never a Numba typing error.
"""

from __future__ import annotations

import numpy as np

from qdaed.errors import InputError, NonFiniteError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_array(name, x, *, ndim=None, shape=None, dtype=None, finite=True):
    """Return ``x`` as a C-contiguous float32/float64 array or raise ``InputError``.

    ndim:  required number of dimensions (int) or None.
    shape: tuple of required sizes; ``None`` entries are free.
    dtype: required dtype; None accepts float32 or float64 (other types are refused,
           not silently cast, so precision is never chosen behind the caller's back).
    finite: refuse NaN and infinity.
    """
    if not isinstance(x, np.ndarray):
        raise InputError.at(name, f"expected a numpy array, got {type(x).__name__}")
    if dtype is None:
        if x.dtype not in FLOAT_DTYPES:
            raise InputError.at(name, f"expected dtype float32 or float64, got {x.dtype}")
    elif x.dtype != np.dtype(dtype):
        raise InputError.at(name, f"expected dtype {np.dtype(dtype)}, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise InputError.at(name, f"expected {ndim} dimensions, got shape {x.shape}")
    if shape is not None:
        if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise InputError.at(name, f"expected shape {want}, got {x.shape}")
    if any(d == 0 for d in x.shape):
        raise InputError.at(name, f"expected a non-empty array, got shape {x.shape}")
    if finite and not np.isfinite(x).all():
        raise NonFiniteError.at(name, "contains NaN or infinity")
    return np.ascontiguousarray(x)


def check_same_dtype(**arrays):
    """Raise ``InputError`` unless every array shares one dtype; return that dtype."""
    dtypes = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(dtypes.values())) > 1:
        listing = ", ".join(f"{n}={d}" for n, d in dtypes.items())
        raise InputError(f"arrays must share one dtype, got {listing}")
    return next(iter(dtypes.values()))


def check_choice(name, value, choices):
    """Raise ``InputError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise InputError.at(name, f"expected one of {', '.join(map(repr, choices))}, "
                            f"got {value!r}")
    return value


def check_int(name, value, lo=None, hi=None):
    """Return ``value`` as int if it is an integer within [lo, hi], else raise ``InputError``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError.at(name, f"expected an integer, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise InputError.at(name, f"expected an integer in {rng}, got {value}")
    return int(value)


def check_float(name, value, lo=None, hi=None, *, lo_open=False):
    """Return ``value`` as float if finite and within the bounds, else raise ``InputError``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError.at(name, f"expected a number, got {value!r}") from None
    if not np.isfinite(v):
        raise InputError.at(name, f"expected a finite number, got {value!r}")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise InputError.at(name, f"expected a number {'>' if lo_open else '>='} {lo}, got {v}")
    if hi is not None and v > hi:
        raise InputError.at(name, f"expected a number <= {hi}, got {v}")
    return v
