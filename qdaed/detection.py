"""Detection over recordings: what ``qdaed detect`` computes for each file it is given.

:func:`detect_file` scans one file (:func:`qdaed.streaming.scan_file`) into its result
record, the JSON-able object ``qdaed detect --json`` prints: duration, windows, the file's
score per class, the classes detected at the stored thresholds, optionally the events
(:func:`qdaed.events.scan_events`), and a note of what was done to the recording before the
front end (:func:`input_notes`). :func:`results_in_order` runs it over many files, in this
process or a pool of worker processes, the results in the files' order, an unreadable file
giving an error record and the short reason of :func:`skip_reason` instead of stopping the
batch. :func:`csv_rows`, :func:`results_csv`, :func:`result_text` and :func:`summary_line`
turn the results into the command's CSV, text and summary line.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import os
from dataclasses import dataclass

import numpy as np

from qdaed.data.rates import SAMPLE_RATE
from qdaed.errors import DataError
from qdaed.events import scan_events, window_edges
from qdaed.io.paths import display_path
from qdaed.streaming import scan_file

CSV_COLUMNS = ("file", "record", "class", "score", "detected", "onset", "offset", "message")
# sample rates resampled to 16 kHz without a note (the usual recording rates); any other
# rate, and any mixdown of several channels, is noted in the result
USUAL_RATES = (16000, 22050, 24000, 32000, 44100, 48000)
# the reason of a skipped file for the summary line: the first of these found in its message
SKIP_REASONS = (("missing", "missing"), ("not a regular file", "not a file"),
                ("truncated", "truncated"), ("empty", "empty"), ("sample rate", "sample rate"),
                ("channels", "channels"), ("--max-duration", "too long"),
                ("--max-size", "too large"), ("non-finite", "non-finite samples"),
                ("too short", "too short"), ("unreadable", "unreadable"))


@dataclass(frozen=True)
class FileResult:
    """One file's outcome in a batch.

    record: the result record (:func:`detect_file`), or for a file that could not be read
    ``{"file", "error"}``; table: (window edges (N + 1,), window scores (N, C)) when asked for,
    else None; reason: the short reason a file was skipped (``skip_reason``), None when it
    was scored.
    """

    record: dict
    table: tuple[np.ndarray, np.ndarray] | None = None
    reason: str | None = None

    def shown(self, events):
        """The record as printed: without its ``"events"`` unless ``events``.

        Parameters
        ----------
        events : bool
            Keep the events (``--events``); without it they were found only for the event
            list (``--events-tsv``).

        Returns
        -------
        dict
            A new dict, the record's keys in their order.
        """
        return {k: v for k, v in self.record.items() if k != "events" or events}


def _scan_record(det, path, hop, bounds, event_options, integer):
    """(result record, :class:`~qdaed.streaming.Scan`) of one file."""
    sc = scan_file(det, path, hop=hop, bounds=bounds, integer=integer)
    scores = sc.file_scores
    present = det.decisions(scores[None])[0]
    out = {"file": display_path(path), "duration": round(sc.duration, 4),
           "windows": int(len(sc.starts)),
           "scores": dict(zip(det.classes, map(float, scores))),
           "detected": [c for c, p in zip(det.classes, present) if p]}
    if event_options is not None:
        out["events"] = scan_events(sc, det.thresholds, det.classes, event_options)
    notes = ([sc.note()] if sc.short else []) + input_notes(sc.channels, sc.sample_rate)
    if notes:
        out["note"] = "; ".join(notes)
    return out, sc


def detect_file(det, path, hop=None, bounds=None, event_options=None, integer=False):
    """The result record of one file: what ``qdaed detect --json`` prints for it.

    Parameters
    ----------
    det : qdaed.detector.Detector
        The detector.
    path : str or os.PathLike
        An audio file.
    hop : int, optional
        Window hop in frames (``qdaed.streaming.hop_frames``; None: half a window).
    bounds : qdaed.streaming.Bounds, optional
        Limits on the file's duration and size.
    event_options : qdaed.events.EventOptions, optional
        Find the events with these options (None: no ``"events"``).
    integer : bool
        Score with the detector's integer student.

    Returns
    -------
    dict
        ``file`` (shown as ``qdaed.io.paths.display_path`` does), ``duration`` (s,
        rounded to 0.1 ms), ``windows``, ``scores`` ({class: file score}), ``detected`` (the
        classes above their thresholds), ``events`` with ``event_options``, and ``note`` when
        the file was looped, mixed down or resampled from an unusual rate.

    Raises
    ------
    DataError
        The file cannot be read or is out of ``bounds``.
    """
    return _scan_record(det, path, hop, bounds, event_options, integer)[0]


def input_notes(channels, rate):
    """What was done to a recording before the front end that a user should know.

    Parameters
    ----------
    channels : int
        The recording's channels (several are mixed down to their mean).
    rate : int
        Its sample rate in Hz (resampled to ``SAMPLE_RATE``).

    Returns
    -------
    list of str
        A note of a mixdown of several channels, and of a resampling from a rate other than
        ``USUAL_RATES`` (an upsampling says what the model does not see); empty when neither.
    """
    notes = []
    if channels > 1:
        notes.append(f"{channels} channels mixed down to mono (their mean)")
    if rate < SAMPLE_RATE:
        notes.append(f"upsampled from {rate} Hz to {SAMPLE_RATE} Hz: the model sees nothing "
                     f"above {rate // 2} Hz")
    elif rate not in USUAL_RATES:
        notes.append(f"resampled from {rate} Hz to {SAMPLE_RATE} Hz")
    return notes


def skip_reason(message):
    """The short reason of a skipped file, for the summary line.

    Parameters
    ----------
    message : str
        The file's error message, without its file name.

    Returns
    -------
    str
        The reason of the first key of ``SKIP_REASONS`` found in ``message``; ``"other"``
        when none is.
    """
    return next((reason for key, reason in SKIP_REASONS if key in message), "other")


# ---- one file, in this process or a worker -------------------------------------------------

_WORKER = {}


def _init_worker(det, hop, bounds, event_options, table, integer):
    _WORKER.update(det=det, hop=hop, bounds=bounds, event_options=event_options, table=table,
                   integer=integer)


def _detect_or_error(path):
    """The :class:`FileResult` of ``path`` with the worker's settings; an unreadable file gives
    an error record and its reason instead of raising."""
    w = _WORKER
    try:
        record, sc = _scan_record(w["det"], path, w["hop"], w["bounds"], w["event_options"],
                                  w["integer"])
    except DataError as exc:
        text = str(exc)
        own = os.fspath(path) + ": "
        return FileResult({"file": display_path(path), "error": display_path(text)},
                          reason=skip_reason(text[len(own):] if text.startswith(own) else text))
    table = (window_edges(sc.window_times(), sc.duration), sc.scores) if w["table"] else None
    return FileResult(record, table)


def results_in_order(paths, det, *, hop=None, bounds=None, event_options=None, table=False,
                     integer=False, jobs=1):
    """The results of many files, in their order, from one process or several.

    Parameters
    ----------
    paths : list of str
        Audio files.
    det, hop, bounds, event_options, integer
        As for :func:`detect_file`.
    table : bool
        Also each scored file's window edges and window scores (``FileResult.table``: a
        sed_scores_eval score table's rows).
    jobs : int
        Worker processes (1: this process; at most one a file). The results do not depend on
        it.

    Yields
    ------
    FileResult
        One a file, in the order of ``paths``; a file that cannot be read gives its error
        record and reason, and the others are scored.
    """
    settings = (det, hop, bounds, event_options, table, integer)
    if jobs == 1 or len(paths) < 2:
        _init_worker(*settings)
        yield from map(_detect_or_error, paths)
        return

    with concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(paths)),
                                                initializer=_init_worker,
                                                initargs=settings) as pool:
        yield from pool.map(_detect_or_error, paths)


def csv_rows(record):
    """The CSV rows of one result record.

    Parameters
    ----------
    record : dict
        A result record (:func:`detect_file`) or an error record (``{"file", "error"}``).

    Returns
    -------
    list of list
        Rows of ``CSV_COLUMNS``: one ``error`` row; or one ``score`` row a class (its score's
        ``repr``, 1 if detected, the note as message) and one ``event`` row an event.
    """
    f = record["file"]
    if "error" in record:
        return [[f, "error", "", "", "", "", "", record["error"]]]
    rows = [[f, "score", c, repr(s), int(c in record["detected"]), "", "",
             record.get("note", "")] for c, s in record["scores"].items()]
    rows += [[f, "event", e["class"], repr(e["score"]), 1, e["onset"], e["offset"], ""]
             for e in record.get("events", [])]
    return rows


def results_csv(records):
    """The CSV text of many result records (``qdaed detect --csv``).

    Parameters
    ----------
    records : iterable of dict
        Result or error records, in the order of their files.

    Returns
    -------
    str
        The header ``CSV_COLUMNS``, then the ``csv_rows`` of each record; ``\\n`` line
        ends.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for record in records:
        w.writerows(csv_rows(record))
    return buf.getvalue()


def result_text(record):
    """One result record as ``qdaed detect`` prints it without ``--json``.

    Parameters
    ----------
    record : dict
        A result record (:func:`detect_file`) or an error record.

    Returns
    -------
    str or None
        ``FILE: class=score ...`` (3 decimals, ``*`` after a class detected), then its note and
        one line an event (onset-offset in s, its peak score); None for an error record.
    """
    if "error" in record:
        return None
    cols = "  ".join(f"{c}={s:.3f}{'*' if c in record['detected'] else ''}"
                     for c, s in record["scores"].items())
    lines = [f"{record['file']}: {cols}"]
    if "note" in record:
        lines.append(f"  note: {record['note']}")
    for e in record.get("events", []):
        lines.append(f"  {e['class']} {e['onset']:.2f}-{e['offset']:.2f} s "
                     f"(peak {e['score']:.3f})")
    return "\n".join(lines)


def summary_line(files, reasons, found):
    """What a batch did, in one line: files scored, files skipped by reason, folders passed
    over.

    Parameters
    ----------
    files : int
        The files of the batch.
    reasons : list of str
        The reason of each file skipped (:func:`skip_reason`).
    found : qdaed.data.audiofiles.Inputs
        What the search for audio files found (its unreadable and empty folders, the files
        it ignored).

    Returns
    -------
    str
        ``"N file(s) scored"``, ``"S of N file(s) scored, B skipped (REASON COUNT, ...)"`` or
        ``"none of the N file(s) could be scored (...)"``, then ``"; ..."`` of each kind of
        folder or file passed over.
    """
    counts = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    why = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
    extra = []
    if found.unreadable:
        extra.append(f"{len(found.unreadable)} folder(s) unreadable")
    if found.empty:
        extra.append(f"{len(found.empty)} folder(s) without audio files")
    if found.ignored:
        extra.append(f"{found.ignored} other file(s) in the folders are not audio by their "
                     f"extension")
    tail = "".join(f"; {e}" for e in extra)
    bad = len(reasons)
    if bad == files:
        return f"none of the {files} file(s) could be scored ({why}){tail}"
    if bad:
        return f"{files - bad} of {files} file(s) scored, {bad} skipped ({why}){tail}"
    return f"{files} file(s) scored{tail}"


__all__ = ["CSV_COLUMNS", "FileResult", "SKIP_REASONS", "USUAL_RATES", "csv_rows",
           "detect_file", "input_notes", "result_text", "results_csv", "results_in_order",
           "skip_reason", "summary_line"]
