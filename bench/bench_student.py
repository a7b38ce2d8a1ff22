"""StudentLSTM training step: qdaed vs PyTorch (CPU) vs a naive NumPy loop, in one run.

One step = forward to the logits, the sigmoid-BCE gradient ∂L/∂z = (σ(z) − y)/(B·C), and the
backward pass to every parameter gradient (no input gradient: x is data). Shapes are the
paper's (B=32 clips, T=1000 frames of I=64 LFBE bins, C=3 classes) with H=128 × 1 layer,
H=256 × 2 layers and H=512 × 2 (the paper preset's student); float32 throughout; every implementation runs with the same thread count
(default 2: BLAS, Numba, OpenMP and torch.set_num_threads). Each implementation is timed in a
fresh subprocess of its own (``--worker``), after the parent has checked that all of them
compute the same gradients: in one shared process, torch's OpenMP threads keep spinning after
torch's step and slowed the next implementation's step by up to 1.8x here (``--interleave``
restores the shared-process, interleaved measurement). The median after warm-up is reported,
with the load average so a reader can judge the noise.

Run (see bench/README.md; the environment variables below halve OpenBLAS's speed on the
reference machine, so the benchmark command unsets them):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.bench_student

``--write`` replaces the "StudentLSTM training step" section of this machine's part of
bench/RESULTS.md (bench/harness.py).
"""

from __future__ import annotations

import statistics
import sys

from bench import harness


def _parse():
    p = harness.parser(__doc__, repeats=7, warmup=2, rounds=3)
    p.add_argument("--steps", type=int, default=1000, help="frames T")
    p.add_argument("--configs", default="128x1,256x2,512x2", help="HIDDENxLAYERS,...")
    p.add_argument("--no-naive", action="store_true", help="skip the naive NumPy loop")
    p.add_argument("--torch-native", action="store_true",
                   help="also time PyTorch with oneDNN switched off (its own ATen LSTM instead "
                        "of oneDNN's fused RNN primitive)")
    p.add_argument("--blas-floor", action="store_true",
                   help="also time qdaed's step with the LSTM cell kernels replaced by no-ops: "
                        "its BLAS calls alone, the floor of the per-step-GEMM design")
    p.add_argument("--numba-loop", action="store_true",
                   help="also time qdaed's step with its loop over time compiled "
                        "(QDAED_LSTM_STEPS=numba) instead of the Python loop")
    p.add_argument("--interleave", action="store_true",
                   help="time every implementation in this one process, interleaved (the "
                        "default runs each in a fresh subprocess: in one process torch's "
                        "OpenMP threads keep spinning after its step and slow the next one)")
    return p.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:
    harness.set_threads(ARGS.threads)  # before numpy / numba / torch are imported

import numpy as np  # noqa: E402

from bench.naive_lstm import bce_grad  # noqa: E402
from bench.naive_lstm import lstm_training_step as naive_step  # noqa: E402
from qdaed.models import StudentLSTM  # noqa: E402
from qdaed.nn import lstm  # noqa: E402

B, I, C = 32, 64, 3
SECTION = "## StudentLSTM training step"


# --- the three implementations --------------------------------------------------------------

def qdaed_step(model, x, y):
    z, cache = model.forward(x, train=True)
    return model.backward(cache, bce_grad(z, y))


def make_torch(model):
    import torch

    class Student(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(model.input_size, model.hidden_size, model.num_layers,
                                      batch_first=True)
            self.fc = torch.nn.Linear(model.hidden_size, model.num_classes)

        def forward(self, x):
            return self.fc(self.lstm(x)[0].mean(1))

    net = Student()
    net.load_state_dict({n: torch.from_numpy(v.copy()) for n, v in model.params.items()})
    return net


def torch_step(net, xt, yt):
    import torch

    for p in net.parameters():
        p.grad = None
    loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt), yt)
    loss.backward()
    return {n: p.grad for n, p in net.named_parameters()}


def blas_only():
    """Replace the LSTM cell kernels by no-ops, in this (worker) process only.

    What qdaed's step then does is its GEMMs (the chunked input projections, the per-step
    recurrent products, the weight and input gradients), the copies around them and the Python
    loop: a lower bound for any cell kernel inside this design. The buffers the skipped
    kernels would have filled hold zeros instead (each buffer zeroed once, when it is first
    handed out), so the GEMMs and the checks after the LSTM see finite numbers.
    """
    scratch = lstm._step_scratch
    lstm._step_scratch = lambda *a: tuple(np.zeros_like(s) for s in scratch(*a))
    buffer, zeroed = lstm._buffer, set()

    def zeroed_buffer(*a):
        out = buffer(*a)
        base = out if out.base is None else out.base
        if id(base) not in zeroed:  # workspace buffers are views of one array each
            base.fill(0)
            zeroed.add(id(base))
        return out

    grow = lstm.Inference._grow

    def zeroed_grow(self, n):  # Inference's chunk buffers, when it allocates them
        rows = self._rows
        grow(self, n)
        if self._rows != rows:
            for a in (self._hs[:, 1:], self._cs[:, 1:], self._gates):
                a.fill(0)

    seen = [None]

    def cell_backward(gates, c_prev, c, dy, dh_next_t, dc, dh, da, da_t, dbias):
        if seen[0] is not da_t:  # a fresh (uninitialised) buffer each backward call
            da_t.fill(0)
            seen[0] = da_t

    lstm.STEP_LOOP = "python"   # a compiled loop would call the cell kernels itself
    lstm._buffer = zeroed_buffer
    lstm.Inference._grow = zeroed_grow
    lstm.lstm_cell_forward = lambda *a: None
    lstm.lstm_cell_backward = cell_backward


# --- measurement ----------------------------------------------------------------------------

def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def run_config(hidden, layers, steps, repeats, warmup, naive, args=None):
    import torch

    rng = np.random.default_rng(0)
    model = StudentLSTM(I, hidden, layers, C, rng=rng)
    x = rng.standard_normal((B, steps, I)).astype(np.float32)
    y = (rng.random((B, C)) < 0.3).astype(np.float32)
    net = make_torch(model)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    runs = {"qdaed": lambda: qdaed_step(model, x, y), "torch": lambda: torch_step(net, xt, yt)}
    if naive:
        runs["naive"] = lambda: naive_step(model.params, layers, x, y)
    if args is not None and (args.torch_native or args.worker == "torch_native"):
        runs["torch_native"] = runs["torch"]  # the same call, oneDNN off in its worker below
    if args is not None and (args.blas_floor or args.worker == "blas_only"):
        runs["blas_only"] = runs["qdaed"]  # the same call, cell kernels off in its worker
    if args is not None and (args.numba_loop or args.worker == "numba_loop"):
        runs["numba_loop"] = runs["qdaed"]  # the same call, the compiled loop in its worker
    if args is not None and args.worker:
        # each implementation has a process of its own, so the switch can be global
        torch.backends.mkldnn.enabled = args.worker != "torch_native"
        if args.worker == "blas_only":
            blas_only()
        if args.worker == "numba_loop":
            lstm.STEP_LOOP = "numba"
        harness.emit(harness.time_calls(runs[args.worker], repeats, warmup))
        return None
    # Same gradients (float32, T=1000: agreement to ~1e-4 is what float32 allows).
    ours, theirs = runs["qdaed"](), runs["torch"]()
    agree = max(_rel(ours[n], theirs[n].numpy()) for n in ours)
    if naive:
        agree = max(agree, max(_rel(runs["naive"]()[n], theirs[n].numpy()) for n in ours))
    if args is not None and not args.interleave:
        # Rounds alternate the implementations, so that a change in the shared machine's load
        # during the run hits all of them; the ratio of each round shows how stable it is.
        times, ratios = harness.rounds_in_workers(
            __spec__.name, list(runs), args, ratio=("qdaed", "torch"),
            extra=["--configs", f"{hidden}x{layers}", "--steps", str(args.steps)])
        return {k: statistics.median(v) for k, v in times.items()}, times, agree, ratios
    times = harness.alternate(runs, repeats, 1, max(warmup - 1, 0))
    return {k: statistics.median(v) for k, v in times.items()}, times, agree, []


def render(results, threads, load, steps, repeats, warmup, rounds):
    native = any("torch_native" in med for med, *_ in results.values())
    floor = any("blas_only" in med for med, *_ in results.values())
    pyloop = any("numba_loop" in med for med, *_ in results.values())
    lines = [SECTION, "",
             f"Forward to the logits + sigmoid-BCE gradient + backward to every parameter, "
             f"float32, B={B}, T={steps}, I={I}, C={C}, mean pooling. Median of all "
             f"repetitions: {rounds} rounds × {repeats} timed steps after {warmup} warm-up "
             f"steps, each round running every implementation in a fresh subprocess, one "
             f"after the other (unless the command says --interleave); ratio = time / "
             f"PyTorch time (below 1 is faster than PyTorch). PyTorch's CPU LSTM runs "
             f"oneDNN's fused RNN primitive"
             + ("; \"w/o oneDNN\" is the same step with `torch.backends.mkldnn` disabled, "
                "PyTorch's own per-step LSTM" if native else "")
             + ("; \"BLAS alone\" is qdaed's step with its LSTM cell kernels replaced by "
                "no-ops (`--blas-floor`): its GEMMs, copies and Python loop, a lower bound for "
                "qdaed's per-step-GEMM design whatever its cell kernels cost" if floor else "")
             + ("; \"compiled loop\" is qdaed's step with its loop over time in one "
                "compiled call per layer (`QDAED_LSTM_STEPS=numba`, the same arithmetic; the "
                "default is the Python loop)" if pyloop else "")
             + ". Produced by `bench/bench_student.py`.", "",
             "| config | qdaed (ms) | PyTorch (ms) | naive NumPy (ms) | qdaed / PyTorch "
             "| naive / PyTorch |" + (" PyTorch w/o oneDNN (ms) |" if native else "")
             + (" qdaed's BLAS alone (ms) |" if floor else "")
             + (" qdaed, compiled loop (ms) |" if pyloop else "") + " max grad rel. diff |",
             "|---|---:|---:|---:|---:|---:|" + ("---:|" if native else "")
             + ("---:|" if floor else "") + ("---:|" if pyloop else "") + "---:|"]
    for (hidden, layers), (med, _, agree, _) in results.items():
        nv = med.get("naive")
        naive_ms = "—" if nv is None else f"{nv * 1e3:.0f}"
        naive_ratio = "—" if nv is None else f"{nv / med['torch']:.2f}"
        tn = med.get("torch_native")
        native_col = "" if not native else (
            " — |" if tn is None else f" {tn * 1e3:.0f} (qdaed / it: {med['qdaed'] / tn:.2f}) |")
        fl = med.get("blas_only")
        floor_col = "" if not floor else (
            " — |" if fl is None else f" {fl * 1e3:.0f} (/ PyTorch: {fl / med['torch']:.2f}) |")
        pl = med.get("numba_loop")
        pyloop_col = "" if not pyloop else (
            " — |" if pl is None else f" {pl * 1e3:.0f} (qdaed / it: {med['qdaed'] / pl:.2f}) |")
        lines.append(
            f"| H={hidden}, {layers} layer{'s' if layers > 1 else ''} | {med['qdaed'] * 1e3:.0f} "
            f"| {med['torch'] * 1e3:.0f} | {naive_ms} "
            f"| **{med['qdaed'] / med['torch']:.2f}** "
            f"| {naive_ratio} |{native_col}{floor_col}{pyloop_col} {agree:.1e} |")
    lines += ["", "All repetitions (ms), to show the spread (median [interquartile range]: "
              "the repetitions):", ""]
    for (hidden, layers), (_, times, _, ratios) in results.items():
        for k, v in times.items():
            lines.append(f"- H={hidden}x{layers} {k}: {harness.spread(v).ms()}: "
                         + ", ".join(f"{t * 1e3:.0f}" for t in v))
        if ratios:
            lines.append(f"- H={hidden}x{layers} qdaed / PyTorch per round: "
                         + ", ".join(f"{r:.2f}" for r in ratios))
    return "\n".join(lines) + "\n" + harness.footer(threads, *load)


def main(args):
    harness.torch_threads(args.threads)
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    if (args.blas_floor or args.numba_loop) and args.interleave:
        sys.exit("--blas-floor and --numba-loop need a worker process of their own: not with "
                 "--interleave")
    if args.worker:
        run_config(*configs[0], args.steps, args.repeats, args.warmup, True, args)
        return
    load0 = harness.load()
    results = {}
    for hidden, layers in configs:
        harness.wait_idle(args.wait_idle)
        print(f"H={hidden} x {layers} ...", file=sys.stderr, flush=True)
        results[(hidden, layers)] = run_config(hidden, layers, args.steps, args.repeats,
                                               args.warmup, not args.no_naive, args)
    load1 = harness.load()
    text = render(results, args.threads, (load0, load1), args.steps, args.repeats, args.warmup,
                  1 if args.interleave else args.rounds)
    print(text)
    for (hidden, layers), (_, times, _, _) in results.items():
        harness.headline(args, f"LSTM training step, B {B}, T {args.steps}, H {hidden} x {layers}",
                         times["qdaed"], times["torch"])
    if args.write:
        harness.write_section(text, args.results)


if __name__ == "__main__":
    main(ARGS)
