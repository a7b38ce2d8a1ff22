"""Golden cases of training steps: Adam (``qdaed.train.optim``, torch.optim.Adam semantics) and
one quantized-distillation step (docs/method/schedules.md, Polino et al. Alg. 1) on a small StudentLSTM.

The quantized-distillation step is the sequence ``qdaed.train.loop.fit`` runs for each
mini-batch when quantization is on, written out with the public functions:

    ŵ = Q_k(w)                 every weight matrix (biases stay full precision)
    z = student(x; ŵ)          forward with the dequantized weights
    L, dz = distillation_loss(z, z_t, y, T, λ)
    g = backward(dz)           gradients with respect to ŵ; straight-through: ∂L/∂w := g
    clip_grad_norm(g, c)       global 2-norm, scale min(1, c / (‖g‖ + 1e-6))
    w ← Adam(w, g)             the full-precision master weights are updated
"""

from __future__ import annotations

import numpy as np

from qdaed.models import StudentLSTM
from qdaed.models.quantized import quantized_weights
from qdaed.nn.losses import distillation_loss
from qdaed.nn.quant import quantize, ste_backward
from qdaed.train.optim import Adam, clip_grad_norm
from qdaed.vectors.cases import register

_SHAPES = {"weight": (4, 3), "bias": (4,)}


def _adam(b, lr, betas, eps, weight_decay, prior_steps):
    b.options.update(lr=lr, betas=list(betas), eps=eps, weight_decay=weight_decay,
                     amsgrad=False, prior_steps=prior_steps, step=prior_steps + 1)
    params = {n: b.input(f"param.{n}", b.normal(*s)) for n, s in _SHAPES.items()}
    grads = {n: b.input(f"grad.{n}", b.normal(*s, scale=0.1)) for n, s in _SHAPES.items()}
    opt = Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if prior_steps:
        state = {"optimizer": "adam", "step": prior_steps}
        for n, s in _SHAPES.items():
            state[f"exp_avg.{n}"] = b.input(f"exp_avg.{n}", b.normal(*s, scale=0.05))
            state[f"exp_avg_sq.{n}"] = b.input(f"exp_avg_sq.{n}",
                                               b.uniform(0.0, 0.02, *s) ** 2)
        opt.load_state_dict(state)
    opt.step(grads)
    for n in _SHAPES:
        b.output(f"new_param.{n}", params[n], "elementwise", "w - lr m_hat / (sqrt(v_hat) + eps)")
        b.output(f"new_exp_avg.{n}", opt.state["exp_avg"][n], "elementwise")
        b.output(f"new_exp_avg_sq.{n}", opt.state["exp_avg_sq"][n], "elementwise")


register("adam_step1", "adam", "torch.optim.Adam(lr=1e-2), first step from zero state on a "
         "weight (4, 3) and a bias (4): new parameters and moments", _adam,
         lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, prior_steps=0)
register("adam_step4_weight_decay", "adam", "torch.optim.Adam(lr=3e-3, betas=(0.8, 0.99), "
         "eps=1e-6, weight_decay=0.01), step 4 from stored moments (exp_avg, exp_avg_sq after "
         "3 steps)", _adam, lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01,
         prior_steps=3)


def _qd_step(b, bits, group, temperature, lam, clip, lr):
    inputs, hidden, classes, batch, steps = 6, 5, 3, 4, 7
    b.options.update(bits=bits, group=group, rounding="nearest", symmetric=False,
                     temperature=temperature, lam=lam, clip_norm=clip, optimizer="adam",
                     lr=lr, betas=[0.9, 0.999], eps=1e-8, arch_config=dict(
                         input_size=inputs, hidden_size=hidden, num_layers=1,
                         num_classes=classes, pooling="mean"),
                     quantized="every weight matrix (ndim >= 2); biases full precision")
    model = StudentLSTM(inputs, hidden, 1, classes, "mean", dtype=np.float64)
    bound = 1.5 / np.sqrt(hidden)
    # The master weights are stored in the export dtype and quantized as stored.
    master = {n: b.input(f"param.{n}", b.uniform(-bound, bound, *s))
              for n, s in model.parameter_shapes().items()}
    x = b.input("x", b.normal(batch, steps, inputs))
    zt = b.input("z_teacher", b.normal(batch, classes, scale=2.0))
    y = b.input("y", (b.rng.random((batch, classes)) < 0.4).astype(np.float64))
    names = [n for n, p in master.items() if p.ndim >= 2]
    qts = {n: quantize(master[n].astype(b.dtype), bits, group=group) for n in names}
    model.params = master
    with quantized_weights(model, qts, np.float64):      # as fit() runs a k-bit step
        z, cache = model.forward(x, train=True)
        loss, dz = distillation_loss(z, zt, y, temperature, lam)
        grads = model.backward(cache, dz)
    grads.update({n: ste_backward(grads[n], q) for n, q in qts.items()})
    raw = {n: g.copy() for n, g in grads.items()}
    norm = clip_grad_norm(grads, clip)
    Adam(master, lr=lr).step(grads)
    note = "one step through a 7-step LSTM"
    for n, q in qts.items():
        b.output(f"codes.{n}", q.codes, "exact", "Q_k of the stored master weights")
        b.output(f"w_hat.{n}", q.dequantize(np.float64), "elementwise", "dequantized")
    b.output("logits", z, "recurrent", note + " with the dequantized weights")
    b.output("loss", np.array(loss), "recurrent", note)
    b.output("dz", dz, "recurrent", note)
    for n, g in raw.items():
        b.output(f"grad.{n}", g, "recurrent", note + "; before clipping; STE for weights")
    b.output("grad_norm", np.array(norm), "recurrent", "global 2-norm before clipping")
    for n, p in master.items():
        b.output(f"new_param.{n}", p, "recurrent", "Adam step 1 on the clipped gradient of "
                 "the full-precision weights")


register("qd_step_student_k4_row", "quantized_distillation_step", "one quantized-distillation "
         "step of a StudentLSTM (6 -> 5, 1 layer, 3 classes) on x (4, 7, 6): 4-bit per-row "
         "quantization of the weight matrices, distillation loss T = 2, lam = 0.5, global-norm "
         "clipping at 0.02 (active: the norm is about 0.04), Adam lr 1e-2 on the "
         "full-precision weights", _qd_step,
         bits=4, group="row", temperature=2.0, lam=0.5, clip=0.02, lr=1e-2)
