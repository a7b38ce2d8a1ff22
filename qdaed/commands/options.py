"""What the commands share: parent parsers of the common options, each with one default, and
the checks of options several commands take.

A command builds its parser with ``parents=[...]`` from the functions below; where a command
needs another default than the shared one, it says so with ``set_defaults`` next to its
other options (and its help text says which).
"""

from __future__ import annotations

import argparse

from qdaed.errors import InputError
from qdaed.validate import check_float, check_int

# The common options: (flags, argparse keywords). One default each; a command that needs
# another passes it to common(), which writes the command's default into the help ({default};
# None: the preset's).
COMMON = {
    "out": (("--out",), dict(required=True, metavar="DIR",
                             help="output folder: new or empty (with --resume, the run to "
                                  "continue)")),
    "seed": (("--seed",), dict(type=int, default=0, metavar="N",
                               help="seed; with several seeds the first, N … N+seeds−1 "
                                    "(default: {default})")),
    "seeds": (("--seeds",), dict(type=int, default=None, metavar="N",
                                 help="number of seeds (default: {default})")),
    "jobs": (("--jobs",), dict(type=int, default=0, metavar="N",
                               help="worker processes (0: one per core; 1: everything in this "
                                    "process; default: {default}); results do not depend on it")),
    "dask-scheduler": (("--dask-scheduler",), dict(
        metavar="ADDRESS", help="run the seed jobs on a Dask distributed cluster (pip install "
                                "'qdaed[cluster]'); the output folder must be on a file system "
                                "the workers share")),
    "resume": (("--resume",), dict(action="store_true",
                                   help="continue an interrupted run in --out, reusing its "
                                        "finished stages")),
    "quiet": (("--quiet",), dict(action="store_true", help="no progress on stderr")),
    "expect-sha256": (("--expect-sha256",), dict(
        metavar="HEX", help="refuse the model file unless its SHA-256 (sha256sum, or qdaed "
                            "info MODEL --sha256) is HEX")),
    # how events are found in window scores (qdaed.events); checked by check_event_options
    "hop": (("--hop",), dict(type=float, metavar="SECONDS",
                             help="window hop in seconds (default: half the model's window)")),
    "median": (("--median",), dict(type=int, default=3, metavar="N",
                                   help="events: median filter over N windows (odd; 1 = off; "
                                        "default: {default})")),
    "min-gap": (("--min-gap",), dict(type=float, default=0.0, metavar="SECONDS",
                                     help="events: merge events of a class closer than this "
                                          "(default: {default})")),
    "min-duration": (("--min-duration",), dict(type=float, default=0.0, metavar="SECONDS",
                                               help="events: drop events shorter than this "
                                                    "(default: {default})")),
}
EVENT_OPTIONS = ("hop", "median", "min-gap", "min-duration")


def common(*names, **defaults):
    """A parent parser (``parents=[common("out", "jobs")]``) holding the common options
    ``names`` of :data:`COMMON`, a new one at each call; ``defaults`` ({dest: value}) are the
    command's own defaults where they differ from the shared ones (each command says why)."""
    parser = argparse.ArgumentParser(add_help=False)
    for name in names:
        flags, kwargs = COMMON[name]
        dest = name.replace("-", "_")
        kwargs = {**kwargs, "default": defaults.get(dest, kwargs.get("default"))}
        if "{default}" in kwargs["help"]:
            shown = "the preset's" if kwargs["default"] is None else kwargs["default"]
            kwargs["help"] = kwargs["help"].format(default=shown)
        parser.add_argument(*flags, **kwargs)
    return parser


def check_event_options(args):
    """--hop, --median, --min-gap, --min-duration (qdaed detect and qdaed evaluate)."""
    if args.hop is not None:
        check_float("--hop", args.hop, 0.0, lo_open=True)
    check_int("--median", args.median, lo=1)
    if args.median % 2 == 0:
        raise InputError(f"--median: expected an odd number of windows, got {args.median}")
    check_float("--min-gap", args.min_gap, 0.0)
    check_float("--min-duration", args.min_duration, 0.0)


__all__ = ["COMMON", "EVENT_OPTIONS", "check_event_options", "common"]
