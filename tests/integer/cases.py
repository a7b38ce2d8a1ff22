"""Seeded integer-student cases for the tests, and running a .tflite file in TFLite Micro.

``random_student`` draws int8 weights and quantization parameters directly (not through
calibration), so that cases reach corners calibration never produces: weights at −128 and
127, biases that saturate every gate, hidden scales that saturate h, cell scales from 2^-20
to 2^2. ``run_tflm`` runs a model in TFLite Micro's interpreter (tflite-micro package).
"""

import numpy as np

from qdaed.integer import FullyConnected, IntegerStudent, LstmLayer, QuantParams


def _int8(rng, shape, extreme):
    if extreme == "max":
        return np.full(shape, 127, np.int8)
    if extreme == "min":
        return np.full(shape, -128, np.int8)
    if extreme == "pm":
        return rng.choice(np.array([-128, 127], np.int8), size=shape)
    return rng.integers(-128, 128, shape).astype(np.int8)


def random_qparams(rng, lo, hi):
    return QuantParams(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
                       int(rng.integers(-128, 128)))


def random_layer(rng, input_q, input_size, hidden, *, extreme=None, saturate=False):
    """An LstmLayer with random (or extreme) int8 weights; saturate: biases of ±2^20..2^30
    so that gate pre-activations clip at ±32767 (σ, tanh at their ends)."""
    w_ih = _int8(rng, (4, hidden, input_size), extreme)
    w_hh = _int8(rng, (4, hidden, hidden), extreme)
    if saturate:
        bias = (rng.choice([-1, 1], (4, hidden)) * rng.integers(1 << 20, 1 << 30, (4, hidden)))
    else:
        bias = rng.integers(-30000, 30000, (4, hidden))
    hidden_q = random_qparams(rng, 1 / 400, 1 / 40)
    return LstmLayer(w_ih, w_hh, bias.astype(np.int32),
                     np.exp(rng.uniform(np.log(1e-4), np.log(0.05), 4)),
                     np.exp(rng.uniform(np.log(1e-4), np.log(0.05), 4)),
                     input_q, hidden_q, int(rng.integers(-20, 3)))


def random_student(rng, input_size, hidden, layers, classes, *, extreme=None, saturate=False,
                   per_channel=True):
    q_in = random_qparams(rng, 0.005, 0.2)
    prev, size, out = q_in, input_size, []
    for _ in range(layers):
        la = random_layer(rng, prev, size, hidden, extreme=extreme, saturate=saturate)
        out.append(la)
        prev, size = la.hidden, hidden
    pooled = random_qparams(rng, 1 / 400, 1 / 40)
    fc = FullyConnected(_int8(rng, (classes, hidden), extreme),
                        np.exp(rng.uniform(np.log(1e-3), np.log(0.05),
                                           classes if per_channel else 1)),
                        rng.integers(-5000, 5000, classes).astype(np.int32), pooled,
                        random_qparams(rng, 0.01, 0.3))
    return IntegerStudent(q_in, tuple(out), pooled, fc)


def run_tflm(runtime, model_bytes, inputs, num_outputs=1):
    """Outputs of one invoke of TFLite Micro's interpreter (``runtime``: the tflite-micro
    package's runtime module, which the calling test imports or skips on) on ``model_bytes``,
    the state reset first (variable tensors back to their zero points)."""
    # the default arena (10 × the file) is too small for long inputs: activations, not
    # weights, dominate; 64 MiB holds the largest case (B = 4, T = 1000, H = 512)
    interp = runtime.Interpreter.from_bytes(model_bytes,
                                            arena_size=10 * len(model_bytes) + (64 << 20))
    interp.reset()
    for k, x in enumerate(inputs):
        interp.set_input(x, k)
    interp.invoke()
    return [np.array(interp.get_output(k)) for k in range(num_outputs)]
