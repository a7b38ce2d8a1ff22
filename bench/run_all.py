"""Every benchmark, one after the other, rewriting this machine's part of bench/RESULTS.md.

    python bench/run_all.py [--quick | --smoke] [--only NAME,...] [--wait-idle MINUTES]

(the same as ``python -m bench.run_all`` from the checkout's root). Runs, in this order, each
in its own process with ``--write``: bench_student (LSTM training step), bench_student_parts
(that step part by part, and the floor its products set), lstm_designs (LSTM designs measured
against qdaed's and not adopted), bench_student_infer (LSTM inference and the streaming step),
bench_integer (the integer student against qdaed's float path and TFLite Micro), bench_resnet
(ResNet-50), bench_detect (detection on long recordings), paper_runtime (the
paper preset's runtime), cold_start (Numba compile time, cache, start-up). Each writes its
section into the part of RESULTS.md for this machine (CPU model and vector extensions, see
bench/harness.py); then that part is rebuilt in this order under a "This run" section with
the machine's facts, the headline ratios, and per benchmark its wall time and the 1-minute
load average before and after (the benchmarks' own 2 threads raise it toward 2; well above
2, another process shared the cores: trust that section less). Other machines' parts are
kept as they are.

``--quick`` runs only the headline workloads at their full shapes with few repetitions
(LSTM training step at H 256 × 2 and 512 × 2, LSTM inference at B 32 and B 1, ResNet-50
training step at B 8, each against PyTorch) and prints the ratios: well under 10 minutes on
2 cores, and it writes nothing unless ``--write``. ``--smoke`` runs every benchmark but
paper_runtime and cold_start (which have no tiny size) at tiny sizes into a scratch copy of
RESULTS.md (or ``--results``): a check that they run, a few minutes, figures meaningless.

The OpenBLAS variables that halve its GEMM speed on some machines (OPENBLAS_CORETYPE,
OPENBLAS_L2_SIZE) are removed from the benchmarks' environment, as bench/README.md
prescribes. Nothing is lost when a benchmark fails: its section from the previous
RESULTS.md is kept and marked as not re-run, and the script exits 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

if __name__ == "__main__" and not __package__:
    # `python bench/run_all.py`: run as the module bench.run_all from the checkout's root,
    # where every benchmark is a module of the bench package.
    sys.exit(subprocess.call([sys.executable, "-m", "bench.run_all", *sys.argv[1:]],
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench import harness  # noqa: E402

THREADS = 2
# name: (module, full options, --quick options or None (not in --quick), --smoke options,
#        its section's title)
RUNS = {
    "student": ("bench.bench_student", ["--repeats", "5", "--rounds", "3", "--torch-native",
                                        "--blas-floor", "--numba-loop"],
                ["--configs", "256x2,512x2", "--repeats", "2", "--rounds", "1", "--warmup",
                 "1", "--no-naive", "--numba-loop"],
                ["--configs", "16x1", "--steps", "20", "--repeats", "1", "--rounds", "1",
                 "--warmup", "1"],
                "StudentLSTM training step"),
    "student_parts": ("bench.bench_student_parts", [], None,
                      ["--configs", "16x1", "--steps", "20", "--repeats", "1", "--rounds",
                       "1", "--warmup", "1", "--sample", "2"],
                      "Where the StudentLSTM training step goes"),
    "lstm_designs": ("bench.lstm_designs", ["--repeats", "3", "--rounds", "5"], None,
                     ["--configs", "16x2", "--steps", "20", "--repeats", "1", "--rounds", "1"],
                     "LSTM designs measured and not adopted"),
    "recurrent_product": ("bench.recurrent_product", [], [],
                          ["--configs", "4x8,1x8", "--repeats", "20", "--rounds", "1",
                           "--warmup", "1"],
                          "Recurrent product, one step: BLAS against a kernel on weights "
                          "packed once"),
    "student_infer": ("bench.bench_student_infer", ["--rounds", "3", "--repeats", "5"],
                      ["--configs", "512x2", "--tasks", "infer32,infer1", "--rounds", "1",
                       "--repeats", "3", "--warmup", "1"],
                      ["--rounds", "1", "--repeats", "1", "--frames", "10", "--configs",
                       "16x1"],
                      "StudentLSTM inference"),
    "integer": ("bench.bench_integer", [], None,
                ["--configs", "16x1", "--frames", "20", "--repeats", "1", "--rounds", "1",
                 "--warmup", "1", "--memory-runs", "1"],
                "Integer student inference"),
    "resnet": ("bench.bench_resnet", ["--repeats", "5", "--warmup", "1"],
               ["--tasks", "train", "--repeats", "2", "--warmup", "1"],
               ["--tasks", "train,infer1", "--frames", "64", "--bins", "32", "--repeats", "1",
                "--warmup", "1"],
               "ResNet teacher"),
    "resnet_parts": ("bench.resnet_parts", [], ["--rounds", "1", "--repeats", "2"],
                     ["--nets", "18x4:2x64x32", "--rounds", "1", "--repeats", "1", "--warmup",
                      "1"],
                     "Where the ResNet training step goes"),
    "detect": ("bench.bench_detect", ["--minutes", "10", "--memory-minutes", "10,60"], None,
               ["--minutes", "0.1", "--presets", "demo", "--repeats", "1"],
               "Detection on long recordings"),
    # no --smoke options: at their smallest these still train the paper preset's networks or
    # run the tiny pipeline twice with a cold Numba cache (tens of minutes on a busy machine)
    "paper_runtime": ("bench.paper_runtime", [], None, None, "Paper preset runtime"),
    "cold_start": ("bench.cold_start", [], None, None, "Cold start"),
}
RUN_TITLE = "This run"


def earlier_rows(section):
    """(start, {benchmark: row cells}) from the "This run" section of an earlier run."""
    m = re.search(r"started (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", section)
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in RUNS:
            rows[cells[0]] = cells
    return (m.group(1) + " UTC" if m else "an earlier run"), rows


def run_section(args, start, log, removed, headlines, earlier):
    """The "This run" section: command, machine, headline ratios, one row per benchmark."""
    mode = " --quick" if args.quick else (" --smoke" if args.smoke else "")
    lines = [f"## {RUN_TITLE}", "",
             f"`python bench/run_all.py{mode}{' --only ' + args.only if args.only else ''}`, "
             f"started {start:%Y-%m-%d %H:%M} UTC"
             + (f"; removed from the benchmarks' environment: {', '.join(removed)}"
                if removed else "") + ".", "", *harness.machine_lines(THREADS), ""]
    if headlines:
        lines += ["Headline ratios (medians of this run; below 1 is faster than PyTorch):", "",
                  harness.headline_table(headlines), ""]
    lines += ["| benchmark | module | status | wall | 1-min load before → after |",
              "|---|---|---|---:|---|"]
    rows = {name: [name, f"`{module}`", "ok" if status == 0 else f"FAILED ({status})",
                   f"{wall / 60:.1f} min", f"{load0:.2f} → {load1:.2f}"]
            for name, module, status, wall, load0, load1 in log}
    # with --only, the benchmarks not re-run keep their row from the run that wrote them
    then, before = earlier_rows(earlier)
    for name, cells in before.items():
        if name not in rows and len(cells) == 5:
            mark = "" if "(run started" in cells[2] else f" (run started {then})"
            rows[name] = cells[:2] + [cells[2] + mark] + cells[3:]
    lines += ["| " + " | ".join(rows[name]) + " |" for name in RUNS if name in rows]
    if args.smoke:
        lines += ["", "**A --smoke run: tiny sizes, figures meaningless.**"]
    elif args.quick:
        lines += ["", "**A --quick run: few repetitions.**"]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="the headline ratios only, few repetitions (under 10 minutes)")
    mode.add_argument("--smoke", action="store_true",
                      help="every benchmark at tiny sizes into a scratch RESULTS.md")
    p.add_argument("--write", action="store_true",
                   help="with --quick: record the quick figures in RESULTS.md too")
    p.add_argument("--only", help="comma-separated subset of " + ",".join(RUNS))
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="MINUTES",
                   help="before each benchmark, wait up to this long for the load to drop")
    p.add_argument("--results", help="the results file (default bench/RESULTS.md; with "
                                     "--smoke, a scratch copy of it)")
    args = p.parse_args()
    names = [n for n in RUNS if not args.quick or RUNS[n][2] is not None]
    if args.only:
        names = args.only.split(",")
        unknown = [n for n in names if n not in RUNS]
        if unknown:
            p.error(f"--only: unknown {unknown}; expected some of {list(RUNS)}")
    results = args.results
    if results is None and args.smoke:
        results = os.path.join(tempfile.mkdtemp(prefix="qdaed-bench-smoke-"), "RESULTS.md")
        if os.path.exists(harness.RESULTS):
            shutil.copyfile(harness.RESULTS, results)
    results = results or harness.RESULTS
    write = not args.quick or args.write

    harness.set_threads(THREADS)
    drop = harness.SLOW_OPENBLAS_VARS
    env = harness.child_env(THREADS, drop=drop)
    removed = [k for k in drop if k in os.environ]
    for k in drop:                 # and from this process, which reports the machine
        os.environ.pop(k, None)
    old = harness.read_machine(results)
    headlines = os.path.join(tempfile.mkdtemp(prefix="qdaed-bench-"), "headlines.jsonl")
    open(headlines, "w").close()
    log, failed = [], []
    start = datetime.datetime.now(datetime.timezone.utc)
    for name in names:
        module, full, quick, smoke, _ = RUNS[name]
        options = quick if args.quick else (smoke if args.smoke else full)
        if options is None:
            continue
        harness.wait_idle(args.wait_idle)
        cmd = [sys.executable, "-m", module, *options, "--headlines", headlines,
               *(["--write", "--results", results] if write else [])]
        print(f"== {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        load0, t0 = harness.load(), time.perf_counter()
        status = subprocess.run(cmd, env=env, cwd=harness.ROOT).returncode
        wall, load1 = time.perf_counter() - t0, harness.load()
        if status != 0:
            failed.append(name)
        log.append((name, module, status, wall, load0, load1))

    with open(headlines) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print("\n" + harness.headline_table(rows) if rows else "\n(no headline ratios)")
    if write:
        new = harness.read_machine(results)
        sections = [run_section(args, start, log, removed, rows, old.get(RUN_TITLE, ""))]
        for name, (*_, title) in RUNS.items():
            text = new.get(title)
            if name in failed or text is None:
                text = old.get(title)
                if text is None:
                    continue
                if name in failed:
                    first, rest = text.split("\n", 1)
                    text = (first + " (not re-run: the benchmark failed; figures from an "
                            "earlier run)\n" + rest)
            sections.append(text)
        # sections no benchmark produces (written by hand) are kept after the others
        known = {RUNS[n][-1] for n in RUNS} | {RUN_TITLE}
        sections += [t for title, t in new.items() if title not in known]
        harness.write_machine(sections, results)
        print(f"run_all: wrote {results}", file=sys.stderr)
    for name in failed:
        print(f"run_all: {name} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
