"""Obvious float64 NumPy references for the golden cases that need no deep-learning framework.

Each function takes a case's spec (case.json) and its inputs and returns every output, written
from the equations of docs/method/index.md with plain loops where a loop is the clearest statement; none
calls qdaed. The LSTM, the networks, the quantized-distillation step and the detector are left
to PyTorch (``examples/torch_reference.py``, the conformance test).
"""

import math

import numpy as np

from tests.naive import f32_at_least, f32_at_most


def _f(a):
    return np.asarray(a, dtype=np.float64)


def linear(spec, i):
    x, w, b, dy = _f(i["x"]), _f(i["weight"]), _f(i["bias"]), _f(i["dy"])
    y = np.einsum("abi,oi->abo", x, w) + b
    return {"y": y, "dx": np.einsum("abo,oi->abi", dy, w),
            "grad.weight": np.einsum("abo,abi->oi", dy, x), "grad.bias": dy.sum(axis=(0, 1))}


def temporal_pool(spec, i):
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


def _bce(z, q):
    """mean of −q log σ(z) − (1 − q) log(1 − σ(z)) = softplus(z) − q z, stably."""
    return float(np.mean(np.logaddexp(0.0, z) - q * z))


def _sig(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def loss_hard(spec, i):
    z, y = _f(i["z_student"]), _f(i["y"])
    return {"loss": np.array(_bce(z, y)), "dz": (_sig(z) - y) / z.size}


def loss_soft(spec, i):
    t = spec["options"]["temperature"]
    z, zt = _f(i["z_student"]), _f(i["z_teacher"])
    q = _sig(zt / t)
    return {"loss": np.array(_bce(z / t, q)), "dz": (_sig(z / t) - q) / (t * z.size)}


def loss_distillation(spec, i):
    t, lam = spec["options"]["temperature"], spec["options"]["lam"]
    hard, soft = loss_hard(spec, i), loss_soft(spec, i)
    return {"loss": (1 - lam) * hard["loss"] + lam * t * t * soft["loss"],
            "loss_hard": hard["loss"], "loss_soft": soft["loss"],
            "dz": (1 - lam) * hard["dz"] + lam * t * t * soft["dz"]}


def quantize(spec, i):
    """docs/method/quantization.md group by group, with qdaed.nn.quant's float32 rules for α, β and the
    symmetric step (24 − k significant bits)."""
    o = spec["options"]
    k, group, sym = o["bits"], o["group"], o["symmetric"]
    w = i["w"]
    v = w.reshape(-1).astype(np.float64)
    n = v.size
    d = n if group == "tensor" else (n // w.shape[0] if group == "row" else group)
    s = 2 ** k - 1
    u = i["u"].reshape(-1) if "u" in i else None
    codes = np.zeros(n, np.int64)
    deq = np.zeros(n)
    alphas, betas = [], []
    for g0 in range(0, n, d):
        part = range(g0, min(g0 + d, n))
        if sym:
            m = 2 ** (k - 1) - 1
            mx = max(abs(v[j]) for j in part)
            if mx > 0:
                mant, ex = math.frexp(mx / m)
                step = max(math.ldexp(math.ceil(math.ldexp(mant, 24 - k)), ex - (24 - k)),
                           2.0 ** -126)
            else:
                step = 0.0
            alpha, beta, shift, off, top = step * s, 0.0 - step * m, 0.0, m, 2 * m
        else:
            beta = f32_at_most(min(v[j] for j in part))
            alpha = f32_at_least(max(v[j] for j in part) - beta)
            shift, off, top = beta, 0, s
        for j in part:
            if alpha == 0.0:
                c = 0
            else:
                x = (v[j] - shift) * s / alpha
                c = int(np.rint(x)) if u is None else math.floor(x + u[j])
                c = min(max(c + off, 0), top)
            codes[j] = c
            deq[j] = beta + alpha * c / s
        alphas.append(alpha)
        betas.append(beta)
    bits = [(int(c) >> b) & 1 for c in codes for b in range(k)]
    bits += [0] * (-len(bits) % 8)
    packed = np.array([sum(bits[8 * j + b] << b for b in range(8)) for j in range(len(bits) // 8)],
                      np.uint8)
    ctype = np.uint8 if k <= 8 else np.uint16
    return {"codes": codes.reshape(w.shape).astype(ctype), "alpha": np.array(alphas),
            "beta": np.array(betas), "dequantized": deq.reshape(w.shape).astype(w.dtype),
            "packed": packed, "dw": i["dq"].copy()}


def relu(spec, i):
    x = _f(i["x"]) + (_f(i["residual"]) if "residual" in i else 0.0)
    y = np.where(x > 0, x, 0.0)
    return {"y": y, "dx": np.where(y > 0, _f(i["dy"]), 0.0)}


def maxpool2d(spec, i):
    o = spec["options"]
    k, st, pad = o["kernel_size"], o["stride"], o["padding"]
    x, dy = _f(i["x"]), _f(i["dy"])
    B, C, H, W = x.shape
    Ho, Wo = (H + 2 * pad - k) // st + 1, (W + 2 * pad - k) // st + 1
    y, dx = np.empty((B, C, Ho, Wo)), np.zeros_like(x)
    for b in range(B):
        for c in range(C):
            for a in range(Ho):
                for e in range(Wo):
                    best, arg = -np.inf, None
                    for p in range(k):
                        for q in range(k):
                            r, t = a * st - pad + p, e * st - pad + q
                            if 0 <= r < H and 0 <= t < W and x[b, c, r, t] > best:
                                best, arg = x[b, c, r, t], (r, t)
                    y[b, c, a, e] = best
                    dx[b, c, arg[0], arg[1]] += dy[b, c, a, e]
    return {"y": y, "dx": dx}


def global_avg_pool(spec, i):
    x, dy = _f(i["x"]), _f(i["dy"])
    hw = x.shape[2] * x.shape[3]
    return {"y": x.sum(axis=(2, 3)) / hw,
            "dx": np.broadcast_to(dy[:, :, None, None] / hw, x.shape).copy()}


def conv2d(spec, i):
    o = spec["options"]
    st, pad = o["stride"], o["padding"]
    x, w, dy = _f(i["x"]), _f(i["weight"]), _f(i["dy"])
    B, C, H, W = x.shape
    O, _, k, _ = w.shape
    xp = np.zeros((B, C, H + 2 * pad, W + 2 * pad))
    xp[:, :, pad:pad + H, pad:pad + W] = x
    Ho, Wo = dy.shape[2], dy.shape[3]
    y = np.zeros((B, O, Ho, Wo))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for a in range(Ho):
        for e in range(Wo):
            patch = xp[:, :, a * st:a * st + k, e * st:e * st + k]      # (B, C, k, k)
            y[:, :, a, e] = np.einsum("bcij,ocij->bo", patch, w)
            dw += np.einsum("bo,bcij->ocij", dy[:, :, a, e], patch)
            dxp[:, :, a * st:a * st + k, e * st:e * st + k] += np.einsum(
                "bo,ocij->bcij", dy[:, :, a, e], w)
    out = {"y": y, "dx": dxp[:, :, pad:pad + H, pad:pad + W], "grad.weight": dw}
    if "bias" in i:
        out["y"] = y + _f(i["bias"])[None, :, None, None]
        out["grad.bias"] = dy.sum(axis=(0, 2, 3))
    return out


def batchnorm2d(spec, i):
    o = spec["options"]
    x, g, be, dy = _f(i["x"]), _f(i["weight"]), _f(i["bias"]), _f(i["dy"])
    rm, rv = _f(i["running_mean"]), _f(i["running_var"])
    n = x.shape[0] * x.shape[2] * x.shape[3]
    axes = (0, 2, 3)
    if o["training"]:
        mu = x.mean(axis=axes)
        var = ((x - mu[None, :, None, None]) ** 2).mean(axis=axes)
    else:
        mu, var = rm, rv
    inv = 1.0 / np.sqrt(var + o["eps"])
    xh = (x - mu[None, :, None, None]) * inv[None, :, None, None]
    y = g[None, :, None, None] * xh + be[None, :, None, None]
    dg, db = (dy * xh).sum(axis=axes), dy.sum(axis=axes)
    if o["training"]:
        dx = (g * inv)[None, :, None, None] * (dy - db[None, :, None, None] / n
                                              - xh * dg[None, :, None, None] / n)
    else:
        dx = (g * inv)[None, :, None, None] * dy
    out = {"y": y, "dx": dx, "grad.weight": dg, "grad.bias": db}
    if o["training"]:
        m = o["momentum"]
        out["new_running_mean"] = (1 - m) * rm + m * mu
        out["new_running_var"] = (1 - m) * rv + m * var * n / (n - 1)
    return out


def adam(spec, i):
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


def _mel(f):
    return 1127.0 * math.log(1.0 + f / 700.0)


def mel_filterbank(spec, i=None):
    o = spec["options"]
    r, nfft, M = o["sample_rate"], o["fft_size"], o["num_mel_bins"]
    lo, hi = _mel(o["low_freq"]), _mel(o["high_freq"])
    delta = (hi - lo) / (M + 1)
    w = np.zeros((nfft // 2 + 1, M))
    for m in range(M):
        left, centre, right = lo + m * delta, lo + (m + 1) * delta, lo + (m + 2) * delta
        for k in range(nfft // 2):
            x = _mel(k * r / nfft)
            if left < x <= centre:
                w[k, m] = (x - left) / (centre - left)
            elif centre < x < right:
                w[k, m] = (right - x) / (right - centre)
    return {"weights": w}


def lfbe(spec, i):
    """Kaldi fbank frame by frame, with a direct DFT (O(N²), float64)."""
    o = spec["options"]
    assert o["window"] == "povey" and o["snip_edges"] and o["dither"] == 0.0
    x = _f(i["waveform"]) * (32768.0 if o["int16_scale"] else 1.0)
    L, S, N = 400, 160, o["fft_size"]
    bank = mel_filterbank(spec)["weights"]
    n = np.arange(L)
    win = (0.5 - 0.5 * np.cos(2 * np.pi * n / (L - 1))) ** 0.85
    dft = np.exp(-2j * np.pi * np.outer(np.arange(N // 2 + 1), n) / N)    # zero padding to N
    rows = []
    for t in range(1 + (x.size - L) // S):
        f = x[t * S:t * S + L].copy()
        f -= f.mean()
        f = np.concatenate([[f[0] * (1 - o["preemphasis"])], f[1:] - o["preemphasis"] * f[:-1]])
        power = np.abs(dft @ (f * win)) ** 2
        rows.append(np.log(np.maximum(power @ bank, o["log_floor"])))
    return {"lfbe": np.array(rows)}


REFERENCES = {
    "linear": linear, "temporal_pool": temporal_pool, "loss_hard": loss_hard,
    "loss_soft": loss_soft, "loss_distillation": loss_distillation, "quantize": quantize,
    "relu": relu, "maxpool2d": maxpool2d, "global_avg_pool": global_avg_pool,
    "conv2d": conv2d, "batchnorm2d": batchnorm2d, "adam": adam,
    "mel_filterbank": mel_filterbank, "lfbe": lfbe,
}
