"""The ``qdaed`` command.

Each sub-command is a module of :mod:`qdaed.commands` exposing ``register(subparsers)``, which
adds its parser and sets ``func``; this file only lists them. Errors a user can cause
(``QdaedError``) are printed without a traceback and give exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from qdaed import __version__
from qdaed.errors import QdaedError

# module paths, each with a register(subparsers) function
COMMAND_MODULES = tuple(f"qdaed.commands.{verb}" for verb in (
    "pipeline", "ablate", "diagnose", "detect", "evaluate", "info", "gradcheck", "features",
    "manifests", "synth", "export", "import_"))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="qdaed",
        description="Quantized distillation for acoustic event detection (Shi et al. 2019).",
    )
    parser.add_argument("--version", action="version", version=f"qdaed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = args.func(args)
    except QdaedError as exc:
        print(f"qdaed {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"qdaed {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0 if status is None else int(status)


if __name__ == "__main__":
    sys.exit(main())
