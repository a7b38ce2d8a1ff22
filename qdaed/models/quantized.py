"""k-bit weights in a model: which tensors are quantized, and the one way to run with them.

:class:`QuantSpec` names the quantized tensors and the quantizer's options (docs/method/quantization.md);
:func:`quantized_weights` is the single way a model runs on Q_k(w) — a training step of
quantized distillation or quantization-aware training, the validation of such a step, and
the golden vector of one such step — with the full-precision weights restored afterwards
(even when the block raises); :func:`dequantized_state` is the state_dict a deployed model
holds (a model file, a PyTorch export) and :func:`deploy_quantized` puts it in a model.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from qdaed.nn.quant import quantize


@dataclass(frozen=True)
class QuantSpec:
    """Which tensors are quantized during training and deployment, and how (docs/method/quantization.md).

    Default: every weight matrix (``weight``, ``weight_ih_l0``, … with 2+ dimensions); biases stay
    float32 and are counted as such. ``rounding="stochastic"`` draws its uniform numbers from
    ``numpy.random.default_rng([seed, step])``: reproducible, and new at every training step.
    """

    bits: int
    group: object = "row"
    symmetric: bool = False
    rounding: str = "nearest"
    seed: int = 0

    def names(self, params):
        return [n for n, p in params.items()
                if n.rsplit(".", 1)[-1].startswith("weight") and p.ndim >= 2]

    def quantize(self, params, step=0):
        """{name: QuantizedTensor} for every quantized tensor of ``params``; ``step`` selects
        the random stream of stochastic rounding (ignored by nearest rounding)."""
        rng = (np.random.default_rng([self.seed, step]) if self.rounding == "stochastic"
               else None)
        return {n: quantize(params[n], self.bits, group=self.group, rounding=self.rounding,
                            symmetric=self.symmetric, rng=rng) for n in self.names(params)}


def dequantized_state(params, quantized, dtype=None):
    """``params`` with every tensor of ``quantized`` ({name: QuantizedTensor}) replaced by its
    dequantized values Q_k(w) (a new dict; ``params`` is not changed), as ``dtype`` (default:
    the dtype each tensor was quantized from)."""
    return {**params, **{n: q.dequantize(dtype) for n, q in quantized.items()}}


@contextmanager
def quantized_weights(model, quantized, dtype=None):
    """Run ``model`` on Q_k(w) inside the block: ``model.params`` holds the dequantized values
    of ``quantized`` (as ``dtype``, see :func:`dequantized_state`); on exit the full-precision
    arrays (yielded, so that an optimiser can update them) are put back."""
    master = model.params
    model.params = dequantized_state(master, quantized, dtype)
    try:
        yield master
    finally:
        model.params = master


def deploy_quantized(model, spec):
    """Put Q_k(w) in ``model`` for good (post-training quantization, and the end of a k-bit
    training schedule): every tensor ``spec`` quantizes is replaced by its dequantized values;
    returns {name: QuantizedTensor}, the codes a model file stores."""
    qt = spec.quantize(model.params)
    model.load_state_dict(dequantized_state(model.state_dict(), qt))
    return qt


__all__ = ["QuantSpec", "deploy_quantized", "dequantized_state", "quantized_weights"]
