"""Real soundscapes for event-level evaluation: real clips placed into real backgrounds.

A manifest of real recordings holds clips with one weak label each; it has no recording with
events at known times, so segment- and event-based metrics need recordings built for them.
A soundscape is built from the clips of ONE split (the pipeline passes the test split only,
so no training or validation clip is ever in one):

1. its length N is drawn uniformly in [min_seconds, max_seconds] (whole samples at 16 kHz);
2. the background is the split's negative clips (no label) end to end, in a seeded random
   order, each whole (the last one cut at N), drawn without replacement across soundscapes
   until every negative was used, then again;
3. k positive clips (k uniform in [min_events, max_events], fewer when they do not fit) are
   drawn the same way; each is one event, its whole length, labelled with its clip's classes.
   The events are placed without overlapping, at least ``min_gap`` seconds apart and inside
   the soundscape: with L the events' total length and g the gaps' total, the free samples
   F = N − L − g are split at k sorted uniform integers u_1 ≤ … ≤ u_k in [0, F], and event i
   starts at sample  u_i + Σ_{j<i} (len_j + gap);
4. each event is scaled so that its RMS is EBR dB above the background's RMS over the span it
   covers (EBR uniform in ``ebr_db``; a silent span keeps the event's own level), and added;
5. if the mix leaves [−1, 1], the whole soundscape is scaled down (the annotation does not
   change).

The annotation of an event is its first and one-past-last sample: onset = start / 16000,
offset = (start + length) / 16000 seconds, exact to the sample. The labels are the clips'
weak labels: an event spans its whole clip (a "dog" clip of 4 s may bark for 1 s of it), so
event-based F1 with a 200 ms collar is harsh on real data; the segment-based F1 (1 s) is the
fairer reading. Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qdaed.data.rates import SAMPLE_RATE
from qdaed.errors import DataError, InputError
from qdaed.validate import check_float, check_int



@dataclasses.dataclass(frozen=True)
class SoundscapeOptions:
    """How soundscapes are built (see the module docstring)."""

    count: int = 20
    min_seconds: float = 30.0
    max_seconds: float = 60.0
    min_events: int = 2
    max_events: int = 6
    min_gap: float = 1.0
    ebr_db: tuple = (0.0, 10.0)
    seed: int = 20190702

    def __post_init__(self):
        check_int("count", self.count, lo=1, hi=10_000)
        check_float("min_seconds", self.min_seconds, lo=1.0, hi=3600.0)
        check_float("max_seconds", self.max_seconds, lo=self.min_seconds, hi=3600.0)
        check_int("min_events", self.min_events, lo=1, hi=1000)
        check_int("max_events", self.max_events, lo=self.min_events, hi=1000)
        check_float("min_gap", self.min_gap, lo=0.0, hi=60.0)
        if len(self.ebr_db) != 2 or self.ebr_db[0] > self.ebr_db[1]:
            raise InputError(f"ebr_db: expected (low, high) with low <= high, got "
                             f"{self.ebr_db!r}")
        for v in self.ebr_db:
            check_float("ebr_db", v, lo=-40.0, hi=40.0)
        check_int("seed", self.seed, lo=0)


@dataclasses.dataclass(frozen=True)
class Soundscape:
    """A built soundscape: float32 samples at 16 kHz and its events (``onset_sample``,
    ``offset_sample``, ``class``, ``onset``/``offset`` in seconds, ``source``, ``gain``), and
    the background clips used (in order)."""

    waveform: np.ndarray
    events: list
    background: list

    @property
    def duration(self):
        return self.waveform.size / SAMPLE_RATE


class _Deck:
    """Items drawn in a seeded random order without replacement; reshuffled when used up."""

    def __init__(self, items, rng):
        self.items, self.rng, self.order = list(items), rng, []

    def draw(self):
        if not self.order:
            self.order = list(self.rng.permutation(len(self.items)))
        return self.items[self.order.pop()]


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def place(lengths, n_samples, gap, rng):
    """Start samples of events of ``lengths`` in ``n_samples``: in order, non-overlapping,
    ``gap`` samples apart at least; None when they do not fit."""
    free = n_samples - int(sum(lengths)) - gap * (len(lengths) - 1)
    if free < 0:
        return None
    u = np.sort(rng.integers(0, free + 1, size=len(lengths)))
    starts, used = [], 0
    for i, length in enumerate(lengths):
        starts.append(int(u[i]) + used + i * gap)
        used += int(length)
    return starts


def compose(backgrounds, events, options, rng):
    """One :class:`Soundscape` from decks of clips.

    backgrounds: a deck (``draw() -> (name, samples)``) of negative clips;
    events: a deck (``draw() -> (name, samples, classes)``) of positive clips.
    """
    n = int(rng.integers(int(round(options.min_seconds * SAMPLE_RATE)),
                         int(round(options.max_seconds * SAMPLE_RATE)) + 1))
    bg, used = np.zeros(n, np.float64), []
    filled = 0
    while filled < n:
        name, x = backgrounds.draw()
        take = min(x.size, n - filled)
        bg[filled:filled + take] = x[:take]
        used.append(name)
        filled += take
    k = int(rng.integers(options.min_events, options.max_events + 1))
    chosen = [events.draw() for _ in range(k)]
    gap = int(round(options.min_gap * SAMPLE_RATE))
    starts = place([c[1].size for c in chosen], n, gap, rng)
    while starts is None and len(chosen) > 1:
        chosen.pop()
        starts = place([c[1].size for c in chosen], n, gap, rng)
    if starts is None:
        raise DataError(f"a {chosen[0][1].size / SAMPLE_RATE:g} s event does not fit in a "
                        f"{n / SAMPLE_RATE:g} s soundscape (min_seconds too small)")
    mix, annotation = bg.copy(), []
    for (name, x, classes), start in zip(chosen, starts):
        ebr = float(rng.uniform(*options.ebr_db))
        span, level = _rms(bg[start:start + x.size]), _rms(x)
        gain = 1.0 if span == 0.0 or level == 0.0 else span * 10 ** (ebr / 20) / level
        mix[start:start + x.size] += gain * x
        for c in classes:
            annotation.append({"class": c, "onset_sample": start,
                               "offset_sample": start + x.size,
                               "onset": start / SAMPLE_RATE,
                               "offset": (start + x.size) / SAMPLE_RATE,
                               "source": name, "gain": gain, "ebr_db": ebr})
    peak = float(np.max(np.abs(mix)))
    if peak > 1.0:
        mix /= peak
    return Soundscape(mix.astype(np.float32), annotation, used)


def build(negatives, positives, options=SoundscapeOptions()):
    """``options.count`` soundscapes from clips already loaded at 16 kHz.

    negatives: [(name, samples)]; positives: [(name, samples, classes)] — both from one split.
    """
    if not negatives:
        raise DataError("soundscapes need negative clips (no label) for their backgrounds; "
                        "the split has none")
    if not positives:
        raise DataError("soundscapes need positive clips for their events; the split has "
                        "none")
    rng = np.random.default_rng(options.seed)
    bg, ev = _Deck(negatives, rng), _Deck(positives, rng)
    return [compose(bg, ev, options, rng) for _ in range(options.count)]


def sed_eval_rows(name, soundscape):
    """Reference rows ``filename onset offset event_label`` (sed_eval's annotation format)."""
    return [f"{name}\t{e['onset']:.6f}\t{e['offset']:.6f}\t{e['class']}"
            for e in soundscape.events]


__all__ = ["Soundscape", "SoundscapeOptions", "build", "compose", "place", "sed_eval_rows"]
