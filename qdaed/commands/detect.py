"""``qdaed detect MODEL AUDIO...``: per-class scores, decisions and events for recordings of
any length (``qdaed.detection`` over ``qdaed.streaming``: whole file, in blocks, sliding
windows).

AUDIO: files, or folders searched recursively for audio files (``qdaed.data.audiofiles``).
``--jobs N`` scores files in N processes; the output is the same, in the same order. For the
field's evaluation tools (``qdaed.io.sedformats``): ``--events-tsv`` writes the events as
sed_eval's event list, ``--scores-dir`` one sed_scores_eval score table per file. A summary
line on stderr ends every run: files scored, files skipped with their reasons; a progress bar
on stderr for several files when stderr is a terminal (``--no-progress``: none).

Exit status: 0 every file scored; 3 some files could not be read (each is reported with its
reason, the others are scored); 2 no file could be scored, or a usage or model-file error.
"""

from __future__ import annotations

import json
import os
import sys

from tqdm import tqdm

from qdaed.commands.options import EVENT_OPTIONS, check_event_options, common
from qdaed.data.audiofiles import find_audio
from qdaed.detection import result_text, results_csv, results_in_order, summary_line
from qdaed.detector import Detector
from qdaed.errors import DataError
from qdaed.events import EventOptions
from qdaed.io.atomic import atomic_write_text
from qdaed.io.paths import check_output_dir, check_output_file, display_path
from qdaed.io.sedformats import check_names, events_tsv, file_names, score_file_name, score_table
from qdaed.streaming import Bounds, hop_frames, integer_student
from qdaed.validate import check_float, check_int

EXIT_SOME_FAILED = 3


def register(sub):
    p = sub.add_parser(
        "detect", help="per-class scores, decisions and time-stamped events for audio files",
        description="Scores each file over its whole length: a window of the model's "
                    "training length every --hop seconds, the file's score per class the "
                    "maximum over windows; a file shorter than one window is looped to it as "
                    "in training (with a note, as is a mixdown of several channels or a "
                    "resampling from an unusual rate). A folder stands for its audio files at "
                    "any depth. A summary line on stderr ends the run: files scored, files "
                    "skipped with their reasons. Exit status 0: every file scored; 3: some "
                    "files or folders could not be read (reported, the others scored); 2: "
                    "none could, or a usage or model-file error.",
        # --jobs 1: one process unless asked (a few files do not pay for starting workers)
        parents=[common("jobs", "expect-sha256", *EVENT_OPTIONS, jobs=1)])
    p.add_argument("model", help="model file (qdaed pipeline, qdaed import)")
    p.add_argument("audio", nargs="+",
                   help="audio files (wav, flac, ogg, ...) or folders: every .wav, .flac and "
                        ".ogg file under a folder, at any depth, in sorted order")
    p.add_argument("--events", action="store_true",
                   help="time-stamped events from the window scores and the stored thresholds")
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.add_argument("--csv", metavar="OUT",
                   help="also write the results as CSV rows to OUT (checked before any file "
                        "is scored: not the model or an audio file, not a directory or FIFO; "
                        "file names that are not UTF-8 are written with \\xNN escapes)")
    p.add_argument("--max-duration", type=float, default=86400.0, metavar="SECONDS",
                   help="refuse files longer than this (from the header; default 86400 = 24 h)")
    p.add_argument("--max-size", type=int, default=16 * 1024 ** 3, metavar="BYTES",
                   help="refuse files larger than this on disk (default 16 GiB)")
    p.add_argument("--events-tsv", metavar="OUT",
                   help="also write the events (as --events finds them, with --median, "
                        "--min-gap, --min-duration) to OUT as sed_eval's event list: "
                        "filename, onset, offset, event_label, tab-separated, with a header; "
                        "filename: the path under the folder given, or a file's base name")
    p.add_argument("--scores-dir", metavar="DIR",
                   help="also write one sed_scores_eval score table per file to DIR "
                        "(NAME.tsv, NAME the file's event-list name without extension): "
                        "onset, offset and one column per class, one row per window, each "
                        "window scoring the stretch of the file it stands for")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (shown on stderr for several files when stderr is a "
                        "terminal)")
    p.add_argument("--integer", action="store_true",
                   help="score with the model's integer student (int8, TFLite Micro's "
                        "arithmetic; stored by qdaed export --calibrated-model)")
    p.set_defaults(func=_run)


def _run(args):
    check_float("--max-duration", args.max_duration, 0.0, lo_open=True)
    check_int("--max-size", args.max_size, lo=1)
    jobs = check_int("--jobs", args.jobs, lo=0) or os.cpu_count() or 1
    check_event_options(args)
    found = find_audio(args.audio)
    paths = [p for p, _ in found.entries]
    names = check_outputs(args, found.entries)
    if not paths:
        raise DataError(f"no audio file (.wav, .flac, .ogg) in {display_path(found.empty[0])}"
                        if len(found.empty) == 1 else "no audio file in the folders given")
    bounds = Bounds(max_seconds=args.max_duration, max_bytes=args.max_size)
    want_events = args.events or args.events_tsv is not None
    event_options = EventOptions(args.median, args.min_gap, args.min_duration) \
        if want_events else None
    det = Detector.load(args.model, expect_sha256=args.expect_sha256)
    if args.integer:
        integer_student(det)
    hop = hop_frames(det, args.hop)
    for folder, reason in found.unreadable:
        print(f"qdaed detect: skipped the folder {display_path(folder)}: unreadable ({reason})",
              file=sys.stderr)
    results = []
    with _Progress(len(paths), args.no_progress) as progress:
        for res, name in zip(results_in_order(paths, det, hop=hop, bounds=bounds,
                                              event_options=event_options,
                                              table=args.scores_dir is not None,
                                              integer=args.integer, jobs=jobs), names):
            if res.table is not None:
                write_score_table(args.scores_dir, name, res.table, det.classes)
            results.append((res, name))
            shown = res.shown(args.events)
            if res.reason is not None:
                progress.print(f"qdaed detect: skipped {res.record['error']}", sys.stderr)
            if args.json:
                progress.print(json.dumps(shown), sys.stdout)
            else:
                text = result_text(shown)
                if text:
                    progress.print(text, sys.stdout)
            progress.step()
    if not args.json:
        print("(* = above the class threshold chosen at the validation EER point)",
              file=sys.stderr)
    write_tables(args, results)
    return summary(results, found)


def check_outputs(args, entries):
    """Check every output path before any work (``check_output_file`` / ``check_output_dir``)
    and that no two files share a name in --events-tsv or --scores-dir; returns each file's
    name in those (``qdaed.io.sedformats.file_names``)."""
    paths = [p for p, _ in entries]
    folders = [a for a in args.audio if os.path.isdir(a)]
    inputs = [args.model, *paths, *folders]     # a score folder may not be an audio folder
    outputs = [("--csv", args.csv), ("--events-tsv", args.events_tsv)]
    for i, (option, path) in enumerate(outputs):
        if path is not None:
            check_output_file(option, path, inputs=inputs, others=outputs[:i])
    if args.scores_dir is not None:
        check_output_dir("--scores-dir", args.scores_dir, inputs=inputs)
    names = file_names(entries)
    if args.events_tsv is not None:
        check_names("--events-tsv", paths, names)
    if args.scores_dir is not None:
        check_names("--scores-dir", paths, names, score_files=True)
    return names


class _Progress:
    """A tqdm bar on stderr over ``total`` files when there are several, off with ``off`` or
    when stderr is not a terminal (tqdm's ``disable=None``); :meth:`print` writes a line to
    stdout or stderr without breaking the bar."""

    def __init__(self, total, off):
        self.bar = tqdm(total=total, desc="detect", unit="file", file=sys.stderr,
                        disable=True if off or total < 2 else None, leave=False,
                        dynamic_ncols=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()
        return False

    def print(self, text, stream):
        if self.bar.disable:
            print(text, file=stream, flush=True)
        else:
            with self.bar.external_write_mode(file=stream):
                print(text, file=stream, flush=True)

    def step(self):
        self.bar.update()


def write_score_table(folder, name, table, classes):
    """One file's sed_scores_eval score table, written atomically to FOLDER (created)."""
    path = os.path.join(folder, score_file_name(name))
    try:
        os.makedirs(folder, exist_ok=True)
        atomic_write_text(path, score_table(*table, classes))
    except OSError as exc:
        raise DataError(f"--scores-dir {display_path(path)}: could not be written "
                        f"({exc.strerror or exc})") from None


def write_tables(args, results):
    """--csv and --events-tsv of every file's result, each written atomically."""
    files = []
    if args.csv is not None:
        files.append(("--csv", args.csv,
                      results_csv(res.shown(args.events) for res, _ in results)))
    if args.events_tsv is not None:
        files.append(("--events-tsv", args.events_tsv,
                      events_tsv([(name, res.record.get("events", []))
                                  for res, name in results])))
    for option, path, text in files:
        try:
            atomic_write_text(path, text)
        except OSError as exc:
            raise DataError(f"{option} {display_path(path)}: could not be written "
                            f"({exc.strerror or exc}); the scores above are complete") from None


def summary(results, found):
    """Print the summary line on stderr; the exit status."""
    reasons = [res.reason for res, _ in results if res.reason is not None]
    print(f"qdaed detect: {summary_line(len(results), reasons, found)}", file=sys.stderr)
    if len(reasons) == len(results):
        return 2
    return EXIT_SOME_FAILED if reasons or found.unreadable else 0
