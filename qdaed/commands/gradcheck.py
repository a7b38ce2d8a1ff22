"""``qdaed gradcheck``: float64 finite-difference check of every op and model."""

from __future__ import annotations

import time

from qdaed import gradcheck
from qdaed.commands.options import common
from qdaed.validate import check_int


def register(sub):
    p = sub.add_parser(
        "gradcheck",
        help="check every hand-written gradient against central differences (float64)",
        description="Runs the float64 central-difference check of every op and model on "
                    "small random cases and prints a table; exit status 1 on any failure.",
        parents=[common("seed")],
    )
    p.add_argument("--repeats", type=int, default=3,
                   help="random cases drawn per op (default 3)")
    p.set_defaults(func=_run)


def _run(args):
    check_int("--seed", args.seed, lo=0)
    check_int("--repeats", args.repeats, lo=1)
    width = max(len(c.op) for c in gradcheck.all_cases())
    header = f"{'op':<{width}}  cases  max rel error  tolerance  result"
    print(header)
    print("-" * len(header))
    t0 = time.perf_counter()

    def show(row):
        op, n, err, tol, ok = row
        print(f"{op:<{width}}  {n:>5}  {err:>13.2e}  {tol:>9.0e}  {'ok' if ok else 'FAIL'}",
              flush=True)

    rows = gradcheck.run(seed=args.seed, repeats=args.repeats, progress=show)
    failed = [r[0] for r in rows if not r[4]]
    print("-" * len(header))
    print(f"{len(rows) - len(failed)} of {len(rows)} ops passed in "
          f"{time.perf_counter() - t0:.1f} s (seed {args.seed})")
    if failed:
        print("FAILED: " + ", ".join(failed))
        return 1
    return 0
