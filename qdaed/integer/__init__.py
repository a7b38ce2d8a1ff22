"""The integer-only student, bit-exact with TensorFlow Lite Micro's int8 kernels.

:mod:`qdaed.integer.fixedpoint` (rescales, int16 sigmoid/tanh), :mod:`qdaed.integer.ops` (the
LSTM layer, the temporal mean, the FC head, the logistic), :mod:`qdaed.integer.student` (the
whole network) and :mod:`qdaed.integer.calibrate` (scales and zero points from a float or
k-bit student and a representative set). ``qdaed.formats.tflite_export`` writes the same network
as a .tflite file.
"""

from qdaed.integer.calibrate import calibrate
from qdaed.integer.fixedpoint import quantize_multiplier, rescale, sigmoid_int16, tanh_int16
from qdaed.integer.ops import (FullyConnected, LstmLayer, QuantParams, fully_connected,
                               logistic, lstm_layer, mean_over_time)
from qdaed.integer.student import IntegerOutputs, IntegerStudent

__all__ = ["quantize_multiplier", "rescale", "sigmoid_int16", "tanh_int16", "QuantParams",
           "LstmLayer", "FullyConnected", "lstm_layer", "mean_over_time", "fully_connected",
           "logistic", "IntegerStudent", "IntegerOutputs", "calibrate"]
