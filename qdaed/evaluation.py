"""Event metrics of a detector over whole recordings: the one loop behind ``qdaed evaluate
--events`` and the event metrics of a pipeline run (:mod:`qdaed.pipeline.eventeval`).

Each recording is scanned as ``qdaed detect --events`` scans it (:mod:`qdaed.streaming`), its
events are found at the detector's stored thresholds (:func:`qdaed.events.scan_events`), and
:func:`qdaed.eventmetrics.event_metrics` scores them against the reference events:
segment-based F1 (1 s) and event-based F1 (collar 0.2 s, offset 50 %), overall and macro.

The reference events may come from a sed_eval event list (``qdaed evaluate --reference-tsv``,
:func:`qdaed.io.sedformats.read_events_tsv`): :func:`match_reference` finds each clip's events
in it, and :func:`reference_clips` makes the clips of a list given without a manifest.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from qdaed.data.manifest import Clip
from qdaed.errors import DataError
from qdaed.eventmetrics import event_metrics
from qdaed.events import scan_events, window_edges
from qdaed.io.paths import display_path


@dataclass
class EventEvaluation:
    """metrics: :func:`~qdaed.eventmetrics.event_metrics`' dict; files: per recording scored,
    (reference events, detected events, duration in s); tables: per recording scored, (window
    edges (N + 1,), window scores (N, C)), what PSDS needs; unreadable: [(name, reason)] of
    the recordings skipped."""

    metrics: dict
    files: list
    tables: list[tuple[np.ndarray, np.ndarray]]
    unreadable: list[tuple[str, str]]


def evaluate_events(det, recordings, options=None, *, skip_unreadable=True):
    """Event metrics of the detector ``det`` over ``recordings``: an iterable of (name,
    reference events, scan), where ``scan()`` returns the recording's
    :class:`~qdaed.streaming.Scan`. options: :class:`~qdaed.events.EventOptions` (None: the
    defaults). A recording whose scan raises ``DataError`` is listed in ``unreadable`` and left
    out (with ``skip_unreadable=False`` the error propagates)."""
    files, tables, unreadable = [], [], []
    for name, truth, scan in recordings:
        try:
            sc = scan()
        except DataError as exc:
            if not skip_unreadable:
                raise
            unreadable.append((name, str(exc)))
            continue
        files.append((truth, scan_events(sc, det.thresholds, det.classes, options),
                      sc.duration))
        tables.append((window_edges(sc.window_times(), sc.duration), sc.scores))
    return EventEvaluation(event_metrics(files, det.classes), files, tables, unreadable)


def reference_clips(reference, classes):
    """The clips of an event list given without a manifest.

    Parameters
    ----------
    reference : dict
        {file name: [event dict with ``"class"``, ...]} in the list's order
        (:func:`qdaed.io.sedformats.read_events_tsv`).
    classes : sequence of str
        The detector's classes.

    Returns
    -------
    list of qdaed.data.manifest.Clip
        One a file, in the list's order: its path the file name, its labels the classes of
        ``classes`` that its events have (in the order of ``classes``), its line the file's
        place counted as a manifest's rows are (the first is line 2).
    """
    return [Clip(line=i + 2, labels=tuple(c for c in classes
                                          if any(e["class"] == c for e in events)),
                 path=name) for i, (name, events) in enumerate(reference.items())]


def match_reference(reference, clips, classes, source):
    """Each clip's reference events from an event list.

    A clip's events are found under its path or, failing that, its file name when no other
    clip has that file name; a clip the list does not name has none.

    Parameters
    ----------
    reference : dict
        {file name: [event dict with ``"class"``, ...]}
        (:func:`qdaed.io.sedformats.read_events_tsv`).
    clips : list of qdaed.data.manifest.Clip
        The clips evaluated.
    classes : sequence of str
        The classes kept; events of others are left out.
    source : str
        The event list's path, for the error message.

    Returns
    -------
    dict
        {clip path: [its events of ``classes``, in the list's order]}.

    Raises
    ------
    DataError
        The list names none of the clips.
    """
    base = Counter(os.path.basename(c.path or "") for c in clips)
    truth, used = {}, set()
    for clip in clips:
        name = clip.path or ""
        key = name if name in reference else os.path.basename(name)
        if key in reference and (key == name or base[key] == 1):
            used.add(key)
            truth[clip.path] = [e for e in reference[key] if e["class"] in classes]
        else:
            truth[clip.path] = []
    if not used:
        raise DataError(f"--reference-tsv {display_path(source)}: names none of the "
                        f"{len(clips)} clip(s) (by manifest path or file name)")
    return truth


__all__ = ["EventEvaluation", "evaluate_events", "match_reference", "reference_clips"]
