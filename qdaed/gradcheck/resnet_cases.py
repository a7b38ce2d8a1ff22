"""Gradient-check cases for the teacher's ops (convolution, batch-norm in both modes, ReLU with
a residual, max-pool, global average pool) and for whole ResNets of tiny width.

A ResNet has thousands of parameters even at width 2, and a central difference costs two
forward passes per entry, so the model cases check a random sample of entries of every
parameter tensor (``ENTRIES_18`` / ``ENTRIES_50`` per tensor), with the error of a tensor
measured against the scale of its whole analytic gradient:

    err = max_{i ∈ sample} |a_i − n_i| / max(max_all |a|, max_sample |n|, 1e-4·G)

with G the largest analytic gradient of the whole model, and n_i the central difference with
the step of ``STEPS`` that agrees best (the next step is tried only when the first fails: a
deep ReLU network's loss has kinks, and a 1e-6 step of a stem weight occasionally moves a unit
across one, which says nothing about the analytic gradient). The floor matters for tensors whose
true gradient is zero: a batch-norm shift that reaches a training-mode batch-norm through
active ReLUs, the max-pool (shift-equivariant) and 1×1 convolutions is removed exactly by it,
and there the finite difference is pure rounding noise: the loss of a 50-layer network with
training-mode batch-norm over 8 values carries a relative rounding error near 1e-14, which a
1e-6 step turns into ~1e-8 of noise. The floor only hides errors below 1e-10·G.

In evaluation mode batch-norm does not renormalise, so with arbitrary running statistics the
activations of a 50-layer network grow until a 1e-6 step of a weight moves some ReLU across its
kink; the running statistics are therefore first set from the input by training-mode passes
(as a trained network's are), and then the evaluation-mode gradients are checked.

Every op case checks every entry. Inputs stay clear of ReLU kinks and max-pool ties only by
chance (continuous random values), which a float64 step of 1e-6 makes safe in practice.
"""

from __future__ import annotations

import numpy as np

from qdaed.gradcheck import STEP, TOLERANCE, Case, compare_gradients, numerical_gradient
from qdaed.models.resnet import ResNet
from qdaed.nn import batchnorm2d, conv2d, global_avg_pool, maxpool2d, relu

ENTRIES_18 = 3
ENTRIES_50 = 1
MODEL_INPUT = (2, 1, 48, 40)   # layer4 map 2×2: training-mode batch-norm sees 8 values there
# A ReLU kink or max-pool tie straddled by one step is rarely straddled by the next, while a
# wrong analytic gradient disagrees with all of them: an entry passes if one step agrees.
STEPS = (STEP, 1e-5, 1e-7, 1e-8)
RUNNING_STAT_PASSES = 40        # running statistics 98.5 % from the data (0.9⁴⁰ = 0.015)


def _conv(rng):
    k = int(rng.choice([1, 3, 7]))
    s = int(rng.integers(1, 3))
    p = int(rng.integers(0, k // 2 + 1))
    nb, c, o = rng.integers(1, 4, size=3)
    h, w = rng.integers(max(1, k - 2 * p), 10, size=2)
    params = {"weight": rng.standard_normal((o, c, k, k))}
    if rng.random() < 0.5:
        params["bias"] = rng.standard_normal(o)
    x = rng.standard_normal((nb, c, h, w))
    y, cache = conv2d.forward(params, x, s, p)
    dy = rng.standard_normal(y.shape)
    dx, grads = conv2d.backward(params, cache, dy)

    def loss():
        return float(np.sum(conv2d.forward(params, x, s, p)[0] * dy))

    return compare_gradients(loss, {"x": x, **params}, {"x": dx, **grads})


def _batchnorm(train, fuse_relu):
    def run(rng):
        nb, c = rng.integers(1, 4, size=2)
        h, w = rng.integers(2, 5, size=2)
        params = {"weight": rng.uniform(0.5, 1.5, c), "bias": rng.standard_normal(c)}
        buffers = {"running_mean": rng.standard_normal(c), "running_var": rng.uniform(0.5, 2, c)}
        x = rng.standard_normal((nb, c, h, w)) * 2 + rng.standard_normal((1, c, 1, 1))

        def fwd():
            return batchnorm2d.forward(params, x, {k: v.copy() for k, v in buffers.items()},
                                       train, relu=fuse_relu)

        y, cache = fwd()
        dy = rng.standard_normal(y.shape)
        dx, grads = batchnorm2d.backward(params, cache, dy)
        return compare_gradients(lambda: float(np.sum(fwd()[0] * dy)),
                                 {"x": x, **params}, {"x": dx, **grads})
    return run


def _relu_residual(rng):
    shape = tuple(rng.integers(1, 5, size=4))
    x = rng.uniform(0.1, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    r = rng.uniform(-0.05, 0.05, shape)
    y, cache = relu.forward({}, x, residual=r)
    dy = rng.standard_normal(shape)
    dx, _ = relu.backward({}, cache, dy)

    def loss():
        return float(np.sum(relu.forward({}, x, residual=r)[0] * dy))

    return compare_gradients(loss, {"x": x, "residual": r}, {"x": dx, "residual": dx})


def _maxpool(rng):
    nb, c = rng.integers(1, 3, size=2)
    h, w = rng.integers(1, 10, size=2)
    x = rng.permutation(nb * c * h * w).reshape(nb, c, h, w) * 0.01   # distinct: no ties
    y, cache = maxpool2d.forward({}, x)
    dy = rng.standard_normal(y.shape)
    dx, _ = maxpool2d.backward({}, cache, dy)
    return compare_gradients(lambda: float(np.sum(maxpool2d.forward({}, x)[0] * dy)),
                             {"x": x}, {"x": dx})


def _global_avg_pool(rng):
    x = rng.standard_normal(tuple(rng.integers(1, 5, size=4)))
    y, cache = global_avg_pool.forward({}, x)
    dy = rng.standard_normal(y.shape)
    dx, _ = global_avg_pool.backward({}, cache, dy)
    return compare_gradients(lambda: float(np.sum(global_avg_pool.forward({}, x)[0] * dy)),
                             {"x": x}, {"x": dx})


def randomize_state(model, rng):
    """Random values for every parameter and running statistic (none left at 0 or 1)."""
    state = model.state_dict()
    for name, v in state.items():
        if name.endswith("running_var") or (name.endswith(".weight") and v.ndim == 1):
            state[name] = rng.uniform(0.5, 1.5, v.shape)
        elif name.endswith("running_mean") or (name.endswith(".bias") and name != "fc.bias"):
            state[name] = 0.5 * rng.standard_normal(v.shape)
        else:
            state[name] = v + 0.1 * rng.standard_normal(v.shape)
    model.load_state_dict(state)


def sampled_errors(loss, tensors, analytic, rng, entries):
    """{name: err} over ``entries`` random entries per tensor (see the module docstring)."""
    errs = {}
    floor = 1e-4 * max(float(np.max(np.abs(a))) for a in analytic.values())
    for name, t in tensors.items():
        flat = t.reshape(-1)
        a = analytic[name].reshape(-1)
        idx = rng.choice(flat.size, size=min(entries, flat.size), replace=False)
        worst = 0.0
        for i in idx:
            err = 1.0
            for h in STEPS:
                num = _entry_gradient(loss, flat, i, h)
                scale = max(np.max(np.abs(a)), abs(num), floor)
                err = min(err, abs(a[i] - num) / scale)
                if err < TOLERANCE:
                    break
            worst = max(worst, err)
        errs[name] = float(worst)
    return errs


def _entry_gradient(loss, flat, i, h):
    sub = flat[i:i + 1].copy()

    def sub_loss():
        flat[i] = sub[0]   # numerical_gradient perturbs ``sub``; write it through
        return loss()

    num = numerical_gradient(sub_loss, sub, h)[0]
    flat[i] = sub[0]
    return num


def _resnet(depth, train, entries):
    def run(rng):
        model = ResNet(depth, num_classes=3, in_channels=1, width=2, seed=rng,
                       dtype=np.float64)
        randomize_state(model, rng)
        x = rng.standard_normal(MODEL_INPUT)
        if not train:
            for _ in range(RUNNING_STAT_PASSES):
                model.forward(x, True)
        z, cache = model.forward(x, train)
        dz = rng.standard_normal(z.shape)
        grads = model.backward(cache, dz)

        def loss():
            return float(np.sum(model.forward(x, train)[0] * dz))

        return sampled_errors(loss, model.params, grads, rng, entries)
    return run


CASES = [
    Case("nn.conv2d", _conv),
    Case("nn.batchnorm2d (train)", _batchnorm(True, False)),
    Case("nn.batchnorm2d (eval)", _batchnorm(False, False)),
    Case("nn.batchnorm2d+relu (train)", _batchnorm(True, True)),
    Case("nn.batchnorm2d+relu (eval)", _batchnorm(False, True)),
    Case("nn.relu (residual)", _relu_residual),
    Case("nn.maxpool2d", _maxpool),
    Case("nn.global_avg_pool", _global_avg_pool),
    Case("models.ResNet-18 w2 (train)", _resnet(18, True, ENTRIES_18)),
    Case("models.ResNet-18 w2 (eval)", _resnet(18, False, ENTRIES_18)),
    Case("models.ResNet-50 w2 (train)", _resnet(50, True, ENTRIES_50)),
    Case("models.ResNet-50 w2 (eval)", _resnet(50, False, ENTRIES_50)),
]
