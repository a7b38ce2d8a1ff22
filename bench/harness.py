"""The one timing harness of the benchmarks: thread pools, warm-up and repeats, rounds that
alternate implementations (in this process or each in a fresh worker process), the spread of
the times, the machine's facts, and the one writer of bench/RESULTS.md.

A benchmark is a module of this package, run from the checkout's root::

    python -m bench.bench_student --write

Its shape (bench_student.py is the fullest example)::

    from bench import harness

    def main():
        p = harness.parser(__doc__)                  # --threads, --repeats, --warmup, ...
        p.add_argument("--configs", default="512x2")
        args = p.parse_args()
        harness.set_threads(args.threads)            # before NumPy, Numba or torch load
        import numpy as np
        ...
        if args.worker:                              # inside a fresh worker process
            run = {"qdaed": ..., "torch": ...}[args.worker]
            harness.emit(harness.time_calls(run, args.repeats, args.warmup))
            return
        load0 = harness.load()
        times, ratios = harness.rounds_in_workers(__spec__.name, ["qdaed", "torch"], args,
                                                   extra=["--configs", args.configs],
                                                   ratio=("qdaed", "torch"))
        s = harness.spread(times["qdaed"])           # median, q1, q3; s.ms() for a table
        text = ("## My benchmark\\n\\n" + table
                + harness.footer(args.threads, load0, harness.load()))  # machine, command
        harness.headline(args, "LSTM training, H 512 x 2", times["qdaed"], times["torch"])
        if args.write:
            harness.write_section(text, args.results)  # this machine's part of RESULTS.md

    if __name__ == "__main__":
        main()

Then add it to RUNS in run_all.py (full, --quick and --smoke options, section title).

The harness lives in bench/, not in qdaed/: nothing in the library times itself, and the
machine facts it gathers (threadpoolctl, torch) are benchmark concerns. It imports only the
standard library at module level, so a script can size the thread pools after importing it;
NumPy, threadpoolctl and torch are imported inside the functions that report on them.

RESULTS.md holds one part per machine, ``## Machine: <CPU model> · <vector extensions>``,
each with the sections of the benchmarks run there (``### ...``): a run replaces its own
machine's sections and leaves every other machine's figures as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
# Set on some machines (the one of the AVX2 figures among them); they roughly halve
# OpenBLAS's GEMM speed, so benchmark commands unset them (tests and CI keep them).
SLOW_OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# The vector extensions that decide which kernels BLAS, oneDNN and LLVM pick, in the order
# they are listed in a machine's key.
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                "avx512_vnni", "avx512_bf16", "amx_tile", "asimd", "sve")
TITLE = "# Benchmark results"
MACHINE_PREFIX = "## Machine: "
RUN_HEADING = "## This run"
RESULTS_INTRO = (
    "One part per machine the benchmarks ran on, keyed by CPU model and vector extensions "
    "(`## Machine: ...`): a run replaces its own machine's sections and keeps every other "
    "machine's figures. Written by `bench/harness.py` (`python bench/run_all.py`, or one "
    "script with `--write`); see bench/README.md.")


# ---- thread pools -----------------------------------------------------------------------

def early_args(parser, module_name):
    """A script's arguments when it runs as ``__main__``, with every thread pool set to
    ``--threads`` before NumPy, Numba or torch load; None when the module is imported."""
    if module_name != "__main__":
        return None
    args = parser.parse_args()
    set_threads(args.threads)
    return args


def set_threads(threads, env=None):
    """Every pool (OpenMP, OpenBLAS, MKL, Numba) at ``threads`` in ``env`` (default: this
    process, which must not have loaded NumPy, Numba or torch yet: pools are sized on load)."""
    env = os.environ if env is None else env
    env.update({var: str(threads) for var in THREAD_VARS})
    return env


def child_env(threads, drop=(), **extra):
    """A worker's environment: this process's without ``drop``, every pool at ``threads``,
    ``extra`` set, and the checkout first on PYTHONPATH (so the worker times this code)."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    set_threads(threads, env)
    env.update(extra)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def torch_threads(threads):
    """torch at ``threads`` intra-op threads (after the environment set its OpenMP pool)."""
    import torch

    torch.set_num_threads(threads)
    return torch


# ---- options ------------------------------------------------------------------------------

def parser(doc, repeats=5, warmup=2, rounds=3):
    """The options every benchmark shares (one default each, overridable per script):
    --threads, --repeats, --warmup, --rounds, --wait-idle, --write, --results, --headlines,
    and the internal --worker."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2,
                   help="threads of every pool and of torch (default 2)")
    p.add_argument("--repeats", type=int, default=repeats, help="timed repetitions per round")
    p.add_argument("--warmup", type=int, default=warmup, help="untimed calls before them")
    p.add_argument("--rounds", type=int, default=rounds,
                   help="rounds alternating the implementations")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="MINUTES",
                   help="on a shared machine: wait up to this long for the 1-minute load "
                        "average to fall below 0.5 before each configuration")
    p.add_argument("--write", action="store_true",
                   help="replace this benchmark's section of this machine's part of RESULTS.md")
    p.add_argument("--results", default=RESULTS, help=argparse.SUPPRESS)   # run_all, tests
    p.add_argument("--headlines", help=argparse.SUPPRESS)    # run_all: a JSON-lines file
    p.add_argument("--worker", help=argparse.SUPPRESS)       # internal: time one thing
    return p


def worker_args(args, exclude=()):
    """The shared options of ``args`` as a worker's command line (not --write, --worker)."""
    out = []
    for name in ("threads", "repeats", "warmup"):
        if name not in exclude:
            out += [f"--{name}", str(getattr(args, name))]
    return out


# ---- timing -------------------------------------------------------------------------------

def time_calls(f, repeats, warmup=1):
    """Seconds of each of ``repeats`` calls of ``f()`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        f()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        out.append(time.perf_counter() - t0)
    return out


def timed(f, *a, **k):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = f(*a, **k)
    return time.perf_counter() - t0, out


@dataclass(frozen=True)
class Spread:
    """Median and interquartile range of a list of times (seconds)."""
    median: float
    q1: float
    q3: float
    n: int

    @property
    def iqr(self):
        return self.q3 - self.q1

    def ms(self, digits=0):
        """'median [q1–q3]' in milliseconds."""
        f = f"{{:.{digits}f}}"
        med, q1, q3 = (f.format(1e3 * v) for v in (self.median, self.q1, self.q3))
        return f"{med} [{q1}–{q3}]"


def spread(times):
    """Spread of ``times`` (quartiles by linear interpolation; one value: all three equal)."""
    v = sorted(times)
    if not v:
        raise ValueError("no times")
    if len(v) == 1:
        return Spread(v[0], v[0], v[0], 1)
    q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
    return Spread(statistics.median(v), q1, q3, len(v))


def alternate(runs, rounds, repeats, warmup=1):
    """{name: times} of the callables in ``runs`` ({name: f}), timed in this process in
    ``rounds`` rounds, each calling every implementation in turn (warm-up before the first
    round only), so that a change of load during the run hits all of them."""
    for f in runs.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for k, f in runs.items():
            times[k] += time_calls(f, repeats, 0)
    return times


def emit(result):
    """A worker's answer: one JSON line, the last on its standard output."""
    print(json.dumps(result), flush=True)


def worker(module, impl, args, extra=(), env=None, timeout=None):
    """The JSON a fresh ``python -m module --worker impl`` process emits: ``args``' shared
    options and ``extra`` on its command line, run from the checkout's root."""
    cmd = [sys.executable, "-m", module, "--worker", impl, *worker_args(args), *extra]
    env = child_env(args.threads) if env is None else env
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=timeout).stdout
    return json.loads(out.strip().splitlines()[-1])


def rounds_in_workers(module, impls, args, extra=(), ratio=None, answer=None):
    """Rounds alternating fresh worker processes, one per implementation and round: in one
    shared process, torch's spinning OpenMP threads slowed the next implementation by up to
    1.8x. Returns ({impl: all times}, [ratio of medians per round]) with ratio = (a, b),
    the implementations whose per-round median ratio a / b to list. ``answer`` picks the
    times out of a worker's JSON (default: the JSON is the list of times)."""
    answer = answer or (lambda r: r)
    times, ratios = {k: [] for k in impls}, []
    for _ in range(args.rounds):
        one = {k: answer(worker(module, k, args, extra)) for k in impls}
        for k, v in one.items():
            times[k] += v
        if ratio:
            ratios.append(statistics.median(one[ratio[0]]) / statistics.median(one[ratio[1]]))
    return times, ratios


def load():
    """The 1-minute load average."""
    return os.getloadavg()[0]


def wait_idle(minutes, threshold=0.5):
    """Wait up to ``minutes`` for the 1-minute load average to fall below ``threshold``."""
    deadline = time.time() + 60 * minutes
    while load() >= threshold and time.time() < deadline:
        time.sleep(5)


def status_mib(field="VmHWM"):
    """A memory figure of this process from /proc/self/status (VmHWM: peak resident set,
    VmRSS: resident set now), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss():
    """Reset VmHWM to the present resident size (Linux ≥ 4.0; silently nothing otherwise)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


# ---- headline ratios (run_all --quick) ----------------------------------------------------

def headline(args, workload, ours, theirs, against="PyTorch"):
    """Record one headline ratio (median of ``ours`` / median of ``theirs``, both lists of
    seconds) in the file run_all passes as --headlines; nothing without it."""
    if not getattr(args, "headlines", None):
        return
    row = {"workload": workload, "against": against, "ours_ms": 1e3 * statistics.median(ours),
           "theirs_ms": 1e3 * statistics.median(theirs),
           "ratio": statistics.median(ours) / statistics.median(theirs)}
    with open(args.headlines, "a") as f:
        f.write(json.dumps(row) + "\n")


def headline_table(rows):
    """Markdown table of headline rows (dicts written by ``headline``)."""
    lines = ["| workload | qdaed (ms) | other (ms) | qdaed / other |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['ours_ms']:.4g} | {r['theirs_ms']:.4g} "
                     f"({r['against']}) | **{r['ratio']:.2f}** |")
    return "\n".join(lines)


# ---- the machine --------------------------------------------------------------------------

def _cpuinfo():
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def cpu_model(text=None):
    """The first 'model name' of /proc/cpuinfo (or the platform's processor string)."""
    for line in (_cpuinfo() if text is None else text).splitlines():
        if line.startswith(("model name", "Model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def vector_extensions(text=None):
    """The extensions of VECTOR_FLAGS this CPU has (the first 'flags'/'Features' line)."""
    for line in (_cpuinfo() if text is None else text).splitlines():
        if line.startswith(("flags", "Features")):
            have = set(line.split(":", 1)[1].split())
            return [f for f in VECTOR_FLAGS if f in have]
    return []


def machine_key(text=None):
    """'<CPU model> · <extensions>': the machine a part of RESULTS.md belongs to."""
    ext = vector_extensions(text)
    return f"{cpu_model(text)} · {' '.join(ext) if ext else 'no vector extensions listed'}"


def thread_pools():
    """threadpoolctl's view: library, version, kernel architecture, threads, file."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{d['internal_api']} {d.get('version')} ({d.get('architecture') or '-'}, "
                     f"{d['num_threads']} threads, {os.path.basename(d['filepath'])})"
                     for d in threadpool_info())


def machine_facts(threads):
    """The facts every section ends with, as 'name: value' pairs."""
    import numba
    import numpy as np

    import qdaed.kernels  # noqa: F401  (selects Numba's threading layer as qdaed runs it)

    try:
        import torch
        tv = (f"{torch.__version__} (threads {torch.get_num_threads()}; "
              + ("MKL" if torch.backends.mkl.is_available() else "no MKL")
              + (", oneDNN" if torch.backends.mkldnn.is_available() else "") + ")")
    except ImportError:
        tv = "not installed"
    slow = {v: os.environ[v] for v in SLOW_OPENBLAS_VARS if os.environ.get(v)}
    return {
        "CPU": f"{cpu_model()}, {os.cpu_count()} logical cores, {platform.machine()}",
        "vector extensions": " ".join(vector_extensions()) or "none listed",
        "Python / numpy / numba / torch": f"{platform.python_version()} / {np.__version__} / "
                                          f"{numba.__version__} / {tv}",
        "BLAS and thread pools (threadpoolctl)": thread_pools(),
        "Numba threading layer": f"{numba.config.THREADING_LAYER}, "
                                 f"{numba.config.NUMBA_NUM_THREADS} threads",
        "threads": f"{threads} (OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS and torch.set_num_threads)",
        "OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE": "unset for this run" if not slow
                                                else f"SET {slow}",
    }


def machine_lines(threads):
    return [f"- {k}: {v}" for k, v in machine_facts(threads).items()]


def command_line():
    """The command that reproduces this run, with the slow OpenBLAS variables unset."""
    unset = [v for v in SLOW_OPENBLAS_VARS if v not in os.environ]
    prefix = ("env " + " ".join(f"-u {v}" for v in unset) + " ") if unset else ""
    module = sys.modules["__main__"].__spec__
    what = f"-m {module.name}" if module is not None else sys.argv[0]
    argv, shown = sys.argv[1:], []
    while argv:                      # run_all's internal options are not part of the command
        a = argv.pop(0)
        if a in ("--results", "--headlines"):
            argv = argv[1:]
        elif not a.startswith(("--results=", "--headlines=")):
            shown.append(a)
    return f"{prefix}python {what} {' '.join(shown)}".rstrip()


def footer(threads, load_before, load_after):
    """Machine facts, load and command: the end of every section."""
    return "\n".join(["", "Machine and versions:", "", *machine_lines(threads),
                      f"- load average (1 min) before / after: {load_before:.2f} / "
                      f"{load_after:.2f} (the benchmark's own threads raise it toward their "
                      "count; well above it, another process shared the cores)",
                      "", "Command:", "", "```", command_line(), "```", ""])


# ---- RESULTS.md -----------------------------------------------------------------------------

def _lines_outside_code(text):
    """(line, is a heading) for every line of ``text``; lines of ``` blocks are no headings."""
    fenced = False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        yield line, (not fenced and line.startswith("#"))


def _blocks(text):
    """(preamble, [(machine heading line, [(section heading line, text)])]) of RESULTS.md."""
    pre, machines = [], []
    for line, heading in _lines_outside_code(text):
        if heading and line.startswith(MACHINE_PREFIX):
            machines.append((line.rstrip("\n"), []))
        elif machines and heading and line.startswith("### "):
            machines[-1][1].append([line.rstrip("\n"), line])
        elif machines and machines[-1][1]:
            machines[-1][1][-1][1] += line
        elif machines:
            machines[-1][1].append(["", line])   # between a machine's heading and its sections
        else:
            pre.append(line)
    return "".join(pre), [(h, [(s, t) for s, t in secs]) for h, secs in machines]


def _render(machines):
    out = [TITLE, "", RESULTS_INTRO, ""]
    for heading, secs in machines:
        out.append(heading)
        out.append("")
        for _, t in secs:
            if t.strip():                  # (blank lines between parts are rewritten)
                out.append(t.strip("\n"))
                out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def demote(text):
    """A benchmark's section ('## Title' ...) one heading level down, for a machine's part."""
    return "".join("#" + line if heading else line for line, heading in _lines_outside_code(text))


def section_title(text):
    """The plain heading of a section text ('## Title' → 'Title')."""
    return text.lstrip().splitlines()[0].lstrip("#").strip().split(" (not re-run", 1)[0]


def read_machine(path=RESULTS, key=None):
    """{section title: section text (at '###')} of one machine's part of RESULTS.md."""
    key = machine_key() if key is None else key
    text = open(path).read() if os.path.exists(path) else ""
    for heading, secs in _blocks(text)[1]:
        if heading == MACHINE_PREFIX + key:
            return {section_title(t): t for s, t in secs if s}
    return {}


def write_machine(sections, path=RESULTS, key=None, order=None):
    """Replace this machine's part of RESULTS.md by ``sections`` ([section text at '##' or
    '###'], in order), keeping every other machine's part; this machine's part goes first."""
    key = machine_key() if key is None else key
    text = open(path).read() if os.path.exists(path) else ""
    _, machines = _blocks(text)
    mine = [(section_title(t), demote(t) if t.lstrip().startswith("## ") else t)
            for t in sections]
    others = [m for m in machines if m[0] != MACHINE_PREFIX + key]
    _write_atomic(path, _render([(MACHINE_PREFIX + key, mine), *others]))


def write_section(text, path=RESULTS, key=None):
    """The one writer of a benchmark's section: replace (or add) the section titled like
    ``text`` ('## Title ...') in this machine's part of RESULTS.md, keep the rest."""
    current = read_machine(path, key)
    title = section_title(text)
    new = dict(current)
    new[title] = demote(text)
    write_machine(list(new.values()), path, key)


def _write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".RESULTS.",
                               suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)       # mkstemp creates 0600
    os.replace(tmp, path)
