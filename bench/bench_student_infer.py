"""StudentLSTM inference and the streaming step: qdaed vs PyTorch (CPU), time and peak memory.

Tasks (float32, I = 64 LFBE bins, C = 3 classes, mean pooling, T = 1000 frames = a 10 s clip):
  infer32   B = 32 clips, forward to the logits (qdaed: ``StudentLSTM.forward(x)``, which runs
            ``nn.lstm.infer``, no cache; PyTorch: the same network under ``torch.no_grad()``).
  infer1    the same at B = 1.
  stream    one 10 ms frame at a time at B = 1, the state carried (qdaed:
            ``nn.lstm.Inference.run`` on a (1, 1, I) block, what ``qdaed detect`` does per
            block; PyTorch: ``nn.LSTM`` with (h, c) passed back in); the time per frame is
            the median over ``--frames`` frames.
Every (implementation, task) runs in a fresh subprocess (``--worker``), alternating over
``--rounds`` rounds, so that a change of load hits both; the parent first checks that both
compute the same logits. Peak memory: the worker's VmHWM (high-water mark of its resident
set) over the timed runs, reset (``/proc/self/clear_refs``) after the warm-up runs so that
compiling or loading code is not counted; beside it the growth over the resident set at that
reset, what one run itself needs.

Run alone on the machine (see bench/README.md for the OpenBLAS variables):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.bench_student_infer [--write]

``--write`` replaces the "StudentLSTM inference" section of this machine's part of
bench/RESULTS.md.
"""

from __future__ import annotations

import os
import statistics
import sys

from bench import harness

SECTION = "## StudentLSTM inference"
I, C, T = 64, 3, 1000
TASKS = {"infer32": 32, "infer1": 1, "stream": 1}
IMPLS = ("qdaed", "torch", "torch_native", "blas_only", "numba_loop", "fused_packed")
BLOCK_ONLY = ("fused_packed",)   # whole-block designs: not run by the stream task


def _parse():
    p = harness.parser(__doc__, repeats=5, warmup=1, rounds=3)
    p.add_argument("--frames", type=int, default=1000, help="frames timed by the stream task")
    p.add_argument("--configs", default="512x2", help="HIDDENxLAYERS,...")
    p.add_argument("--tasks", default="infer32,infer1,stream")
    return p.parse_args()


def _setup(hidden, layers, batch):
    import numpy as np

    from qdaed.models import StudentLSTM

    rng = np.random.default_rng(0)
    model = StudentLSTM(I, hidden, layers, C, rng=rng)
    x = rng.standard_normal((batch, T, I)).astype(np.float32)
    return model, x


def _torch_net(model):
    """The same network in PyTorch with the same weights (bench_student's), eval mode."""
    from bench.bench_student import make_torch

    return make_torch(model).eval()


def _runner(impl, task, model, x):
    """A no-argument function doing one timed unit of ``task``, and its output."""
    import numpy as np

    if impl in ("qdaed", "blas_only", "numba_loop", "fused_packed"):
        if impl == "fused_packed":  # qdaed's model with the LSTM of bench/fused_lstm.py
            from bench import fused_lstm
            from qdaed.nn import lstm
            threads = int(os.environ["OMP_NUM_THREADS"])
            lstm.infer = lambda p, x: fused_lstm.infer(p, x, threads=threads)
        if impl == "blas_only":  # qdaed with its LSTM cell kernels off: its BLAS calls alone
            from bench.bench_student import blas_only
            blas_only()
        if impl == "numba_loop":  # qdaed with its loop over time compiled
            from qdaed.nn import lstm
            lstm.STEP_LOOP = "numba"
        if task != "stream":
            return lambda: model.forward(x)[0]
        from qdaed.nn import lstm

        p = {n[5:]: v for n, v in model.params.items() if n.startswith("lstm.")}
        run = lstm.Inference(p, 1)
        frames = [np.ascontiguousarray(x[:, t:t + 1]) for t in range(x.shape[1])]
        state = {"t": 0}

        def step():
            t = state["t"] = (state["t"] + 1) % len(frames)
            return run.run(frames[t])
        return step
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    net = _torch_net(model)
    xt = torch.from_numpy(x)
    # "torch_native": PyTorch with oneDNN switched off, i.e. its own ATen LSTM (per-step GEMMs
    # and element-wise ops, as qdaed does) instead of oneDNN's fused RNN primitive.
    # (each implementation runs in a process of its own, so the switch is global)
    torch.backends.mkldnn.enabled = impl != "torch_native"
    if task != "stream":
        def forward():
            with torch.no_grad():
                return net(xt).numpy()
        return forward
    frames = [xt[:, t:t + 1].contiguous() for t in range(xt.shape[1])]
    state = {"t": 0, "hc": None}

    def step():
        t = state["t"] = (state["t"] + 1) % len(frames)
        with torch.no_grad():
            y, state["hc"] = net.lstm(frames[t], state["hc"])
        return y
    return step


def worker(spec, args):
    """Time one IMPL/TASK/CONFIG in this (fresh) process; emit times and memory."""
    impl, task, config = spec.split("/")
    hidden, layers = (int(v) for v in config.split("x"))
    model, x = _setup(hidden, layers, TASKS[task])
    f = _runner(impl, task, model, x)
    setup = harness.status_mib("VmRSS")
    n = args.frames if task == "stream" else 1
    for _ in range(args.warmup * n):
        f()
    warm = harness.status_mib("VmRSS")
    harness.reset_peak_rss()
    if task == "stream":     # one repetition = the median frame of a run of n frames
        times = [statistics.median(harness.time_calls(f, n, 0)) for _ in range(args.repeats)]
    else:
        times = harness.time_calls(f, args.repeats, 0)
    harness.emit({"times": times, "setup_mib": setup, "warm_mib": warm,
                  "run_peak_mib": harness.status_mib("VmHWM")})


def _impls(task):
    return [i for i in IMPLS if task != "stream" or i not in BLOCK_ONLY]


def _isolated(impl, task, config, args):
    return harness.worker(__spec__.name, f"{impl}/{task}/{config}", args,
                          extra=["--frames", str(args.frames)])


def _agreement(config):
    """max |z − z_torch| / max |z_torch| of the B = 32 logits of qdaed and of the fused
    design (run in this process; the fused design last, as it replaces ``lstm.infer``)."""
    import numpy as np

    hidden, layers = (int(v) for v in config.split("x"))
    from qdaed.nn import lstm

    model, x = _setup(hidden, layers, 32)
    theirs = _runner("torch", "infer32", model, x)()
    scale = np.max(np.abs(theirs))
    infer = lstm.infer
    try:
        return {impl: float(np.max(np.abs(_runner(impl, "infer32", model, x)() - theirs))
                            / scale) for impl in ("qdaed", "fused_packed")}
    finally:
        lstm.infer = infer   # the fused runner replaced it


def _fmt_time(task, s):
    return f"{s * 1e6:.0f} µs" if task == "stream" else f"{s * 1e3:.0f} ms"


def render(results, agree, threads, load):
    lines = [SECTION, "",
             f"float32, T = {T} frames of I = {I} bins, C = {C}, mean pooling. `infer32` / "
             "`infer1`: forward to the logits of B = 32 / 1 clips (qdaed: "
             "`StudentLSTM.forward(x)`, no cache; PyTorch: the same network under "
             "`torch.no_grad()`); `stream`: one 10 ms frame at B = 1 with the state carried "
             "(qdaed: `nn.lstm.Inference.run`, PyTorch: `nn.LSTM` with (h, c) passed back), "
             "time per frame. PyTorch runs its CPU LSTM through oneDNN's fused RNN primitive; "
             "\"without oneDNN\" is the same call under "
             "`torch.backends.mkldnn.flags(enabled=False)`, PyTorch's own per-step LSTM; "
             "\"compiled loop\" is qdaed's call with its loop over time in one compiled "
             "call per layer (`QDAED_LSTM_STEPS=numba`, the same arithmetic; the default is "
             "the Python loop); "
             "\"qdaed's BLAS alone\" is qdaed's call with its LSTM cell kernels replaced by "
             "no-ops (`bench_student.blas_only`): its GEMMs, copies and Python loop, a lower "
             "bound for qdaed's per-step-GEMM design; \"fused packed\" is qdaed's model with "
             "its LSTM computed by `bench/fused_lstm.py` (the recurrent weights packed once, "
             "product and cell fused in one compiled loop over time, the batch split between "
             "the threads; not run by `stream`). Each (implementation, task) in a fresh "
             "subprocess, rounds "
             "alternating; medians over all rounds. Peak = the worker's resident-set "
             "high-water mark (VmHWM) over the timed runs, which start from the resident set "
             "after the warm-up runs (interpreter, libraries, compiled code, weights, input, "
             "and whatever each framework keeps between calls); in brackets, growth = peak − "
             "that start, what one run needs on top. Produced by "
             "`bench/bench_student_infer.py`.", "",
             "| config | task | qdaed | PyTorch | qdaed / PyTorch | PyTorch without oneDNN "
             "| qdaed's BLAS alone | qdaed, compiled loop | fused packed "
             "| qdaed peak (growth) MiB | PyTorch peak (growth) MiB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (config, task), r in results.items():
        q, t, n = r["qdaed"], r["torch"], r["torch_native"]
        qm, tm = statistics.median(q["times"]), statistics.median(t["times"])
        nm = statistics.median(n["times"])
        fm = statistics.median(r["blas_only"]["times"])
        pm = statistics.median(r["numba_loop"]["times"])
        um = statistics.median(r["fused_packed"]["times"]) if r["fused_packed"]["times"] else None
        fused = "—" if um is None else f"{_fmt_time(task, um)} (/ PyTorch: {um / tm:.2f})"
        lines.append(
            f"| H={config.replace('x', ' × ')} | {task} | {_fmt_time(task, qm)} "
            f"| {_fmt_time(task, tm)} | **{qm / tm:.2f}** "
            f"| {_fmt_time(task, nm)} (qdaed / it: {qm / nm:.2f}) "
            f"| {_fmt_time(task, fm)} (/ PyTorch: {fm / tm:.2f}) "
            f"| {_fmt_time(task, pm)} (qdaed / it: {qm / pm:.2f}) | {fused} "
            f"| {q['peak']:.0f} ({q['peak'] - q['warm']:.0f}) "
            f"| {t['peak']:.0f} ({t['peak'] - t['warm']:.0f}) |")
    lines += ["", "Per round (qdaed / PyTorch of the round's medians) and every repetition:", ""]
    for (config, task), r in results.items():
        lines.append(f"- {config} {task} per round: " + ", ".join(f"{v:.2f}" for v in r["ratios"]))
        for impl in _impls(task):
            s = harness.spread(r[impl]["times"])
            lines.append(f"- {config} {task} {impl}: median {_fmt_time(task, s.median)} "
                         f"[IQR {_fmt_time(task, s.q1)}–{_fmt_time(task, s.q3)}]: "
                         + ", ".join(_fmt_time(task, v) for v in r[impl]["times"]))
    lines += ["", "Logits against PyTorch's, B = 32: " + "; ".join(
        f"H={c}: " + ", ".join(f"{impl} max |Δz| / max |z| = {v:.1e}" for impl, v in a.items())
        for c, a in agree.items()), ""]
    return "\n".join(lines) + harness.footer(threads, *load)


def main(args):
    load0 = harness.load()
    configs, tasks = args.configs.split(","), args.tasks.split(",")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        sys.exit(f"--tasks: unknown {unknown}; expected some of {sorted(TASKS)}")
    agree = {c: _agreement(c) for c in configs}
    results = {}
    for config in configs:
        for task in tasks:
            harness.wait_idle(args.wait_idle)
            print(f"{config} {task} ...", file=sys.stderr, flush=True)
            r = {impl: {"times": [], "setup": [], "warm": [], "peak": []}
                 for impl in IMPLS}
            r["ratios"] = []
            for _ in range(args.rounds):
                one = {impl: _isolated(impl, task, config, args) for impl in _impls(task)}
                for impl, o in one.items():
                    r[impl]["times"] += o["times"]
                    r[impl]["setup"].append(o["setup_mib"])
                    r[impl]["warm"].append(o["warm_mib"])
                    r[impl]["peak"].append(o["run_peak_mib"])
                r["ratios"].append(statistics.median(one["qdaed"]["times"])
                                   / statistics.median(one["torch"]["times"]))
            for impl in _impls(task):
                r[impl]["setup"] = statistics.median(r[impl]["setup"])
                r[impl]["warm"] = statistics.median(r[impl]["warm"])
                r[impl]["peak"] = max(r[impl]["peak"])
            results[(config, task)] = r
    load1 = harness.load()
    text = render(results, agree, args.threads, (load0, load1))
    print(text)
    for (config, task), r in results.items():
        h, l = config.split("x")
        kind = " streaming" if task == "stream" else ""
        harness.headline(args, f"LSTM inference, B {TASKS[task]}{kind}, "
                         f"T {T if task != 'stream' else 1}, H {h} x {l}",
                         r["qdaed"]["times"], r["torch"]["times"])
    if args.write:
        harness.write_section(text, args.results)


if __name__ == "__main__":
    ARGS = _parse()
    harness.set_threads(ARGS.threads)
    if ARGS.worker:
        worker(ARGS.worker, ARGS)
    else:
        main(ARGS)
