"""An LSTM inference design measured and not adopted: weights packed once, product fused with the cell.

Issue "Speed on every CPU", item 1, in its full form: per layer, the input projection stays one
BLAS GEMM (as in ``qdaed.nn.lstm``); then the whole loop over time runs in one compiled call
per thread, without BLAS:

- the recurrent weights W_hh (4H × H) are packed once per sequence so that the four gate rows
  of a hidden unit are adjacent (``bench.recurrent_product.pack_gates``);
- per step and per block of 4 sequences, one pass over the packed rows computes the 4 gates ×
  4 sequences = 16 dot products of each hidden unit (16 accumulators; the sums in any order,
  fastmath ``reassoc`` and ``contract`` for this kernel alone, as a BLAS kernel orders them);
- the block's cell update (qdaed's own σ and tanh, vectorised over the hidden units) follows
  at once, on the block's pre-activations while they are in the cache;
- the batch is split between threads (two on this machine's two cores), each running its
  sequences over every step with no synchronisation at all: the sequences are independent.

So nothing is re-packed per step, the cell is fused and runs on both cores, and no thread
waits for another between steps. ``bench.bench_student_infer`` runs it as the implementation
``fused packed`` (``StudentLSTM.forward`` with ``qdaed.nn.lstm.infer`` replaced by
:func:`infer`), beside qdaed's BLAS path and PyTorch, and checks its logits first.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

from bench.recurrent_product import pack_gates
from qdaed.kernels.lstm import _sigmoid, _tanh

# the product only: sums in any order and fused multiply-adds, as a BLAS kernel computes them
_TILE = dict(cache=True, nogil=True, fastmath={"reassoc", "contract"})
ROWS = 4   # sequences per block


@numba.njit(**_TILE)
def _unit_tile(wp, j, x0, x1, x2, x3, zero, acc, hidden):
    """acc[r, q·H + j] = wp[4j + q] · x_r for the 4 gates q of hidden unit j and 4 rows x_r."""
    wi, wf, wg, wo = wp[4 * j], wp[4 * j + 1], wp[4 * j + 2], wp[4 * j + 3]
    i0 = f0 = g0 = o0 = i1 = f1 = g1 = o1 = zero
    i2 = f2 = g2 = o2 = i3 = f3 = g3 = o3 = zero
    for k in range(hidden):
        a, b, c, d = wi[k], wf[k], wg[k], wo[k]
        p, q, r, s = x0[k], x1[k], x2[k], x3[k]
        i0 += a * p
        f0 += b * p
        g0 += c * p
        o0 += d * p
        i1 += a * q
        f1 += b * q
        g1 += c * q
        o1 += d * q
        i2 += a * r
        f2 += b * r
        g2 += c * r
        o2 += d * r
        i3 += a * s
        f3 += b * s
        g3 += c * s
        o3 += d * s
    h = hidden
    acc[0, j], acc[0, h + j], acc[0, 2 * h + j], acc[0, 3 * h + j] = i0, f0, g0, o0
    acc[1, j], acc[1, h + j], acc[1, 2 * h + j], acc[1, 3 * h + j] = i1, f1, g1, o1
    acc[2, j], acc[2, h + j], acc[2, 2 * h + j], acc[2, 3 * h + j] = i2, f2, g2, o2
    acc[3, j], acc[3, h + j], acc[3, 2 * h + j], acc[3, 3 * h + j] = i3, f3, g3, o3


@numba.njit(cache=True, nogil=True)
def fused_layer_steps(wp, bias, gates, hs, cs, b0, b1):
    """Rows b0..b1 of one layer over every step, in place.

    gates (T, B, 4H) in: the input projection x_t W_ihᵀ; hs, cs (T+1, B, H): row 0 the
    initial state, row t+1 receives h_t, c_t. Per step and block of 4 rows: the block's
    product (each hidden unit's 4 packed weight rows against the 4 rows), then at once its
    cell. A block of fewer than 4 rows repeats its last row in the product and keeps only
    its own rows.
    """
    steps, hidden = gates.shape[0], hs.shape[2]
    zero = wp[0, 0] - wp[0, 0]
    acc = np.empty((ROWS, 4 * hidden), wp.dtype)
    for t in range(steps):
        hp = hs[t]
        for b in range(b0, b1, ROWS):
            n = min(ROWS, b1 - b)
            x0, x1 = hp[b], hp[b + min(1, n - 1)]
            x2, x3 = hp[b + min(2, n - 1)], hp[b + min(3, n - 1)]
            for j in range(hidden):
                _unit_tile(wp, j, x0, x1, x2, x3, zero, acc, hidden)
            for r in range(n):
                a, g = acc[r], gates[t, b + r]
                for k in range(4 * hidden):
                    a[k] += g[k] + bias[k]
                cp, cn, hn = cs[t, b + r], cs[t + 1, b + r], hs[t + 1, b + r]
                for j in range(hidden):
                    i = _sigmoid(a[j])
                    f = _sigmoid(a[hidden + j])
                    gg = _tanh(a[2 * hidden + j])
                    o = _sigmoid(a[3 * hidden + j])
                    c = f * cp[j] + i * gg
                    cn[j] = c
                    hn[j] = o * _tanh(c)


def infer(params, x, h0=None, c0=None, threads=2):
    """``qdaed.nn.lstm.infer``'s result (y, (h_n, c_n)) by the fused design.

    Per layer: the input projection, one BLAS GEMM for every step and sequence; then the
    batch cut into ``threads`` contiguous shares of whole 4-row blocks, each share's loop over
    time on a thread of its own (the kernel releases the GIL).
    """
    batch, steps, _ = x.shape
    layers = sum(1 for k in params if k.startswith("weight_ih_l"))
    inp = np.ascontiguousarray(x.transpose(1, 0, 2))            # (T, B, I)
    blocks = -(-batch // ROWS)
    per = -(-blocks // min(threads, blocks))
    shares = [(b * ROWS, min(batch, (b + per) * ROWS)) for b in range(0, blocks, per)]
    h_n, c_n = [], []
    for layer in range(layers):
        w_ih, w_hh = params[f"weight_ih_l{layer}"], params[f"weight_hh_l{layer}"]
        bias = params[f"bias_ih_l{layer}"] + params[f"bias_hh_l{layer}"]
        hidden = w_hh.shape[1]
        gates = np.empty((steps, batch, 4 * hidden), x.dtype)
        np.matmul(inp.reshape(steps * batch, -1), w_ih.T, out=gates.reshape(steps * batch, -1))
        hs = np.empty((steps + 1, batch, hidden), x.dtype)
        cs = np.empty((steps + 1, batch, hidden), x.dtype)
        hs[0] = 0 if h0 is None else h0[layer]
        cs[0] = 0 if c0 is None else c0[layer]
        wp = pack_gates(w_hh)
        work = [threading.Thread(target=fused_layer_steps, args=(wp, bias, gates, hs, cs, lo, hi))
                for lo, hi in shares]
        for w in work:
            w.start()
        for w in work:
            w.join()
        inp = hs[1:]
        h_n.append(hs[-1])
        c_n.append(cs[-1])
    return np.ascontiguousarray(inp.transpose(1, 0, 2)), (np.stack(h_n), np.stack(c_n))
