"""Array kernels of the integer student (int8 activations, int16 cell state), one op each.

The scalar arithmetic (rounding, multipliers, the int16 sigmoid/tanh tables, gemmlowp's
logistic) is in :mod:`qdaed.kernels.fixedpoint`; the equations, shapes and parameter rules are
documented on the public functions in :mod:`qdaed.integer.ops`, which validate every argument
before calling in here. Integers are carried in int64 inside the loops.
"""

import numpy as np

from qdaed.kernels import kernel
from qdaed.kernels.fixedpoint import (clamp, multiply_by_quantized_multiplier, sigmoid_int16,
                                      tanh_int16, wrap_int32, logistic_f4,
                                      rounding_divide_by_pot)

_I16_MIN, _I16_MAX = -32768, 32767


@kernel
def rescale_int32(x, multiplier, shift, out):
    """out[i] = multiply_by_quantized_multiplier(x[i], multiplier, shift) (int64 out)."""
    for i in range(x.size):
        out[i] = multiply_by_quantized_multiplier(x[i], multiplier, shift)


@kernel
def sigmoid_int16_array(x, input_multiplier, input_left_shift, out):
    """out[i] = sigmoid_int16(x[i]) (int16 in, int16 out)."""
    for i in range(x.size):
        out[i] = sigmoid_int16(np.int64(x[i]), input_multiplier, input_left_shift)


@kernel
def tanh_int16_array(x, input_multiplier, input_left_shift, out):
    """out[i] = tanh_int16(x[i]) (int16 in, int16 out)."""
    for i in range(x.size):
        out[i] = tanh_int16(np.int64(x[i]), input_multiplier, input_left_shift)


@kernel
def _gate_fc_int16(w, bias, v, multiplier, shift, out):
    """out[r] = clamp_int16(rescale(bias[r] + Σ_j w[r, j]·v[j])) for one gate's (H, D) weights:
    the int32 accumulation (wrapping) and the int16 requantization of TFLite's
    FullyConnected(int8 → int16)."""
    rows, depth = w.shape
    for r in range(rows):
        acc = np.int64(bias[r])
        for j in range(depth):
            acc += np.int64(w[r, j]) * np.int64(v[j])
        out[r] = clamp(multiply_by_quantized_multiplier(wrap_int32(acc), multiplier, shift),
                       _I16_MIN, _I16_MAX)


@kernel
def int8_lstm_layer(x, w_ih, w_hh, b_ih, b_hh, m_ih, s_ih, m_hh, s_hh,
                    m_fc, s_fc, m_ig, s_ig, m_h, s_h, h_zp, tanh_mult, tanh_shift,
                    h, c, y, trace, pre_trace, gate_trace, cell_trace):
    """One int8 LSTM layer over a batch of sequences (see qdaed.integer.ops.lstm_layer).

    x (B, T, I) int8; w_ih (4, H, I), w_hh (4, H, H) int8, gate order i, f, g, o;
    b_ih, b_hh (4, H) int32 with the zero points folded in; m_*/s_* (4,) per-gate rescales;
    h (B, H) int8 and c (B, H) int16: the initial state in, the final state out;
    y (B, T, H) int8 out. With trace, pre_trace/gate_trace (B, T, 4, H) and cell_trace
    (B, T, H) int16 receive the gate pre-activations, activations and cell states.
    """
    B, T, _ = x.shape
    H = h.shape[1]
    a_x = np.empty(H, np.int64)
    a_h = np.empty(H, np.int64)
    gates = np.empty((4, H), np.int64)
    hv = np.empty(H, np.int64)
    for b in range(B):
        for t in range(T):
            for j in range(H):
                hv[j] = h[b, j]
            xt = x[b, t]
            for k in range(4):
                _gate_fc_int16(w_ih[k], b_ih[k], xt, m_ih[k], s_ih[k], a_x)
                _gate_fc_int16(w_hh[k], b_hh[k], hv, m_hh[k], s_hh[k], a_h)
                for r in range(H):
                    pre = clamp(a_x[r] + a_h[r], _I16_MIN, _I16_MAX)
                    if trace:
                        pre_trace[b, t, k, r] = pre
                    if k == 2:
                        gates[k, r] = tanh_int16(pre, 0, 0)
                    else:
                        gates[k, r] = sigmoid_int16(pre, 0, 0)
                    if trace:
                        gate_trace[b, t, k, r] = gates[k, r]
            for r in range(H):
                fc = clamp(multiply_by_quantized_multiplier(gates[1, r] * np.int64(c[b, r]),
                                                            m_fc, s_fc), _I16_MIN, _I16_MAX)
                ig = clamp(multiply_by_quantized_multiplier(gates[0, r] * gates[2, r],
                                                            m_ig, s_ig), _I16_MIN, _I16_MAX)
                cn = clamp(fc + ig, _I16_MIN, _I16_MAX)
                c[b, r] = cn
                if trace:
                    cell_trace[b, t, r] = cn
                tc = tanh_int16(cn, tanh_mult, tanh_shift)
                hn = clamp(h_zp + multiply_by_quantized_multiplier(tc * gates[3, r], m_h, s_h),
                           -128, 127)
                h[b, r] = hn
                y[b, t, r] = hn


@kernel
def int8_sum_over_time(x, out):
    """out[b, j] = Σ_t x[b, t, j] in wrapping int32 (x (B, T, H) int8, out (B, H) int64)."""
    B, T, H = x.shape
    for b in range(B):
        for j in range(H):
            acc = np.int64(0)
            for t in range(T):
                acc += np.int64(x[b, t, j])
            out[b, j] = wrap_int32(acc)


@kernel
def int8_requantize_sums(sums, count, zp_in, multiplier, shift, zp_out, out):
    """out = clamp_int8(zp_out + rescale(sums − zp_in·count)), the last step of TFLite's
    quantized MEAN (sums int64 holding int32, out int8, same shape, flattened)."""
    s = sums.reshape(-1)
    o = out.reshape(-1)
    for i in range(s.size):
        shifted = wrap_int32(s[i] - np.int64(zp_in) * count)
        o[i] = clamp(zp_out + multiply_by_quantized_multiplier(shifted, multiplier, shift),
                     -128, 127)


@kernel
def int8_fully_connected(x, w, bias, multipliers, shifts, zp_out, out):
    """out[b, c] = clamp_int8(zp_out + rescale_c(bias[c] + Σ_j w[c, j]·x[b, j])) with int32
    accumulation (x (B, D) int8, w (C, D) int8, bias (C,) int32 with the input zero point
    folded in, per-row multiplier/shift (C,), out (B, C) int8)."""
    B, D = x.shape
    C = w.shape[0]
    for b in range(B):
        for ch in range(C):
            acc = np.int64(bias[ch])
            for j in range(D):
                acc += np.int64(w[ch, j]) * np.int64(x[b, j])
            out[b, ch] = clamp(zp_out + multiply_by_quantized_multiplier(
                wrap_int32(acc), multipliers[ch], shifts[ch]), -128, 127)


@kernel
def int8_logistic(x, zp_in, radius, multiplier, left_shift, out):
    """TFLite's int8 LOGISTIC, element by element (x, out int8 flattened):
    d = x − zp_in; d ≤ −radius → −128; d ≥ radius → 127; otherwise
    clamp_int8(rounding_divide_by_pot(logistic_f4(rescale(d)), 23) − 128)."""
    xs = x.reshape(-1)
    o = out.reshape(-1)
    for i in range(xs.size):
        d = np.int64(xs[i]) - zp_in
        if d <= -radius:
            o[i] = -128
        elif d >= radius:
            o[i] = 127
        else:
            q4 = multiply_by_quantized_multiplier(d, multiplier, left_shift)
            o[i] = clamp(rounding_divide_by_pot(logistic_f4(q4), 23) - 128, -128, 127)
