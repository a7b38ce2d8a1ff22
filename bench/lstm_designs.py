"""LSTM designs measured against qdaed's and not adopted: the evidence behind README "Performance".

Each design is the whole LSTM training step of ``qdaed.nn.lstm`` (forward over every layer with
a workspace, then backward to every parameter, no input gradient; B = 32, T = 1000, I = 64,
float32, the shapes of ``bench_student.py`` without its pooling and head) computed another way.
All run in this one process (no torch), alternating with qdaed's own step over ``--rounds``
rounds; each design's gradients are first compared with qdaed's. The designs:

- ``feature-major``: every sequence stored (features, T, B) instead of (T, B, features), so
  that each step's gates, recurrent product and h_t are (·, B) slabs: no transposes in the
  cell loops (vectorised over the batch), the input projection and the gradient GEMMs still
  one GEMM per chunk / per layer. The price: every step's slice is strided (rows T·B apart).
- ``layers pipelined``: each layer on a Python thread of its own (two layers: two threads) with one BLAS thread each, layer 1
  running chunk k while layer 0 runs chunk k+1 (backward: the reverse), so that one layer's
  cell loop overlaps the other's products; the gradient GEMMs after, on both threads.
  Needs threadpoolctl (skipped without it).
- ``fastmath cells``: qdaed's own cell kernels (and the σ / tanh / exp helpers they call)
  compiled with Numba's fastmath, swapped into qdaed's step: what giving up IEEE semantics in
  the cells would buy (qdaed keeps fastmath off, docs/design/conventions.md).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.lstm_designs

``--write`` replaces the "LSTM designs measured and not adopted" section of this machine's
part of bench/RESULTS.md.
"""

from __future__ import annotations

import datetime
import functools
import importlib.util
import statistics
import sys
import threading
import types

from bench import harness

SECTION = "## LSTM designs measured and not adopted"
DESIGNS = ("feature-major", "layers pipelined", "fastmath cells")


def _parse():
    p = harness.parser(__doc__, repeats=2, warmup=1, rounds=3)
    p.add_argument("--configs", default="256x2,512x2", help="HIDDENxLAYERS,...")
    p.add_argument("--steps", type=int, default=1000, help="frames T")
    p.add_argument("--designs", default=",".join(DESIGNS), help="a comma-separated subset")
    return p.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:
    harness.set_threads(ARGS.threads)  # before numpy / numba are imported

import numba  # noqa: E402
import numpy as np  # noqa: E402

import qdaed.kernels.lstm as cell_kernels  # noqa: E402
from qdaed.kernels import kernel  # noqa: E402
from qdaed.kernels.lstm import _one, _sigmoid, _tanh  # noqa: E402
from qdaed.nn import lstm  # noqa: E402

B, I = 32, 64


# --- qdaed's step ------------------------------------------------------------------------------

def qdaed_step(params, x, dy, state):
    """qdaed.nn.lstm forward (with a workspace) + backward: the design every other one is
    measured against."""
    ws = state.setdefault("workspace", lstm.Workspace())
    (_, _), cache = lstm.forward(params, x, workspace=ws)
    return lstm.backward(params, cache, dy, input_grad=False)[1]


def _shapes_and_buffers(params, x, state):
    """(layers, H, B, T, dtype, get) for a design's step; get(key, shape) is a buffer of the
    design's own ``nn.lstm.Workspace`` (kept in its state), the same memory every step."""
    num_layers, _, hidden, dtype = lstm._layers(params)
    batch, steps, _ = x.shape
    ws = state.setdefault("workspace", lstm.Workspace())
    return num_layers, hidden, batch, steps, dtype, functools.partial(ws.buffer, dtype=dtype)


# --- feature-major: (features, T, B) sequences --------------------------------------------------

@kernel
def _fm_cell_forward(gx, t, a_hh, bias, c_prev, gates, c, hs, s):
    """The forward cell on (·, B) slabs: gx (4H, n, B) the chunk's input projection (step t
    read), a_hh (4H, B) W_hh h_{t-1}, c_prev (H, B); out: gates (4H, B) the activations,
    c (H, B), h into hs (H, T+1, B) at slot s. Equations as ``lstm_cell_forward``'s."""
    H, nb = c.shape
    for j in range(H):
        xi, xf, xg, xo = gx[j, t], gx[H + j, t], gx[2 * H + j, t], gx[3 * H + j, t]
        ri, rf, rg, ro = a_hh[j], a_hh[H + j], a_hh[2 * H + j], a_hh[3 * H + j]
        bi, bf, bg, bo = bias[j], bias[H + j], bias[2 * H + j], bias[3 * H + j]
        gi, gf, gg, go = gates[j], gates[H + j], gates[2 * H + j], gates[3 * H + j]
        cp, cj, hj = c_prev[j], c[j], hs[j, s]
        for b in range(nb):
            i = _sigmoid(xi[b] + ri[b] + bi)
            f = _sigmoid(xf[b] + rf[b] + bf)
            g = _tanh(xg[b] + rg[b] + bg)
            o = _sigmoid(xo[b] + ro[b] + bo)
            gi[b] = i
            gf[b] = f
            gg[b] = g
            go[b] = o
            cc = f * cp[b] + i * g
            cj[b] = cc
            hj[b] = o * _tanh(cc)


@kernel
def _fm_cell_backward(gates, c_prev, c, d_out, t, dh_next, dc, da, dbias):
    """The backward cell on (·, B) slabs: gates (4H, B), c_prev, c (H, B), d_out (H, T, B)
    (step t read), dh_next (H, B) W_hhᵀ da_{t+1}; dc (H, B) in/out; out: da (4H, T, B) at
    step t, dbias (4H,) accumulated. Equations as ``lstm_cell_backward``'s."""
    H, nb = c.shape
    one = _one(c[0, 0])
    for j in range(H):
        gi, gf, gg, go = gates[j], gates[H + j], gates[2 * H + j], gates[3 * H + j]
        di, df, dg, do = da[j, t], da[H + j, t], da[2 * H + j, t], da[3 * H + j, t]
        cp, cj, dyj, dnj, dcj = c_prev[j], c[j], d_out[j, t], dh_next[j], dc[j]
        si, sf, sg, so = 0.0, 0.0, 0.0, 0.0
        for b in range(nb):
            i, f, g, o = gi[b], gf[b], gg[b], go[b]
            tau = _tanh(cj[b])
            d = dyj[b] + dnj[b]
            dct = dcj[b] + d * o * (one - tau * tau)
            vi = dct * g * i * (one - i)
            vf = dct * cp[b] * f * (one - f)
            vg = dct * i * (one - g * g)
            vo = d * tau * o * (one - o)
            di[b] = vi
            df[b] = vf
            dg[b] = vg
            do[b] = vo
            si += vi
            sf += vf
            sg += vg
            so += vo
            dcj[b] = dct * f
        dbias[j] += si
        dbias[H + j] += sf
        dbias[2 * H + j] += sg
        dbias[3 * H + j] += so


def feature_major_step(params, x, dy, state):
    """The step with every sequence (features, T, B): x (I, T, B), gates (T, 4H, B) (each
    step's slab contiguous: written and read by the cells only), c (T+1, H, B), h (H, T+1, B)
    and the gate gradient (4H, T, B) (so the weight gradients stay single GEMMs over (·, T·B)
    matrices), the upstream gradient (H, T, B)."""
    num_layers, hidden, batch, steps, dtype, get = _shapes_and_buffers(params, x, state)
    h4 = 4 * hidden
    inp = get("x", (I, steps, batch))
    np.copyto(inp, x.transpose(2, 1, 0))
    chunk = lstm._chunk_steps(batch, hidden, dtype)
    gx = get("gx", (h4, chunk, batch))
    a_hh = get("a_hh", (h4, batch))
    layers = []
    for layer in range(num_layers):
        w_ih, w_hh, bias = lstm._layer_weights(params, layer)
        gates = get(("gates", layer), (steps, h4, batch))
        cs = get(("c", layer), (steps + 1, hidden, batch))
        hs = get(("h", layer), (hidden, steps + 1, batch))
        cs[0], hs[:, 0] = 0, 0
        for t0 in range(0, steps, chunk):
            n = min(chunk, steps - t0)
            np.matmul(w_ih, inp[:, t0:t0 + n].reshape(inp.shape[0], n * batch),
                      out=gx.reshape(h4, chunk * batch)[:, :n * batch])
            for t in range(n):
                s = t0 + t
                np.matmul(w_hh, hs[:, s], out=a_hh)
                _fm_cell_forward(gx, t, a_hh, bias, cs[s], gates[s], cs[s + 1], hs, s + 1)
        layers.append((inp, gates, cs, hs))
        inp = hs[:, 1:]

    d_out = get("d_out", (hidden, steps, batch))
    np.copyto(d_out, dy.transpose(2, 1, 0))
    da = get("da", (h4, steps, batch))
    dh_next = get("dh_next", (hidden, batch))
    dc = get("dc", (hidden, batch))
    grads = {}
    for layer in reversed(range(num_layers)):
        inp, gates, cs, hs = layers[layer]
        w_ih, w_hh = params[f"weight_ih_l{layer}"], params[f"weight_hh_l{layer}"]
        w_hh_t = np.ascontiguousarray(w_hh.T)
        dbias = np.zeros(h4)
        dh_next[...], dc[...] = 0, 0
        for t in range(steps - 1, -1, -1):
            _fm_cell_backward(gates[t], cs[t], cs[t + 1], d_out, t, dh_next, dc, da, dbias)
            np.matmul(w_hh_t, da[:, t], out=dh_next)
        da2 = da.reshape(h4, steps * batch)
        grads[f"weight_ih_l{layer}"] = np.matmul(da2, inp.reshape(inp.shape[0],
                                                                  steps * batch).T)
        grads[f"weight_hh_l{layer}"] = np.matmul(da2, hs[:, :steps].reshape(hidden,
                                                                            steps * batch).T)
        grads[f"bias_ih_l{layer}"] = grads[f"bias_hh_l{layer}"] = dbias.astype(dtype)
        if layer > 0:
            np.matmul(w_ih.T, da2, out=d_out.reshape(hidden, steps * batch))
    return grads


# --- layers pipelined on two threads ------------------------------------------------------------

def pipelined_step(params, x, dy, state):
    """The step with each layer on a thread of its own (one BLAS thread each), handing chunks
    of steps on through events: forward bottom-up, backward top-down, with ``qdaed.nn.lstm``'s
    chunk loop and cell kernels; the gradient GEMMs after, with every BLAS thread."""
    from threadpoolctl import threadpool_limits

    num_layers, hidden, batch, steps, dtype, get = _shapes_and_buffers(params, x, state)
    h4 = 4 * hidden
    chunk = lstm._chunk_steps(batch, hidden, dtype)
    spans = [(t0, min(steps, t0 + chunk)) for t0 in range(0, steps, chunk)]
    inp0 = get("x", (steps, batch, I))
    np.copyto(inp0, x.transpose(1, 0, 2))
    gates = [get(("gates", k), (steps, batch, h4)) for k in range(num_layers)]
    hs = [get(("h", k), (steps + 1, batch, hidden)) for k in range(num_layers)]
    cs = [get(("c", k), (steps + 1, batch, hidden)) for k in range(num_layers)]
    inputs = [inp0] + [h[1:] for h in hs[:-1]]

    def run(workers):
        with threadpool_limits(1, "blas"):
            threads = [threading.Thread(target=w) for w in workers]
            for th in threads:
                th.start()
            for th in threads:
                th.join()

    done = [[threading.Event() for _ in spans] for _ in range(num_layers)]

    def forward_layer(layer):
        w_ih, w_hh, bias = lstm._layer_weights(params, layer)
        hs[layer][0], cs[layer][0] = 0, 0
        scratch = lstm._step_scratch(batch, hidden, dtype)
        for k, (t0, t1) in enumerate(spans):
            if layer > 0:
                done[layer - 1][k].wait()
            lstm._layer_steps(w_ih, w_hh, bias, inputs[layer][t0:t1], gates[layer][t0:t1],
                              hs[layer][t0:t1 + 1], cs[layer][t0:t1 + 1], scratch)
            done[layer][k].set()

    run([lambda k=k: forward_layer(k) for k in range(num_layers)])

    d_out = [get(("d_out", k), (steps, batch, hidden)) for k in range(num_layers)]
    np.copyto(d_out[-1], dy.transpose(1, 0, 2))
    das = [get(("da", k), (steps, batch, h4)) for k in range(num_layers)]
    dbias = [np.zeros(h4) for _ in range(num_layers)]
    back = [[threading.Event() for _ in spans] for _ in range(num_layers)]

    def backward_layer(layer):
        w_ih = params[f"weight_ih_l{layer}"]
        w_hh_t = np.ascontiguousarray(params[f"weight_hh_l{layer}"].T)
        dh = np.empty((batch, hidden), dtype)
        da_t = np.empty((h4, batch), dtype)
        dh_next_t = np.zeros((hidden, batch), dtype)
        dc = np.zeros((batch, hidden), dtype)
        g, c, da = gates[layer], cs[layer], das[layer]
        for k, (t0, t1) in enumerate(reversed(spans)):
            if layer < num_layers - 1:
                back[layer + 1][k].wait()
            for t in range(t1 - 1, t0 - 1, -1):
                cell_kernels.lstm_cell_backward(g[t], c[t], c[t + 1], d_out[layer][t],
                                                dh_next_t, dc, dh, da[t], da_t, dbias[layer])
                np.matmul(w_hh_t, da_t, out=dh_next_t)
            if layer > 0:  # the layer below's upstream gradient for this chunk
                n = t1 - t0
                np.matmul(da[t0:t1].reshape(n * batch, h4), w_ih,
                          out=d_out[layer - 1][t0:t1].reshape(n * batch, hidden))
            back[layer][k].set()

    run([lambda k=k: backward_layer(k) for k in reversed(range(num_layers))])
    grads = {}
    for layer in range(num_layers):
        da2 = das[layer].reshape(steps * batch, h4)
        grads[f"weight_ih_l{layer}"] = np.matmul(da2.T, inputs[layer].reshape(steps * batch, -1))
        grads[f"weight_hh_l{layer}"] = np.matmul(da2.T, hs[layer][:-1].reshape(steps * batch,
                                                                               hidden))
        grads[f"bias_ih_l{layer}"] = grads[f"bias_hh_l{layer}"] = dbias[layer].astype(dtype)
    return grads


# --- qdaed's cell kernels with fastmath ---------------------------------------------------------

_FASTMATH_CHAIN = ("_expm1_parts_f64", "_expm1_parts_f32", "_expm1_parts", "_one",
                   "_exp_nonpositive", "_sigmoid", "_tanh", "lstm_cell_forward",
                   "lstm_cell_backward")


def _fastmath_kernels():
    """qdaed's cell kernels and every helper they call, recompiled with fastmath=True (same
    source; the helpers rebound in a namespace of their own so the kernels call the
    fastmath versions, not the cached IEEE ones)."""
    namespace = dict(vars(cell_kernels))
    for name in _FASTMATH_CHAIN:
        source = getattr(cell_kernels, name).py_func
        namespace[name] = numba.njit(fastmath=True, nogil=True)(
            types.FunctionType(source.__code__, namespace, name))
    return namespace["lstm_cell_forward"], namespace["lstm_cell_backward"]


def fastmath_step(params, x, dy, state):
    """qdaed's step with its two cell kernels swapped for fastmath builds of the same code."""
    if "kernels" not in state:
        state["kernels"] = _fastmath_kernels()
    saved = lstm.lstm_cell_forward, lstm.lstm_cell_backward
    lstm.lstm_cell_forward, lstm.lstm_cell_backward = state["kernels"]
    try:
        return qdaed_step(params, x, dy, state)
    finally:
        lstm.lstm_cell_forward, lstm.lstm_cell_backward = saved


STEPS = {"qdaed": qdaed_step, "feature-major": feature_major_step,
         "layers pipelined": pipelined_step, "fastmath cells": fastmath_step}


# --- measurement --------------------------------------------------------------------------------

def _problem(hidden, layers, steps, seed=0):
    rng = np.random.default_rng(seed)
    shapes = lstm.parameter_shapes(I, hidden, layers)
    params = {k: (rng.uniform(-1, 1, s) / np.sqrt(hidden)).astype(np.float32)
              for k, s in shapes.items()}
    x = rng.standard_normal((B, steps, I)).astype(np.float32)
    dy = (rng.standard_normal((B, steps, hidden)) / (B * steps)).astype(np.float32)
    return params, x, dy


def _max_rel_diff(grads, reference):
    return max(float(np.abs(grads[k] - reference[k]).max() / np.abs(reference[k]).max())
               for k in reference)


def run_config(hidden, layers, args, designs):
    params, x, dy = _problem(hidden, layers, args.steps)
    names = ["qdaed"] + designs
    states = {name: {} for name in names}
    reference = STEPS["qdaed"](params, x, dy, states["qdaed"])
    diffs = {}
    for name in designs:  # also the warm-up: compiles, allocates the buffers
        diffs[name] = _max_rel_diff(STEPS[name](params, x, dy, states[name]), reference)
    times = {name: [] for name in names}
    per_round = {name: [] for name in designs}
    for _ in range(args.rounds):   # each round: every design in turn, in this one process
        one = harness.alternate({n: functools.partial(STEPS[n], params, x, dy, states[n])
                                 for n in names}, 1, args.repeats, 0)
        medians = {}
        for name in names:
            times[name] += [1000 * s for s in one[name]]
            medians[name] = statistics.median(one[name])
        for name in designs:
            per_round[name].append(medians[name] / medians["qdaed"])
    return {"times": times, "per_round": per_round, "diffs": diffs}


def render(results, args, designs, load, start):
    lines = [SECTION, "",
             "Each design is qdaed's LSTM training step (`qdaed.nn.lstm` forward with a workspace "
             f"+ backward to every parameter, no input gradient; B={B}, T={args.steps}, I={I}, "
             "float32; without bench_student's pooling and head) computed another way, in one "
             f"process, alternating with qdaed's own step: {args.rounds} rounds × "
             f"{args.repeats} timed steps after one warm-up step; medians; ratio = design / "
             "qdaed (above 1 is slower than qdaed). \"max grad rel. diff\": max |Δ| / max |g| "
             "against qdaed's gradients, over every parameter. The designs are described in "
             "the script's docstring. Produced by `bench/lstm_designs.py`.", "",
             "| config | qdaed (ms) | " + " | ".join(f"{d} (ms) | {d} / qdaed" for d in designs)
             + " | max grad rel. diff |",
             "|---|---:|" + "---:|---:|" * len(designs) + "---|"]
    for (hidden, layers), r in results:
        med = {k: statistics.median(v) for k, v in r["times"].items()}
        row = [f"H={hidden}, {layers} layer{'s' if layers > 1 else ''}", f"{med['qdaed']:.0f}"]
        for d in designs:
            row += [f"{med[d]:.0f}", f"**{med[d] / med['qdaed']:.2f}**"]
        row.append(", ".join(f"{d} {r['diffs'][d]:.1e}" for d in designs))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Every repetition (ms) and the ratio of every round:", ""]
    for (hidden, layers), r in results:
        for name, v in r["times"].items():
            lines.append(f"- H={hidden}x{layers} {name}: " + ", ".join(f"{t:.0f}" for t in v))
        for d in designs:
            lines.append(f"- H={hidden}x{layers} {d} / qdaed per round: "
                         + ", ".join(f"{q:.2f}" for q in r["per_round"][d]))
    thp = "unknown"
    try:
        with open("/proc/meminfo") as f:
            thp = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("AnonHugePages"))
    except (OSError, StopIteration):
        pass
    lines += ["", f"Transparent huge pages in use (AnonHugePages) at the end: {thp}; started "
              f"{start:%Y-%m-%d %H:%M} UTC."]
    return "\n".join(lines) + "\n" + harness.footer(args.threads, *load)


def main(args):
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    unknown = [d for d in designs if d not in DESIGNS]
    if unknown:
        sys.exit(f"unknown design(s) {unknown}; choose from {', '.join(DESIGNS)}")
    if "layers pipelined" in designs and importlib.util.find_spec("threadpoolctl") is None:
        print("threadpoolctl not installed: 'layers pipelined' skipped", file=sys.stderr)
        designs.remove("layers pipelined")
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    load0, start = harness.load(), datetime.datetime.now(datetime.timezone.utc)
    results = []
    for hidden, layers in configs:
        harness.wait_idle(args.wait_idle)
        print(f"H={hidden} x {layers}: {', '.join(designs)}", file=sys.stderr, flush=True)
        results.append(((hidden, layers), run_config(hidden, layers, args, designs)))
    text = render(results, args, designs, (load0, harness.load()), start)
    print(text)
    if args.write:
        harness.write_section(text, args.results)


if __name__ == "__main__":
    main(ARGS)
