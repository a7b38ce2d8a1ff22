"""Fixed-point building blocks of the integer student: rescales and the int16 non-linearities.

A real factor M > 0 (a ratio of scales) is carried as a pair (multiplier m, shift s) with

    M ≈ m · 2^(s − 31),   m an int32 in [2^30, 2^31),   (m, s) = quantize_multiplier(M)

and an int32 x is rescaled by ``rescale(x, m, s)``, TFLite's MultiplyByQuantizedMultiplier
with double rounding:

    s > 0:  srdhm(x · 2^s, m)                  (x · 2^s in wrapping int32 arithmetic)
    s ≤ 0:  rdbpot(srdhm(x, m), −s)

    srdhm(a, b)  = round(a·b / 2^31), ties toward +∞; srdhm(−2^31, −2^31) = 2^31 − 1
    rdbpot(y, e) = round(y / 2^e), ties away from zero

The int16 sigmoid and tanh map Q3.12 (scale 2^-12) to Q0.15 (scale 2^-15) by linear
interpolation in a 256-entry table of σ(k/24)·2^16 (see :mod:`qdaed.kernels.fixedpoint` for
the exact integer steps); tanh uses tanh(x) = 2σ(2x) − 1 on the same table.
"""

import math

import numpy as np

from qdaed.errors import InputError
from qdaed.integer._checks import int_array, int_value
from qdaed.kernels import integer as _k

__all__ = ["quantize_multiplier", "rescale", "sigmoid_int16", "tanh_int16",
           "tanh_input_params"]


def quantize_multiplier(real):
    """(multiplier, shift) for a real factor ≥ 0, as TFLite's QuantizeMultiplier computes it.

    q, e = frexp(real) (real = q·2^e, q ∈ [0.5, 1)); m = round(q·2^31) with ties away from
    zero; m = 2^31 becomes (2^30, e + 1); e < −31 flushes to (0, 0); real = 0 gives (0, 0).
    Returns Python ints; rescale(x, m, e) ≈ x · real.
    """
    try:
        real = float(real)
    except (TypeError, ValueError):
        raise InputError(f"real: expected a number, got {real!r}") from None
    if not math.isfinite(real) or real < 0:
        raise InputError(f"real: expected a finite number ≥ 0, got {real}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    m = int(math.floor(q * 2.0 ** 31 + 0.5))    # q·2^31 is exact; +0.5 is exact below 2^52
    if m == 1 << 31:
        m //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return m, shift


def rescale(x, multiplier, shift):
    """multiply_by_quantized_multiplier of every element of the int32 array x: returns int64
    (the exact results; a caller saturates them to its output type)."""
    x = int_array("x", np.asarray(x) if not isinstance(x, np.ndarray) else x, np.int32)
    m = int_value("multiplier", multiplier, 0, (1 << 31) - 1)
    s = int_value("shift", shift, -31, 30)
    out = np.empty(x.size, np.int64)
    _k.rescale_int32(x.reshape(-1), m, s, out)
    return out.reshape(x.shape)


def tanh_input_params(scale_power):
    """(input_multiplier, input_left_shift) with which the LSTM calls the int16 tanh on an
    input of scale 2^scale_power: shift = 15 + scale_power − 3; a negative shift becomes
    (3, −shift) (multiply by 3, round-shift right), otherwise (0, shift), where multiplier 0
    means 'multiply by 3·2^shift'. scale_power = −12 (Q3.12, the cell gate) gives (0, 0)."""
    p = int_value("scale_power", scale_power, -43, 2)
    shift = 15 + p - 3
    return (3, -shift) if shift < 0 else (0, shift)


def sigmoid_int16(x):
    """σ of int16 Q3.12 values → int16 Q0.15 (TFLite's int16 Logistic with a 2^-12 input
    scale: multiplier 3, no shift). Returns int16, same shape."""
    x = int_array("x", x, np.int16)
    out = np.empty(x.size, np.int16)
    _k.sigmoid_int16_array(x.reshape(-1), 0, 0, out)
    return out.reshape(x.shape)


def tanh_int16(x, scale_power=-12):
    """tanh of int16 values of scale 2^scale_power → int16 Q0.15, with the LSTM's input
    parameters (:func:`tanh_input_params`). Returns int16, same shape."""
    x = int_array("x", x, np.int16)
    mult, shift = tanh_input_params(scale_power)
    out = np.empty(x.size, np.int16)
    _k.tanh_int16_array(x.reshape(-1), mult, shift, out)
    return out.reshape(x.shape)
