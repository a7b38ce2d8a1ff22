"""Obvious NumPy references for qdaed's kernels and running computations, for tests only:
every fast kernel is compared with one of these (the LSTM cell, convolution, batch-norm,
max-pool, the quantizer and its bit packing, LFBE, resampling, running window means, the
integer student's rescales, int16 sigmoid/tanh, int8 LSTM, mean, FC and logistic), and
bench/bench_student.py times the textbook LSTM training step against qdaed's.

Each is the textbook formula written as directly as possible (slow, no cleverness), so that
a test compares the optimised code against something a reader can check by eye.
"""

import math
from fractions import Fraction

import numpy as np

from qdaed.kernels.fixedpoint import SIGMOID_TABLE_UINT16

FLOAT32_EPS = float(np.finfo(np.float32).eps)   # Kaldi's log floor


def polyphase_resample(x, h, up, down, half, n_out):
    """y[m] = Σ_j x[j] h[m·down + half − j·up] over every j with a valid filter index."""
    y = np.zeros(n_out)
    for m in range(n_out):
        for j in range(x.size):
            k = m * down + half - j * up
            if 0 <= k < h.size:
                y[m] += x[j] * h[k]
    return y


def window_means(frame_values, starts, window):
    """Mean of frame_values (T, C) over each window [s, s + window)."""
    return np.array([frame_values[s:s + window].astype(np.float64).mean(axis=0)
                     for s in starts])


def window_starts(num_frames, window, hop):
    """0, hop, 2·hop, … while the window fits, plus T − W if that is not among them."""
    starts = list(range(0, num_frames - window + 1, hop))
    if starts and starts[-1] != num_frames - window:
        starts.append(num_frames - window)
    return starts


# ---- LSTM cell (qdaed/kernels/lstm.py) ---------------------------------------------

def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def lstm_cell_forward(a_x, a_h, bias, c_prev):
    a = a_x.astype(np.float64) + a_h + bias
    H = c_prev.shape[1]
    i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
    g, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
    c = f * c_prev + i * g
    return np.concatenate([i, f, g, o], axis=1), c, o * np.tanh(c)


def lstm_cell_backward(gates, c_prev, c, dy, dh_next, dc):
    H = c.shape[1]
    i, f, g, o = (gates[:, k * H:(k + 1) * H].astype(np.float64) for k in range(4))
    dh = dy + dh_next
    tau = np.tanh(c)
    dct = dc + dh * o * (1 - tau ** 2)
    da = np.concatenate([dct * g * i * (1 - i), dct * c_prev * f * (1 - f),
                         dct * i * (1 - g ** 2), dh * tau * o * (1 - o)], axis=1)
    return da, dct * f


# ---- convolution (qdaed/kernels/conv.py) -------------------------------------------

def conv2d(x, w, b, stride, pad):
    """Direct nested-loop cross-correlation with zero padding."""
    nb, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((nb, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((nb, o, ho, wo))
    for n in range(nb):
        for oc in range(o):
            for i in range(ho):
                for j in range(wo):
                    patch = xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    y[n, oc, i, j] = np.sum(patch * w[oc]) + (0.0 if b is None else b[oc])
    return y


def im2col(x, kh, kw, stride, pad):
    """cols[b, (c, i, j), (ho, wo)] = x_pad[b, c, ho·sh + i, wo·sw + j], from a zero-padded copy.
    stride, pad: (h, w) pairs."""
    (sh, sw), (ph, pw) = stride, pad
    nb, c, h, w = x.shape
    xp = np.zeros((nb, c, h + 2 * ph, w + 2 * pw), x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    cols = np.zeros((nb, c, kh, kw, ho, wo), x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
    return cols.reshape(nb, c * kh * kw, ho * wo)


def col2im(cols, x_shape, kh, kw, stride, pad):
    """The adjoint of im2col: every column entry added back (np.add.at) to the padded pixel
    it came from, then the padding cropped."""
    (sh, sw), (ph, pw) = stride, pad
    nb, c, h, w = x_shape
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    cols = cols.reshape(nb, c, kh, kw, ho, wo)
    xp = np.zeros((nb, c, h + 2 * ph, w + 2 * pw), cols.dtype)
    rows, cs = np.arange(ho) * sh, np.arange(wo) * sw
    for i in range(kh):
        for j in range(kw):
            np.add.at(xp, (slice(None), slice(None), (rows + i)[:, None], (cs + j)[None, :]),
                      cols[:, :, i, j])
    return xp[:, :, ph:ph + h, pw:pw + w]


# ---- batch-norm (qdaed/kernels/batchnorm.py) ---------------------------------------

def batchnorm2d(params, buffers, x, train, momentum=0.1, eps=1e-5):
    """The textbook formulas, written out with numpy reductions."""
    if train:
        mu = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        rm = (1 - momentum) * buffers["running_mean"] + momentum * mu
        rv = (1 - momentum) * buffers["running_var"] + momentum * x.var(axis=(0, 2, 3), ddof=1)
    else:
        mu, var = buffers["running_mean"], buffers["running_var"]
        rm, rv = mu, var
    xhat = (x - mu[:, None, None]) / np.sqrt(var[:, None, None] + eps)
    return params["weight"][:, None, None] * xhat + params["bias"][:, None, None], rm, rv


# ---- max-pool (qdaed/kernels/pool2d.py) --------------------------------------------

def maxpool2d(x, k=3, s=2, p=1):
    nb, c, h, w = x.shape
    xp = np.full((nb, c, h + 2 * p, w + 2 * p), -np.inf)
    xp[:, :, p:p + h, p:p + w] = x
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    y = np.empty((nb, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            y[:, :, i, j] = xp[:, :, i * s:i * s + k, j * s:j * s + k].max(axis=(2, 3))
    return y


# ---- quantizer and bit packing (qdaed/kernels/quant.py) ----------------------------

def quant_groups(v, group):
    """Independent split of the flat tensor into its groups (list of 1-D arrays)."""
    flat = v.reshape(-1)
    if group == "tensor":
        return [flat]
    if group == "row":
        return list(v.reshape(v.shape[0], -1))
    return [flat[i:i + group] for i in range(0, flat.size, group)]


def f32_at_most(x):
    f = np.float32(x)
    return float(np.nextafter(f, np.float32(-np.inf)) if float(f) > x else f)


def f32_at_least(x):
    f = np.float32(x)
    return float(np.nextafter(f, np.float32(np.inf)) if float(f) < x else f)


def quantize_groups(w, bits, group, symmetric, u=None):
    """(codes, alpha, beta) following the module docstring, one group at a time."""
    s = 2 ** bits - 1
    groups = quant_groups(w.astype(np.float64), group)
    us = quant_groups(u, group) if u is not None else [None] * len(groups)
    codes, alphas, betas = [], [], []
    for v, uu in zip(groups, us):
        if symmetric:
            m = 2 ** (bits - 1) - 1
            top = np.abs(v).max()
            if top == 0:
                step = 0.0
            else:
                # smallest number with 24 − k significant bits that is ≥ top / m
                e = math.floor(math.log2(top / m))
                unit = 2.0 ** (e - (24 - bits) + 1)
                step = max(math.ceil(top / m / unit) * unit, 2.0 ** -126)
            a, b = step * s, -step * m + 0.0
            x = v / step + m if step else None
            lo_c, hi_c = 0, 2 * m
        else:
            b = f32_at_most(v.min())
            a = f32_at_least(v.max() - b)
            x = (v - b) * s / a if a else None
            lo_c, hi_c = 0, s
        if x is None:
            c = np.zeros(v.size)
        elif uu is None:
            c = np.clip(np.rint(x), lo_c, hi_c)
        else:
            c = np.clip(np.floor(x + uu), lo_c, hi_c)
        codes.append(c)
        alphas.append(a)
        betas.append(b)
    return (np.concatenate(codes).reshape(w.shape), np.array(alphas, np.float32),
            np.array(betas, np.float32))


def pack_codes(codes, bits):
    """Little-endian bit stream: bit b of code i is stream bit i·k + b; stream bit j is bit
    j mod 8 of byte j // 8."""
    c = codes.reshape(-1).astype(np.int64)
    stream = ((c[:, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(stream, bitorder="little")


# ---- LFBE (qdaed/features/fbank.py) ------------------------------------------------

def kaldi_fbank(x, sr=16000):
    """Frame-by-frame float64 loop written from Kaldi's documentation (an independent check)."""
    L, S, N, M = 400, 160, 512, 64
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)  # noqa: E731
    lo, hi = mel(20.0), mel(8000.0)
    d = (hi - lo) / (M + 1)
    out = []
    for t in range(1 + (len(x) - L) // S):
        fr = [float(v) for v in x[t * S:t * S + L]]
        mean = sum(fr) / L
        fr = [v - mean for v in fr]
        fr = [fr[0] * (1 - 0.97)] + [fr[n] - 0.97 * fr[n - 1] for n in range(1, L)]
        fr = [v * (0.5 - 0.5 * math.cos(2 * math.pi * n / (L - 1))) ** 0.85
              for n, v in enumerate(fr)]
        spec = np.fft.fft(np.array(fr + [0.0] * (N - L)))
        power = np.abs(spec[:N // 2]) ** 2
        row = []
        for m in range(M):
            left, centre, right = lo + m * d, lo + (m + 1) * d, lo + (m + 2) * d
            e = 0.0
            for k in range(N // 2):
                z = mel(k * sr / N)
                if left < z < right:
                    e += power[k] * ((z - left) / (centre - left) if z <= centre
                                     else (right - z) / (right - centre))
            row.append(math.log(max(e, FLOAT32_EPS)))
        out.append(row)
    return np.array(out)


# ---- a whole LSTM training step, the textbook loop (bench/bench_student.py times it) ----

def bce_grad(z, y):
    """∂/∂z of mean BCE(y, σ(z)) over B·C."""
    return ((1.0 / (1.0 + np.exp(-z)) - y) / z.size).astype(z.dtype)


def lstm_training_step(params, num_layers, x, y):
    """The textbook loop: per step one np.dot of [x_t, h_{t-1}] with [W_ih | W_hh], NumPy
    ufuncs for the gates, per-step accumulation of the weight gradients."""
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    batch, steps, _ = x.shape
    inp = [x[:, t] for t in range(steps)]
    tapes = []
    for layer in range(num_layers):
        w = np.concatenate([params[f"lstm.weight_ih_l{layer}"],
                            params[f"lstm.weight_hh_l{layer}"]], axis=1)
        b = params[f"lstm.bias_ih_l{layer}"] + params[f"lstm.bias_hh_l{layer}"]
        hdim = w.shape[0] // 4
        h = np.zeros((batch, hdim), x.dtype)
        c = np.zeros((batch, hdim), x.dtype)
        tape, out = [], []
        for t in range(steps):
            xh = np.concatenate([inp[t], h], axis=1)
            a = np.dot(xh, w.T) + b
            i, f, g, o = sig(a[:, :hdim]), sig(a[:, hdim:2 * hdim]), np.tanh(a[:, 2 * hdim:3 * hdim]), sig(a[:, 3 * hdim:])
            c_prev, c = c, f * c + i * g
            tc = np.tanh(c)
            h = o * tc
            tape.append((xh, i, f, g, o, c_prev, tc))
            out.append(h)
        tapes.append((w, tape))
        inp = out
    pooled = np.mean(inp, axis=0)
    z = pooled @ params["fc.weight"].T + params["fc.bias"]
    dz = bce_grad(z, y)
    grads = {"fc.weight": dz.T @ pooled, "fc.bias": dz.sum(0)}
    dout = [dz @ params["fc.weight"] / steps] * steps
    for layer in reversed(range(num_layers)):
        w, tape = tapes[layer]
        hdim = w.shape[0] // 4
        n_in = w.shape[1] - hdim
        dw = np.zeros_like(w)
        db = np.zeros(4 * hdim, x.dtype)
        dh_next = np.zeros((batch, hdim), x.dtype)
        dc = np.zeros((batch, hdim), x.dtype)
        dinp = [None] * steps
        for t in reversed(range(steps)):
            xh, i, f, g, o, c_prev, tc = tape[t]
            dh = dout[t] + dh_next
            dc = dc + dh * o * (1 - tc * tc)
            da = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                                 dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
            dc = dc * f
            dw += np.dot(da.T, xh)
            db += da.sum(0)
            dxh = np.dot(da, w)
            dinp[t], dh_next = dxh[:, :n_in], dxh[:, n_in:]
        grads[f"lstm.weight_ih_l{layer}"] = dw[:, :n_in]
        grads[f"lstm.weight_hh_l{layer}"] = dw[:, n_in:]
        grads[f"lstm.bias_ih_l{layer}"] = grads[f"lstm.bias_hh_l{layer}"] = db
        dout = dinp
    return grads


# ---- integer student (qdaed/integer, qdaed/kernels/fixedpoint.py, integer.py) -------------
# Python integers and fractions: every rounding written as the real number it rounds.

def round_half_away(r):
    """Nearest integer to the Fraction r, ties away from zero."""
    r = Fraction(r)
    n = math.floor(abs(r) + Fraction(1, 2))
    return n if r >= 0 else -n


def wrap32(v):
    """v as two's complement int32."""
    return (v + 2 ** 31) % 2 ** 32 - 2 ** 31


def quantize_multiplier(real):
    """(m, e) with real = m·2^(e − 31), 2^30 ≤ m < 2^31, m rounded half away; exact rationals."""
    r = Fraction(real)
    if r == 0:
        return 0, 0
    e = 0
    while r >= Fraction(2) ** e:
        e += 1
    while r < Fraction(2) ** (e - 1):
        e -= 1
    m = round_half_away(r * Fraction(2) ** (31 - e))
    if m == 2 ** 31:
        m, e = 2 ** 30, e + 1
    return (0, 0) if e < -31 else (m, e)


def srdhm(a, b):
    """a·b / 2^31 rounded to nearest, ties toward +∞; (−2^31)² saturates to 2^31 − 1."""
    if a == b == -2 ** 31:
        return 2 ** 31 - 1
    return math.floor(Fraction(a * b, 2 ** 31) + Fraction(1, 2))


def rdbpot(x, e):
    """x / 2^e rounded to nearest, ties away from zero."""
    return round_half_away(Fraction(x, 2 ** e))


def rescale(x, m, s):
    """TFLite's MultiplyByQuantizedMultiplier (double rounding) on a Python int."""
    if s > 0:
        return srdhm(wrap32(x * 2 ** s), m)
    return rdbpot(srdhm(x, m), -s)


def _table_input(x, mult, shift):
    if mult == 0:
        mult, shift = 3 * 2 ** shift, 0
    return math.floor(Fraction(x * mult + (2 ** (shift - 1) if shift else 0), 2 ** shift))


def sigmoid_int16(x, mult=0, shift=0, table=None):
    """The table σ: v in units of 1/(3·4096) (table step 1/24 = 512 units); L = T[k] + (T[k+1]
    − T[k])·u/512 (2^-16 units; 65534 past the table); σ(|x|) ≈ L/2 in Q0.15, rounded half up
    for v ≥ 0; for v < 0, 1 − σ(|x|) = floor(32768 − L/2 + 511/1024)."""
    T = SIGMOID_TABLE_UINT16 if table is None else table
    v = _table_input(x, mult, shift)
    k, u = divmod(abs(v), 512)
    L = Fraction(65534) if k >= 255 else T[k] + Fraction(int(T[k + 1] - T[k]) * u, 512)
    if v >= 0:
        return math.floor(L / 2 + Fraction(1, 2))
    return math.floor(32768 - L / 2 + Fraction(511, 1024))


def tanh_int16(x, mult=0, shift=0, table=None):
    """tanh = 2σ(2x) − 1 on the same table: step 1/48 = 256 units; L = T[k] + (T[k+1] − T[k])
    ·u/256 (65535 past the table); v ≥ 0: floor(L − 32768 + 1/2); v < 0: floor(32768 − L
    + 127/256) (Q0.15)."""
    T = SIGMOID_TABLE_UINT16 if table is None else table
    v = _table_input(x, mult, shift)
    k, u = divmod(abs(v), 256)
    L = Fraction(65535) if k >= 255 else T[k] + Fraction(int(T[k + 1] - T[k]) * u, 256)
    if v >= 0:
        return math.floor(L - 32768 + Fraction(1, 2))
    return math.floor(32768 - L + Fraction(127, 256))


def _sat(v, lo, hi):
    return max(lo, min(hi, v))


def int8_lstm_layer(x, w_ih, w_hh, bias, z_in, z_h, m_ih, m_hh, forget_cell, input_cell,
                    output, tanh_params):
    """The textbook int8 LSTM, element by element in Python ints, zero points *not* folded:
    a_k = sat16(sat16(rescale(Σ w_ih·(x − z_in) + bias)) + sat16(rescale(Σ w_hh·(h − z_h)))),
    i, f, o = σ, g = tanh; c = sat16(sat16(rescale(f·c)) + sat16(rescale(i·g)));
    h = sat8(z_h + rescale(tanh(c)·o)). m_ih, m_hh: 4 (m, s) pairs. Returns y, cells."""
    B, T, _ = x.shape
    H = w_hh.shape[1]
    y = np.zeros((B, T, H), np.int64)
    cells = np.zeros((B, T, H), np.int64)
    for b in range(B):
        h = [z_h] * H
        c = [0] * H
        for t in range(T):
            xt = [int(v) for v in x[b, t]]
            gates = []
            for k in range(4):
                row = []
                for r in range(H):
                    ax = sum(int(w_ih[k, r, j]) * (xt[j] - z_in) for j in range(len(xt)))
                    ax = _sat(rescale(ax + int(bias[k, r]), *m_ih[k]), -32768, 32767)
                    ah = sum(int(w_hh[k, r, j]) * (h[j] - z_h) for j in range(H))
                    ah = _sat(rescale(ah, *m_hh[k]), -32768, 32767)
                    a = _sat(ax + ah, -32768, 32767)
                    row.append(tanh_int16(a) if k == 2 else sigmoid_int16(a))
                gates.append(row)
            i, f, g, o = gates
            for r in range(H):
                c[r] = _sat(_sat(rescale(f[r] * c[r], *forget_cell), -32768, 32767)
                            + _sat(rescale(i[r] * g[r], *input_cell), -32768, 32767),
                            -32768, 32767)
                cells[b, t, r] = c[r]
            h = [_sat(z_h + rescale(tanh_int16(c[r], *tanh_params) * o[r], *output), -128, 127)
                 for r in range(H)]
            y[b, t] = h
    return y, cells


def int8_mean(x, z_in, z_out, m, s):
    """TFLite's int8 MEAN over axis 1 of (B, T, H): the multiplier divided by T as the kernel
    does (n = min(⌊log2 T⌋, 32, 31 + s), m' = ⌊m·2^n / T⌋, s' = s − n)."""
    B, T, H = x.shape
    n = min(int(math.floor(math.log2(T))), 32, 31 + s)
    m2, s2 = (m * 2 ** n) // T, s - n
    out = np.zeros((B, H), np.int64)
    for b in range(B):
        for j in range(H):
            total = sum(int(x[b, t, j]) - z_in for t in range(T))
            out[b, j] = _sat(z_out + rescale(total, m2, s2), -128, 127)
    return out


def int8_fully_connected(x, w, bias, z_in, z_out, pairs):
    """out[b, c] = sat8(z_out + rescale(Σ_j w[c, j]·(x[b, j] − z_in) + bias[c], *pairs[c]))."""
    out = np.zeros((x.shape[0], w.shape[0]), np.int64)
    for b in range(x.shape[0]):
        for c in range(w.shape[0]):
            acc = sum(int(w[c, j]) * (int(x[b, j]) - z_in) for j in range(w.shape[1]))
            out[b, c] = _sat(z_out + rescale(acc + int(bias[c]), *pairs[c]), -128, 127)
    return out


def _gemmlowp_logistic_q4(a):
    """gemmlowp::logistic on a raw Q4.27 int32, transcribed with Python ints (F0 result)."""
    def add(u, v):
        return wrap32(u + v)

    def shl_sat(v, e):
        t = 2 ** (31 - e) - 1
        return 2 ** 31 - 1 if v > t else (-2 ** 31 if v < -t else v * 2 ** e)

    def exp_quarter(v):                        # exp on [−1/4, 0), F0
        x = add(v, 2 ** 28)
        x2 = srdhm(x, x)
        x3 = srdhm(x2, x)
        x4 = srdhm(x2, x2)
        poly = rdbpot(add(srdhm(add(rdbpot(x4, 2), x3), 715827883), x2), 1)
        return add(1895147668, srdhm(1895147668, add(x, poly)))

    def exp_neg(v):                            # exp(v), v ≤ 0 in Q4.27
        if v == 0:
            return 2 ** 31 - 1
        a_mod = (v & (2 ** 25 - 1)) - 2 ** 25
        result = exp_quarter(shl_sat(a_mod, 4))
        rem = wrap32(a_mod - v)
        for bit, mult in zip(range(25, 31), (1672461947, 1302514674, 790015084, 290630308,
                                             39332535, 720401)):
            if rem & 2 ** bit:
                result = srdhm(result, mult)
        return result

    def one_over_one_plus(v):                  # 1/(1 + v), F0
        s = v + 2 ** 31 - 1
        half = int(Fraction(s + (1 if s >= 0 else -1), 2))    # C division truncates
        x = add(1515870810, srdhm(half, -1010580540))
        for _ in range(3):
            x = add(x, shl_sat(srdhm(x, wrap32(2 ** 29 - srdhm(half, x))), 2))
        return shl_sat(x, 1)

    if a == 0:
        return 2 ** 30
    pos = one_over_one_plus(exp_neg(-abs(a)))
    return pos if a > 0 else wrap32(2 ** 31 - 1 - pos)


def int8_logistic(x, z_in, scale):
    """TFLite's int8 LOGISTIC (out scale 1/256, zp −128) of one int8 value."""
    q, e = math.frexp(float(scale) * 2.0 ** 27)
    m = round_half_away(Fraction(q) * 2 ** 31)
    radius = math.floor(15 * 2 ** 27 / 2 ** e)
    d = int(x) - z_in
    if d <= -radius:
        return -128
    if d >= radius:
        return 127
    return _sat(rdbpot(_gemmlowp_logistic_q4(rescale(d, m, e)), 23) - 128, -128, 127)
