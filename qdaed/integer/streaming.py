"""The integer student over a stream: (h, c) of every layer carried across chunks, and window
scores from running sums of the top layer's int8 outputs.

:class:`IntegerStream` runs the LSTM layers over consecutive chunks of int8 frames of any
size; each layer's :class:`~qdaed.integer.ops.LstmState` is carried, so the outputs are those
of one run over the concatenation, bit for bit (the kernels are sequential in time).

:class:`IntegerWindows` scores the windows [s, s + W) of the stream as the .tflite file
scores a clip of W frames, with the state at s carried from before it (as the float student's
stream does, :mod:`qdaed.streaming`): TFLite's int8 MEAN of a window is a function of the
int32 sum of its W outputs, so with running sums P[k] = Σ_{t<k} y_t (int64)

    pooled = sat8(z_pool + rescale(P[s + W] − P[s] − z_h · W, mean_multiplier(W)))
    logits = fully_connected(fc, pooled);  scores = logistic(logits)

— exactly what :func:`~qdaed.integer.ops.mean_over_time` computes over the window's y. The
first window of a file is the .tflite's computation on its first W frames exactly.
"""

from __future__ import annotations

import numpy as np

from qdaed.errors import InputError
from qdaed.features.streaming import window_ends
from qdaed.integer._checks import int_array
from qdaed.integer.ops import LstmState, fully_connected, logistic, lstm_layer, mean_multiplier
from qdaed.integer.student import IntegerStudent
from qdaed.kernels import integer as _k


class IntegerStream:
    """``push(x (T, F) int8)`` → the top layer's h (T, H) int8; every layer's (h, c) carried
    to the next push (``states``)."""

    def __init__(self, student):
        if not isinstance(student, IntegerStudent):
            raise InputError(f"student: expected an IntegerStudent, got "
                             f"{type(student).__name__}")
        self.student = student
        self.states = [LstmState.zero(la) for la in student.layers]

    def push(self, x):
        x = int_array("x", x, np.int8, shape=(None, self.student.input_size))
        if x.shape[0] == 0:
            return np.empty((0, self.student.layers[-1].hidden_size), np.int8)
        y = x[None]
        for la, st in zip(self.student.layers, self.states):
            y = lstm_layer(la, y, state=st)
        return y[0]


class IntegerWindows:
    """Window outputs of the integer student from its top layer's h, the interface of
    :class:`qdaed.streaming.StudentWindows`: ``push(y)`` returns [(start, logits (C,),
    scores (C,))] (float64, dequantized from int8) of the windows ending in the chunk,
    ``finish()`` the window ending at the last frame if no regular one does."""

    def __init__(self, student, window, hop):
        self.student, self.window, self.hop = student, window, hop
        top = student.layers[-1]
        self.z_in = top.hidden.zero_point
        self.multiplier, self.shift = mean_multiplier(top.hidden, student.pooled, window)
        self.sums = np.zeros((1, top.hidden_size), np.int64)    # P[k], k ≥ first
        self.first, self.t = 0, 0

    def _outputs(self, starts):
        if not len(starts):
            return []
        w, s = self.window, np.asarray(starts) - self.first
        window_sums = np.ascontiguousarray(self.sums[s + w] - self.sums[s])
        pooled = np.empty(window_sums.shape, np.int8)
        _k.int8_requantize_sums(window_sums, w, self.z_in, self.multiplier, self.shift,
                                self.student.pooled.zero_point, pooled)
        z = fully_connected(self.student.fc, pooled)
        q = logistic(z, self.student.fc.output)
        logits = self.student.fc.output.dequantize(z)
        scores = self.student.output.dequantize(q)
        return list(zip([int(v) for v in starts], logits, scores))

    def push(self, y):
        y = int_array("y", y, np.int8, shape=(None, self.sums.shape[1]))
        n = y.shape[0]
        self.sums = np.concatenate([self.sums, self.sums[-1] + np.cumsum(
            y.astype(np.int64), axis=0)])
        ends = window_ends(self.t, self.t + n, self.window, self.hop)
        self.t += n
        out = self._outputs(ends - self.window)
        cut = max(0, self.sums.shape[0] - (self.window + 1))   # keep P[t − W .. t]
        self.sums, self.first = self.sums[cut:], self.first + cut
        return out

    def finish(self):
        s = self.t - self.window
        return self._outputs([s]) if s >= 0 and s % self.hop else []


__all__ = ["IntegerStream", "IntegerWindows"]
