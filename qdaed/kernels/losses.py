"""Element-wise loops of the sigmoid cross-entropy losses (callers: ``qdaed.nn.losses``).

All arrays are flat and C-contiguous, float32 or float64. Each element is evaluated in
float64 and the sum is accumulated in float64, so float32 losses lose nothing to the sum.
"""

import math

from qdaed.kernels import kernel


@kernel
def _sigmoid(z):
    # σ(z) without overflow: exp is only ever taken of a non-positive number.
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@kernel
def sigmoid(z, out):
    """out_i = σ(z_i)."""
    for i in range(z.size):
        out[i] = _sigmoid(float(z[i]))


@kernel
def sigmoid_bce_sum(z, y):
    """Σ_i ℓ(z_i, y_i), ℓ(z, y) = −y log σ(z) − (1 − y) log(1 − σ(z)).

    Evaluated as ℓ = max(z, 0) − z·y + log1p(exp(−|z|)), the same value without the
    overflow of exp(z) or the cancellation of log(1 − σ(z)) at large |z|: finite for any
    finite z, and exact to rounding for z = ±1e4.
    """
    acc = 0.0
    for i in range(z.size):
        zi = float(z[i])
        acc += max(zi, 0.0) - zi * float(y[i]) + math.log1p(math.exp(-abs(zi)))
    return acc


@kernel
def scaled_sigmoid_minus_target(z, y, scale, out):
    """out_i = scale · (σ(z_i) − y_i)   (∂ℓ/∂z = σ(z) − y, times the caller's factor)."""
    for i in range(z.size):
        out[i] = scale * (_sigmoid(float(z[i])) - float(y[i]))


@kernel
def log_softmax_rows(z, out):
    """out[b, c] = z[b, c] − max_c z[b] − log Σ_c exp(z[b, c] − max_c z[b])  (z, out: (B, C))."""
    for b in range(z.shape[0]):
        top = float(z[b, 0])
        for c in range(1, z.shape[1]):
            top = max(top, float(z[b, c]))
        acc = 0.0
        for c in range(z.shape[1]):
            acc += math.exp(float(z[b, c]) - top)
        norm = top + math.log(acc)
        for c in range(z.shape[1]):
            out[b, c] = float(z[b, c]) - norm
