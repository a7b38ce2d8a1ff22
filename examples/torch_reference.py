#!/usr/bin/env python
"""A second implementation of qdaed's golden cases, in PyTorch.

    python examples/torch_reference.py VECTORS_DIR OUT_DIR
    qdaed vectors check VECTORS_DIR --outputs OUT_DIR

Reads VECTORS_DIR (written by ``qdaed vectors export``: manifest.json, <case>/case.json,
<case>/<tensor>.npy), computes every output of every case it knows from the case's inputs and
options, and writes OUT_DIR/<case>/<output>.npy. It does not import qdaed: it is meant as a
worked example of checking another implementation, and as independent evidence for qdaed.
Everything is computed in the dtype of the exported inputs (float32 by default).

What each op uses:

* PyTorch ops and autograd: ``linear`` (F.linear), ``lstm`` (torch.nn.LSTM loaded with the
  exported weights, gradients of x, h0, c0 and every parameter), ``temporal_pool`` (mean,
  x[:, -1], max), ``conv2d`` (F.conv2d), ``batchnorm2d`` (F.batch_norm in training and eval
  mode, running statistics updated by torch), ``relu``, ``maxpool2d`` (F.max_pool2d),
  ``global_avg_pool`` (F.adaptive_avg_pool2d), the losses (F.binary_cross_entropy_with_logits;
  the distillation loss is (1 − λ) BCE + λ T² BCE(z/T, σ(z_t/T))), ``student_lstm``
  (nn.LSTM + nn.Linear, ``load_state_dict(strict=True)`` of the exported names), ``resnet``
  (a torchvision-layout ResNet-18/50 built here from nn.Conv2d/nn.BatchNorm2d,
  ``load_state_dict(strict=True)``), ``adam`` (torch.optim.Adam, its state set to the
  exported moments for a later step), and the composites ``quantized_distillation_step``
  (torch.nn.utils.clip_grad_norm_, torch.optim.Adam) and ``detector``.
* Formulas written here, because torch has no op for them (docs/method/quantization.md and docs/method/lfbe.md and
  qdaed.nn.quant's docstring): the min-max and symmetric k-bit quantizer (codes, α, β,
  dequantized values; torch's fake_quantize uses an integer zero point and a different grid),
  the bit packing of the codes, the straight-through gradient (as the usual
  ``w + (Q(w) − w).detach()``), LFBE (Kaldi-style framing, DC removal, pre-emphasis, Povey
  window, torch.fft.rfft in float64, an HTK mel filterbank built from its definition, log with
  a floor), the mel filter matrix, and the detector's equal-length policy (loop a short clip).

Cases whose op or options this script does not know are skipped and listed at the end (the
exit status is still 0); check them with ``qdaed vectors check --cases`` on the rest.
"""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

torch.set_num_threads(1)


class Skip(Exception):
    """This case's options are not implemented here."""


def T(a):
    return torch.from_numpy(np.ascontiguousarray(a).copy())


def leaf(a):
    return T(a).requires_grad_(True)


def npy(t):
    return t.detach().cpu().numpy()


def upstream(pairs):
    """Σ ⟨out, upstream⟩ over (out, upstream) pairs: its gradient is the VJP with them."""
    return sum((o * T(u)).sum() for o, u in pairs)


OPS = {}


def op(name):
    def deco(fn):
        OPS[name] = fn
        return fn
    return deco


# ------------------------------------------------------------------------------- layers

@op("linear")
def linear(spec, i):
    x, w, b = leaf(i["x"]), leaf(i["weight"]), leaf(i["bias"])
    y = F.linear(x, w, b)
    dx, dw, db = torch.autograd.grad(upstream([(y, i["dy"])]), [x, w, b])
    return {"y": y, "dx": dx, "grad.weight": dw, "grad.bias": db}


@op("lstm")
def lstm(spec, i):
    o = spec["options"]
    dtype = T(i["x"]).dtype
    m = nn.LSTM(o["input_size"], o["hidden_size"], o["num_layers"], batch_first=True).to(dtype)
    m.load_state_dict({n: T(i[n]) for n, _ in m.named_parameters()}, strict=True)
    x, h0, c0 = leaf(i["x"]), leaf(i["h0"]), leaf(i["c0"])
    y, (h_n, c_n) = m(x, (h0, c0))
    names = [n for n, _ in m.named_parameters()]
    gs = torch.autograd.grad(upstream([(y, i["dy"]), (h_n, i["dh_n"]), (c_n, i["dc_n"])]),
                             [x, h0, c0] + [p for _, p in m.named_parameters()])
    out = {"y": y, "h_n": h_n, "c_n": c_n, "dx": gs[0], "dh0": gs[1], "dc0": gs[2]}
    out.update({f"grad.{n}": g for n, g in zip(names, gs[3:])})
    return out


@op("temporal_pool")
def temporal_pool(spec, i):
    x = leaf(i["x"])
    mode = spec["options"]["mode"]
    pools = {"mean": lambda: x.mean(1), "last": lambda: x[:, -1],
             "max": lambda: x.max(1).values}
    p = pools[mode]()
    (dx,) = torch.autograd.grad(upstream([(p, i["dp"])]), [x])
    return {"p": p, "dx": dx}


@op("conv2d")
def conv2d(spec, i):
    o = spec["options"]
    x, w = leaf(i["x"]), leaf(i["weight"])
    b = leaf(i["bias"]) if "bias" in i else None
    y = F.conv2d(x, w, b, stride=o["stride"], padding=o["padding"])
    wrt = [x, w] + ([b] if b is not None else [])
    gs = torch.autograd.grad(upstream([(y, i["dy"])]), wrt)
    out = {"y": y, "dx": gs[0], "grad.weight": gs[1]}
    if b is not None:
        out["grad.bias"] = gs[2]
    return out


@op("batchnorm2d")
def batchnorm2d(spec, i):
    o = spec["options"]
    x, w, b = leaf(i["x"]), leaf(i["weight"]), leaf(i["bias"])
    rm, rv = T(i["running_mean"]), T(i["running_var"])
    y = F.batch_norm(x, rm, rv, w, b, training=o["training"], momentum=o["momentum"],
                     eps=o["eps"])
    dx, dw, db = torch.autograd.grad(upstream([(y, i["dy"])]), [x, w, b])
    out = {"y": y, "dx": dx, "grad.weight": dw, "grad.bias": db}
    if o["training"]:
        out.update(new_running_mean=rm, new_running_var=rv)
    return out


@op("relu")
def relu(spec, i):
    x = leaf(i["x"])
    y = F.relu(x + T(i["residual"])) if "residual" in i else F.relu(x)
    (dx,) = torch.autograd.grad(upstream([(y, i["dy"])]), [x])
    return {"y": y, "dx": dx}


@op("maxpool2d")
def maxpool2d(spec, i):
    o = spec["options"]
    x = leaf(i["x"])
    y = F.max_pool2d(x, o["kernel_size"], o["stride"], o["padding"])
    (dx,) = torch.autograd.grad(upstream([(y, i["dy"])]), [x])
    return {"y": y, "dx": dx}


@op("global_avg_pool")
def global_avg_pool(spec, i):
    x = leaf(i["x"])
    y = F.adaptive_avg_pool2d(x, 1).flatten(1)
    (dx,) = torch.autograd.grad(upstream([(y, i["dy"])]), [x])
    return {"y": y, "dx": dx}


# ------------------------------------------------------------------------------- losses

def bce(z, target):
    return F.binary_cross_entropy_with_logits(z, target, reduction="mean")


@op("loss_hard")
def loss_hard(spec, i):
    z = leaf(i["z_student"])
    loss = bce(z, T(i["y"]))
    (dz,) = torch.autograd.grad(loss, [z])
    return {"loss": loss, "dz": dz}


def soft_loss(z, zt, t):
    return bce(z / t, torch.sigmoid(zt / t))


@op("loss_soft")
def loss_soft(spec, i):
    z = leaf(i["z_student"])
    loss = soft_loss(z, T(i["z_teacher"]), spec["options"]["temperature"])
    (dz,) = torch.autograd.grad(loss, [z])
    return {"loss": loss, "dz": dz}


def distillation(z, zt, y, t, lam):
    hard, soft = bce(z, y), soft_loss(z, zt, t)
    return (1.0 - lam) * hard + lam * t * t * soft, hard, soft


@op("loss_distillation")
def loss_distillation(spec, i):
    o = spec["options"]
    z = leaf(i["z_student"])
    loss, hard, soft = distillation(z, T(i["z_teacher"]), T(i["y"]), o["temperature"], o["lam"])
    (dz,) = torch.autograd.grad(loss, [z])
    return {"loss": loss, "loss_hard": hard, "loss_soft": soft, "dz": dz}


# ------------------------------------------------------------------------------- quantizer

def _f32_down(x):
    f = x.float()
    f = torch.where(f.double() > x, torch.nextafter(f, torch.tensor(-math.inf)), f)
    return f.double()


def _f32_up(x):
    f = x.float()
    f = torch.where(f.double() < x, torch.nextafter(f, torch.tensor(math.inf)), f)
    return f.double()


def quantize(w, bits, group, rounding="nearest", symmetric=False, u=None):
    """(codes int64, alpha float64, beta float64, dequantized in w's dtype), docs/method/quantization.md.

    Groups of d consecutive flat values (tensor: d = n; row: d = n / rows); asymmetric
    β = min rounded down to float32, α = max − β rounded up to float32; symmetric step
    Δ = max|v| / m rounded up to 24 − k significant bits, α = Δ s, β = −Δ m. Codes
    round((v − shift) s / α) (+ m when symmetric), ties to even, clipped; floor(x + u) for
    stochastic rounding.
    """
    v = w.reshape(-1).double()
    n = v.numel()
    d = n if group == "tensor" else (n // w.shape[0] if group == "row" else int(group))
    ng = -(-n // d)
    idx = torch.arange(n) // d
    s = float(2 ** bits - 1)
    if symmetric:
        m = 2 ** (bits - 1) - 1
        max_abs = torch.zeros(ng, dtype=torch.float64).scatter_reduce(
            0, idx, v.abs(), "amax", include_self=True)
        mant, expo = torch.frexp(max_abs / m)
        p = 24 - bits
        step = torch.ldexp(torch.ceil(torch.ldexp(mant, torch.tensor(p))),
                           (expo - p).double())
        step = torch.where(max_abs > 0, torch.clamp(step, min=2.0 ** -126), torch.zeros_like(step))
        alpha, beta = step * s, 0.0 - step * m
        shift, offset, top = torch.zeros(ng, dtype=torch.float64), float(m), float(2 * m)
    else:
        lo = torch.full((ng,), math.inf, dtype=torch.float64).scatter_reduce(
            0, idx, v, "amin", include_self=True)
        hi = torch.full((ng,), -math.inf, dtype=torch.float64).scatter_reduce(
            0, idx, v, "amax", include_self=True)
        beta = _f32_down(lo)
        alpha = _f32_up(hi - beta)
        shift, offset, top = beta, 0.0, s
    a = alpha[idx]
    safe = torch.where(a == 0, torch.ones_like(a), a)
    x = (v - shift[idx]) * s / safe
    if rounding == "nearest":
        c = torch.round(x)              # half to even
    else:
        c = torch.floor(x + u.reshape(-1))
    codes = torch.clamp(c + offset, 0.0, top)
    codes = torch.where(a == 0, torch.zeros_like(codes), codes)
    deq = beta[idx] + alpha[idx] * codes / s
    return codes.to(torch.int64).reshape(w.shape), alpha, beta, deq.to(w.dtype).reshape(w.shape)


def pack(codes, bits):
    """Little-endian bit stream: code i at stream bits i·k … i·k + k − 1, LSB first."""
    c = codes.reshape(-1).numpy().astype(np.int64)
    stream = ((c[:, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(stream, bitorder="little")


@op("quantize")
def quantize_case(spec, i):
    o = spec["options"]
    w = leaf(i["w"])
    u = T(i["u"]) if "u" in i else None
    codes, alpha, beta, deq = quantize(w.detach(), o["bits"], o["group"], o["rounding"],
                                       o["symmetric"], u)
    w_hat = w + (deq - w).detach()      # straight-through estimator
    (dw,) = torch.autograd.grad(upstream([(w_hat, i["dq"])]), [w])
    ctype = np.uint8 if o["bits"] <= 8 else np.uint16
    return {"codes": npy(codes).astype(ctype), "alpha": npy(alpha).astype(np.float32),
            "beta": npy(beta).astype(np.float32), "dequantized": deq,
            "packed": pack(codes, o["bits"]), "dw": dw}


# ------------------------------------------------------------------------------- LFBE

def hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def mel_filterbank(rate, nfft, bins, low, high):
    """(N/2 + 1, M): HTK triangles in mel, evaluated at bin centres k r / N for k < N/2."""
    edges = hz_to_mel(low) + (hz_to_mel(high) - hz_to_mel(low)) / (bins + 1) * np.arange(bins + 2)
    mel = hz_to_mel(np.arange(nfft // 2 + 1) * rate / nfft)
    out = np.zeros((nfft // 2 + 1, bins))
    for m in range(bins):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        for k in range(nfft // 2):     # the Nyquist bin gets no weight
            x = mel[k]
            if left < x < right:
                out[k, m] = ((x - left) / (centre - left) if x <= centre
                             else (right - x) / (right - centre))
    return out


def window(name, length):
    n = torch.arange(length, dtype=torch.float64)
    a = 2 * math.pi / (length - 1)
    if name == "povey":
        return (0.5 - 0.5 * torch.cos(a * n)) ** 0.85
    if name == "hamming":
        return 0.54 - 0.46 * torch.cos(a * n)
    if name == "hanning":
        return 0.5 - 0.5 * torch.cos(a * n)
    if name == "rectangular":
        return torch.ones(length, dtype=torch.float64)
    raise Skip(f"window {name}")


def lfbe(x, o):
    """Kaldi-style log mel filterbank energies, float64 inside, float32 out (docs/method/lfbe.md)."""
    unsupported = {"snip_edges": True, "mel_scale": "htk", "mel_norm": None, "dither": 0.0,
                   "use_power": True, "use_log": True}
    for k, v in unsupported.items():
        if o[k] != v:
            raise Skip(f"LFBE option {k}={o[k]!r}")
    rate = o["sample_rate"]
    length = int(rate * o["frame_length_ms"] / 1000 + 1e-9)
    shift = int(rate * o["frame_shift_ms"] / 1000 + 1e-9)
    nfft = o["fft_size"] or 1 << (length - 1).bit_length()
    x = torch.as_tensor(x, dtype=torch.float64)
    if o["int16_scale"]:
        x = x * 32768.0
    frames = x.unfold(0, length, shift).clone()          # (T, L), frames that fit
    if o["remove_dc"]:
        frames = frames - frames.mean(1, keepdim=True)
    p = o["preemphasis"]
    if p:
        frames = torch.cat([frames[:, :1] * (1 - p), frames[:, 1:] - p * frames[:, :-1]], 1)
    frames = frames * window(o["window"], length)
    power = torch.fft.rfft(frames, n=nfft).abs() ** 2
    high = o["high_freq"] if o["high_freq"] > 0 else rate / 2 + o["high_freq"]
    bank = torch.from_numpy(mel_filterbank(rate, nfft, o["num_mel_bins"], o["low_freq"], high))
    return torch.log(torch.clamp(power @ bank, min=o["log_floor"])).float()


@op("lfbe")
def lfbe_case(spec, i):
    return {"lfbe": lfbe(i["waveform"], spec["options"])}


@op("mel_filterbank")
def mel_filterbank_case(spec, i):
    o = spec["options"]
    if o["mel_scale"] != "htk" or o["mel_norm"] is not None:
        raise Skip("mel scale")
    return {"weights": mel_filterbank(o["sample_rate"], o["fft_size"], o["num_mel_bins"],
                                      o["low_freq"], o["high_freq"])}


# ------------------------------------------------------------------------------- networks

class Student(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, num_classes, pooling):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)
        self.pooling = pooling

    def forward(self, x):
        y, _ = self.lstm(x)
        p = {"mean": lambda: y.mean(1), "last": lambda: y[:, -1],
             "max": lambda: y.max(1).values}[self.pooling]()
        return self.fc(p)


def params_of(i, prefix):
    return {n[len(prefix):]: T(v) for n, v in i.items() if n.startswith(prefix)}


@op("student_lstm")
def student_lstm(spec, i):
    o = spec["options"]
    x = leaf(i["x"])
    m = Student(o["input_size"], o["hidden_size"], o["num_layers"], o["num_classes"],
                o["pooling"]).to(x.dtype)
    m.load_state_dict(params_of(i, "param."), strict=True)
    z = m(x)
    names = [n for n, _ in m.named_parameters()]
    gs = torch.autograd.grad(upstream([(z, i["dz"])]), [x] + list(m.parameters()))
    return {"logits": z, "dx": gs[0], **{f"grad.{n}": g for n, g in zip(names, gs[1:])}}


class Block(nn.Module):
    """torchvision's BasicBlock / Bottleneck (v1.5: stride on the 3x3 conv)."""

    def __init__(self, kind, cin, planes, stride):
        super().__init__()
        e = 4 if kind == "bottleneck" else 1
        self.kind = kind
        if kind == "bottleneck":
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * e, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * e)
        else:
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes * e:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes * e, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes * e))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        if self.kind == "bottleneck":
            h = F.relu(self.bn2(self.conv2(h)))
            h = self.bn3(self.conv3(h))
        else:
            h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    STAGES = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
              50: ("bottleneck", (3, 4, 6, 3))}

    def __init__(self, depth, width, in_channels, num_classes):
        super().__init__()
        kind, counts = self.STAGES[depth]
        e = 4 if kind == "bottleneck" else 1
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for s, count in enumerate(counts):
            blocks = []
            for b in range(count):
                blocks.append(Block(kind, cin, width * 2 ** s, 2 if s > 0 and b == 0 else 1))
                cin = width * 2 ** s * e
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for s in range(1, 5):
            h = getattr(self, f"layer{s}")(h)
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


@op("resnet")
def resnet(spec, i):
    o = spec["options"]
    x = T(i["x"])
    m = ResNet(o["depth"], o["width"], o["in_channels"], o["num_classes"]).to(x.dtype)
    state = {**params_of(i, "param."), **params_of(i, "buffer.")}
    for n, b in m.named_buffers():
        if n.endswith("num_batches_tracked"):
            state[n] = b.clone()
    m.load_state_dict(state, strict=True)
    m.eval()
    with torch.no_grad():
        z_eval = m(x)
    m.train()
    z = m(x)
    names = [n for n, _ in m.named_parameters()]
    gs = torch.autograd.grad(upstream([(z, i["dz"])]), list(m.parameters()))
    out = {"logits_eval": z_eval, "logits": z}
    out.update({f"grad.{n}": g for n, g in zip(names, gs)})
    out.update({f"new_buffer.{n}": b for n, b in m.named_buffers()
                if not n.endswith("num_batches_tracked")})
    return out


# ------------------------------------------------------------------------------- training

@op("adam")
def adam(spec, i):
    o = spec["options"]
    names = [n[len("param."):] for n in spec["inputs"] if n.startswith("param.")]
    params = [nn.Parameter(T(i[f"param.{n}"])) for n in names]
    for p, n in zip(params, names):
        p.grad = T(i[f"grad.{n}"])
    opt = torch.optim.Adam(params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"],
                           weight_decay=o["weight_decay"], amsgrad=False)
    if o["prior_steps"]:
        for p, n in zip(params, names):
            opt.state[p] = {"step": torch.tensor(float(o["prior_steps"])),
                            "exp_avg": T(i[f"exp_avg.{n}"]),
                            "exp_avg_sq": T(i[f"exp_avg_sq.{n}"])}
    opt.step()
    out = {}
    for p, n in zip(params, names):
        out[f"new_param.{n}"] = p
        out[f"new_exp_avg.{n}"] = opt.state[p]["exp_avg"]
        out[f"new_exp_avg_sq.{n}"] = opt.state[p]["exp_avg_sq"]
    return out


@op("quantized_distillation_step")
def quantized_distillation_step(spec, i):
    o = spec["options"]
    if o["rounding"] != "nearest" or o["optimizer"] != "adam":
        raise Skip("options")
    a = o["arch_config"]
    x = T(i["x"])
    m = Student(a["input_size"], a["hidden_size"], a["num_layers"], a["num_classes"],
                a["pooling"]).to(x.dtype)
    master = params_of(i, "param.")
    out, deq = {}, {}
    for n, w in master.items():
        if w.ndim >= 2:                 # every weight matrix; biases stay full precision
            codes, _, _, deq[n] = quantize(w, o["bits"], o["group"], "nearest", o["symmetric"])
            out[f"codes.{n}"] = npy(codes).astype(np.uint8 if o["bits"] <= 8 else np.uint16)
            out[f"w_hat.{n}"] = deq[n]
    m.load_state_dict({**master, **deq}, strict=True)   # forward and backward with ŵ
    z = m(x)
    loss, _, _ = distillation(z, T(i["z_teacher"]), T(i["y"]), o["temperature"], o["lam"])
    names = [n for n, _ in m.named_parameters()]
    gs = torch.autograd.grad(loss, [z] + list(m.parameters()))
    out.update(logits=z, loss=loss, dz=gs[0])
    fp = {n: nn.Parameter(master[n].clone()) for n in names}
    for n, g in zip(names, gs[1:]):
        out[f"grad.{n}"] = g
        fp[n].grad = g.clone()          # straight-through: dL/dw := dL/dŵ
    out["grad_norm"] = torch.nn.utils.clip_grad_norm_(list(fp.values()), o["clip_norm"])
    torch.optim.Adam(list(fp.values()), lr=o["lr"], betas=tuple(o["betas"]),
                     eps=o["eps"]).step()
    out.update({f"new_param.{n}": p for n, p in fp.items()})
    return out


@op("detector")
def detector(spec, i):
    o = spec["options"]
    a = o["arch_config"]
    lf = dict(o["lfbe_options"], sample_rate=o["sample_rate"])
    m = Student(a["input_size"], a["hidden_size"], a["num_layers"], a["num_classes"],
                a["pooling"])
    m.load_state_dict(params_of(i, "param."), strict=True)
    mean, std = T(i["normalizer.mean"]), T(i["normalizer.std"])
    out, feats = {}, []
    clips = sorted(n for n in spec["inputs"] if n.startswith("pcm16_"))
    for n in clips:
        wav = (i[n].astype(np.float64) / 32768.0).astype(np.float32)
        f = lfbe(wav, lf)
        out[f"lfbe_{n[len('pcm16_'):]}"] = f
        reps = -(-o["frames"] // f.shape[0])          # loop a short clip, cut a long one
        feats.append(f.repeat(reps, 1)[:o["frames"]])
    x = (torch.stack(feats) - mean) / std
    with torch.no_grad():
        z = m(x)
    scores = torch.sigmoid(z)
    out.update(features=x, logits=z, scores=scores,
               decisions=npy(scores.double() >= T(i["thresholds"]).double()).astype(np.uint8))
    return out


# ------------------------------------------------------------------------------- driver

def load_case(directory, name):
    with open(os.path.join(directory, name, "case.json")) as f:
        spec = json.load(f)
    inputs = {n: np.load(os.path.join(directory, name, n + ".npy"), allow_pickle=False)
              for n in spec["inputs"]}
    return spec, inputs


def save(path, value):
    a = npy(value) if isinstance(value, torch.Tensor) else np.asarray(value)
    np.save(path, a, allow_pickle=False)


def main(argv):
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    vectors, out_dir = argv
    with open(os.path.join(vectors, "manifest.json")) as f:
        manifest = json.load(f)
    skipped, done = [], 0
    for name in manifest["cases"]:
        spec, inputs = load_case(vectors, name)
        fn = OPS.get(spec["op"])
        if fn is None:
            skipped.append((name, f"op {spec['op']} not implemented"))
            continue
        try:
            outs = fn(spec, inputs)
        except Skip as exc:
            skipped.append((name, str(exc)))
            continue
        missing = set(spec["outputs"]) - set(outs)
        if missing:
            raise RuntimeError(f"{name}: this script did not compute {sorted(missing)}")
        os.makedirs(os.path.join(out_dir, name), exist_ok=True)
        for n in spec["outputs"]:
            save(os.path.join(out_dir, name, n + ".npy"), outs[n])
        done += 1
    print(f"torch {torch.__version__}: computed {done} of {len(manifest['cases'])} cases "
          f"into {out_dir}")
    for name, why in skipped:
        print(f"skipped {name}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
