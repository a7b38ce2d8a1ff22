"""Segment-based and event-based F1 of detected events, as sed_eval defines them.

Mesaros, Heittola & Virtanen, "Metrics for polyphonic sound event detection", Applied
Sciences 6(6):162, 2016; the definitions below are those of sed_eval 0.2's
``SegmentBasedMetrics`` and ``EventBasedMetrics`` with their defaults, and the conformance
tests compare with sed_eval where it installs. Events are dicts with ``class``, ``onset``,
``offset`` (seconds); a file is (reference events, estimated events, duration in s).

Segment-based (time resolution r, default 1 s): per file, segment i = [i·r, (i+1)·r) for
i < ⌈duration / r⌉; a class is active in a segment of the reference (or the estimate) if
one of its events covers any part of it (from ⌊onset / r⌋ to ⌈offset / r⌉ − 1). Over every
segment, class and file: TP = active in both, FP = estimated only, FN = reference only.

Event-based (collar t_c = 0.2 s, percentage 0.5): an estimated event matches a reference
event of the same class when |onset_est − onset_ref| ≤ t_c and
|offset_est − offset_ref| ≤ max(t_c, 0.5 · (offset_ref − onset_ref)); each event matches at
most once, and the matching is a maximum bipartite matching per file (sed_eval's "optimal").
TP = matched pairs, FP = unmatched estimates, FN = unmatched references.

From the totals: precision P = TP/(TP+FP), recall R = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN)
("overall", micro-averaged); per class the same from that class's counts, and "macro" is the
mean of the per-class F1 where it is defined (sed_eval's class-wise average, a nanmean).
As in sed_eval, P is undefined (None) without estimates and R without references, and F1
is undefined when either is: a class that was never detected drops out of the macro
average instead of counting 0 — read the overall F1 and the per-class counts beside it.
"""

from __future__ import annotations

import csv
import math

from qdaed.errors import DataError, InputError
from qdaed.validate import check_float


def _check(events, name):
    for e in events:
        if not (isinstance(e, dict) and {"class", "onset", "offset"} <= set(e)):
            raise InputError(f"{name}: each event needs class, onset, offset; got {e!r}")
        if not (0 <= e["onset"] <= e["offset"]) or not math.isfinite(e["offset"]):
            raise InputError(f"{name}: expected 0 <= onset <= offset, got {e!r}")


def _prf(tp, fp, fn):
    """P, R, F1 with sed_eval's conventions: P undefined without estimates, R without
    references, F1 undefined when either is, 0 when both are 0."""
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    if p is None or r is None:
        f = None
    else:
        f = 0.0 if p == r == 0 else 2 * p * r / (p + r)
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn}


def _summary(counts, classes):
    tp = sum(c[0] for c in counts.values())
    fp = sum(c[1] for c in counts.values())
    fn = sum(c[2] for c in counts.values())
    per_class = {c: _prf(*counts[c]) for c in classes}
    f1s = [m["f1"] for m in per_class.values() if m["f1"] is not None]
    return {"overall": _prf(tp, fp, fn), "class": per_class,
            "macro_f1": sum(f1s) / len(f1s) if f1s else None}


def _roll(events, cls, n_seg, res):
    active = [False] * n_seg
    for e in events:
        if e["class"] == cls:
            for i in range(int(math.floor(e["onset"] / res)),
                           min(n_seg, int(math.ceil(e["offset"] / res)))):
                active[i] = True
    return active


def segment_based(files, classes, resolution=1.0):
    """Segment-based metrics (module docstring) over ``files`` = [(ref, est, duration)]."""
    res = check_float("resolution", resolution, 0.0, lo_open=True)
    counts = {c: [0, 0, 0] for c in classes}
    for ref, est, duration in files:
        _check(ref, "reference")
        _check(est, "estimate")
        n_seg = int(math.ceil(check_float("duration", duration, 0.0) / res))
        for c in classes:
            a, b = _roll(ref, c, n_seg, res), _roll(est, c, n_seg, res)
            counts[c][0] += sum(x and y for x, y in zip(a, b))
            counts[c][1] += sum(y and not x for x, y in zip(a, b))
            counts[c][2] += sum(x and not y for x, y in zip(a, b))
    out = _summary(counts, classes)
    out["resolution"] = res
    return out


def _max_matching(adj, n_est):
    """Size of a maximum bipartite matching; adj[i] = estimates reference i may match."""
    owner = [-1] * n_est

    def augment(i, seen):
        for j in adj[i]:
            if not seen[j]:
                seen[j] = True
                if owner[j] < 0 or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return sum(augment(i, [False] * n_est) for i in range(len(adj)))


def matches(ref, est, collar=0.2, percentage=0.5):
    """Whether estimated event ``est`` matches reference event ``ref`` (module docstring)."""
    if ref["class"] != est["class"]:
        return False
    if abs(ref["onset"] - est["onset"]) > collar:
        return False
    return abs(ref["offset"] - est["offset"]) <= max(collar,
                                                     percentage * (ref["offset"] - ref["onset"]))


def event_based(files, classes, collar=0.2, percentage=0.5):
    """Event-based metrics (module docstring) over ``files`` = [(ref, est, duration)]."""
    collar = check_float("collar", collar, 0.0)
    percentage = check_float("percentage", percentage, 0.0, 1.0)
    counts = {c: [0, 0, 0] for c in classes}
    for ref, est, _ in files:
        _check(ref, "reference")
        _check(est, "estimate")
        for c in classes:
            r = [e for e in ref if e["class"] == c]
            s = [e for e in est if e["class"] == c]
            adj = [[j for j, b in enumerate(s) if matches(a, b, collar, percentage)] for a in r]
            tp = _max_matching(adj, len(s))
            counts[c][0] += tp
            counts[c][1] += len(s) - tp
            counts[c][2] += len(r) - tp
    out = _summary(counts, classes)
    out.update(collar=collar, percentage=percentage)
    return out


def event_metrics(files, classes):
    """Both, with sed_eval's defaults: {"segment": …, "event": …}."""
    return {"segment": segment_based(files, classes), "event": event_based(files, classes)}


def parse_events(text, classes):
    """The events of a manifest's ``events`` column (``kind:onset:duration:snr|…``, as
    ``qdaed synth`` writes it) whose kind is one of ``classes`` (distractors are left out)."""
    out = []
    for item in filter(None, (text or "").split("|")):
        parts = item.split(":")
        try:
            kind, onset, duration = parts[0], float(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise InputError(f"events: expected kind:onset:duration[:snr], got {item!r}") \
                from None
        if kind in classes:
            out.append({"class": kind, "onset": onset, "offset": round(onset + duration, 4)})
    return out


def manifest_events(path, classes):
    """{manifest row's path: reference events} from a manifest with an ``events`` column."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DataError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if not rows or "events" not in rows[0] or "path" not in rows[0]:
        raise DataError(f"{path}: --events needs 'path' and 'events' columns (onsets and "
                        "durations, as `qdaed synth` writes them)")
    try:
        return {r["path"]: parse_events(r["events"], classes) for r in rows}
    except InputError as exc:
        raise DataError(f"{path}: {exc}") from None
