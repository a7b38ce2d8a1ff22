"""The integer student: int8 LSTM layers, the temporal mean, the FC head and the logistic.

    x  (B, T, F) int8      normalised LFBE frames quantized with ``input`` (QuantParams)
    y_l = lstm_layer(layers[l], y_{l−1})          (B, T, H) int8, y_0 = x
    p  = mean_over_time(y_L, layers[-1].hidden, pooled)     (B, H) int8
    z  = fully_connected(fc, p)                   (B, C) int8 logits (scale fc.output)
    s  = logistic(z, fc.output)                   (B, C) int8, σ ≈ (s + 128) / 256

This is what the exported .tflite file computes (qdaed.formats.tflite_export), op for op.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qdaed.errors import InputError
from qdaed.integer.ops import (LOGISTIC_OUTPUT, FullyConnected, LstmLayer, QuantParams,
                               fully_connected, logistic, lstm_layer, mean_over_time)


@dataclass
class IntegerOutputs:
    """Every int8 tensor between ops: layers [(B, T, H)] per LSTM layer, pooled (B, H),
    logits (B, C), scores (B, C) (the model output)."""

    layers: list
    pooled: np.ndarray
    logits: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class IntegerStudent:
    """The calibrated integer tensors and parameters of a student (see the module docstring).

    input: the int8 input's QuantParams; layers: LstmLayer per layer (layers[0].input is
    ``input``, layers[l].input is layers[l−1].hidden); pooled: the mean's output QuantParams;
    fc: the FullyConnected head (fc.input is ``pooled``).
    """

    input: QuantParams
    layers: tuple
    pooled: QuantParams
    fc: FullyConnected

    def __post_init__(self):
        layers = tuple(self.layers)
        if not layers or not all(isinstance(la, LstmLayer) for la in layers):
            raise InputError("layers: expected one or more LstmLayer")
        if not isinstance(self.fc, FullyConnected):
            raise InputError("fc: expected a FullyConnected")
        prev = self.input
        for k, la in enumerate(layers):
            if la.input != prev:
                raise InputError(f"layers[{k}].input: {la.input} differs from the quantization "
                                 f"of its input {prev}")
            if k and la.input_size != layers[k - 1].hidden_size:
                raise InputError(f"layers[{k}]: input size {la.input_size} differs from the "
                                 f"previous hidden size {layers[k - 1].hidden_size}")
            prev = la.hidden
        if self.fc.input != self.pooled:
            raise InputError("fc.input: differs from pooled")
        if self.fc.weights.shape[1] != layers[-1].hidden_size:
            raise InputError("fc.weights: columns differ from the hidden size")
        object.__setattr__(self, "layers", layers)

    @property
    def input_size(self):
        return self.layers[0].input_size

    @property
    def num_classes(self):
        return self.fc.weights.shape[0]

    @property
    def output(self):
        """QuantParams of the scores: scale 1/256, zero point −128."""
        return QuantParams(*LOGISTIC_OUTPUT)

    def quantize_input(self, x):
        """Normalised LFBE frames (float) → int8 with the input QuantParams."""
        return self.input.quantize(x)

    def forward(self, x):
        """IntegerOutputs for x (B, T, F) int8."""
        y = x
        outs = []
        for la in self.layers:
            y = lstm_layer(la, y)
            outs.append(y)
        p = mean_over_time(y, self.layers[-1].hidden, self.pooled)
        z = fully_connected(self.fc, p)
        s = logistic(z, self.fc.output)
        return IntegerOutputs(outs, p, z, s)

    def scores(self, x):
        """σ(logits) as float64 (s + 128) / 256 for x (B, T, F) int8."""
        return self.output.dequantize(self.forward(x).scores)
