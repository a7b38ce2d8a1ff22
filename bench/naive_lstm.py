"""The textbook StudentLSTM training step that bench_student.py times beside qdaed's and
PyTorch's: per step one np.dot of [x_t, h_{t-1}] with [W_ih | W_hh], NumPy ufuncs for the
gates, per-step accumulation of the weight gradients (no Numba, no workspace reuse)."""

import numpy as np


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
