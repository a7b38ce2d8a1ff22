"""Resampling to the front end's rate: whole signals (:func:`resample`, scipy's
``resample_poly``) and signals given in blocks (:class:`StreamingResampler`, the same output
computed output sample by output sample with :func:`qdaed.kernels.resample.polyphase_block`).
"""

from __future__ import annotations

import math

import numpy as np

from qdaed.data.rates import SAMPLE_RATE
from qdaed.kernels.resample import polyphase_block
from qdaed.validate import check_int


def resample(x, rate, target=SAMPLE_RATE):
    """Polyphase resampling of a 1-D signal from ``rate`` to ``target`` Hz (no-op if equal)."""
    rate = check_int("rate", rate, lo=1)
    target = check_int("target", target, lo=1)
    if rate == target:
        return x
    from scipy.signal import resample_poly   # here: importing scipy.signal takes ~0.5 s

    g = math.gcd(rate, target)
    return resample_poly(x, target // g, rate // g)


def resample_filter(up, down):
    """scipy ``resample_poly``'s default filter for the reduced ratio up/down, scaled by up:
    Kaiser (β = 5) windowed sinc of 2·half + 1 taps, half = 10·max(up, down), cutoff
    1/max(up, down) of Nyquist (float64)."""
    from scipy.signal import firwin   # here: importing scipy.signal takes ~0.5 s

    max_rate = max(up, down)
    half = 10 * max_rate
    return firwin(2 * half + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * up, half


class StreamingResampler:
    """``scipy.signal.resample_poly(x, target, rate)`` of a signal given in blocks.

    ``push(block)`` returns the output samples that the input so far determines;
    ``finish()`` the rest (the signal's end is zero-padded, as resample_poly pads). The
    concatenation equals resample_poly of the whole signal to float64 rounding (tested); the
    memory held is the filter plus about 2·half/up input samples.
    """

    def __init__(self, rate, target=SAMPLE_RATE):
        rate = check_int("rate", rate, lo=1)
        target = check_int("target", target, lo=1)
        g = math.gcd(rate, target)
        self.up, self.down = target // g, rate // g
        self.identity = self.up == self.down
        if not self.identity:
            self.h, self.half = resample_filter(self.up, self.down)
        self.buf = np.empty(0)
        self.buf0 = 0          # absolute index of buf[0]
        self.received = 0
        self.m_next = 0        # next output sample

    def _outputs(self, m_end, n_total):
        out = np.empty(max(0, m_end - self.m_next))
        if out.size:
            polyphase_block(self.buf, self.buf0, n_total, self.h, self.up, self.down,
                            self.half, self.m_next, out)
        self.m_next = max(self.m_next, m_end)
        # drop the samples no later output reaches: j < ceil((m·down − half) / up)
        keep = max(0, -((self.half - self.m_next * self.down) // self.up))
        self.buf, self.buf0 = drop_before(self.buf, self.buf0, keep)
        return out

    def push(self, x):
        x = np.asarray(x, dtype=np.float64)
        if self.identity:
            self.received += x.size
            return x
        self.buf = np.concatenate([self.buf, x]) if self.buf.size else x.copy()
        self.received += x.size
        # y[m] is final once its last input j_hi = (m·down + half) // up has arrived
        m_end = -((self.half - self.received * self.up) // self.down)
        return self._outputs(m_end, np.iinfo(np.int64).max)

    def finish(self):
        if self.identity:
            return np.empty(0)
        n_out = -(-(self.received * self.up) // self.down)
        return self._outputs(n_out, self.received)


def drop_before(buf, buf0, keep):
    """A sample buffer that starts at absolute index ``buf0``, without the samples before
    ``keep`` (no longer needed by any later output): (buffer, its new start)."""
    if keep > buf0:
        return buf[keep - buf0:], keep
    return buf, buf0


__all__ = ["StreamingResampler", "drop_before", "resample", "resample_filter"]
