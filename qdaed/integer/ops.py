"""The integer student's operators, with TFLite Micro's int8 semantics, one op each.

Notation. A real tensor r is stored as integers q with r ≈ s·(q − z): scale s (a float32, as
the .tflite file stores it) and zero point z. Activations are int8 asymmetric (z ∈ [−128,
127]); weights int8 symmetric (z = 0); biases int32 with scale s_in·s_w and z = 0; the LSTM
cell state int16 with z = 0 and s_c = 2^p; gate pre-activations int16 Q3.12 (s = 2^-12);
gate outputs int16 Q0.15 (s = 2^-15). Every real rescale M is a (multiplier, shift) pair
from :func:`qdaed.integer.fixedpoint.quantize_multiplier`, applied by
``rescale(x, m, s)`` (TFLite's MultiplyByQuantizedMultiplier; rounding rules there).
sat8/sat16 clamp to [−128, 127] / [−32768, 32767]. Sums are int32.

How each multiplier is derived from the float32 scales matters to the last bit, and follows
TFLite Micro's Prepare functions: every product and quotient of scales in double precision,

    LSTM gate FC:     M = double(s_in) · double(s_w) / 2^-12
    LSTM Mul ops:     M = double(s_a) · double(s_b) / double(s_out)
    MEAN:             M = double(s_in) / double(s_out), then divided by the count (below)
    FULLY_CONNECTED:  M_c = double(s_in) · double(s_w[c]) / double(s_out)  (s_w[c] = s_w per
                      tensor)
    LOGISTIC (int8):  frexp(double(s_in) · 2^27) (its own rule, see :func:`logistic`)

(The TFLite source of 2026-08 rounds s_in · s_w to float32 before the division; the
tflite-micro build qdaed's tests pin computes it in double, and a float32 product differs
from it by up to 2^-24 relatively — enough to move a double-rounded result across a tie,
which the conformance tests caught in an H = 512 layer.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from qdaed.errors import InputError
from qdaed.integer._checks import int_array, int_value, scale_value
from qdaed.integer.fixedpoint import quantize_multiplier, tanh_input_params
from qdaed.kernels import integer as _k

GATE_PRE_SCALE = 2.0 ** -12     # Q3.12: gate pre-activations
GATE_OUT_SCALE = 2.0 ** -15     # Q0.15: gate outputs
LOGISTIC_OUTPUT = (1.0 / 256.0, -128)   # the int8 LOGISTIC output quantization TFLite requires
GATES = ("i", "f", "g", "o")    # PyTorch's order of the 4H axis


@dataclass(frozen=True)
class QuantParams:
    """An int8 tensor's quantization: real ≈ scale · (q − zero_point)."""

    scale: float
    zero_point: int

    def __post_init__(self):
        object.__setattr__(self, "scale", float(scale_value("scale", self.scale)))
        object.__setattr__(self, "zero_point", int_value("zero_point", self.zero_point,
                                                         -128, 127))

    def quantize(self, x):
        """int8 of a float array: sat8(round(float32(x) / float32(scale)) + zero_point), the
        division in float32 and ties away from zero (TFLite's QUANTIZE)."""
        x = np.asarray(x, np.float32)
        if not np.all(np.isfinite(x)):
            raise InputError("x: expected finite values")
        v = (x / np.float32(self.scale)).astype(np.float64)   # the float32 quotient, exactly
        r = np.sign(v) * np.floor(np.abs(v) + 0.5)             # std::round: ties away from 0
        return np.clip(r.astype(np.float64) + self.zero_point, -128, 127).astype(np.int8)

    def dequantize(self, q):
        """float64 scale · (q − zero_point)."""
        return self.scale * (np.asarray(q, np.float64) - self.zero_point)


def _multiplier_from_double_product(s_a, s_b, s_out):
    return quantize_multiplier(float(s_a) * float(s_b) / float(s_out))


@dataclass(frozen=True)
class LstmLayer:
    """One int8 UNIDIRECTIONAL_SEQUENCE_LSTM layer ("8x8→16"), as stored in a .tflite file.

    w_ih (4, H, I), w_hh (4, H, H) int8: one symmetric per-tensor scale per gate matrix
    (w_ih_scales, w_hh_scales (4,) float32) — TFLite Micro's LSTM uses per-tensor scales only.
    bias (4, H) int32: (b_ih + b_hh) / (s_in · s_w_ih[k]), rounded; gate order i, f, g, o.
    input, hidden: QuantParams of x and of h (the layer output shares h's); cell_power p:
    the cell state is int16 with scale 2^p (p ≤ 2, so that the tanh rescale fits int32).
    """

    w_ih: np.ndarray
    w_hh: np.ndarray
    bias: np.ndarray
    w_ih_scales: np.ndarray
    w_hh_scales: np.ndarray
    input: QuantParams
    hidden: QuantParams
    cell_power: int
    derived: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        w_hh = int_array("w_hh", self.w_hh, np.int8, ndim=3)
        if w_hh.shape[0] != 4 or w_hh.shape[1] != w_hh.shape[2] or w_hh.shape[1] < 1:
            raise InputError(f"w_hh: expected shape (4, H, H), got {w_hh.shape}")
        H = w_hh.shape[1]
        w_ih = int_array("w_ih", self.w_ih, np.int8, shape=(4, H, None))
        if w_ih.shape[2] < 1:
            raise InputError("w_ih: expected at least one input feature")
        bias = int_array("bias", self.bias, np.int32, shape=(4, H))
        scales = {}
        for name in ("w_ih_scales", "w_hh_scales"):
            v = np.asarray(getattr(self, name), np.float64).reshape(-1)
            if v.shape != (4,):
                raise InputError(f"{name}: expected 4 scales (one per gate), got {v.shape}")
            scales[name] = np.array([scale_value(f"{name}[{k}]", s) for k, s in enumerate(v)],
                                    np.float32)
        for name in ("input", "hidden"):
            if not isinstance(getattr(self, name), QuantParams):
                raise InputError(f"{name}: expected a QuantParams")
        p = int_value("cell_power", self.cell_power, -43, 2)
        for name, value in (("w_ih", w_ih), ("w_hh", w_hh), ("bias", bias), *scales.items()):
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        object.__setattr__(self, "cell_power", p)
        object.__setattr__(self, "derived", self._derive())

    @property
    def hidden_size(self):
        return self.w_hh.shape[1]

    @property
    def input_size(self):
        return self.w_ih.shape[2]

    def _derive(self):
        """The integer parameters TFLite Micro's Prepare computes from the stored tensors:

            m_ih[k], s_ih[k] = qm(double(s_in) · double(s_w_ih[k]) / 2^-12)
            m_hh[k], s_hh[k] = qm(double(s_h) · double(s_w_hh[k]) / 2^-12)
            forget·cell:  qm(2^-15 · 2^p / 2^p) = (2^30, −14)
            input·cell gate:  qm(2^-15 · 2^-15 / 2^p)
            output·tanh(c):   qm(2^-15 · 2^-15 / double(s_h))
            tanh of c:    tanh_input_params(p)
            b_ih'[k, r] = bias[k, r] − z_in · Σ_j w_ih[k, r, j]     (int32, wrapping)
            b_hh'[k, r] =           − z_h  · Σ_j w_hh[k, r, j]
        (qm = quantize_multiplier). Folding the zero points into the biases gives the same
        int32 sums as TFLite's Σ_j w·(x_j − z) + bias, in two's complement arithmetic.
        """
        s_in, s_h = self.input.scale, self.hidden.scale
        c_scale = 2.0 ** self.cell_power
        ih = [_multiplier_from_double_product(s_in, s, GATE_PRE_SCALE) for s in self.w_ih_scales]
        hh = [_multiplier_from_double_product(s_h, s, GATE_PRE_SCALE) for s in self.w_hh_scales]

        def wrap(v):
            return (((v.astype(np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)).astype(np.int32)
        b_ih = wrap(self.bias.astype(np.int64)
                    - self.input.zero_point * self.w_ih.astype(np.int64).sum(axis=2))
        b_hh = wrap(-self.hidden.zero_point * self.w_hh.astype(np.int64).sum(axis=2))
        return dict(
            m_ih=np.array([m for m, _ in ih], np.int64),
            s_ih=np.array([s for _, s in ih], np.int64),
            m_hh=np.array([m for m, _ in hh], np.int64),
            s_hh=np.array([s for _, s in hh], np.int64),
            forget_cell=_multiplier_from_double_product(GATE_OUT_SCALE, c_scale, c_scale),
            input_cell=_multiplier_from_double_product(GATE_OUT_SCALE, GATE_OUT_SCALE, c_scale),
            output=_multiplier_from_double_product(GATE_OUT_SCALE, GATE_OUT_SCALE, s_h),
            tanh=tanh_input_params(self.cell_power), b_ih=b_ih, b_hh=b_hh)


@dataclass
class LstmTrace:
    """Every intermediate of a layer run: pre (B, T, 4, H) int16 Q3.12 gate pre-activations,
    gates (B, T, 4, H) int16 Q0.15 gate outputs (i, f, g, o), cell (B, T, H) int16 (scale 2^p)."""

    pre: np.ndarray
    gates: np.ndarray
    cell: np.ndarray


@dataclass
class LstmState:
    """The state a layer carries between calls: h (B, H) int8 and c (B, H) int16 (scale
    2^p); :meth:`zero` is the initial state (h = z_h, the real 0; c = 0)."""

    h: np.ndarray
    c: np.ndarray

    @classmethod
    def zero(cls, layer, batch=1):
        return cls(np.full((batch, layer.hidden_size), layer.hidden.zero_point, np.int8),
                   np.zeros((batch, layer.hidden_size), np.int16))


def lstm_layer(layer, x, *, trace=False, state=None):
    """Run one int8 LSTM layer over x (B, T, I) int8 from h_0 = z_h (real 0), c_0 = 0, or from
    ``state`` (an :class:`LstmState`, updated in place to (h_T, c_T)): a sequence cut in
    chunks, each run with the state the previous left, gives the whole run's outputs exactly.

    Per sequence b and step t (TFLite Micro's LstmStep; gate order i, f, g, o; k a gate):

        x̂_k = sat16(rescale(b_ih'[k] + W_ih[k] x_t,     m_ih[k], s_ih[k]))     (H,) Q3.12
        ĥ_k = sat16(rescale(b_hh'[k] + W_hh[k] h_{t−1}, m_hh[k], s_hh[k]))     (H,) Q3.12
        a_k = sat16(x̂_k + ĥ_k)
        i, f, o = sigmoid_int16(a_i, a_f, a_o);  g = tanh_int16(a_g)           (H,) Q0.15
        c_t = sat16( sat16(rescale(f ⊙ c_{t−1}, forget_cell))
                   + sat16(rescale(i ⊙ g, input_cell)) )                      (H,) int16 2^p
        h_t = sat8(z_h + rescale(tanh_int16(c_t; 2^p) ⊙ o, output))           (H,) int8

    Products (W x, f ⊙ c, i ⊙ g, …) are exact int32. Returns y (B, T, H) int8 (h_1..h_T),
    or (y, LstmTrace) with trace=True.
    """
    if not isinstance(layer, LstmLayer):
        raise InputError(f"layer: expected an LstmLayer, got {type(layer).__name__}")
    x = int_array("x", x, np.int8, shape=(None, None, layer.input_size))
    B, T, _ = x.shape
    if B < 1 or T < 1:
        raise InputError(f"x: expected at least one sequence and one step, got shape {x.shape}")
    H = layer.hidden_size
    d = layer.derived
    if state is None:
        state = LstmState.zero(layer, B)
    elif not isinstance(state, LstmState):
        raise InputError(f"state: expected an LstmState, got {type(state).__name__}")
    else:
        for name, dtype in (("h", np.int8), ("c", np.int16)):
            a = getattr(state, name)
            if not (isinstance(a, np.ndarray) and a.dtype == dtype and a.shape == (B, H)
                    and a.flags.c_contiguous and a.flags.writeable):
                raise InputError(f"state.{name}: expected a writeable C-contiguous "
                                 f"{np.dtype(dtype).name} array of shape {(B, H)}")
    h, c = state.h, state.c
    y = np.empty((B, T, H), np.int8)
    tshape = (B, T, 4, H) if trace else (0, 0, 0, 0)
    pre, gates = np.zeros(tshape, np.int16), np.zeros(tshape, np.int16)
    cell = np.zeros((B, T, H) if trace else (0, 0, 0), np.int16)
    _k.int8_lstm_layer(x, layer.w_ih, layer.w_hh, d["b_ih"], d["b_hh"], d["m_ih"], d["s_ih"],
                       d["m_hh"], d["s_hh"], *d["forget_cell"], *d["input_cell"], *d["output"],
                       layer.hidden.zero_point, *d["tanh"], h, c, y, trace, pre, gates, cell)
    return (y, LstmTrace(pre, gates, cell)) if trace else y


def mean_multiplier(input_params, output_params, count):
    """(multiplier, shift) of TFLite's int8 MEAN over `count` elements:
    (m, s) = qm(double(s_in) / double(s_out)); n = min(⌊log2 count⌋, 32, 31 + s);
    m' = ⌊m · 2^n / count⌋ (int64), s' = s − n."""
    count = int_value("count", count, 1, (1 << 31) - 1)
    m, s = quantize_multiplier(float(input_params.scale) / float(output_params.scale))
    n = min(count.bit_length() - 1, 32, 31 + s)
    return (m << n) // count, s - n


def mean_over_time(x, input_params, output_params):
    """TFLite's int8 MEAN over axis 1 (time), keep_dims false: x (B, T, H) int8 → (B, H) int8

        S[b, j] = Σ_t x[b, t, j]                               (int32)
        out[b, j] = sat8(z_out + rescale(S[b, j] − z_in · T, m', s'))   (mean_multiplier)
    """
    for name, p in (("input_params", input_params), ("output_params", output_params)):
        if not isinstance(p, QuantParams):
            raise InputError(f"{name}: expected a QuantParams, got {type(p).__name__}")
    x = int_array("x", x, np.int8, ndim=3)
    B, T, H = x.shape
    if B < 1 or T < 1 or H < 1:
        raise InputError(f"x: expected a non-empty (B, T, H) array, got shape {x.shape}")
    m, s = mean_multiplier(input_params, output_params, T)
    sums = np.empty((B, H), np.int64)
    _k.int8_sum_over_time(x, sums)
    out = np.empty((B, H), np.int8)
    _k.int8_requantize_sums(sums, T, input_params.zero_point, m, s,
                            output_params.zero_point, out)
    return out


@dataclass(frozen=True)
class FullyConnected:
    """An int8 FULLY_CONNECTED layer: weights (C, D) int8 symmetric with scales (C,) per
    output channel or (1,) per tensor; bias (C,) int32 = b / (s_in · s_w), rounded."""

    weights: np.ndarray
    weight_scales: np.ndarray
    bias: np.ndarray
    input: QuantParams
    output: QuantParams
    derived: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        w = int_array("weights", self.weights, np.int8, ndim=2)
        C, D = w.shape
        if C < 1 or D < 1:
            raise InputError(f"weights: expected a non-empty (C, D) array, got {w.shape}")
        b = int_array("bias", self.bias, np.int32, shape=(C,))
        sc = np.asarray(self.weight_scales, np.float64).reshape(-1)
        if sc.size not in (1, C):
            raise InputError(f"weight_scales: expected 1 or {C} scales, got {sc.size}")
        sc = np.array([scale_value(f"weight_scales[{k}]", s) for k, s in enumerate(sc)],
                      np.float32)
        for name in ("input", "output"):
            if not isinstance(getattr(self, name), QuantParams):
                raise InputError(f"{name}: expected a QuantParams")
        for name, value in (("weights", w), ("bias", b), ("weight_scales", sc)):
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        object.__setattr__(self, "derived", self._derive())

    @property
    def per_channel(self):
        """True when there is one scale per output row (the per-channel rule applies)."""
        return self.weight_scales.size > 1

    def _derive(self):
        """Per-row (multiplier, shift) — the rule in the module docstring — and the folded
        bias b'[c] = bias[c] − z_in · Σ_j w[c, j]."""
        C = self.weights.shape[0]
        scales = (self.weight_scales if self.weight_scales.size > 1
                  else np.repeat(self.weight_scales, C))
        pairs = [_multiplier_from_double_product(self.input.scale, s, self.output.scale)
                 for s in scales]
        b = self.bias.astype(np.int64) - self.input.zero_point * self.weights.astype(
            np.int64).sum(axis=1)
        b = (((b + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)).astype(np.int32)
        return dict(multipliers=np.array([m for m, _ in pairs], np.int64),
                    shifts=np.array([s for _, s in pairs], np.int64), bias=b)


def fully_connected(layer, x):
    """out (B, C) int8 = sat8(z_out + rescale_c(b'[c] + Σ_j w[c, j] · x[b, j])), int32 sums
    (TFLite's int8 FULLY_CONNECTED, no fused activation). x (B, D) int8."""
    if not isinstance(layer, FullyConnected):
        raise InputError(f"layer: expected a FullyConnected, got {type(layer).__name__}")
    x = int_array("x", x, np.int8, shape=(None, layer.weights.shape[1]))
    d = layer.derived
    out = np.empty((x.shape[0], layer.weights.shape[0]), np.int8)
    _k.int8_fully_connected(x, layer.weights, d["bias"], d["multipliers"], d["shifts"],
                            layer.output.zero_point, out)
    return out


def logistic_params(input_params):
    """(multiplier, left_shift, radius) of TFLite's int8 LOGISTIC for an input scale s:
    q, e = frexp(double(s) · 2^27); multiplier = round(q · 2^31) (ties away from zero);
    left_shift = e; radius = ⌊15 · 2^27 / 2^e⌋ (in double)."""
    q, e = math.frexp(float(input_params.scale) * 2.0 ** 27)
    if not 0 <= e <= 30:
        raise InputError(f"input_params.scale: {input_params.scale} is outside the range the "
                         "int8 logistic supports (2^-27 ≤ s·2^27 < 2^30)")
    m = int(math.floor(q * 2.0 ** 31 + 0.5))
    radius = int(math.floor(15.0 * 2.0 ** 27 / 2.0 ** e))
    return m, e, radius


def logistic(x, input_params):
    """TFLite's int8 LOGISTIC (output scale 1/256, zero point −128), element by element:

        d = x − z_in;  d ≤ −radius → −128;  d ≥ radius → 127;  otherwise
        y = sat8(rdbpot(σ_F(rescale(d, multiplier, left_shift)), 23) − 128)

    where rescale yields d·s_in in Q4.27 and σ_F is gemmlowp's fixed-point logistic
    (Q4.27 → Q0.31: exp on negative values by a Taylor polynomial on [−1/4, 0) times
    exp(−2^k) factors, then 1/(1 + e) by Newton–Raphson) (logistic_params gives the rest).
    """
    if not isinstance(input_params, QuantParams):
        raise InputError(f"input_params: expected a QuantParams, got {type(input_params).__name__}")
    x = int_array("x", x, np.int8)
    m, e, radius = logistic_params(input_params)
    out = np.empty(x.shape, np.int8)
    _k.int8_logistic(x.reshape(-1), input_params.zero_point, radius, m, e, out.reshape(-1))
    return out
