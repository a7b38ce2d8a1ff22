"""Tolerances of the golden outputs, one per output tensor, each with its reason.

The golden outputs are computed in float64 from the stored inputs (which are in the export
dtype) and rounded once to the export dtype, so they carry at most half an ulp of error; the
tolerance is for the *other* implementation, assumed to compute in the export dtype in its own
order of summation. A comparison passes when, element-wise,

    |out − golden| ≤ atol + rtol · |golden|,     atol = a · max|golden|

The relative term covers ordinary rounding; the absolute term, scaled by the tensor's largest
magnitude, covers elements that cancel to near zero (a gradient summed over a batch, a
normalised activation near its mean), whose relative error says nothing. The classes, from
tightest to loosest (rtol, a):

    exact        0, 0                 integers (codes, packed bytes, decisions) and copies
    elementwise  float32 2e-6, 1e-6   a few element-wise operations per value: a few ulp
                 float64 1e-13, 1e-14
    reduction    float32 1e-5, 4e-6   sums and products over up to ~10³ terms (BLAS may sum in
                 float64 1e-12, 1e-13 any order and block size): √n·ulp with room
    recurrent    float32 5e-5, 2e-5   an LSTM or a network end to end: rounding compounds
                 float64 1e-11, 1e-12 through T time steps or tens of layers, forward and back

A real bug (a missing bias, a transposed gate block, a dropped T², the wrong rounding of a
tie) moves outputs by 10⁻² or more of their scale, far outside every class. The margins of an
honest float32 implementation (PyTorch's, ``examples/torch_reference.py``) are in the README.
"""

from __future__ import annotations

import math

import numpy as np

CLASSES = {
    "elementwise": {"float32": (2e-6, 1e-6), "float64": (1e-13, 1e-14)},
    "reduction": {"float32": (1e-5, 4e-6), "float64": (1e-12, 1e-13)},
    "recurrent": {"float32": (5e-5, 2e-5), "float64": (1e-11, 1e-12)},
}

WHY = {
    "elementwise": "a few element-wise operations per value, so a few ulp",
    "reduction": "sums over many terms, which implementations order differently",
    "recurrent": "rounding compounds through the time steps or layers, forward and backward",
}


def _round_up(x):
    """x rounded up to two significant digits (readable numbers in case.json)."""
    if x <= 0:
        return 0.0
    e = math.floor(math.log10(x)) - 1
    return math.ceil(x / 10.0 ** e) * 10.0 ** e


def tolerance(kind, dtype, golden, note=""):
    """(rtol, atol, reason) of class ``kind`` for a ``dtype`` output whose value is ``golden``.

    kind "exact" gives (0, 0). ``note`` adds what is particular to the output.
    """
    golden = np.asarray(golden)
    if kind == "exact":
        reason = "exact: integers or copies; any difference is a different algorithm"
        return 0.0, 0.0, reason + (f"; {note}" if note else "")
    dtype = np.dtype(dtype).name
    rtol, a = CLASSES[kind][dtype]
    scale = float(np.max(np.abs(golden.astype(np.float64)))) if golden.size else 0.0
    if scale == 0.0:
        scale = 1.0
    atol = _round_up(a * scale)
    reason = (f"{dtype} {kind}: {WHY[kind]}; rtol {rtol:g}, atol {a:g} x max|golden| "
              f"({scale:.3g}) for values that cancel to near zero")
    return rtol, atol, reason + (f"; {note}" if note else "")


def conditioned_tolerance(kind, dtype, golden, err32, note=""):
    """:func:`tolerance`, with atol raised to 10 × ``err32`` where that is larger.

    err32: the largest error qdaed's own float32 computation of this output makes against the
    float64 golden (measured at export). Deep networks in training mode (batch statistics
    over few values, a residual stream through many blocks) amplify rounding far beyond what
    the class assumes; their float32 error is measured rather than guessed. For a float64
    export it is scaled by the ratio of the unit roundoffs, 2^-52 / 2^-23, since rounding
    error is proportional to it.
    """
    rtol, atol, reason = tolerance(kind, dtype, golden, note)
    dtype = np.dtype(dtype).name
    err = float(err32) * (1.0 if dtype == "float32" else 2.0 ** -29)
    if 10.0 * err > atol:
        atol = _round_up(10.0 * err)
        reason += (f"; atol raised to 10 x the {dtype} error qdaed's own float32 computation "
                   f"makes here ({float(err32):.2g} in float32), measured at export")
    return rtol, atol, reason


__all__ = ["CLASSES", "conditioned_tolerance", "tolerance"]
