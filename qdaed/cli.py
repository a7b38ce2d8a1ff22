"""The ``qdaed`` command.

Each sub-command is a module of :mod:`qdaed.commands` exposing ``register(subparsers)``, which
adds its parser and sets ``func``; this file only lists them, each with its one-line help.
Only the module of the command being run is imported: ``qdaed --help`` builds the list from
``COMMANDS`` below without importing any of them (NumPy, SciPy and Numba are not loaded), so
it starts in a few tens of milliseconds. A test checks that each module registers the help
line listed here. Errors a user can cause (``QdaedError``) are printed without a traceback
and give exit status 2; a closed stdout (``| head``) ends the command quietly with status 141.
"""

from __future__ import annotations

import argparse
import importlib
import keyword
import os
import sys

from qdaed._version import __version__
from qdaed.errors import QdaedError

EXIT_BROKEN_PIPE = 141

# verb -> one-line help; the module qdaed.commands.<verb> registers the same line
COMMANDS = {
    "pipeline": "run the paper's whole experiment (teacher, student, distillation, "
                "quantization)",
    "ablate": "when does distillation help? baseline / paper recipe / a recipe x clean / "
              "noisy labels x seeds",
    "diagnose": "why distillation did or did not help in a run",
    "detect": "per-class scores, decisions and time-stamped events for audio files",
    "evaluate": "metrics of a model file on a manifest's clips (clip and event metrics)",
    "info": "a model file's config, bits, parameters and bytes",
    "gradcheck": "check every hand-written gradient against central differences (float64)",
    "features": "compute (or reuse) the LFBE features of every clip of a manifest",
    "manifests": "build the AudioSet subset manifests (dog, baby cry, gunshot + negatives); "
                 "where the shipped manifests are",
    "synth": "write the seeded synthetic AED corpus (wav files + manifest with ground truth)",
    "vectors": "golden vectors for other implementations: export, check",
    "export": "a model file as a PyTorch state_dict or an ONNX graph",
    "integer-accuracy": "the integer (int8, TFLite Micro) student's EER and size against its "
                        "float and k-bit versions on a run's test split",
    "import": "wrap a PyTorch-trained network (a state_dict) as a qdaed detector",
}


def command_module(verb):
    """The module of ``verb``: qdaed.commands.<verb> (``import_`` for the keyword, ``_`` for
    a ``-`` in the verb)."""
    verb = verb.replace("-", "_")
    return f"qdaed.commands.{verb}_" if keyword.iskeyword(verb) else f"qdaed.commands.{verb}"


COMMAND_MODULES = tuple(command_module(verb) for verb in COMMANDS)


def build_parser(verb="*"):
    """The parser; ``verb``: the command whose module is imported and registered ("*":
    every one; None: none, the top-level help only)."""
    parser = argparse.ArgumentParser(
        prog="qdaed",
        description="Quantized distillation for acoustic event detection (Shi et al. 2019).",
    )
    parser.add_argument("--version", action="version", version=f"qdaed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in COMMANDS.items():
        if verb in ("*", name):
            importlib.import_module(command_module(name)).register(sub)
        else:
            sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb if verb in COMMANDS else None)
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
    except BrokenPipeError:
        return _broken_pipe()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return _broken_pipe()
    return 0 if status is None else int(status)


def _broken_pipe():
    """The reader of stdout went away (``qdaed detect ... | head -1``): stop quietly with the
    status a process killed by SIGPIPE has (128 + 13), as ``cat`` or ``grep`` would. stdout is
    pointed at /dev/null so that Python's final flush does not raise again. Files being
    written atomically at that moment are removed, never left half-written."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
