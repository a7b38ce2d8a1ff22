"""A port of the integer student written from the golden vectors alone, as a C porter would:
it reads a case's input tensors and case.json options (zero points, cell powers, the
(multiplier, shift) pairs) and computes every intermediate element by element with the
Python-int primitives of tests/naive.py. With ``fault`` it makes one of the classic porting
mistakes, so that the checker's first-divergence report can be tested against faults whose
place is known.

Faults (layer 0 unless said):
    truncate      the input-gate rescale of the forget gate rounds toward zero in its final
                  divide by a power of two (rdbpot) instead of to nearest
    ties_down     the input-gate rescales' rdbpot rounds ties toward −∞ instead of away from
                  zero (ties are frequent in the extremes cases: multiplier 2^-3 exactly)
    table         one sigmoid table entry off by one (entry ``TABLE_ENTRY`` + 1)
    shift         the recurrent rescale of the input gate with its shift one larger
    no_saturation the cell update c = f·c + i·g wraps to int16 instead of saturating
    reset         (h, c) reset to the zero state at the start of every chunk of ``CHUNK`` steps
    cell_not_pow2 the cell scale taken as 1.5 · 2^p (input·cell multiplier and tanh input
                  derived from it as for a general scale)
"""

import math
import os
from fractions import Fraction

import numpy as np

from qdaed.kernels.fixedpoint import SIGMOID_TABLE_UINT16
from qdaed.vectors.format import read_case_spec, read_npy
from tests import naive

FAULTS = ("truncate", "ties_down", "table", "shift", "no_saturation", "reset",
          "cell_not_pow2")
TABLE_ENTRY = 24                      # σ(1): the table is indexed in steps of 1/24
CHUNK = 10


def _sat(v, lo, hi):
    return max(lo, min(hi, v))


def _trunc_div(x, e):
    return int(Fraction(x, 2 ** e)) if e > 0 else x           # toward zero


def _ties_down(x, e):
    return math.floor(Fraction(x, 2 ** e) + Fraction(1, 2)) - (
        1 if Fraction(x, 2 ** e) - math.floor(Fraction(x, 2 ** e)) == Fraction(1, 2) else 0)


def rescale(x, m, s, rounding="nearest"):
    if s > 0:
        return naive.srdhm(naive.wrap32(x * 2 ** s), m)
    y = naive.srdhm(x, m)
    if rounding == "truncate":
        return _trunc_div(y, -s)
    if rounding == "ties_down":
        return _ties_down(y, -s) if s < 0 else y
    return naive.rdbpot(y, -s)


def _general_tanh_input(scale):
    """(multiplier, shift) of the int16 tanh input for a cell scale that is not a power of
    two, as a port deriving it like a general rescale would (3 · 2^shift ≈ scale · 2^15 / 8,
    the multiplier rounded): the mistake the power-of-two rule avoids."""
    real = scale * 2 ** 15 / 8
    shift = 0
    while real * 2 ** -shift < 3 * 2 ** 13 and shift > -30:
        shift -= 1
    return round(real * 2 ** -shift), -shift


def run(directory, case, fault=None):
    """Every output of ``case`` (a dict name -> array) computed by the port."""
    spec = read_case_spec(directory, case)
    opts = spec["options"]

    def tensor(name):
        return read_npy(os.path.join(directory, case, name + ".npy"), name)

    table = np.array(SIGMOID_TABLE_UINT16, np.int64)
    if fault == "table":
        table[TABLE_ENTRY] += 1
    x = tensor("x").astype(np.int64)
    out = {}
    for k, lo in enumerate(opts["layers"]):
        f = fault if k == 0 else None
        w_ih, w_hh = tensor(f"l{k}.w_ih"), tensor(f"l{k}.w_hh")
        bias = tensor(f"l{k}.bias")
        z_in, z_h = lo["input"]["zero_point"], lo["hidden"]["zero_point"]
        m_ih = [tuple(p) for p in lo["input_rescale"]]
        m_hh = [tuple(p) for p in lo["recurrent_rescale"]]
        if f == "shift":
            m_hh[0] = (m_hh[0][0], m_hh[0][1] + 1)
        input_cell, tanh_in = tuple(lo["input_cell_rescale"]), tuple(lo["tanh_cell_input"])
        if f == "cell_not_pow2":
            c_scale = 1.5 * 2.0 ** lo["cell_power"]
            input_cell = naive.quantize_multiplier(Fraction(2 ** -30) / Fraction(c_scale))
            tanh_in = _general_tanh_input(c_scale)
        B, T, _ = x.shape
        H = w_hh.shape[1]
        names = ("input_gates", "recurrent_gates", "pre", "gates")
        res = {n: np.zeros((B, T, 4, H), np.int64) for n in names}
        res["cell"] = np.zeros((B, T, H), np.int64)
        res["h"] = np.zeros((B, T, H), np.int64)
        for b in range(B):
            h, c = [z_h] * H, [0] * H
            for t in range(T):
                if f == "reset" and t % CHUNK == 0:
                    h, c = [z_h] * H, [0] * H
                xt = [int(v) for v in x[b, t]]
                g = [[0] * H for _ in range(4)]
                for q in range(4):
                    for r in range(H):
                        ax = sum(int(w_ih[q, r, j]) * (xt[j] - z_in) for j in range(len(xt)))
                        rounding = ("truncate" if (f == "truncate" and q == 1) else
                                    "ties_down" if f == "ties_down" else "nearest")
                        ax = _sat(rescale(ax + int(bias[q, r]), *m_ih[q], rounding),
                                  -32768, 32767)
                        ah = sum(int(w_hh[q, r, j]) * (h[j] - z_h) for j in range(H))
                        ah = _sat(rescale(ah, *m_hh[q]), -32768, 32767)
                        a = _sat(ax + ah, -32768, 32767)
                        res["input_gates"][b, t, q, r] = ax
                        res["recurrent_gates"][b, t, q, r] = ah
                        res["pre"][b, t, q, r] = a
                        g[q][r] = (naive.tanh_int16(a, table=table) if q == 2 else
                                   naive.sigmoid_int16(a, table=table))
                        res["gates"][b, t, q, r] = g[q][r]
                i, fg, gg, o = g
                for r in range(H):
                    fc = _sat(rescale(fg[r] * c[r], *lo["forget_cell_rescale"]), -32768, 32767)
                    ic = _sat(rescale(i[r] * gg[r], *input_cell), -32768, 32767)
                    if f == "no_saturation":
                        c[r] = (fc + ic + 32768) % 65536 - 32768
                    else:
                        c[r] = _sat(fc + ic, -32768, 32767)
                    res["cell"][b, t, r] = c[r]
                h = [_sat(z_h + rescale(naive.tanh_int16(c[r], *tanh_in, table=table) * o[r],
                                        *lo["output_rescale"]), -128, 127)
                     for r in range(H)]
                res["h"][b, t] = h
        for n, v in res.items():
            out[f"l{k}.{n}"] = v
        x = res["h"]
    top = opts["layers"][-1]["hidden"]
    m, s = naive.quantize_multiplier(top["scale"] / opts["pooled"]["scale"])  # in double
    out["pooled"] = naive.int8_mean(x, top["zero_point"], opts["pooled"]["zero_point"], m, s)
    w, fb = tensor("fc.weight"), tensor("fc.bias")
    out["logits"] = naive.int8_fully_connected(out["pooled"], w, fb,
                                               opts["pooled"]["zero_point"],
                                               opts["logits"]["zero_point"],
                                               [tuple(p) for p in opts["fc_rescale"]])
    out["scores"] = np.array([[naive.int8_logistic(v, opts["logits"]["zero_point"],
                                                   opts["logits"]["scale"])
                               for v in row] for row in out["logits"]], np.int64)
    return {n: v.astype(np.dtype(spec["dtypes"][n])) for n, v in out.items()}


def write(outputs, case, arrays):
    os.makedirs(os.path.join(outputs, case), exist_ok=True)
    for n, a in arrays.items():
        np.save(os.path.join(outputs, case, n + ".npy"), a, allow_pickle=False)
