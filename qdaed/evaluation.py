"""Event metrics of a detector over whole recordings: the one loop behind ``qdaed evaluate
--events`` and the event metrics of a pipeline run (:mod:`qdaed.pipeline.eventeval`).

Each recording is scanned as ``qdaed detect --events`` scans it (:mod:`qdaed.streaming`), its
events are found at the detector's stored thresholds (:func:`qdaed.events.scan_events`), and
:func:`qdaed.eventmetrics.event_metrics` scores them against the reference events:
segment-based F1 (1 s) and event-based F1 (collar 0.2 s, offset 50 %), overall and macro.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qdaed.errors import DataError
from qdaed.eventmetrics import event_metrics
from qdaed.events import scan_events, window_edges


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


__all__ = ["EventEvaluation", "evaluate_events"]
