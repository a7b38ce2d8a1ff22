"""``qdaed detect MODEL AUDIO...``: per-class scores, decisions and events for recordings of
any length (``qdaed.streaming``: whole file, in blocks, sliding windows).

Exit status: 0 every file scored; 3 some files could not be read (each is reported with its
reason, the others are scored); 2 no file could be scored, or a usage or model-file error.
"""

from __future__ import annotations

import csv
import io
import json
import sys

from qdaed.io.paths import check_output_file, display_path

EXIT_SOME_FAILED = 3
CSV_COLUMNS = ("file", "record", "class", "score", "detected", "onset", "offset", "message")


def register(sub):
    p = sub.add_parser(
        "detect", help="per-class scores, decisions and time-stamped events for audio files",
        description="Scores each file over its whole length: a window of the model's "
                    "training length every --hop seconds, the file's score per class the "
                    "maximum over windows; a file shorter than one window is looped to it as "
                    "in training (with a note). Exit status 0: every file scored; 3: some "
                    "files could not be read (reported, the others scored); 2: none could, "
                    "or a usage or model-file error.")
    p.add_argument("model")
    p.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, ...)")
    p.add_argument("--hop", type=float, metavar="SECONDS",
                   help="window hop in seconds (default: half the model's window)")
    p.add_argument("--events", action="store_true",
                   help="time-stamped events from the window scores and the stored thresholds")
    p.add_argument("--median", type=int, default=3, metavar="N",
                   help="median filter over N windows (odd; 1 = off; default 3)")
    p.add_argument("--min-gap", type=float, default=0.0, metavar="SECONDS",
                   help="merge events of a class closer than this (default 0)")
    p.add_argument("--min-duration", type=float, default=0.0, metavar="SECONDS",
                   help="drop events shorter than this (default 0)")
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.add_argument("--expect-sha256", metavar="HEX",
                   help="refuse the model file unless its SHA-256 (sha256sum, or qdaed info "
                        "MODEL --sha256) is HEX")
    p.add_argument("--csv", metavar="OUT",
                   help="also write the results as CSV rows to OUT (checked before any file "
                        "is scored: not the model or an audio file, not a directory or FIFO; "
                        "file names that are not UTF-8 are written with \\xNN escapes)")
    p.add_argument("--max-duration", type=float, default=86400.0, metavar="SECONDS",
                   help="refuse files longer than this (from the header; default 86400 = 24 h)")
    p.add_argument("--max-size", type=int, default=16 * 1024 ** 3, metavar="BYTES",
                   help="refuse files larger than this on disk (default 16 GiB)")
    p.add_argument("--integer", action="store_true",
                   help="score with the model's integer student (int8, TFLite Micro's "
                        "arithmetic; stored by qdaed export --calibrated-model)")
    p.set_defaults(func=_run)


def detect_file(det, path, hop, bounds, event_options=None, integer=False):
    """The result object of one file (what ``--json`` prints); DataError if unreadable."""
    from qdaed.events import scan_events
    from qdaed.streaming import scan_file

    sc = scan_file(det, path, hop=hop, bounds=bounds, integer=integer)
    scores = sc.file_scores
    present = det.decisions(scores[None])[0]
    out = {"file": display_path(path), "duration": round(sc.duration, 4),
           "windows": int(len(sc.starts)),
           "scores": dict(zip(det.classes, map(float, scores))),
           "detected": [c for c, p in zip(det.classes, present) if p]}
    if event_options is not None:
        out["events"] = scan_events(sc, det.thresholds, det.classes, event_options)
    if sc.short:
        out["note"] = sc.note()
    return out


def csv_rows(result):
    """CSV rows (``CSV_COLUMNS``) of one result object."""
    f = result["file"]
    if "error" in result:
        return [[f, "error", "", "", "", "", "", result["error"]]]
    rows = [[f, "score", c, repr(s), int(c in result["detected"]), "", "",
             result.get("note", "")] for c, s in result["scores"].items()]
    rows += [[f, "event", e["class"], repr(e["score"]), 1, e["onset"], e["offset"], ""]
             for e in result.get("events", [])]
    return rows


def _text(result):
    if "error" in result:
        return None
    cols = "  ".join(f"{c}={s:.3f}{'*' if c in result['detected'] else ''}"
                     for c, s in result["scores"].items())
    lines = [f"{result['file']}: {cols}"]
    if "note" in result:
        lines.append(f"  note: {result['note']}")
    for e in result.get("events", []):
        lines.append(f"  {e['class']} {e['onset']:.2f}-{e['offset']:.2f} s "
                     f"(peak {e['score']:.3f})")
    return "\n".join(lines)


def _run(args):
    from qdaed.detector import Detector
    from qdaed.errors import DataError
    from qdaed.events import EventOptions
    from qdaed.io.atomic import atomic_write_text
    from qdaed.streaming import Bounds, hop_frames, integer_student
    from qdaed.validate import check_float, check_int

    check_float("--max-duration", args.max_duration, 0.0, lo_open=True)
    check_int("--max-size", args.max_size, lo=1)
    check_event_options(args)
    if args.csv is not None:
        check_output_file("--csv", args.csv, inputs=[args.model, *args.audio])
    bounds = Bounds(max_seconds=args.max_duration, max_bytes=args.max_size)
    event_options = EventOptions(args.median, args.min_gap, args.min_duration) \
        if args.events else None
    det = Detector.load(args.model, expect_sha256=args.expect_sha256)
    if args.integer:
        integer_student(det)
    hop = hop_frames(det, args.hop)
    results, failed = [], 0
    for path in args.audio:
        try:
            res = detect_file(det, path, hop, bounds, event_options, integer=args.integer)
        except DataError as exc:
            res = {"file": display_path(path), "error": display_path(str(exc))}
            print(f"qdaed detect: skipped {res['error']}", file=sys.stderr)
            failed += 1
        results.append(res)
        if args.json:
            print(json.dumps(res), flush=True)
        else:
            text = _text(res)
            if text:
                print(text, flush=True)
    if not args.json:
        print("(* = above the class threshold chosen at the validation EER point)",
              file=sys.stderr)
    if args.csv is not None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for res in results:
            w.writerows(csv_rows(res))
        try:
            atomic_write_text(args.csv, buf.getvalue())
        except OSError as exc:
            raise DataError(f"--csv {display_path(args.csv)}: could not be written "
                            f"({exc.strerror or exc}); the scores above are complete") from None
    if failed == len(results):
        print(f"qdaed detect: none of the {failed} file(s) could be scored", file=sys.stderr)
        return 2
    if failed:
        print(f"qdaed detect: {failed} of {len(results)} file(s) could not be read; the others "
              f"were scored", file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0


def check_event_options(args):
    """--hop, --median, --min-gap, --min-duration (qdaed detect and qdaed evaluate)."""
    from qdaed.errors import InputError
    from qdaed.validate import check_float, check_int

    if args.hop is not None:
        check_float("--hop", args.hop, 0.0, lo_open=True)
    check_int("--median", args.median, lo=1)
    if args.median % 2 == 0:
        raise InputError(f"--median: expected an odd number of windows, got {args.median}")
    check_float("--min-gap", args.min_gap, 0.0)
    check_float("--min-duration", args.min_duration, 0.0)
