"""Obvious NumPy references for qdaed's kernels and running computations, for tests only:
every fast kernel is compared with one of these (the LSTM cell, convolution, batch-norm,
max-pool, the quantizer and its bit packing, LFBE, resampling, running window means), and
bench/bench_student.py times the textbook LSTM training step against qdaed's.

Each is the textbook formula written as directly as possible (slow, no cleverness), so that
a test compares the optimised code against something a reader can check by eye.
"""

import math

import numpy as np

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
