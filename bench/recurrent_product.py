"""The LSTM's recurrent product, one step: BLAS against a Numba kernel on weights packed once.

The hypothesis to test (issue "Speed on every CPU"): every one of T recurrent steps calls a
BLAS GEMM that packs the same (4H × H) weight matrix again, while oneDNN packs it once per
sequence. Measured here, float32, one step's product a = W_hh h_{t-1}ᵀ at the shapes of the
students (B = 32 and 1; H = 32, the demo's, 256 and 512, the paper preset's):

- ``numpy``: ``np.matmul(W_hh, h_tᵀ, out=...)``, qdaed's reference per-step loop.
- ``numba np.dot``: the same GEMM called from compiled code (``np.dot`` in Numba calls the BLAS
  of SciPy), what qdaed's compiled loop over time does per step.
- ``packed tiles``: a Numba kernel on the weights packed once so that the four gate rows of a
  hidden unit are adjacent (``pack_gates``), computing 4 gate rows × 4 batch rows = 16 dot
  products per pass over h with 16 vector accumulators, reduction order free (fastmath
  ``reassoc`` and ``contract`` for this kernel alone, as BLAS is free to order its sums).
- and, as the bound on what packing can cost, the rate of one large GEMM of the same
  weights against 100 steps' operands at once (packed once for all of them).

Every implementation runs in this process, in rounds that alternate them; all are checked
against a float64 product first. One thread for every pool unless ``--threads``: the packed
kernel is single-threaded, so the comparison is per core.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.recurrent_product [--write]

``--write`` replaces the "Recurrent product" section of this machine's part of
bench/RESULTS.md.
"""

from __future__ import annotations

import statistics
import sys

from bench import harness

SECTION = "## Recurrent product, one step: BLAS against a kernel on weights packed once"


def _parser():
    p = harness.parser(__doc__, repeats=200, warmup=20, rounds=5)
    p.set_defaults(threads=1)
    p.add_argument("--configs", default="32x32,32x256,32x512,1x512",
                   help="BATCHxHIDDEN,... (the product of one step)")
    return p


ARGS = harness.early_args(_parser(), __name__)

import numba  # noqa: E402
import numpy as np  # noqa: E402

# this kernel only: sums in any order and fused multiply-adds, as a BLAS kernel computes them
_TILE = dict(cache=True, nogil=True, fastmath={"reassoc", "contract"})


def pack_gates(w_hh):
    """(4H, H) rows [i | f | g | o] → rows [i_0 f_0 g_0 o_0 i_1 ...]: a unit's gates adjacent."""
    h = w_hh.shape[1]
    return np.ascontiguousarray(w_hh.reshape(4, h, h).transpose(1, 0, 2).reshape(4 * h, h))


@numba.njit(**_TILE)
def packed_tiles(wp, x, out):
    """out[b, 4j + q] = wp[4j + q] · x[b]: per hidden unit j its 4 packed gate rows against 4
    batch rows at a time (16 accumulators), then the remaining rows one at a time."""
    n_b, hidden = x.shape
    zero = wp[0, 0] - wp[0, 0]
    for j in range(hidden):
        wi, wf, wg, wo = wp[4 * j], wp[4 * j + 1], wp[4 * j + 2], wp[4 * j + 3]
        b = 0
        while b + 4 <= n_b:
            x0, x1, x2, x3 = x[b], x[b + 1], x[b + 2], x[b + 3]
            i0 = f0 = g0 = o0 = i1 = f1 = g1 = o1 = zero
            i2 = f2 = g2 = o2 = i3 = f3 = g3 = o3 = zero
            for k in range(hidden):
                a, bb, c, d = wi[k], wf[k], wg[k], wo[k]
                p, q, r, s = x0[k], x1[k], x2[k], x3[k]
                i0 += a * p
                f0 += bb * p
                g0 += c * p
                o0 += d * p
                i1 += a * q
                f1 += bb * q
                g1 += c * q
                o1 += d * q
                i2 += a * r
                f2 += bb * r
                g2 += c * r
                o2 += d * r
                i3 += a * s
                f3 += bb * s
                g3 += c * s
                o3 += d * s
            for row, (vi, vf, vg, vo) in ((b, (i0, f0, g0, o0)), (b + 1, (i1, f1, g1, o1)),
                                          (b + 2, (i2, f2, g2, o2)), (b + 3, (i3, f3, g3, o3))):
                out[row, 4 * j] = vi
                out[row, 4 * j + 1] = vf
                out[row, 4 * j + 2] = vg
                out[row, 4 * j + 3] = vo
            b += 4
        while b < n_b:
            xb = x[b]
            vi = vf = vg = vo = zero
            for k in range(hidden):
                p = xb[k]
                vi += wi[k] * p
                vf += wf[k] * p
                vg += wg[k] * p
                vo += wo[k] * p
            out[b, 4 * j] = vi
            out[b, 4 * j + 1] = vf
            out[b, 4 * j + 2] = vg
            out[b, 4 * j + 3] = vo
            b += 1


@numba.njit(cache=True, nogil=True)
def _dot_steps(w, h_t, out, n):
    for _ in range(n):
        np.dot(w, h_t, out)


@numba.njit(cache=True, nogil=True)
def _packed_steps(wp, x, out, n):
    for _ in range(n):
        packed_tiles(wp, x, out)


IMPLS = ("numpy", "numba np.dot", "packed tiles")


def run_config(batch, hidden, args):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((4 * hidden, hidden)) * 0.1).astype(np.float32)
    h = rng.standard_normal((batch, hidden)).astype(np.float32)
    h_t = np.ascontiguousarray(h.T)
    want = (w.astype(np.float64) @ h_t.astype(np.float64))          # (4H, B)
    wp = pack_gates(w)
    a_t, a_d, a_p = (np.empty((4 * hidden, batch), np.float32),
                     np.empty((4 * hidden, batch), np.float32),
                     np.empty((batch, 4 * hidden), np.float32))
    inner = 20   # products per timed call, so that one call is well above the clock's grain
    runs = {"numpy": lambda: [np.matmul(w, h_t, out=a_t) for _ in range(inner)],
            "numba np.dot": lambda: _dot_steps(w, h_t, a_d, inner),
            "packed tiles": lambda: _packed_steps(wp, h, a_p, inner)}
    for f in runs.values():
        f()
    packed_as_t = a_p.reshape(batch, hidden, 4).transpose(2, 1, 0).reshape(4 * hidden, batch)
    scale = np.abs(want).max()
    errors = {"numpy": np.abs(a_t - want).max() / scale,
              "numba np.dot": np.abs(a_d - want).max() / scale,
              "packed tiles": np.abs(packed_as_t - want).max() / scale}
    equal = bool(np.array_equal(a_t, a_d))
    times = harness.alternate(runs, args.rounds, max(1, args.repeats // inner),
                              max(0, args.warmup // inner))
    per_step = {k: [t / inner for t in v] for k, v in times.items()}
    # the packing bound: the same weights against 100 steps' operands in one GEMM
    many = rng.standard_normal((hidden, 100 * batch)).astype(np.float32)
    big = np.empty((4 * hidden, 100 * batch), np.float32)
    big_t = statistics.median(harness.time_calls(lambda: np.matmul(w, many, out=big), 9, 2))
    return per_step, errors, equal, 2.0 * 4 * hidden * hidden * batch / (big_t / 100)


def render(results, args, load):
    lines = [SECTION, "",
             "float32, one step's product W_hh h_{t-1}ᵀ (4H × H times H × B), "
             f"{args.threads} thread(s) for every pool; per-step time = median over "
             f"{args.rounds} rounds alternating the implementations. GFLOP/s = 2·4H·H·B / "
             "time. numpy: a Python loop of `np.matmul` calls; numba np.dot and packed tiles: "
             "a compiled loop of calls (no interpreter between the steps), so the last column, "
             "packed tiles / numba np.dot, compares the two products alone. \"one large "
             "GEMM\": the same weights against 100 steps' operands at once, what the product "
             "would run at if packing the weights cost nothing per step. "
             "Produced by `bench/recurrent_product.py`.", "",
             "| B × H | numpy (µs) | numba np.dot (µs) | packed tiles (µs) "
             "| numba np.dot GFLOP/s | packed tiles GFLOP/s | one large GEMM GFLOP/s "
             "| packed / np.dot |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (batch, hidden), (times, errors, equal, big) in results:
        med = {k: statistics.median(v) for k, v in times.items()}
        flops = 2.0 * 4 * hidden * hidden * batch
        lines.append(
            f"| {batch} × {hidden} | {med['numpy'] * 1e6:.1f} | {med['numba np.dot'] * 1e6:.1f} "
            f"| {med['packed tiles'] * 1e6:.1f} | {flops / med['numba np.dot'] / 1e9:.1f} "
            f"| {flops / med['packed tiles'] / 1e9:.1f} | {big / 1e9:.1f} "
            f"| **{med['packed tiles'] / med['numba np.dot']:.2f}** |")
    lines += ["", "Checks: relative error against a float64 product; numpy and Numba's np.dot "
              "equal to the bit (the same BLAS kernels):", ""]
    for (batch, hidden), (times, errors, equal, big) in results:
        lines.append(f"- {batch} × {hidden}: " + ", ".join(f"{k} {v:.1e}"
                                                            for k, v in errors.items())
                     + f"; numpy == numba np.dot: {equal}")
        for k, v in times.items():
            lines.append(f"  - {k}: {harness.spread(v).median * 1e6:.1f} µs "
                         f"[IQR {harness.spread(v).q1 * 1e6:.1f}–"
                         f"{harness.spread(v).q3 * 1e6:.1f}]")
    return "\n".join(lines) + "\n" + harness.footer(args.threads, *load)


def main(args):
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    load0 = harness.load()
    results = []
    for batch, hidden in configs:
        harness.wait_idle(args.wait_idle)
        print(f"B={batch} H={hidden}", file=sys.stderr, flush=True)
        results.append(((batch, hidden), run_config(batch, hidden, args)))
    text = render(results, args, (load0, harness.load()))
    print(text)
    if args.write:
        harness.write_section(text, args.results)


if __name__ == "__main__":
    main(ARGS)
