"""Obvious NumPy references for qdaed, for tests only (none calls qdaed's computations):
every fast kernel is compared with one of these (the LSTM cell, convolution, batch-norm,
max-pool, the quantizer and its bit packing, LFBE and its mel filterbank, resampling, running
window means, the integer student's rescales, int16 sigmoid/tanh, int8 LSTM, mean, FC and
logistic), and ``REFERENCES`` at the end computes every golden-vector case
(``qdaed.vectors``) that needs no deep-learning framework from the same functions.

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
    """1/(1 + e^−a), as e^a/(1 + e^a) for a < 0 (no overflow, full relative accuracy)."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


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


def conv2d_backward(x, w, dy, stride, pad):
    """(dx, dw) of the cross-correlation: every output position's gradient spread back over
    the patch it read (dx) and the patch weighted into the filter gradient (dw)."""
    nb, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((nb, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    dxp, dw = np.zeros_like(xp), np.zeros(w.shape)
    for n in range(nb):
        for oc in range(o):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    rows = slice(i * stride, i * stride + kh)
                    cols = slice(j * stride, j * stride + kw)
                    dw[oc] += dy[n, oc, i, j] * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += dy[n, oc, i, j] * w[oc]
    return dxp[:, :, pad:pad + h, pad:pad + wd], dw


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


def batchnorm2d_backward(weight, x, dy, mean, var, train, eps=1e-5):
    """(dx, dweight, dbias) from the normalised input x̂ = (x − μ)/√(σ² + ε); in training μ
    and σ² depend on x, which adds the two batch terms to dx."""
    n = x.shape[0] * x.shape[2] * x.shape[3]
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean[:, None, None]) * inv[:, None, None]
    dg, db = (dy * xhat).sum(axis=(0, 2, 3)), dy.sum(axis=(0, 2, 3))
    dx = (weight * inv)[:, None, None] * dy
    if train:
        dx = dx - (weight * inv)[:, None, None] * (db[:, None, None] + xhat * dg[:, None, None]) / n
    return dx, dg, db


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


def maxpool2d_backward(x, dy, k=3, s=2, p=1):
    """dx: each output's gradient to the first largest input of its window (row-major scan;
    padding never wins)."""
    nb, c, h, w = x.shape
    dx = np.zeros(x.shape)
    for b in range(nb):
        for ch in range(c):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    best, arg = -np.inf, None
                    for u in range(k):
                        for v in range(k):
                            r, q = i * s - p + u, j * s - p + v
                            if 0 <= r < h and 0 <= q < w and x[b, ch, r, q] > best:
                                best, arg = x[b, ch, r, q], (r, q)
                    dx[b, ch, arg[0], arg[1]] += dy[b, ch, i, j]
    return dx


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


def dequantize_groups(codes, alpha, beta, bits, group):
    """β_g + α_g · c / s for every code c of group g (float64, codes' shape), s = 2^k − 1."""
    s = 2 ** bits - 1
    which = np.concatenate([np.full(g.size, n) for n, g in
                            enumerate(quant_groups(np.arange(codes.size).reshape(codes.shape),
                                                   group))])
    a, b = np.asarray(alpha, np.float64)[which], np.asarray(beta, np.float64)[which]
    return (b + a * codes.reshape(-1).astype(np.float64) / s).reshape(codes.shape)


def pack_codes(codes, bits):
    """Little-endian bit stream: bit b of code i is stream bit i·k + b; stream bit j is bit
    j mod 8 of byte j // 8."""
    c = codes.reshape(-1).astype(np.int64)
    stream = ((c[:, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(stream, bitorder="little")


# ---- LFBE (qdaed/features/fbank.py) ------------------------------------------------

def mel(f):
    """HTK mel of a frequency in Hz."""
    return 1127.0 * math.log(1.0 + f / 700.0)


def mel_filterbank(sr=16000, fft_size=512, num_mel_bins=64, low_freq=20.0, high_freq=8000.0):
    """(fft_size/2 + 1, M) triangles, equally spaced in mel, evaluated at the mel of each FFT
    bin's centre k·sr/N; the Nyquist bin gets no weight (Kaldi's convention)."""
    lo, hi = mel(low_freq), mel(high_freq)
    d = (hi - lo) / (num_mel_bins + 1)
    w = np.zeros((fft_size // 2 + 1, num_mel_bins))
    for m in range(num_mel_bins):
        left, centre, right = lo + m * d, lo + (m + 1) * d, lo + (m + 2) * d
        for k in range(fft_size // 2):
            z = mel(k * sr / fft_size)
            if left < z <= centre:
                w[k, m] = (z - left) / (centre - left)
            elif centre < z < right:
                w[k, m] = (right - z) / (right - centre)
    return w


def kaldi_fbank(x, sr=16000, num_mel_bins=64, fft_size=512, low_freq=20.0, high_freq=8000.0,
                preemphasis=0.97, log_floor=FLOAT32_EPS):
    """Frame-by-frame float64 loop written from Kaldi's documentation (an independent check):
    25 ms frames every 10 ms (snip edges), DC removed, pre-emphasis, Povey window, power
    spectrum of the zero-padded frame, mel energies, natural log floored at log_floor."""
    L, S = 400 * sr // 16000, 160 * sr // 16000
    bank = mel_filterbank(sr, fft_size, num_mel_bins, low_freq, high_freq)
    n = np.arange(L)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * n / (L - 1))) ** 0.85
    x = np.asarray(x, dtype=np.float64)
    out = []
    for t in range(1 + (len(x) - L) // S):
        fr = x[t * S:t * S + L] - x[t * S:t * S + L].mean()
        fr = np.concatenate([[fr[0] * (1 - preemphasis)], fr[1:] - preemphasis * fr[:-1]])
        spec = np.fft.fft(np.concatenate([fr * window, np.zeros(fft_size - L)]))
        power = np.abs(spec[:fft_size // 2 + 1]) ** 2
        out.append(np.log(np.maximum(power @ bank, log_floor)))
    return np.array(out)


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


# ---- golden-vector cases (qdaed/vectors) --------------------------------------------
# One function per case op: the case's spec (case.json) and inputs in, every output out, from
# the references above or the equations of docs/method/index.md. The LSTM, the networks, the
# quantized-distillation step and the detector are left to PyTorch (examples/torch_reference.py).

def _f(a):
    return np.asarray(a, dtype=np.float64)


def case_linear(spec, i):
    x, w, b, dy = _f(i["x"]), _f(i["weight"]), _f(i["bias"]), _f(i["dy"])
    y = np.einsum("abi,oi->abo", x, w) + b
    return {"y": y, "dx": np.einsum("abo,oi->abi", dy, w),
            "grad.weight": np.einsum("abo,abi->oi", dy, x), "grad.bias": dy.sum(axis=(0, 1))}


def case_temporal_pool(spec, i):
    x, dp = _f(i["x"]), _f(i["dp"])
    mode = spec["options"]["mode"]
    dx = np.zeros_like(x)
    B, T, H = x.shape
    if mode == "mean":
        p = x.sum(axis=1) / T
        dx[:] = dp[:, None, :] / T
    elif mode == "last":
        p = x[:, T - 1]
        dx[:, T - 1] = dp
    else:
        p = np.empty((B, H))
        for b in range(B):
            for h in range(H):
                t = int(np.argmax(x[b, :, h]))
                p[b, h] = x[b, t, h]
                dx[b, t, h] = dp[b, h]
    return {"p": p, "dx": dx}


def bce(z, q):
    """mean of −q log σ(z) − (1 − q) log(1 − σ(z)) = softplus(z) − q z, stably."""
    return float(np.mean(np.logaddexp(0.0, z) - q * z))


def case_loss_hard(spec, i):
    z, y = _f(i["z_student"]), _f(i["y"])
    return {"loss": np.array(bce(z, y)), "dz": (sigmoid(z) - y) / z.size}


def case_loss_soft(spec, i):
    t = spec["options"]["temperature"]
    z, zt = _f(i["z_student"]), _f(i["z_teacher"])
    q = sigmoid(zt / t)
    return {"loss": np.array(bce(z / t, q)), "dz": (sigmoid(z / t) - q) / (t * z.size)}


def case_loss_distillation(spec, i):
    t, lam = spec["options"]["temperature"], spec["options"]["lam"]
    hard, soft = case_loss_hard(spec, i), case_loss_soft(spec, i)
    return {"loss": (1 - lam) * hard["loss"] + lam * t * t * soft["loss"],
            "loss_hard": hard["loss"], "loss_soft": soft["loss"],
            "dz": (1 - lam) * hard["dz"] + lam * t * t * soft["dz"]}


def case_quantize(spec, i):
    """quantize_groups, the dequantized values β + α·c/s group by group, pack_codes."""
    o = spec["options"]
    k, group, sym = o["bits"], o["group"], o["symmetric"]
    w = i["w"]
    codes, alpha, beta = quantize_groups(w, k, group, sym, i.get("u"))
    deq = dequantize_groups(codes, alpha, beta, k, group)
    ctype = np.uint8 if k <= 8 else np.uint16
    return {"codes": codes.astype(ctype), "alpha": _f(alpha), "beta": _f(beta),
            "dequantized": deq.astype(w.dtype),
            "packed": pack_codes(codes.astype(np.int64), k), "dw": i["dq"].copy()}


def case_relu(spec, i):
    x = _f(i["x"]) + (_f(i["residual"]) if "residual" in i else 0.0)
    y = np.where(x > 0, x, 0.0)
    return {"y": y, "dx": np.where(y > 0, _f(i["dy"]), 0.0)}


def case_maxpool2d(spec, i):
    o = spec["options"]
    k, s, p = o["kernel_size"], o["stride"], o["padding"]
    x, dy = _f(i["x"]), _f(i["dy"])
    return {"y": maxpool2d(x, k, s, p), "dx": maxpool2d_backward(x, dy, k, s, p)}


def case_global_avg_pool(spec, i):
    x, dy = _f(i["x"]), _f(i["dy"])
    hw = x.shape[2] * x.shape[3]
    return {"y": x.sum(axis=(2, 3)) / hw,
            "dx": np.broadcast_to(dy[:, :, None, None] / hw, x.shape).copy()}


def case_conv2d(spec, i):
    o = spec["options"]
    x, w, dy = _f(i["x"]), _f(i["weight"]), _f(i["dy"])
    b = _f(i["bias"]) if "bias" in i else None
    dx, dw = conv2d_backward(x, w, dy, o["stride"], o["padding"])
    out = {"y": conv2d(x, w, b, o["stride"], o["padding"]), "dx": dx, "grad.weight": dw}
    if b is not None:
        out["grad.bias"] = dy.sum(axis=(0, 2, 3))
    return out


def case_batchnorm2d(spec, i):
    o = spec["options"]
    x, g, dy = _f(i["x"]), _f(i["weight"]), _f(i["dy"])
    buffers = {"running_mean": _f(i["running_mean"]), "running_var": _f(i["running_var"])}
    y, rm, rv = batchnorm2d({"weight": g, "bias": _f(i["bias"])}, buffers, x, o["training"],
                            o["momentum"], o["eps"])
    if o["training"]:
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    else:
        mean, var = buffers["running_mean"], buffers["running_var"]
    dx, dg, db = batchnorm2d_backward(g, x, dy, mean, var, o["training"], o["eps"])
    out = {"y": y, "dx": dx, "grad.weight": dg, "grad.bias": db}
    if o["training"]:
        out["new_running_mean"], out["new_running_var"] = rm, rv
    return out


def case_adam(spec, i):
    o = spec["options"]
    b1, b2 = o["betas"]
    t = o["step"]
    out = {}
    for name in [n[len("param."):] for n in spec["inputs"] if n.startswith("param.")]:
        p, g = _f(i[f"param.{name}"]), _f(i[f"grad.{name}"])
        m = _f(i[f"exp_avg.{name}"]) if o["prior_steps"] else np.zeros_like(p)
        v = _f(i[f"exp_avg_sq.{name}"]) if o["prior_steps"] else np.zeros_like(p)
        g = g + o["weight_decay"] * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mh, vh = m / (1 - b1 ** t), v / (1 - b2 ** t)
        out[f"new_param.{name}"] = p - o["lr"] * mh / (np.sqrt(vh) + o["eps"])
        out[f"new_exp_avg.{name}"], out[f"new_exp_avg_sq.{name}"] = m, v
    return out


def case_mel_filterbank(spec, i=None):
    o = spec["options"]
    return {"weights": mel_filterbank(o["sample_rate"], o["fft_size"], o["num_mel_bins"],
                                      o["low_freq"], o["high_freq"])}


def case_lfbe(spec, i):
    o = spec["options"]
    assert o["window"] == "povey" and o["snip_edges"] and o["dither"] == 0.0
    x = _f(i["waveform"]) * (32768.0 if o["int16_scale"] else 1.0)
    return {"lfbe": kaldi_fbank(x, o["sample_rate"], o["num_mel_bins"], o["fft_size"],
                                o["low_freq"], o["high_freq"], o["preemphasis"],
                                o["log_floor"])}


REFERENCES = {
    "linear": case_linear, "temporal_pool": case_temporal_pool, "loss_hard": case_loss_hard,
    "loss_soft": case_loss_soft, "loss_distillation": case_loss_distillation,
    "quantize": case_quantize, "relu": case_relu, "maxpool2d": case_maxpool2d,
    "global_avg_pool": case_global_avg_pool, "conv2d": case_conv2d,
    "batchnorm2d": case_batchnorm2d, "adam": case_adam,
    "mel_filterbank": case_mel_filterbank, "lfbe": case_lfbe,
}
