"""Cold start: Numba's compile time on a first run, and no recompilation on the second.

qdaed compiles its kernels with Numba's on-disk cache on (``qdaed.kernels.kernel``): the
first run on a machine compiles them and writes the cache, later runs load it. This runs
``qdaed pipeline --preset tiny --jobs 1`` (in one process, so that every kernel compiles in the
process measured) twice in fresh subprocesses with one empty ``NUMBA_CACHE_DIR``:

  cold   the cache empty: every kernel is compiled;
  warm   the same cache: every kernel should load, none compile.

Each run counts Numba's ``numba:compile`` events (fired only when a function is compiled, not
when it is loaded from the cache; nested compilations are inside their caller's and counted
once) and their total time, and the wall time of the whole command. A warm run that compiles
anything is listed by function name (and the script exits 1).

Start-up of the command line: ``qdaed --help`` against ``python -c pass``, whole processes
alternating (``--help-runs`` each, after two warm-up runs), median wall time: the command
registry must be read without importing NumPy, SciPy, Numba or any command module.

    python -m bench.cold_start [--write]

``--write`` replaces the "Cold start" section of this machine's part of bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from bench import harness

SECTION = "## Cold start"

# Runs in the child: a listener on Numba's compile events, then the command line itself.
CHILD = r"""
import atexit, json, sys, time
from numba.core import event

stats = {"count": 0, "seconds": 0.0, "names": [], "depth": 0}

class Compiles(event.Listener):
    def on_start(self, ev):
        if stats["depth"] == 0:
            stats["t0"] = time.perf_counter()
            stats["count"] += 1
            stats["names"].append(ev.data["dispatcher"].py_func.__qualname__)
        stats["depth"] += 1

    def on_end(self, ev):
        stats["depth"] -= 1
        if stats["depth"] == 0:
            stats["seconds"] += time.perf_counter() - stats["t0"]

event.register("numba:compile", Compiles())

def report():
    out = {k: stats[k] for k in ("count", "seconds", "names")}
    with open(sys.argv[1], "w") as f:
        json.dump(out, f)

atexit.register(report)
from qdaed.cli import main
status = main(sys.argv[2:])
sys.exit(status)
"""


def run(cache_dir, out_dir, threads):
    env = harness.child_env(threads, NUMBA_CACHE_DIR=cache_dir)
    stats_path = os.path.join(out_dir + ".compiles.json")
    cmd = [sys.executable, "-c", CHILD, stats_path, "pipeline", "--preset", "tiny",
           "--jobs", "1", "--quiet", "--out", out_dir]
    wall, _ = harness.timed(subprocess.run, cmd, check=True, env=env, stdout=subprocess.DEVNULL,
                            cwd=harness.ROOT)
    with open(stats_path) as f:
        stats = json.load(f)
    return {"wall": wall, **stats}


def startup(runs):
    """Median wall seconds of ``qdaed --help`` and of ``python -c pass`` (alternating)."""
    import shutil

    beside = os.path.join(os.path.dirname(sys.executable), "qdaed")  # this environment's
    qdaed = beside if os.path.exists(beside) else shutil.which("qdaed")
    cmds = {"qdaed --help": [qdaed, "--help"] if qdaed else
            [sys.executable, "-m", "qdaed", "--help"],
            "python -c pass": [sys.executable, "-c", "pass"]}
    times = harness.alternate(
        {k: (lambda cmd=cmd: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL))
         for k, cmd in cmds.items()}, rounds=runs, repeats=1, warmup=2)
    shown = "qdaed --help" if qdaed else "python -m qdaed --help"
    return {k: harness.spread(v) for k, v in times.items()}, shown


def main():
    p = harness.parser(__doc__)        # --repeats, --warmup, --rounds are not used here
    p.add_argument("--help-runs", type=int, default=15)
    args = p.parse_args()
    harness.set_threads(args.threads)
    load0 = harness.load()
    with tempfile.TemporaryDirectory(prefix="qdaed-cold-") as tmp:
        cache = os.path.join(tmp, "numba-cache")
        os.mkdir(cache)
        cold = run(cache, os.path.join(tmp, "cold"), args.threads)
        warm = run(cache, os.path.join(tmp, "warm"), args.threads)
        n_files = sum(name.endswith(".nbc") for _, _, files in os.walk(cache) for name in files)
    help_times, help_cmd = startup(args.help_runs)
    load1 = harness.load()
    lines = [SECTION, "",
             "`qdaed pipeline --preset tiny --jobs 1 --quiet` twice, each in a fresh process, "
             "with one initially empty `NUMBA_CACHE_DIR` (produced by "
             "`bench/cold_start.py`; Numba's `numba:compile` events counted in the process, "
             "nested ones inside their caller's):", "",
             "| run | wall (s) | functions compiled | compile time (s) |",
             "|---|---:|---:|---:|",
             f"| cold (empty cache) | {cold['wall']:.1f} | {cold['count']} "
             f"| {cold['seconds']:.1f} |",
             f"| warm (cache from the cold run) | {warm['wall']:.1f} | {warm['count']} "
             f"| {warm['seconds']:.1f} |", "",
             f"The cold run wrote {n_files} compiled overloads (`.nbc` files) to the cache. "
             + ("The warm run compiled nothing: every kernel came from the cache."
                if warm["count"] == 0 else
                "The warm run recompiled: " + ", ".join(sorted(set(warm["names"])))) ,
             "", f"Start-up of the command line (`{help_cmd}`), whole processes alternating "
             f"with `python -c pass`, {args.help_runs} runs each after 2 warm-up runs:", "",
             "| command | median (s) | interquartile range (s) |", "|---|---:|---:|"]
    lines += [f"| `{k}` | {s.median:.3f} | {s.q1:.3f}–{s.q3:.3f} |"
              for k, s in help_times.items()]
    lines += ["", "`tests/test_cli.py` checks that `--help` imports no command module, NumPy, "
              "SciPy or Numba.", ""]
    text = "\n".join(lines) + harness.footer(args.threads, load0, load1)
    print(text)
    if args.write:
        harness.write_section(text, args.results)
    return 0 if warm["count"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
