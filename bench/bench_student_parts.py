"""Where the StudentLSTM training step's time goes, part by part, against PyTorch's whole step.

The training-step ratio of ``bench_student.py`` says how qdaed compares; this says why. In a
worker process of its own, qdaed's step (the same step as ``bench_student.py``: B=32, T=1000,
I=64, C=3, float32) runs with a timer around every matrix product of ``qdaed.nn.lstm`` (all
of them are ``np.matmul`` calls) and around every call of the two LSTM cell kernels, so each
step splits into

- the input projections X W_ihᵀ (forward, one GEMM per chunk of steps),
- the recurrent products W_hh h_{t-1}ᵀ (forward) and W_hhᵀ da_tᵀ (backward), one per step,
- the gradient GEMMs after the reverse loop (dW_ih, dW_hh, the layer below's input gradient),
- the cell kernels, forward and backward (``qdaed.kernels.lstm``),
- everything else: the copies, the Python loop, the pooling, the linear head and the loss.

The worker also lists every product it ran (operand shapes and layouts, how many times). Two
further workers then run exactly that list of products alone, outside the step: one through
NumPy (qdaed's BLAS), one through ``torch.matmul`` (PyTorch's BLAS), each with the same thread
count. Their totals are what the step's products cost at each library's standalone speed,
and the smaller of the two, divided by PyTorch's whole step (measured in a fourth worker,
the same network and step as ``bench_student.py``'s), is a floor for any implementation that
runs these products through a BLAS: whatever its cell kernels cost, it cannot go below it.
Rounds alternate the four workers; medians over all repetitions (per call for the products,
each distinct product timed over up to ``--sample`` calls and multiplied by its count).
The worker also times qdaed's σ and tanh alone (in the cache, one thread): what the
forward cells' 3 σ + 2 tanh per unit and step cost with nothing else, added to that floor.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.bench_student_parts

``--write`` replaces the "Where the StudentLSTM training step goes" section of this machine's
part of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from bench import harness

SECTION = "## Where the StudentLSTM training step goes"
PARTS = ("input projections", "recurrent products, forward", "cell kernel, forward",
         "recurrent products, backward", "cell kernel, backward", "gradient GEMMs",
         "everything else")
GEMM_PARTS = ("input projections", "recurrent products, forward",
              "recurrent products, backward", "gradient GEMMs")


def _parse():
    p = harness.parser(__doc__, repeats=3, warmup=2, rounds=2)
    p.add_argument("--configs", default="512x2,256x2", help="HIDDENxLAYERS,...")
    p.add_argument("--steps", type=int, default=1000, help="frames T")
    p.add_argument("--sample", type=int, default=200,
                   help="calls timed per distinct product in the standalone workers")
    # --worker: parts|torch|gemm_numpy|gemm_torch
    p.add_argument("--gemms", help=argparse.SUPPRESS)  # internal: the product list (JSON file)
    return p.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:
    harness.set_threads(ARGS.threads)  # before numpy / torch: pools are sized at load time

import numpy as np  # noqa: E402

from bench import bench_student  # noqa: E402
from bench.bench_student import B, C, I  # noqa: E402


def _layout(a):
    """'C' (row-major), 'F' (a transposed row-major array) or 'C' for anything else, which
    the standalone workers then time as a row-major copy would be."""
    return "F" if (a.ndim == 2 and not a.flags.c_contiguous and a.flags.f_contiguous) else "C"


class _TimedNumpy:
    """numpy, with ``matmul`` timed and recorded; installed as ``qdaed.nn.lstm.np``."""

    def __init__(self, record):
        self._record = record

    def __getattr__(self, name):
        return getattr(np, name)

    def matmul(self, a, b, out=None):
        t0 = time.perf_counter()
        r = np.matmul(a, b, out=out)
        self._record(a, b, time.perf_counter() - t0)
        return r


def _activation_rates():
    """Seconds per evaluation of qdaed's σ and tanh (the cell kernels' own scalar functions,
    vectorised by Numba as in the cells), over 64 Ki float32 values in [−6, 6] that stay in
    the cache: their cost with no memory traffic, no gate arithmetic, one thread as in the
    cells. Median of 200 passes each."""
    from qdaed.kernels import kernel
    from qdaed.kernels.lstm import _sigmoid, _tanh

    @kernel
    def sigmoid_all(x, out):
        for i in range(x.size):
            out[i] = _sigmoid(x[i])

    @kernel
    def tanh_all(x, out):
        for i in range(x.size):
            out[i] = _tanh(x[i])

    x = np.random.default_rng(2).uniform(-6, 6, 1 << 16).astype(np.float32)
    out = np.empty_like(x)
    rates = {}
    for name, f in (("sigmoid", sigmoid_all), ("tanh", tanh_all)):
        ts = harness.time_calls(lambda: f(x, out), 200, 1)
        rates[name] = statistics.median(ts) / x.size
    return rates


def parts_worker(hidden, layers, args):
    """Time qdaed's step part by part; print {"step", "parts", "gemms"} as JSON."""
    from qdaed.models import StudentLSTM
    from qdaed.nn import lstm

    rng = np.random.default_rng(0)
    model = StudentLSTM(I, hidden, layers, C, rng=rng)
    x = rng.standard_normal((B, args.steps, I)).astype(np.float32)
    y = (rng.random((B, C)) < 0.3).astype(np.float32)

    acc = dict.fromkeys(PARTS, 0.0)
    gemms = {}
    phase = ["forward"]

    def record(a, b, dt):
        if phase[0] == "forward":
            part = ("recurrent products, forward" if a.shape == (4 * hidden, hidden)
                    and b.shape == (hidden, B) else "input projections")
        else:
            part = ("recurrent products, backward" if a.shape == (hidden, 4 * hidden)
                    and b.shape == (4 * hidden, B) else "gradient GEMMs")
        acc[part] += dt
        key = (part, a.shape, _layout(a), b.shape, _layout(b))
        gemms[key] = gemms.get(key, 0) + 1

    def timed(part, f):
        def call(*a, **k):
            t0 = time.perf_counter()
            r = f(*a, **k)
            acc[part] += time.perf_counter() - t0
            return r
        return call

    def in_phase(name, f):
        def call(*a, **k):
            phase[0] = name
            return f(*a, **k)
        return call

    lstm.STEP_LOOP = "python"   # the reference loop: every per-step product is visible here
    lstm.np = _TimedNumpy(record)
    lstm.lstm_cell_forward = timed("cell kernel, forward", lstm.lstm_cell_forward)
    lstm.lstm_cell_backward = timed("cell kernel, backward", lstm.lstm_cell_backward)
    lstm.forward = in_phase("forward", lstm.forward)
    lstm.backward = in_phase("backward", lstm.backward)

    steps, parts = [], []
    for i in range(args.warmup + args.repeats):
        for k in acc:
            acc[k] = 0.0
        gemms.clear()
        t0 = time.perf_counter()
        bench_student.qdaed_step(model, x, y)
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            acc["everything else"] = dt - sum(v for k, v in acc.items() if k != "everything else")
            steps.append(dt)
            parts.append(dict(acc))
    harness.emit({"step": steps, "parts": parts, "rates": _activation_rates(),
                      "gemms": [[list(k), n] for k, n in gemms.items()]})


def gemm_worker(lib, gemms, args):
    """Run the recorded products alone through NumPy or torch.matmul; print, per product, the
    median time of one call (JSON list in the input's order)."""
    rng = np.random.default_rng(1)
    if lib == "torch":
        import torch

        torch.set_num_threads(args.threads)

    def operand(shape, layout):
        a = rng.standard_normal(shape[::-1] if layout == "F" else shape).astype(np.float32)
        return a.T if layout == "F" else a

    per_call = []
    for (part, a_shape, a_lay, b_shape, b_lay), count in gemms:
        a, b = operand(a_shape, a_lay), operand(b_shape, b_lay)
        out = np.empty((a_shape[0], b_shape[1]), np.float32)
        if lib == "torch":
            import torch

            a, b, out = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
            mm = torch.matmul
        else:
            mm = np.matmul
        n = max(1, min(count, args.sample))
        ts = harness.time_calls(lambda: mm(a, b, out=out), n, min(3, n))
        per_call.append(statistics.median(ts))
    harness.emit(per_call)


def torch_worker(hidden, layers, args):
    import torch

    from qdaed.models import StudentLSTM

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    model = StudentLSTM(I, hidden, layers, C, rng=rng)
    x = rng.standard_normal((B, args.steps, I)).astype(np.float32)
    y = (rng.random((B, C)) < 0.3).astype(np.float32)
    net = bench_student.make_torch(model)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    harness.emit(harness.time_calls(lambda: bench_student.torch_step(net, xt, yt),
                                    args.repeats, args.warmup))


def _run_worker(kind, hidden, layers, args, gemm_file=None):
    extra = ["--configs", f"{hidden}x{layers}", "--steps", str(args.steps),
             "--sample", str(args.sample)] + (["--gemms", gemm_file] if gemm_file else [])
    return harness.worker(__spec__.name, kind, args, extra)


def run_config(hidden, layers, args):
    """Rounds of the four workers; returns the medians and every round's figures."""
    qd = {"step": [], "parts": [], "rates": []}
    torch_steps, lib_calls, gemms = [], {"numpy": [], "torch": []}, None
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            one = _run_worker("parts", hidden, layers, args)
            qd["step"] += one["step"]
            qd["parts"] += one["parts"]
            qd["rates"].append(one["rates"])
            if gemms is None:
                gemms = one["gemms"]
                path = os.path.join(tmp, "gemms.json")
                with open(path, "w") as f:
                    json.dump(gemms, f)
            torch_steps += _run_worker("torch", hidden, layers, args)
            for lib in ("numpy", "torch"):
                lib_calls[lib].append(_run_worker(f"gemm_{lib}", hidden, layers, args, path))
    counts = [n for _, n in gemms]
    per_call = {lib: [statistics.median(r[i] for r in runs) for i in range(len(gemms))]
                for lib, runs in lib_calls.items()}
    standalone = {lib: {p: sum(c * n for c, n, (g, _) in zip(pc, counts, gemms) if g[0] == p)
                        for p in GEMM_PARTS} for lib, pc in per_call.items()}
    parts = {p: statistics.median(d[p] for d in qd["parts"]) for p in PARTS}
    rates = {f: statistics.median(r[f] for r in qd["rates"]) for f in ("sigmoid", "tanh")}
    # the forward cells' σ and tanh alone: 3 σ + 2 tanh per unit, clip, step and layer
    activations = layers * args.steps * B * hidden * (3 * rates["sigmoid"] + 2 * rates["tanh"])
    return {"step": statistics.median(qd["step"]), "steps": qd["step"], "parts": parts,
            "rates": rates, "activations": activations,
            "torch": statistics.median(torch_steps), "torch_steps": torch_steps,
            "standalone": standalone, "gemms": gemms, "per_call": per_call}


def render(results, threads, load, args):
    lines = [SECTION, "",
             f"qdaed's StudentLSTM training step (float32, B={B}, T={args.steps}, I={I}, "
             f"C={C}; `bench_student.py`'s step) with a timer around every matrix product "
             "and every LSTM cell kernel call, in a worker process of its own; \"alone\": the "
             "same list of products (shapes, layouts, counts as recorded in the step) run "
             "outside the step through NumPy (qdaed's BLAS) and through `torch.matmul` "
             "(PyTorch's), each in its own worker; PyTorch's whole step (oneDNN's fused RNN) "
             f"in a fourth. {args.rounds} rounds alternating the four workers, "
             f"{args.repeats} timed steps each after {args.warmup} warm-up; medians. The "
             "floor = the step's products alone through the faster of the two libraries, "
             "over PyTorch's whole step: no implementation that runs these products through "
             "either BLAS goes below it, whatever its cell kernels cost. Produced by "
             "`bench/bench_student_parts.py`.", ""]
    for (hidden, layers), r in results.items():
        step, t = r["step"], r["torch"]
        lines += [f"**H = {hidden} × {layers}**: qdaed's step {step * 1e3:.0f} ms (with the "
                  f"timers), PyTorch's {t * 1e3:.0f} ms: qdaed / PyTorch **{step / t:.2f}**.", "",
                  "| part | calls per step | in qdaed's step (ms) | share | alone, NumPy (ms) "
                  "| alone, torch.matmul (ms) |", "|---|---:|---:|---:|---:|---:|"]
        calls = {p: sum(n for g, n in r["gemms"] if g[0] == p) for p in GEMM_PARTS}
        calls["cell kernel, forward"] = calls["recurrent products, forward"]
        calls["cell kernel, backward"] = calls["recurrent products, backward"]
        for p in PARTS:
            ms = r["parts"][p] * 1e3
            alone = [f"{r['standalone'][lib][p] * 1e3:.0f}" if p in GEMM_PARTS else "—"
                     for lib in ("numpy", "torch")]
            lines.append(f"| {p} | {calls.get(p, '—')} | {ms:.0f} | {ms / step / 10:.0f}% | "
                         f"{alone[0]} | {alone[1]} |")
        in_step = sum(r["parts"][p] for p in GEMM_PARTS)
        tot = {lib: sum(r["standalone"][lib].values()) for lib in ("numpy", "torch")}
        floor = min(tot.values())
        lines += [f"| **all products** | {sum(calls[p] for p in GEMM_PARTS)} | "
                  f"{in_step * 1e3:.0f} | {in_step / step * 100:.0f}% | {tot['numpy'] * 1e3:.0f} "
                  f"| {tot['torch'] * 1e3:.0f} |", "",
                  f"Floor: {floor * 1e3:.0f} ms / {t * 1e3:.0f} ms = **{floor / t:.2f}** of "
                  f"PyTorch's step (NumPy's products alone {tot['numpy'] / t:.2f}, "
                  f"torch.matmul's {tot['torch'] / t:.2f}); qdaed's products inside its step "
                  f"{in_step / t:.2f}, everything but the products {(step - in_step) / t:.2f}.",
                  "", f"The forward cells' σ and tanh alone (3 σ + 2 tanh per unit, clip, step "
                  f"and layer, {layers * args.steps * B * hidden * 5 / 1e6:.0f} M evaluations at "
                  f"the standalone rates of qdaed's functions, {r['rates']['sigmoid'] * 1e9:.2f} "
                  f"/ {r['rates']['tanh'] * 1e9:.2f} ns for σ / tanh, one thread as in the "
                  f"cells): {r['activations'] * 1e3:.0f} ms; with the products: "
                  f"{(floor + r['activations']) * 1e3:.0f} ms = "
                  f"**{(floor + r['activations']) / t:.2f}** of PyTorch's step.",
                  "", "Every product of the step, one call (median ms, NumPy / torch.matmul):", ""]
        for (g, n), a, b in zip(r["gemms"], r["per_call"]["numpy"], r["per_call"]["torch"]):
            part, a_shape, a_lay, b_shape, b_lay = g
            m, k, nn = a_shape[0], a_shape[1], b_shape[1]
            lines.append(f"- {part}: ({m} × {k}{'ᵀ' if a_lay == 'F' else ''}) · ({k} × {nn}"
                         f"{'ᵀ' if b_lay == 'F' else ''}) × {n}: {a * 1e3:.3f} / {b * 1e3:.3f} "
                         f"({2 * m * k * nn / a / 1e9:.0f} / {2 * m * k * nn / b / 1e9:.0f} "
                         "GFLOP/s)")
        lines += ["", f"Every step (ms): qdaed {harness.spread(r['steps']).ms()}: "
                  + ", ".join(f"{v * 1e3:.0f}" for v in r["steps"])
                  + f"; PyTorch {harness.spread(r['torch_steps']).ms()}: "
                  + ", ".join(f"{v * 1e3:.0f}" for v in r["torch_steps"])
                  + " (median [interquartile range]: the steps)", ""]
    return "\n".join(lines) + harness.footer(threads, *load)


def main(args):
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    if args.worker:
        hidden, layers = configs[0]
        if args.worker == "parts":
            parts_worker(hidden, layers, args)
        elif args.worker == "torch":
            torch_worker(hidden, layers, args)
        else:
            with open(args.gemms) as f:
                gemms = json.load(f)
            gemm_worker(args.worker.split("_", 1)[1], gemms, args)
        return
    load0 = harness.load()
    results = {}
    for hidden, layers in configs:
        harness.wait_idle(args.wait_idle)
        print(f"H={hidden} x {layers} ...", file=sys.stderr, flush=True)
        results[(hidden, layers)] = run_config(hidden, layers, args)
    load1 = harness.load()
    harness.torch_threads(args.threads)
    text = render(results, args.threads, (load0, load1), args)
    print(text)
    if args.write:
        harness.write_section(text, args.results)


if __name__ == "__main__":
    main(ARGS)
