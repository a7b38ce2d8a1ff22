"""Time-stamped events from window scores (``qdaed detect --events``, ``Detector.events``).

Per class c, from the N window scores s_k,c of a :class:`qdaed.streaming.Scan`:

1. decisions d_k = s_k,c ≥ θ_c, θ_c the class threshold stored in the model (chosen at the
   validation EER point);
2. a median filter over ``median`` consecutive windows (odd; the ends repeat the first and
   last decision), which removes isolated windows: with the default hop of half a window,
   every instant lies in two windows, so a sound makes at least two consecutive windows
   positive and survives the default filter of 3;
3. time: window k stands for the stretch of the file closer to its centre than to any other
   window's centre (the first from 0 s, the last to the file's end), so a run of positive
   windows k1..k2 gives the event [left edge of k1, right edge of k2);
4. events of a class closer than ``min_gap`` seconds are merged, then events shorter than
   ``min_duration`` seconds dropped;
5. each event's score is the highest window score inside it (before filtering).

The time resolution is the hop, and a window's score summarises its whole length: an event
much shorter than the window makes every window that contains it positive, so its reported
extent tends toward a window's length around it (half a window too early at the onset, at
most). Smaller ``--hop`` values sharpen the edges at no cost in the student's arithmetic
(running sums), not the window effect.

Defaults (qdaed's choices): median 3 windows, min_gap 0 s, min_duration 0 s.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qdaed.errors import InputError
from qdaed.validate import check_float, check_int


@dataclasses.dataclass(frozen=True)
class EventOptions:
    """median: odd window count of the median filter (1 = off); min_gap, min_duration in s."""

    median: int = 3
    min_gap: float = 0.0
    min_duration: float = 0.0

    def __post_init__(self):
        check_int("median", self.median, lo=1)
        if self.median % 2 == 0:
            raise InputError(f"median: expected an odd number of windows, got {self.median}")
        check_float("min_gap", self.min_gap, 0.0)
        check_float("min_duration", self.min_duration, 0.0)


def median_filter(d, size):
    """Median of each run of ``size`` (odd) values of the boolean sequence d, the ends padded
    by repeating the first and last value."""
    d = np.asarray(d, dtype=bool)
    if size == 1 or d.size == 0:
        return d.copy()
    r = size // 2
    padded = np.concatenate([np.repeat(d[:1], r), d, np.repeat(d[-1:], r)]).astype(np.int64)
    sums = np.convolve(padded, np.ones(size, dtype=np.int64), mode="valid")
    return sums > r


def runs(d):
    """[(k1, k2)] inclusive index ranges of the True runs of a boolean sequence."""
    d = np.concatenate([[False], np.asarray(d, dtype=bool), [False]])
    edges = np.flatnonzero(d[1:] != d[:-1])
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def window_edges(times, duration):
    """(N + 1,) boundaries of the stretches each window stands for: 0, the midpoints of
    consecutive window centres, the file's duration."""
    centres = times.mean(axis=1)
    return np.concatenate([[0.0], 0.5 * (centres[1:] + centres[:-1]), [duration]])


def events_from_windows(times, scores, thresholds, classes, duration, options=None):
    """Events (module docstring) as [{"class", "onset", "offset", "score"}] in time order.

    times: (N, 2) window onset/offset in s; scores: (N, C); thresholds: (C,); duration: s.
    """
    opts = options or EventOptions()
    scores = np.asarray(scores, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(classes) or times.shape != (scores.shape[0], 2):
        raise InputError(f"scores/times: expected (N, {len(classes)}) and (N, 2), got "
                         f"{scores.shape} and {times.shape}")
    edges = window_edges(times, duration) if scores.shape[0] else np.zeros(1)
    out = []
    for j, cls in enumerate(classes):
        d = median_filter(scores[:, j] >= thresholds[j], opts.median)
        found = []
        for k1, k2 in runs(d):
            ev = [float(edges[k1]), float(edges[k2 + 1]), float(scores[k1:k2 + 1, j].max())]
            if found and ev[0] - found[-1][1] < opts.min_gap:
                found[-1][1], found[-1][2] = ev[1], max(found[-1][2], ev[2])
            else:
                found.append(ev)
        out += [{"class": cls, "onset": round(a, 4), "offset": round(b, 4), "score": s}
                for a, b, s in found if b - a >= opts.min_duration]
    out.sort(key=lambda e: (e["onset"], e["class"]))
    return out


def scan_events(scan, thresholds, classes, options=None):
    """Events of a :class:`qdaed.streaming.Scan`."""
    return events_from_windows(scan.window_times(), scan.scores, thresholds, classes,
                               scan.duration, options)
