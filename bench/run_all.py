"""Every benchmark, one after the other, rewriting bench/RESULTS.md.

    python bench/run_all.py [--quick] [--only NAME,...] [--wait-idle MINUTES]

Runs, in this order, each in its own process with ``--write`` (each owns one section of
RESULTS.md; see bench/README.md): bench_student.py (LSTM training step),
bench_student_parts.py (that step part by part, and the floor its products set),
lstm_designs.py (LSTM designs measured against qdaed's and not adopted),
bench_student_infer.py (LSTM inference and the streaming step), bench_integer.py (the
integer student against qdaed's float path and TFLite Micro), bench_resnet.py (ResNet-50),
bench_detect.py (detection on long recordings), paper_runtime.py (the paper preset's
runtime), cold_start.py (Numba compile time, cache, start-up). Then RESULTS.md is rebuilt in that order under a
header with the machine, the versions and thread pools, and per benchmark its wall time and
the 1-minute load average before and after (the benchmarks' own 2 threads raise it toward 2,
and a 'before' still carries the previous benchmark; a figure well above 2 means another
process shared the cores: trust such a section less). The per-round spread is in each
section.

The OpenBLAS variables that halve its GEMM speed on the reference machine
(OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE) are removed from the benchmarks' environment, as
bench/README.md prescribes. Nothing is lost when a benchmark fails: its section from the
previous RESULTS.md is kept and marked as not re-run, and the script exits 1. ``--quick``
runs fewer repetitions (a check that everything runs, not figures to publish).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time

from thread_env import child_env

BENCH = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(BENCH, "RESULTS.md")

# name: (script, full options, --quick options, its section heading)
RUNS = {
    "student": ("bench_student.py", ["--repeats", "5", "--rounds", "3", "--torch-native",
                                     "--blas-floor"],
                ["--repeats", "2", "--rounds", "1", "--warmup", "1", "--configs", "128x1"],
                "## StudentLSTM training step"),
    "student_parts": ("bench_student_parts.py", [],
                      ["--configs", "128x1", "--steps", "100", "--repeats", "1", "--rounds",
                       "1", "--warmup", "1", "--sample", "5"],
                      "## Where the StudentLSTM training step goes"),
    "lstm_designs": ("lstm_designs.py", ["--repeats", "3", "--rounds", "5"],
                     ["--configs", "64x2", "--steps", "50", "--repeats", "1", "--rounds", "1"],
                     "## LSTM designs measured and not adopted"),
    "student_infer": ("bench_student_infer.py", ["--rounds", "3", "--repeats", "5"],
                      ["--rounds", "1", "--repeats", "1", "--frames", "50",
                       "--configs", "128x1"],
                      "## StudentLSTM inference"),
    "integer": ("bench_integer.py", [],
                ["--configs", "32x1", "--frames", "100", "--repeats", "2", "--rounds", "1",
                 "--warmup", "1", "--memory-runs", "1"],
                "## Integer student inference"),
    "resnet": ("bench_resnet.py", ["--repeats", "5", "--warmup", "1"],
               ["--repeats", "1", "--warmup", "1", "--tasks", "infer1"],
               "## ResNet teacher"),
    "detect": ("bench_detect.py", ["--minutes", "10", "--memory-minutes", "10,60"],
               ["--minutes", "1", "--presets", "demo", "--repeats", "1"],
               "## Detection on long recordings"),
    "paper_runtime": ("paper_runtime.py", [], ["--steps", "1", "--clips", "2"],
                      "## Paper preset runtime"),
    "cold_start": ("cold_start.py", [], ["--help-runs", "3"], "## Cold start"),
}
HEADER = "## This run"


def sections(text):
    """{heading: section text} of a RESULTS.md ('## ' headings)."""
    out, heading, buf = {}, None, []
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            if heading is not None:
                out[heading] = "".join(buf)
            # keyed by the plain heading, without a "(not re-run: …)" mark of an earlier run
            heading, buf = line.rstrip("\n").split(" (not re-run", 1)[0], [line]
        elif heading is not None:
            buf.append(line)
    if heading is not None:
        out[heading] = "".join(buf)
    return out


def earlier_rows(header):
    """(start, {benchmark: row cells}) from the "This run" section of an earlier run."""
    m = re.search(r"started (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", header)
    rows = {}
    for line in header.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in RUNS:
            rows[cells[0]] = cells
    return (m.group(1) + " UTC" if m else "an earlier run"), rows


MACHINE = r"""
import json, os, platform
import numpy as np, numba
import qdaed.kernels  # noqa: F401  (selects Numba's threading layer as qdaed runs it)
out = [f"- machine: {platform.machine()}, {os.cpu_count()} logical cores, {platform.platform()}"]
try:
    with open("/proc/cpuinfo") as f:
        out.append("- CPU: " + next(l.split(":", 1)[1].strip() for l in f
                                    if l.startswith("model name")))
except (OSError, StopIteration):
    pass
v = [f"Python {platform.python_version()}", f"numpy {np.__version__}",
     f"numba {numba.__version__}"]
try:
    import torch
    v.append(f"torch {torch.__version__} (threads {torch.get_num_threads()})")
except ImportError:
    v.append("torch not installed (the PyTorch columns need it)")
out.append("- versions: " + ", ".join(v))
try:
    from threadpoolctl import threadpool_info
    out.append("- thread pools (threadpoolctl): " + "; ".join(
        f"{d['internal_api']} {d['version']} ({d.get('architecture', '?')}, "
        f"{d['num_threads']} threads)" for d in threadpool_info()))
except ImportError:
    out.append("- thread pools: threadpoolctl not installed")
out.append(f"- Numba threading layer: {numba.config.THREADING_LAYER}, "
           f"{numba.config.NUMBA_NUM_THREADS} threads")
print(json.dumps(out))
"""


def machine(env):
    """The machine, versions and thread pools as the benchmarks see them (a child process
    with the benchmarks' environment)."""
    import json

    res = subprocess.run([sys.executable, "-c", MACHINE], env=env, capture_output=True,
                         text=True)
    if res.returncode != 0:
        return [f"- (machine information unavailable: {res.stderr.strip().splitlines()[-1]})"]
    return json.loads(res.stdout.strip().splitlines()[-1])


def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".RESULTS.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def wait_idle(minutes, threshold=0.5):
    deadline = time.time() + 60 * minutes
    while os.getloadavg()[0] >= threshold and time.time() < deadline:
        time.sleep(5)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    p.add_argument("--only", help="comma-separated subset of " + ",".join(RUNS))
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="MINUTES",
                   help="before each benchmark, wait up to this long for the load to drop")
    args = p.parse_args()
    names = list(RUNS) if not args.only else args.only.split(",")
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        p.error(f"--only: unknown {unknown}; expected some of {list(RUNS)}")

    old = open(RESULTS).read() if os.path.exists(RESULTS) else ""
    old_sections = sections(old)
    env = child_env(2, drop=("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"))
    removed = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    log, failed = [], []
    start = datetime.datetime.now(datetime.timezone.utc)
    for name in names:
        script, full, quick, heading = RUNS[name]
        wait_idle(args.wait_idle)
        cmd = [sys.executable, os.path.join(BENCH, script), *(quick if args.quick else full),
               "--write"]
        print(f"== {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        load0, t0 = os.getloadavg()[0], time.perf_counter()
        status = subprocess.run(cmd, env=env).returncode
        wall, load1 = time.perf_counter() - t0, os.getloadavg()[0]
        if status != 0:
            failed.append(name)
        log.append((name, script, status, wall, load0, load1))

    new_sections = sections(open(RESULTS).read()) if os.path.exists(RESULTS) else {}
    lines = ["# Benchmark results", "", HEADER, "",
             f"`python bench/run_all.py{' --quick' if args.quick else ''}"
             f"{' --only ' + args.only if args.only else ''}`, started {start:%Y-%m-%d %H:%M} "
             f"UTC{'; removed from the benchmarks environment: ' + ', '.join(removed) if removed else ''}.",
             "", *machine(env), "",
             "| benchmark | script | status | wall | 1-min load before → after |",
             "|---|---|---|---:|---|"]
    rows = {name: [name, f"`{script}`", "ok" if status == 0 else f"FAILED ({status})",
                   f"{wall / 60:.1f} min", f"{load0:.2f} → {load1:.2f}"]
            for name, script, status, wall, load0, load1 in log}
    # with --only, the benchmarks not re-run keep their row from the run that wrote them
    then, before = earlier_rows(old_sections.get(HEADER, ""))
    for name, cells in before.items():
        if name not in rows and len(cells) == 5:
            mark = "" if "(run started" in cells[2] else f" (run started {then})"
            rows[name] = cells[:2] + [cells[2] + mark] + cells[3:]
    lines += ["| " + " | ".join(rows[name]) + " |" for name in RUNS if name in rows]
    if args.quick:
        lines += ["", "**A --quick run: few repetitions, figures not for publication.**"]
    body = ["\n".join(lines) + "\n"]
    for name, (_, _, _, heading) in RUNS.items():
        text = new_sections.get(heading)
        if name in failed or text is None:
            text = old_sections.get(heading)
            if text is None:
                continue
            if name in names:
                text = text.replace(heading, heading + " (not re-run: the benchmark failed; "
                                    "figures from an earlier run)", 1)
        body.append(text.rstrip("\n") + "\n")
    # sections this script does not produce (written by hand) are kept after the others
    known = {h for *_, h in RUNS.values()} | {HEADER}
    for heading, text in new_sections.items():
        if heading not in known and not heading.startswith(HEADER):
            body.append(text.rstrip("\n") + "\n")
    write_atomic(RESULTS, "\n".join(body))
    for name in failed:
        print(f"run_all: {name} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
