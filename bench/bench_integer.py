"""The integer student's inference: qdaed's integer path vs qdaed's float path vs the TensorFlow
Lite Micro interpreter on the same .tflite file, with the peak memory of each.

Model: a seeded StudentLSTM (``--configs HxL``, 64 LFBE bins, 3 classes, mean pooling)
calibrated (``qdaed.integer.calibrate``) on 16 seeded normal clips, exported with
``qdaed.formats.tflite_export.export_tflite`` at batch 1 and ``--frames`` frames. One inference = one
clip (B = 1) from int8 input to scores:

  integer  ``IntegerStudent.forward`` (qdaed's int8 kernels, Numba)
  float    the float student the integer one was calibrated from (``deployed_logits`` + σ;
           qdaed's float32 LSTM kernels), on the same clip before quantization
  tflm     ``tflite_micro``'s Python interpreter on the exported file: ``reset()`` (the LSTM's
           state back to zero), ``set_input``, ``invoke``, ``get_output``

The three outputs are compared first (integer and TFLite Micro must agree to 0 LSB; exit 1
otherwise). Times: one process, ``--warmup`` runs of each, then ``--rounds`` rounds, each
running every implementation ``--repeats`` times in turn (the order alternates from round to
round), so a change of load hits all of them; per implementation the median over all its runs,
and the ratios of each round's medians (qdaed integer / TFLite Micro, qdaed float / TFLite
Micro). Peak memory: each implementation alone in a fresh child process (set-up, one warm-up
inference, VmHWM reset, then ``--memory-runs`` inferences; :func:`memory_worker`) reports its
VmRSS before the timed inferences, the VmHWM over them, and the whole process's VmHWM.
Threads: ``--threads`` (default 2) for OpenBLAS, Numba
and OpenMP; the TFLite Micro interpreter is single-threaded.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.bench_integer [--write]

``--write`` replaces (or appends) the "Integer student inference" section of this machine's
part of bench/RESULTS.md. Needs the ``tflm`` extra (``pip install ".[tflm]"``).
"""

from __future__ import annotations

import argparse
import os
import sys

from bench import harness

SECTION = "## Integer student inference"
IMPLS = ("integer", "float", "tflm")
BINS, CLASSES = 64, 3


def _parse_configs(text):
    out = []
    for item in text.split(","):
        h, _, l = item.strip().partition("x")
        out.append((int(h), int(l or 1)))
    return out


def build(hidden, layers, frames, seed=0):
    """(float StudentLSTM, IntegerStudent, .tflite bytes, clip (1, frames, BINS) float32)."""
    import numpy as np

    from qdaed.integer import calibrate
    from qdaed.formats.tflite_export import export_tflite
    from qdaed.models.student import StudentLSTM

    model = StudentLSTM(BINS, hidden, layers, CLASSES, seed=seed)
    rng = np.random.default_rng(seed)
    rep = rng.standard_normal((16, frames, BINS)).astype(np.float32)
    integer = calibrate(model, rep)
    clip = rng.standard_normal((1, frames, BINS)).astype(np.float32)
    return model, integer, export_tflite(integer, frames, 1), clip


def runners(hidden, layers, frames, impls=IMPLS):
    """{impl: a function running one inference}, and the outputs of one run of each."""
    import numpy as np

    from qdaed.models.predict import deployed_logits

    model, integer, data, clip = build(hidden, layers, frames)
    xq = integer.quantize_input(clip)
    run = {}
    if "integer" in impls:
        run["integer"] = lambda: integer.forward(xq).scores
    if "float" in impls:
        run["float"] = lambda: 1.0 / (1.0 + np.exp(-deployed_logits(model, clip)))
    if "tflm" in impls:
        from tflite_micro.python.tflite_micro import runtime

        interp = runtime.Interpreter.from_bytes(data, arena_size=10 * len(data) + (64 << 20))

        def tflm():
            interp.reset()
            interp.set_input(xq, 0)
            interp.invoke()
            return np.array(interp.get_output(0))
        run["tflm"] = tflm
    return run, len(data)


def memory_worker(impl, hidden, layers, frames, runs, files):
    """Peak memory of ``impl`` alone: set-up, one warm-up inference (Numba compiles or loads
    its cache), VmHWM reset to the current RSS (``/proc/self/clear_refs``), ``runs``
    inferences. TFLite Micro's worker reads the parent's .tflite and int8 clip from
    ``files`` and imports neither qdaed nor Numba."""
    import numpy as np

    if impl == "tflm":
        from tflite_micro.python.tflite_micro import runtime

        data = open(os.path.join(files, "model.tflite"), "rb").read()
        xq = np.load(os.path.join(files, "x.npy"), allow_pickle=False)
        interp = runtime.Interpreter.from_bytes(data, arena_size=10 * len(data) + (64 << 20))

        def f():
            interp.reset()
            interp.set_input(xq, 0)
            interp.invoke()
            return np.array(interp.get_output(0))
    else:
        f = runners(hidden, layers, frames, (impl,))[0][impl]
    f()
    setup_peak = harness.status_mib("VmHWM")
    base = harness.status_mib("VmRSS")
    harness.reset_peak_rss()                         # VmHWM back to the current RSS
    for _ in range(runs):
        f()
    peak = harness.status_mib("VmHWM")
    harness.emit({"impl": impl, "base_mib": base, "peak_mib": peak,
                  "process_peak_mib": max(setup_peak, peak)})


def time_config(hidden, layers, args):
    import numpy as np

    run, size = runners(hidden, layers, args.frames)
    outs = {k: f() for k, f in run.items()}
    same = bool(np.array_equal(outs["integer"], outs["tflm"]))
    float_gap = float(np.max(np.abs((outs["tflm"].astype(np.float64) + 128) / 256
                                    - outs["float"])))
    for _ in range(args.warmup):
        for f in run.values():
            f()
    times = {k: [] for k in run}
    ratios = []
    for r in range(args.rounds):
        order = list(run) if r % 2 == 0 else list(run)[::-1]
        med = {}
        for k in order:
            ts = harness.time_calls(run[k], args.repeats, 0)
            times[k] += ts
            med[k] = float(np.median(ts))
        ratios.append({"integer/tflm": med["integer"] / med["tflm"],
                       "float/tflm": med["float"] / med["tflm"],
                       "integer/float": med["integer"] / med["float"]})
    return {"config": f"{hidden}x{layers}", "tflite_bytes": size, "bit_exact": same,
            "float_vs_tflm_max_abs": float_gap,
            "median": {k: float(np.median(v)) for k, v in times.items()},
            "spread": {k: harness.spread(v) for k, v in times.items()},
            "ratios": ratios}


def _memory(hidden, layers, args):
    import tempfile

    import numpy as np

    _, integer, data, clip = build(hidden, layers, args.frames)
    out = {}
    with tempfile.TemporaryDirectory() as files:
        with open(os.path.join(files, "model.tflite"), "wb") as fh:
            fh.write(data)
        np.save(os.path.join(files, "x.npy"), integer.quantize_input(clip), allow_pickle=False)
        for impl in IMPLS:
            out[impl] = harness.worker(
                __spec__.name, impl, args,
                extra=["--configs", f"{hidden}x{layers}", "--frames", str(args.frames),
                       "--memory-runs", str(args.memory_runs), "--files", files])
    return out


def main():
    p = harness.parser(__doc__, repeats=5, warmup=2, rounds=3)
    p.add_argument("--configs", default="32x1,512x2",
                   help="student shapes HxL (default 32x1 = the demo and real runs' student, "
                        "512x2 = the paper preset's)")
    p.add_argument("--frames", type=int, default=1000, help="frames per clip (default 1000)")
    p.add_argument("--memory-runs", type=int, default=3,
                   help="inferences in each memory worker (default 3)")
    p.add_argument("--files", help=argparse.SUPPRESS)    # the memory worker's inputs
    args = p.parse_args()
    harness.set_threads(args.threads)                      # before NumPy/Numba load
    configs = _parse_configs(args.configs)
    if args.worker:                                        # a memory worker: --worker IMPL
        (h, l), = configs
        return memory_worker(args.worker, h, l, args.frames, args.memory_runs, args.files)

    rows, load = [], [harness.load()]
    for h, l in configs:
        harness.wait_idle(args.wait_idle)
        row = time_config(h, l, args)
        row["memory"] = _memory(h, l, args)
        rows.append(row)
        load.append(harness.load())
        m = row["median"]
        print(f"{row['config']}: integer {m['integer'] * 1e3:.2f} ms, float "
              f"{m['float'] * 1e3:.2f} ms, TFLM {m['tflm'] * 1e3:.2f} ms; integer/TFLM per "
              f"round " + ", ".join(f"{r['integer/tflm']:.2f}" for r in row["ratios"])
              + f"; 0 LSB: {row['bit_exact']}", flush=True)
    text = _markdown(rows, args, load)
    print()
    print(text)
    if not all(r["bit_exact"] for r in rows):
        sys.exit("qdaed's integer scores differ from TFLite Micro's")
    if args.write:
        harness.write_section(text, args.results)


def _versions():
    import numba
    import numpy as np

    try:
        from importlib.metadata import version

        tflm = version("tflite-micro")
    except Exception:        # noqa: BLE001 -- a version string only
        tflm = "unknown"
    return f"numpy {np.__version__}, numba {numba.__version__}, tflite-micro {tflm}"


def _markdown(rows, args, load):
    lines = [
        SECTION, "",
        f"One clip (B = 1, {args.frames} frames × {BINS} bins, {CLASSES} classes) from input to "
        "scores: qdaed's integer student (int8 kernels), the float student it was calibrated "
        "from (qdaed's float32 kernels) and TensorFlow Lite Micro's Python interpreter on the "
        "exported .tflite (state reset, set input, invoke, get output). One process; "
        f"{args.warmup} warm-up run(s) each, then {args.rounds} round(s) of {args.repeats} runs "
        "per implementation, alternating; medians over all runs (interquartile ranges below "
        "the table), ratios per round. Peak memory: "
        "a fresh process per implementation (TFLite Micro's without qdaed or Numba); its VmHWM "
        f"over {args.memory_runs} inference(s) after set-up and a warm-up run (VmHWM reset), "
        "its VmRSS before them in brackets, and the whole process's VmHWM (set-up included). "
        f"{args.threads} threads for OpenBLAS and Numba; TFLite Micro runs on one.", "",
        "| student | .tflite bytes | qdaed integer (ms) | qdaed float (ms) | TFLM (ms) | "
        "integer / TFLM per round | float / TFLM per round | inference peak MiB (RSS before) "
        "integer / float / TFLM | process peak MiB integer / float / TFLM | 0 LSB |",
        "|---|---:|---:|---:|---:|---|---|---|---|---|",
    ]
    for r in rows:
        m, mem = r["median"], r["memory"]
        lines.append(
            f"| {r['config']} | {r['tflite_bytes']:,} | {m['integer'] * 1e3:.2f} | "
            f"{m['float'] * 1e3:.2f} | {m['tflm'] * 1e3:.2f} | "
            + ", ".join(f"{x['integer/tflm']:.2f}" for x in r["ratios"]) + " | "
            + ", ".join(f"{x['float/tflm']:.2f}" for x in r["ratios"]) + " | "
            + " / ".join(f"{mem[k]['peak_mib']:.0f} ({mem[k]['base_mib']:.0f})" for k in IMPLS)
            + " | " + " / ".join(f"{mem[k]['process_peak_mib']:.0f}" for k in IMPLS)
            + f" | {'yes' if r['bit_exact'] else 'NO'} |")
    lines += ["", "Interquartile ranges (ms): " + "; ".join(
        f"{r['config']} " + ", ".join(f"{k} {s.ms(2)}" for k, s in r["spread"].items())
        for r in rows) + ".",
        "", f"Versions beyond the list below: {_versions()}. 1-minute load average before and "
        "after each student: " + ", ".join(f"{v:.1f}" for v in load) + ".", ""]
    return "\n".join(lines) + harness.footer(args.threads, load[0], load[-1])


if __name__ == "__main__":
    main()
