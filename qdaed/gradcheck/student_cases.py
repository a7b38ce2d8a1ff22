"""Gradient-check cases for the student's ops: linear, LSTM, temporal pooling, StudentLSTM.

Each ``check_*`` function takes explicit sizes so that the tests can drive it with
hypothesis-drawn shapes; the ``Case`` wrappers below draw small random sizes from ``rng``.
Every parameter (both LSTM bias vectors included) and every upstream gradient is random.
"""

from __future__ import annotations

import numpy as np

from qdaed.gradcheck import STEP, Case, compare_gradients
from qdaed.models import StudentLSTM
from qdaed.nn import linear, lstm, temporal_pool


def check_linear(rng, batch, in_features, out_features):
    """Relative errors of dx, dW, db of ``nn.linear`` with a random upstream dy."""
    params = {"weight": rng.standard_normal((out_features, in_features)),
              "bias": rng.standard_normal(out_features)}
    x = rng.standard_normal((batch, in_features))
    dy = rng.standard_normal((batch, out_features))
    _, cache = linear.forward(params, x)
    dx, grads = linear.backward(params, cache, dy)

    def loss():
        return float(np.sum(linear.forward(params, x)[0] * dy))

    return compare_gradients(loss, {"x": x, **params}, {"x": dx, **grads})


def _linear(rng):
    return check_linear(rng, *rng.integers(1, 4, size=3))


def random_lstm_params(rng, input_size, hidden, layers, scale=0.5):
    """float64 LSTM parameters, every tensor (both biases too) drawn N(0, scale²)."""
    return {name: scale * rng.standard_normal(shape)
            for name, shape in lstm.parameter_shapes(input_size, hidden, layers).items()}


def check_lstm(rng, batch, steps, input_size, hidden, layers, *, initial_state=True,
               upstream_state=True, step=STEP):
    """Relative errors of dx, dh0, dc0 and every parameter gradient of ``nn.lstm``.

    Loss: L = Σ dy ⊙ y + Σ dh_n ⊙ h_n + Σ dc_n ⊙ c_n with random dy (and random dh_n, dc_n
    when ``upstream_state``); h0, c0 random when ``initial_state``, else None (zeros).
    """
    params = random_lstm_params(rng, input_size, hidden, layers)
    x = rng.standard_normal((batch, steps, input_size))
    state = (rng.standard_normal((layers, batch, hidden)) if initial_state else None
             for _ in range(2))
    h0, c0 = state
    dy = rng.standard_normal((batch, steps, hidden))
    dh_n = dc_n = None
    if upstream_state:
        dh_n = rng.standard_normal((layers, batch, hidden))
        dc_n = rng.standard_normal((layers, batch, hidden))

    _, cache = lstm.forward(params, x, h0, c0)
    (dx, (dh0, dc0)), grads = lstm.backward(params, cache, dy, dh_n, dc_n)

    def loss():
        (y, (h_n, c_n)), _ = lstm.forward(params, x, h0, c0)
        total = float(np.sum(y * dy))
        if upstream_state:
            total += float(np.sum(h_n * dh_n) + np.sum(c_n * dc_n))
        return total

    tensors, analytic = {"x": x, **params}, {"x": dx, **grads}
    if initial_state:
        tensors.update(h0=h0, c0=c0)
        analytic.update(h0=dh0, c0=dc0)
    return compare_gradients(loss, tensors, analytic, h=step)


def _lstm(rng):
    # Upstream dh_n, dc_n reach every layer directly, so even H = 1 and T = 1 give gradients
    # well above the finite-difference noise floor (about 1e-16 |L| / h).
    batch, steps, input_size, hidden = rng.integers(1, 4, size=4)
    layers = int(rng.integers(1, 4))
    return check_lstm(rng, batch, steps, input_size, hidden, layers,
                      initial_state=bool(rng.integers(2)), upstream_state=True)


def check_temporal_pool(rng, batch, steps, hidden, mode):
    """Relative error of dx of ``nn.temporal_pool`` in ``mode`` with a random upstream dp."""
    x = rng.standard_normal((batch, steps, hidden))
    dp = rng.standard_normal((batch, hidden))
    _, cache = temporal_pool.forward(None, x, mode)
    dx, _ = temporal_pool.backward(None, cache, dp)

    def loss():
        return float(np.sum(temporal_pool.forward(None, x, mode)[0] * dp))

    return compare_gradients(loss, {"x": x}, {"x": dx})


def _temporal_pool(mode):
    def run(rng):
        batch, steps, hidden = rng.integers(1, 5, size=3)
        return check_temporal_pool(rng, batch, steps, hidden, mode)
    return run


def check_student(rng, batch, steps, input_size, hidden, layers, classes, pooling, *,
                  step=STEP):
    """Relative errors of every parameter gradient and dx of ``models.StudentLSTM``,
    through the logits (L = Σ dz ⊙ z with random dz), all parameters re-drawn N(0, 0.5²)."""
    model = StudentLSTM(input_size, hidden, layers, classes, pooling, rng=rng, dtype=np.float64)
    for value in model.params.values():
        value[...] = 0.5 * rng.standard_normal(value.shape)
    x = rng.standard_normal((batch, steps, input_size))
    dz = rng.standard_normal((batch, classes))
    _, cache = model.forward(x, train=True)
    grads, dx = model.backward(cache, dz, input_grad=True)

    def loss():
        return float(np.sum(model.forward(x)[0] * dz))

    return compare_gradients(loss, {"x": x, **model.params}, {"x": dx, **grads}, h=step)


# The student's loss reaches layer 0 only through a chain of small factors (σ', tanh', W);
# with H = 1 or T ≤ 2 some tensor's whole gradient is occasionally ~1e-7, below what a central
# difference resolves to 1e-6. These sizes and the larger step keep every tensor's gradient
# measurable (max 3.6e-7 over 500 draws); the corner sizes are covered by the PyTorch
# conformance tests, which have no such noise floor.
STUDENT_STEP = 1e-5


def _student(rng):
    batch, steps = int(rng.integers(1, 4)), int(rng.integers(3, 6))
    input_size, hidden, classes = rng.integers(2, 5, size=3)
    layers = int(rng.integers(1, 3))
    pooling = temporal_pool.MODES[int(rng.integers(len(temporal_pool.MODES)))]
    return check_student(rng, batch, steps, input_size, hidden, layers, classes, pooling,
                         step=STUDENT_STEP)


CASES = [
    Case("nn.linear", _linear),
    Case("nn.lstm", _lstm),
    *(Case(f"nn.temporal_pool[{mode}]", _temporal_pool(mode)) for mode in temporal_pool.MODES),
    Case("models.StudentLSTM", _student),
]
