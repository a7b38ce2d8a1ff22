"""Calibration: the integer student's scales and zero points from a float (or k-bit) student
and a representative set, by TensorFlow Lite's post-training rules.

    calibrate(model, representative, quantized=None, per_channel_head=True) → IntegerStudent

model: a :class:`qdaed.models.student.StudentLSTM` with mean pooling, or a
:class:`qdaed.detector.Detector` holding one (its k-bit tensors, if any, are used).
quantized: {name: QuantizedTensor} of a k-bit student (qd-k): the network then runs on
Q_k(w) (``qdaed.models.quantized.dequantized_state``), the weights the k-bit model deploys.
representative: normalised LFBE clips (N, T, F) float, the caller's choice of N; the float
network is run on all of them (float64) and every range below is the min/max over all clips,
steps and units.

Rules (r a real range [lo, hi] observed, widened to contain 0):

    asymmetric int8 (x, each layer's h, the mean, the logits):
        s = float32((hi − lo) / 255);  z = sat8(round(−128 − lo / s))   (ties away from 0;
        z at the clip when 0 is at an end); hi = lo = 0 gives s = 1, z = 0
    symmetric int8 weights: s = float32(max|w| / 127) (1 when w = 0); q = round(w / s),
        ties away from zero, in [−127, 127]. LSTM: one scale per gate matrix (TFLite Micro's
        LSTM supports per-tensor scales only); head: one per output row when
        per_channel_head (TFLite's default for dense layers), else one per tensor.
    int32 biases: q = round(b / float32(s_in · s_w)), b = b_ih + b_hh for the LSTM
    cell state: s_c = 2^p, p the smallest integer with 32767 · 2^p ≥ max|c|, clamped to
        [−20, 2] (p ≤ 2 keeps TFLite's tanh rescale inside int32; a larger |c| saturates)
    scores: LOGISTIC's fixed 1/256 and −128.
"""

from __future__ import annotations

import math

import numpy as np

from qdaed.errors import InputError
from qdaed.integer.ops import FullyConnected, LstmLayer, QuantParams
from qdaed.integer.student import IntegerStudent
from qdaed.models.quantized import dequantized_state
from qdaed.models.student import StudentLSTM
from qdaed.nn.lstm import Inference

CELL_POWER_RANGE = (-20, 2)


def _round_half_away(v):
    v = np.asarray(v, np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def asymmetric_params(lo, hi):
    """QuantParams of an int8 tensor whose real values span [lo, hi] (rules above)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"range [{lo}, {hi}]: expected finite values")
    if hi == lo:
        return QuantParams(1.0, 0)
    s = float(np.float32((hi - lo) / 255.0))
    z = int(np.clip(_round_half_away(-128.0 - lo / s), -128, 127))
    return QuantParams(s, z)


def symmetric_weights(w):
    """(int8 codes, float32 scale) of a weight tensor, one scale for all of it."""
    w = np.asarray(w, np.float64)
    top = float(np.abs(w).max()) if w.size else 0.0
    s = np.float32(top / 127.0) if top > 0 else np.float32(1.0)
    if not float(s) > 0:        # a max below float32's range: every weight rounds to 0
        s = np.float32(1.0)
    q = np.clip(_round_half_away(w / float(s)), -127, 127).astype(np.int8)
    return q, s


def quantize_bias(b, scale):
    """int32 codes round(b / scale) (ties away from zero; scale a float32 or one per
    element); InputError past int32."""
    q = _round_half_away(np.asarray(b, np.float64) / np.asarray(scale, np.float64))
    if np.any(np.abs(q) > 2 ** 31 - 1):
        raise InputError("bias: does not fit int32 at the calibrated scale")
    return q.astype(np.int32)


def cell_power(max_abs_c):
    """The cell state's scale exponent p (rules above)."""
    m = float(max_abs_c)
    lo, hi = CELL_POWER_RANGE
    if not m > 0:
        return lo
    p = math.ceil(math.log2(m / 32767.0))
    while 32767.0 * 2.0 ** p < m:     # guard log2's rounding
        p += 1
    while 32767.0 * 2.0 ** (p - 1) >= m:
        p -= 1
    return int(min(max(p, lo), hi))


def _holds_model(obj):
    """Whether ``obj`` is a detector (a network with its k-bit tensors): what
    :class:`qdaed.detector.Detector` is to this package, which sits below it."""
    return not isinstance(obj, StudentLSTM) and hasattr(obj, "model") and hasattr(
        obj, "quantized")


def _float_params(model, quantized):
    if _holds_model(model):
        quantized = model.quantized if quantized is None else quantized
        model = model.model
    if not isinstance(model, StudentLSTM):
        raise InputError(f"model: expected a StudentLSTM or a Detector holding one, got "
                         f"{type(model).__name__}")
    if model.pooling != "mean":
        raise InputError(f"model: the integer student needs mean pooling, got '{model.pooling}'")
    params = model.params if not quantized else dequantized_state(model.params, quantized)
    return model, {n: np.asarray(v, np.float64) for n, v in params.items()}


def _observe(model, params, x):
    """Run the float64 network over x (N, T, F) step by step; the ranges calibration needs."""
    L, H = model.num_layers, model.hidden_size
    lstm_p = {n[len("lstm."):]: v for n, v in params.items() if n.startswith("lstm.")}
    run = Inference(lstm_p, x.shape[0])
    h_lo, h_hi = np.zeros(L), np.zeros(L)
    c_max = np.zeros(L)
    total = np.zeros((x.shape[0], H))
    for t in range(x.shape[1]):
        total += run.run(x[:, t:t + 1])[:, 0]
        h, c = run.h, run.c                           # (L, N, H)
        h_lo = np.minimum(h_lo, h.min(axis=(1, 2)))
        h_hi = np.maximum(h_hi, h.max(axis=(1, 2)))
        c_max = np.maximum(c_max, np.abs(c).max(axis=(1, 2)))
    pooled = total / x.shape[1]
    logits = pooled @ params["fc.weight"].T + params["fc.bias"]
    return h_lo, h_hi, c_max, pooled, logits


def calibrate(model, representative, quantized=None, *, per_channel_head=True):
    """The IntegerStudent of ``model`` calibrated on ``representative`` (module docstring)."""
    model, params = _float_params(model, quantized)
    x = np.asarray(representative)
    if x.dtype.kind != "f" or x.ndim != 3 or x.shape[2] != model.input_size or min(x.shape) < 1:
        raise InputError(f"representative: expected float clips (N, T, {model.input_size}) with "
                         f"N, T ≥ 1, got {x.dtype} {x.shape}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InputError("representative: expected finite values")
    h_lo, h_hi, c_max, pooled, logits = _observe(model, params, x)
    q_in = asymmetric_params(x.min(), x.max())
    H, layers, prev = model.hidden_size, [], q_in
    for layer in range(model.num_layers):
        w_ih = params[f"lstm.weight_ih_l{layer}"].reshape(4, H, -1)
        w_hh = params[f"lstm.weight_hh_l{layer}"].reshape(4, H, H)
        b = (params[f"lstm.bias_ih_l{layer}"] + params[f"lstm.bias_hh_l{layer}"]).reshape(4, H)
        qi = [symmetric_weights(w_ih[k]) for k in range(4)]
        qh = [symmetric_weights(w_hh[k]) for k in range(4)]
        bias = np.stack([quantize_bias(b[k], np.float32(prev.scale) * qi[k][1])
                         for k in range(4)])
        hidden = asymmetric_params(h_lo[layer], h_hi[layer])
        layers.append(LstmLayer(np.stack([q for q, _ in qi]), np.stack([q for q, _ in qh]),
                                bias, np.array([s for _, s in qi]), np.array([s for _, s in qh]),
                                prev, hidden, cell_power(c_max[layer])))
        prev = hidden
    q_pool = asymmetric_params(pooled.min(), pooled.max())
    w_fc, b_fc = params["fc.weight"], params["fc.bias"]
    if per_channel_head and w_fc.shape[0] > 1:
        rows = [symmetric_weights(w_fc[c]) for c in range(w_fc.shape[0])]
        w_q = np.stack([q for q, _ in rows])
        w_s = np.array([s for _, s in rows], np.float32)
    else:
        w_q, s = symmetric_weights(w_fc)
        w_s = np.array([s], np.float32)
    bias_scales = (np.float32(q_pool.scale) * w_s).astype(np.float32)
    b_q = quantize_bias(b_fc, bias_scales if w_s.size > 1 else bias_scales[0])
    q_logits = asymmetric_params(logits.min(), logits.max())
    fc = FullyConnected(w_q, w_s, b_q, q_pool, q_logits)
    return IntegerStudent(q_in, tuple(layers), q_pool, fc)
