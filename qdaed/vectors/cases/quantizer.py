"""Golden cases of the k-bit quantizer and its straight-through gradient (docs/method/quantization.md,
``qdaed.nn.quant``; the exact float32 rules for α, β and the symmetric step are in that
module's docstring).

Inputs: ``w`` (6, 10) in the export dtype, ``dq`` (an upstream gradient for the STE) and, for
stochastic rounding, ``u`` (60 uniforms in [0, 1), in flat C order: codes = floor(x + u)).
Outputs: ``codes`` (uint8 for k <= 8, uint16 above), ``alpha``, ``beta`` (float32, one per
group, flat group order), ``dequantized`` (β + α·codes/s, evaluated in float64 from the
float32 α, β, rounded to the export dtype), ``packed`` (the little-endian bit stream of the
codes, ceil(n·k/8) bytes, code i at stream bits i·k … i·k + k − 1, LSB first) and ``dw``
(the STE: dw = dq). Groups: the whole tensor, each row (10 values), or buckets of 7
consecutive flat values (the last bucket holds 4).
"""

from __future__ import annotations

import numpy as np

from qdaed.nn.quant import quantize, ste_backward
from qdaed.vectors.cases import register

BITS = (1, 2, 3, 4, 5, 6, 7, 8, 16)
GROUPS = (("tensor", "tensor"), ("row", "row"), (7, "bucket7"))
SHAPE = (6, 10)

_ALPHA_BETA = ("float32 parameter; qdaed rounds beta = min down and alpha = max - beta up "
               "to float32 (the grid covers the group); rounding to nearest instead is "
               "within one float32 ulp")
_CODES = ("integer codes, round((v - beta) s / alpha) in float64 from the float32 alpha, beta "
          "(product before the division); ties to even")


def _quant(b, bits, group, rounding, symmetric, w=None):
    b.options.update(bits=bits, group=group, rounding=rounding, symmetric=symmetric,
                     levels=2 ** bits - 1)
    # The quantizer is defined on the stored tensor itself (its float32 rules depend on the
    # dtype), so it runs on the stored values, not on a float64 widening.
    w = b.input("w", b.normal(*SHAPE) if w is None else w)
    w = w.astype(b.dtype)
    dq = b.input("dq", b.normal(*SHAPE)).astype(b.dtype)
    rng = None
    if rounding == "stochastic":
        seed = int(b.rng.integers(2**32))
        # quantize() draws rng.random(n) once, in flat order: the same stream as u here.
        b.input("u", np.random.default_rng(seed).random(w.size).reshape(w.shape),
                dtype=np.float64)
        rng = np.random.default_rng(seed)
    qt = quantize(w, bits, group=group, rounding=rounding, symmetric=symmetric, rng=rng)
    b.output("codes", qt.codes, "exact", _CODES if not symmetric else
             "integer codes q + m, q = round(v / step), step = max|v| / m rounded up to "
             "24 - k significant bits (see qdaed.nn.quant)")
    sym = "; symmetric: alpha = step s, beta = -step m" if symmetric else ""
    b.output("alpha", qt.alpha, "elementwise", _ALPHA_BETA + sym, dtype=np.float32)
    b.output("beta", qt.beta, "elementwise", _ALPHA_BETA + sym, dtype=np.float32)
    b.output("dequantized", qt.dequantize(), "elementwise",
             "beta + alpha codes / s")
    b.output("packed", qt.packed(), "exact", "little-endian bit stream of the codes")
    b.output("dw", ste_backward(dq, qt), "exact", "straight-through: dw = dq")


def _ties(b):
    """A row on a dyadic grid with exact half-way points, a constant row, random rows."""
    w = b.normal(*SHAPE)
    w[0] = [0.0, 0.5, 1.5, 2.5, 3.0, 0.5, 1.5, 2.5, 1.0, 2.0]  # k=2: s = 3 = alpha
    w[1] = 0.75                                                 # constant: alpha = 0
    _quant(b, 2, "row", "nearest", False, w=w)


for _k in BITS:
    for _g, _gname in GROUPS:
        register(f"quant_k{_k}_{_gname}_nearest", "quantize",
                 f"{_k}-bit min-max quantizer, groups: {_gname}, round half to even: codes, "
                 f"alpha, beta, dequantized, packed bytes, STE gradient", _quant,
                 bits=_k, group=_g, rounding="nearest", symmetric=False)
    register(f"quant_k{_k}_row_stochastic", "quantize",
             f"{_k}-bit min-max quantizer per row, stochastic rounding floor(x + u) with the "
             f"stored uniforms u", _quant, bits=_k, group="row", rounding="stochastic",
             symmetric=False)
    if _k >= 2:
        for _g, _gname in GROUPS:
            register(f"quant_sym_k{_k}_{_gname}_nearest", "quantize",
                     f"{_k}-bit symmetric quantizer (zero exact, codes 0 .. 2^k - 2), groups: "
                     f"{_gname}, round half to even", _quant,
                     bits=_k, group=_g, rounding="nearest", symmetric=True)
register("quant_sym_k4_row_stochastic", "quantize", "4-bit symmetric quantizer per row, "
         "stochastic rounding with the stored uniforms u", _quant,
         bits=4, group="row", rounding="stochastic", symmetric=True)
register("quant_k2_row_nearest_ties", "quantize", "2-bit per row: row 0 on a grid with exact "
         "half-way points (0.5 -> code 0, 1.5 -> 2, 2.5 -> 2: ties to even), row 1 constant "
         "(alpha = 0, codes 0, dequantized = w), other rows random", _ties)
