"""Argument checks shared by the integer-path functions (they raise qdaed's InputError)."""

import math

import numpy as np

from qdaed.errors import InputError

_RANGES = {np.dtype(np.int8): (-128, 127), np.dtype(np.int16): (-32768, 32767),
           np.dtype(np.int32): (-(1 << 31), (1 << 31) - 1)}


def int_array(name, x, dtype, shape=None, ndim=None):
    """``x`` as a C-contiguous array of exactly ``dtype`` (int8/int16/int32), or InputError.

    Integer arrays of another dtype are accepted when every value fits (so a test can pass
    int64 literals); floats and booleans are refused, never rounded.
    """
    dtype = np.dtype(dtype)
    if not isinstance(x, np.ndarray):
        raise InputError(f"{name}: expected a numpy array of {dtype.name}, got {type(x).__name__}")
    if x.dtype != dtype:
        if x.dtype.kind not in "iu":
            raise InputError(f"{name}: expected {dtype.name} values, got dtype {x.dtype}")
        lo, hi = _RANGES[dtype]
        if x.size and (int(x.min()) < lo or int(x.max()) > hi):
            raise InputError(f"{name}: values outside the {dtype.name} range [{lo}, {hi}]")
        x = x.astype(dtype)
    if ndim is not None and x.ndim != ndim:
        raise InputError(f"{name}: expected {ndim} dimensions, got shape {x.shape}")
    if shape is not None:
        if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
            want = tuple("*" if s is None else s for s in shape)
            raise InputError(f"{name}: expected shape {want}, got {x.shape}")
    return np.ascontiguousarray(x)


def int_value(name, v, lo, hi):
    """An int (numpy integers accepted) in [lo, hi], or InputError."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise InputError(f"{name}: expected an integer, got {type(v).__name__}")
    v = int(v)
    if not lo <= v <= hi:
        raise InputError(f"{name}: expected an integer in [{lo}, {hi}], got {v}")
    return v


def scale_value(name, s):
    """A positive, finite scale as a float32 (how the flatbuffer stores it), or InputError."""
    try:
        f = float(s)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a positive number, got {s!r}") from None
    s32 = np.float32(f)
    if not math.isfinite(f) or not (float(s32) > 0.0) or not math.isfinite(float(s32)):
        raise InputError(f"{name}: expected a positive finite float32 scale, got {s!r}")
    return s32
