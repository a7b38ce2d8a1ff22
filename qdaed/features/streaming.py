"""The LFBE front end over a signal given in blocks, and the windows that end in each block.

:class:`StreamingLfbe` gives the rows of :func:`qdaed.features.fbank.lfbe` of the whole
signal as soon as their samples have arrived; :func:`window_ends` is the arithmetic of the
regular windows of W frames every ``hop`` frames, shared by the float and the integer streams
(:mod:`qdaed.streaming`, :mod:`qdaed.integer.streaming`).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from qdaed.data.rates import SAMPLE_RATE
from qdaed.data.resampler import drop_before
from qdaed.features.fbank import lfbe_of_frames, make_options, num_frames


class StreamingLfbe:
    """LFBE frames of a 16 kHz signal given in blocks (``qdaed.features.fbank.lfbe``'s rows).

    ``push(samples)`` returns the frames whose samples have all arrived, ``finish()`` the
    rest (with ``snip_edges=False`` the last frames reflect the signal's end). Frames are
    cut at absolute sample positions and computed by ``lfbe_of_frames``, so the rows equal
    ``lfbe`` of the whole signal up to the rounding of batched products. With dither > 0
    the noise comes from ``numpy.random.default_rng(0)``, frame after frame.
    """

    def __init__(self, options, sample_rate=SAMPLE_RATE):
        self.opts = options if not isinstance(options, dict) else make_options(**options)
        self.rate = sample_rate
        self.length, self.shift, _ = self.opts.frame_sizes(sample_rate)
        self.rng = np.random.default_rng(0) if self.opts.dither > 0 else None
        self.buf = np.empty(0)
        self.buf0 = 0
        self.received = 0
        self.t_next = 0

    @property
    def _offset(self):
        """start(t) = t·S + offset: 0 (snip_edges) or S/2 − L/2 (centred frames)."""
        return 0 if self.opts.snip_edges else self.shift // 2 - self.length // 2

    def _start(self, t):
        return t * self.shift + self._offset

    def _compute(self, t_end, n_total=None):
        t = np.arange(self.t_next, t_end, dtype=np.int64)
        if t.size == 0:
            return np.empty((0, self.opts.num_mel_bins), np.float32)
        first = self._start(self.t_next) - self.buf0
        n = n_total if n_total is not None else self.received
        if first >= 0 and self._start(t_end - 1) + self.length <= n:   # no reflection: a view
            view = sliding_window_view(self.buf, self.length)[first::self.shift][:t.size]
            return self._done(lfbe_of_frames(view, self.rate, self.opts, rng=self.rng), t_end)
        idx = (t * self.shift + self._offset)[:, None] + np.arange(self.length)[None, :]
        while True:   # reflection at both ends, as fbank._frames (only at the ends)
            low, high = idx < 0, idx >= n
            if not (low.any() or high.any()):
                break
            idx = np.where(low, -idx - 1, idx)
            idx = np.where(high, 2 * n - 1 - idx, idx)
        idx = idx - self.buf0
        if idx.min() < 0 or idx.max() >= self.buf.size:   # cannot happen: a bug, not input
            raise RuntimeError("StreamingLfbe: a frame reaches samples no longer held")
        return self._done(lfbe_of_frames(self.buf[idx], self.rate, self.opts, rng=self.rng),
                          t_end)

    def _done(self, feats, t_end):
        self.t_next = t_end
        keep = max(0, min(self._start(self.t_next), self.received))
        self.buf, self.buf0 = drop_before(self.buf, self.buf0, keep)
        return feats

    def push(self, x):
        x = np.asarray(x, dtype=np.float64)
        if self.opts.int16_scale:
            x = x * 32768.0
        self.buf = np.concatenate([self.buf, x]) if self.buf.size else x.copy()
        self.received += x.size
        # frame t is ready once start(t) + L ≤ received
        room = self.received - self.length - self._offset
        t_end = max(self.t_next, room // self.shift + 1 if room >= 0 else 0)
        return self._compute(t_end)

    def finish(self):
        count = num_frames(self.received, self.rate, self.opts)
        return self._compute(max(count, self.t_next), n_total=self.received)


def window_ends(e0, e1, window, hop):
    """Ends e in (e0, e1] of the regular windows [e − W, e): e ≥ W and (e − W) % hop == 0."""
    first = max(window, e0 + 1)
    k = -(-(first - window) // hop)
    return np.arange(window + k * hop, e1 + 1, hop, dtype=np.int64)


__all__ = ["StreamingLfbe", "window_ends"]
