"""``qdaed vectors export|check|list``: golden vectors for other implementations.

``export DIR`` writes DIR/manifest.json and DIR/<case>/{case.json, <tensor>.npy};
``check DIR --outputs OUT`` compares OUT/<case>/<output>.npy with each output's tolerance
(exit 0 all pass, 1 a tensor fails, 2 a tensor is missing or malformed, or DIR is unusable);
``list`` prints the case names and what each holds. Format: ``qdaed.vectors.format``.
"""

from __future__ import annotations

import os
import sys

from qdaed.io.paths import check_output_dir, check_output_file
from qdaed.vectors import cases
from qdaed.vectors.check import check, exit_status, write_report
from qdaed.vectors.export import export


def register(sub):
    p = sub.add_parser("vectors", help="golden vectors for other implementations: export, check",
                       description="Golden vectors: every op, loss, the quantizer, LFBE, the "
                                   "networks, Adam, a quantized-distillation step and a "
                                   "detector, as .npy tensors with a tolerance per output.")
    verbs = p.add_subparsers(dest="vectors_command", metavar="{export,check,list}")
    p.set_defaults(func=_usage, _parser=p)

    e = verbs.add_parser("export", help="write the golden cases to DIR")
    e.add_argument("directory", metavar="DIR", help="output directory (empty or new)")
    e.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="dtype of the inputs and outputs, and the precision the other "
                        "implementation is expected to compute in (default float32)")
    e.add_argument("--seed", type=int, default=0, help="seed of the inputs (default 0)")
    e.add_argument("--cases", nargs="+", metavar="PATTERN",
                   help="only the cases matching these shell patterns (e.g. 'lstm_*')")
    e.add_argument("--audio", nargs="+", default=[], metavar="FILE",
                   help="real recordings to add as LFBE cases (first 2 s of each)")
    e.add_argument("--force", action="store_true", help="write into a non-empty DIR")
    e.add_argument("--integer", action="store_true",
                   help="add the integer student's cases (int8, TFLite Micro's kernels): "
                        "every intermediate per time step, exact, each with its model.tflite")
    e.set_defaults(func=_export)

    c = verbs.add_parser("check", help="compare another implementation's outputs with DIR")
    c.add_argument("directory", metavar="DIR", help="a directory written by 'vectors export'")
    c.add_argument("--outputs", required=True, metavar="OUT",
                   help="the other implementation's outputs, OUT/<case>/<output>.npy")
    c.add_argument("--cases", nargs="+", metavar="PATTERN",
                   help="only the cases matching these shell patterns")
    c.add_argument("--json", metavar="REPORT", help="also write the table as JSON")
    c.add_argument("--failures-only", action="store_true",
                   help="print only the rows that did not pass")
    c.set_defaults(func=_check)

    ls = verbs.add_parser("list", help="the case names and what each holds")
    ls.add_argument("--cases", nargs="+", metavar="PATTERN",
                    help="only the cases matching these shell patterns")
    ls.set_defaults(func=_list)


def _usage(args):
    args._parser.print_help()
    return 2


def _export(args):
    check_output_dir("DIR", args.directory, inputs=args.audio)
    summary = export(args.directory, dtype=args.dtype, seed=args.seed, patterns=args.cases,
                     audio=args.audio, force=args.force, integer=args.integer)
    print(f"wrote {summary.cases} cases ({summary.tensors} tensors, {summary.bytes:,} bytes) "
          f"to {summary.directory} in {summary.seconds:.1f} s ({args.dtype}, seed {args.seed})")
    return 0


def _fmt(x):
    return "-" if x is None else f"{x:.2e}"


def _check(args):
    if args.json is not None:
        check_output_file("--json", args.json,
                          inputs=[os.path.join(args.directory, "manifest.json")])
    cw, tw = 34, 30
    header = (f"{'case':<{cw}} {'tensor':<{tw}} {'max abs err':>11} {'max rel err':>11} "
              f"{'rtol':>8} {'atol':>8} {'err/tol':>8}  result  first mismatch")
    print(header)
    print("-" * len(header))

    def show(row):
        if args.failures_only and row.status == "ok":
            return
        first = "" if row.first_mismatch is None else str(tuple(row.first_mismatch))
        status = "OK" if row.status == "ok" else row.status
        print(f"{row.case:<{cw}} {row.tensor:<{tw}} {_fmt(row.max_abs_error):>11} "
              f"{_fmt(row.max_rel_error):>11} {row.rtol:>8.1e} {row.atol:>8.1e} "
              f"{_fmt(row.error_to_tolerance):>8}  "
              f"{status:<6}  {first}", flush=True)

    manifest, rows = check(args.directory, args.outputs, patterns=args.cases, progress=show)
    status = exit_status(rows)
    print("-" * len(header))
    counts = {s: sum(r.status == s for r in rows) for s in ("ok", "FAIL", "ERROR")}
    ncases = len({r.case for r in rows})
    print(f"{len(rows)} tensors in {ncases} cases: {counts['ok']} ok, {counts['FAIL']} failed, "
          f"{counts['ERROR']} could not be compared")
    if args.json:
        write_report(args.json, args.directory, args.outputs, manifest, rows)
    for r in rows:
        if r.divergence is not None:
            print(f"qdaed vectors check: {r.message}", file=sys.stderr)
    for r in rows:
        if r.status != "ok" and r.divergence is None:
            kind = "error" if r.status == "ERROR" else "FAIL"
            print(f"qdaed vectors check: {kind}: {r.message}", file=sys.stderr)
    return status


def _list(args):
    for name in cases.select(args.cases, integer=True):
        op, description = cases.describe(name)
        print(f"{name:<36} {op:<28} {description}")
    return 0
