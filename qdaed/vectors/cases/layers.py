"""Golden cases of the layers (``qdaed.nn``): linear, LSTM, temporal pooling, convolution,
batch-norm, ReLU, max-pool and global average pool — forward outputs and the gradient of
every input and parameter for a random upstream gradient.

Naming: inputs ``x``, parameters by their PyTorch names (``weight``, ``bias``,
``weight_ih_l0`` …), upstream gradients ``dy`` (``dh_n``, ``dc_n`` for the LSTM's final
state, ``dp`` for pooling); outputs ``y``, ``dx``, ``grad.<parameter>``.
"""

from __future__ import annotations

import numpy as np

from qdaed.nn import (batchnorm2d, conv2d, global_avg_pool, linear, lstm, maxpool2d, relu,
                      temporal_pool)
from qdaed.vectors.cases import register


def _linear(b):
    x = b.input("x", b.normal(2, 3, 5))
    p = {"weight": b.input("weight", b.normal(4, 5, scale=0.5)),
         "bias": b.input("bias", b.normal(4))}
    dy = b.input("dy", b.normal(2, 3, 4))
    y, cache = linear.forward(p, x)
    dx, g = linear.backward(p, cache, dy)
    b.output("y", y, "reduction")
    b.output("dx", dx, "reduction")
    b.output("grad.weight", g["weight"], "reduction", "summed over the 6 leading positions")
    b.output("grad.bias", g["bias"], "reduction")


register("linear", "linear", "y = x W^T + b over two leading axes (2, 3, 5) -> (2, 3, 4), "
         "with dx, dW, db for a random dy", _linear)


def _lstm(b, batch, steps, inputs, hidden, layers):
    b.options.update(input_size=inputs, hidden_size=hidden, num_layers=layers,
                     batch_first=True, gate_order="i, f, g, o")
    x = b.input("x", b.normal(batch, steps, inputs))
    p = {}
    bound = 1.0 / np.sqrt(hidden)
    for name, shape in lstm.parameter_shapes(inputs, hidden, layers).items():
        # Both biases random and different (docs/design/choices.md: bias bugs hide behind zero biases).
        p[name] = b.input(name, b.uniform(-2 * bound, 2 * bound, *shape))
    h0 = b.input("h0", b.normal(layers, batch, hidden, scale=0.5))
    c0 = b.input("c0", b.normal(layers, batch, hidden, scale=0.5))
    dy = b.input("dy", b.normal(batch, steps, hidden))
    dh_n = b.input("dh_n", b.normal(layers, batch, hidden))
    dc_n = b.input("dc_n", b.normal(layers, batch, hidden))
    (y, (h_n, c_n)), cache = lstm.forward(p, x, h0, c0)
    (dx, (dh0, dc0)), grads = lstm.backward(p, cache, dy, dh_n, dc_n)
    note = f"{steps} time step(s), {layers} layer(s)"
    b.output("y", y, "recurrent", note)
    b.output("h_n", h_n, "recurrent", note)
    b.output("c_n", c_n, "recurrent", note)
    b.output("dx", dx, "recurrent", note)
    b.output("dh0", dh0, "recurrent", note)
    b.output("dc0", dc0, "recurrent", note)
    for name, g in grads.items():
        b.output(f"grad.{name}", g, "recurrent", note)


for _b, _t, _l in ((3, 7, 1), (2, 6, 2), (1, 1, 1), (1, 1, 2)):
    register(f"lstm_{_l}layer_B{_b}_T{_t}", "lstm",
             f"torch.nn.LSTM(5, 4, num_layers={_l}, batch_first=True) on x (B={_b}, T={_t}, 5) "
             f"with initial state h0, c0: y, h_n, c_n and the gradients of x, h0, c0 and every "
             f"parameter for random dy, dh_n, dc_n", _lstm,
             batch=_b, steps=_t, inputs=5, hidden=4, layers=_l)


def _temporal_pool(b, mode):
    b.options["mode"] = mode
    x = b.input("x", b.normal(3, 5, 4))
    dp = b.input("dp", b.normal(3, 4))
    p, cache = temporal_pool.forward(None, x, mode)
    dx, _ = temporal_pool.backward(None, cache, dp)
    kind = "reduction" if mode == "mean" else "exact"
    b.output("p", p, kind, "a selection of x" if kind == "exact" else "")
    b.output("dx", dx, "elementwise" if mode == "mean" else "exact",
             "dp / T" if mode == "mean" else "dp routed to one time step")


for _m, _what in (("mean", "mean over t"), ("last", "x[:, T-1]"),
                  ("max", "max over t per feature, gradient to the (first) argmax")):
    register(f"temporal_pool_{_m}", "temporal_pool",
             f"(B=3, T=5, H=4) -> (3, 4): {_what}; dx for a random dp", _temporal_pool, mode=_m)


def _conv(b, shape, out_channels, k, stride, padding, bias):
    nb, c, h, w = shape
    b.options.update(stride=stride, padding=padding)
    x = b.input("x", b.normal(*shape))
    p = {"weight": b.input("weight", b.normal(out_channels, c, k, k, scale=1 / np.sqrt(c * k * k)))}
    if bias:
        p["bias"] = b.input("bias", b.normal(out_channels))
    ho = conv2d.output_size(h, k, stride, padding)
    wo = conv2d.output_size(w, k, stride, padding)
    dy = b.input("dy", b.normal(nb, out_channels, ho, wo))
    y, cache = conv2d.forward(p, x, stride, padding)
    dx, g = conv2d.backward(p, cache, dy)
    b.output("y", y, "reduction")
    b.output("dx", dx, "reduction")
    b.output("grad.weight", g["weight"], "reduction")
    if bias:
        b.output("grad.bias", g["bias"], "reduction")


register("conv2d_1x1_s1", "conv2d", "F.conv2d, 1x1 kernel, stride 1, no padding, no bias: "
         "x (2, 3, 5, 6), weight (4, 3, 1, 1); y, dx, dweight", _conv,
         shape=(2, 3, 5, 6), out_channels=4, k=1, stride=1, padding=0, bias=False)
register("conv2d_3x3_s2_p1_bias", "conv2d", "F.conv2d, 3x3 kernel, stride 2, padding 1, with "
         "bias, odd input 7x8: x (2, 3, 7, 8), weight (5, 3, 3, 3); y, dx, dweight, dbias",
         _conv, shape=(2, 3, 7, 8), out_channels=5, k=3, stride=2, padding=1, bias=True)
register("conv2d_7x7_s2_p3", "conv2d", "F.conv2d as the ResNet stem: 7x7, stride 2, padding 3, "
         "one input channel, no bias: x (2, 1, 13, 11), weight (4, 1, 7, 7); y, dx, dweight",
         _conv, shape=(2, 1, 13, 11), out_channels=4, k=7, stride=2, padding=3, bias=False)


def _batchnorm(b, train):
    b.options.update(training=train, momentum=batchnorm2d.MOMENTUM, eps=batchnorm2d.EPS)
    x = b.input("x", 1.5 + 2.0 * b.normal(3, 4, 5, 6))
    p = {"weight": b.input("weight", b.uniform(0.5, 1.5, 4)),
         "bias": b.input("bias", b.normal(4))}
    buffers = {"running_mean": b.input("running_mean", b.normal(4)),
               "running_var": b.input("running_var", b.uniform(0.5, 4.0, 4))}
    dy = b.input("dy", b.normal(3, 4, 5, 6))
    y, cache = batchnorm2d.forward(p, x, buffers, train)
    dx, g = batchnorm2d.backward(p, cache, dy)
    b.output("y", y, "reduction", "batch statistics over 90 values" if train else "")
    b.output("dx", dx, "reduction")
    b.output("grad.weight", g["weight"], "reduction")
    b.output("grad.bias", g["bias"], "reduction")
    if train:
        b.output("new_running_mean", buffers["running_mean"], "reduction",
                 "(1 - m) running_mean + m mean")
        b.output("new_running_var", buffers["running_var"], "reduction",
                 "(1 - m) running_var + m unbiased variance (N / (N - 1))")


register("batchnorm2d_train", "batchnorm2d", "F.batch_norm(training=True, momentum 0.1, eps "
         "1e-5) on x (3, 4, 5, 6): y, dx, dweight, dbias and the updated running statistics "
         "(unbiased variance in the update, biased in the normalisation)", _batchnorm,
         train=True)
register("batchnorm2d_eval", "batchnorm2d", "F.batch_norm(training=False) with the running "
         "statistics: y, dx, dweight, dbias", _batchnorm, train=False)


def _relu(b, residual):
    x = b.normal(2, 3, 4, 5)
    x.reshape(-1)[::7] = 0.0  # exact zeros: the subgradient at 0 is 0, as PyTorch's
    x = b.input("x", x)
    r = b.input("residual", b.normal(2, 3, 4, 5)) if residual else None
    dy = b.input("dy", b.normal(2, 3, 4, 5))
    y, cache = relu.forward({}, x, residual=r)
    dx, _ = relu.backward({}, cache, dy)
    b.output("y", y, "elementwise" if residual else "exact")
    b.output("dx", dx, "exact", "dy where the output is > 0, else 0"
             + ("; also the gradient of the residual" if residual else ""))


register("relu", "relu", "max(x, 0) on (2, 3, 4, 5) with exact zeros in x (gradient 0 there); "
         "y, dx", _relu, residual=False)
register("relu_residual", "relu", "max(x + residual, 0), the end of a residual block; y, dx "
         "(= dresidual)", _relu, residual=True)


def _maxpool(b):
    b.options.update(kernel_size=3, stride=2, padding=1)
    x = b.input("x", b.normal(2, 3, 9, 8))
    y, cache = maxpool2d.forward({}, x, 3, 2, 1)
    dy = b.input("dy", b.normal(*y.shape))
    dx, _ = maxpool2d.backward({}, cache, dy)
    b.output("y", y, "exact", "a selection of x")
    b.output("dx", dx, "elementwise", "overlapping windows add their gradients")


register("maxpool2d_3x3_s2_p1", "maxpool2d", "F.max_pool2d(3, stride 2, padding 1) on "
         "(2, 3, 9, 8), as the ResNet stem; y, dx", _maxpool)


def _gap(b):
    x = b.input("x", b.normal(2, 3, 4, 5))
    dy = b.input("dy", b.normal(2, 3))
    y, cache = global_avg_pool.forward({}, x)
    dx, _ = global_avg_pool.backward({}, cache, dy)
    b.output("y", y, "reduction")
    b.output("dx", dx, "elementwise")


register("global_avg_pool", "global_avg_pool", "mean over H, W: (2, 3, 4, 5) -> (2, 3); y, dx",
         _gap)
