"""Small detectors with random weights for the model-file tests (float, k-bit, ResNet)."""

import numpy as np

from qdaed.detector import Detector
from qdaed.features.fbank import LfbeOptions
from qdaed.features.prepare import Normalizer
from qdaed.models import ResNet, StudentLSTM
from qdaed.nn.quant import quantize
from tests.strategies import rng_from

CLASSES = ("dog", "baby_cry", "gunshot")


def make_detector(model, bits=None, features=None, num_bins=64, seed=0, frames=40,
                  group="row", symmetric=False):
    """A Detector around ``model`` with a random normalisation and thresholds; with ``bits``,
    every weight matrix quantized (as the schedules deploy it: the model runs with the
    dequantized weights)."""
    rng = rng_from(seed)
    quantized = {}
    if bits:
        quantized = {n: quantize(v, bits, group=group, symmetric=symmetric)
                     for n, v in model.params.items()
                     if n.rsplit(".", 1)[-1].startswith("weight") and v.ndim >= 2}
        model.load_state_dict({**model.state_dict(),
                               **{n: q.dequantize() for n, q in quantized.items()}})
    norm = Normalizer(rng.standard_normal(num_bins).astype(np.float32),
                      rng.uniform(0.5, 2.0, num_bins).astype(np.float32))
    feats = LfbeOptions(num_mel_bins=num_bins, **(features or {})).to_dict()
    return Detector(model, norm, frames, CLASSES, feats, rng.uniform(0.1, 0.9, 3), quantized,
                    {"name": f"qd-{bits}bit" if bits else "student", "schedule": "test",
                     "bits": bits, "seed": seed})


def student(bits=None, hidden=8, layers=1, bins=16, pooling="mean", seed=3, **kw):
    return make_detector(StudentLSTM(bins, hidden, layers, 3, pooling, seed=seed), bits,
                         num_bins=bins, **kw)


def resnet(depth=18, width=4, bins=32, frames=40, seed=3, **kw):
    """A small ResNet teacher with non-trivial batch-norm statistics."""
    model = ResNet(depth, 3, 1, width, seed=seed)
    rng = rng_from(seed + 1)
    state = model.state_dict()
    last_bn = "bn3.weight" if depth == 50 else "bn2.weight"
    for n, v in state.items():
        if n.startswith("layer") and n.endswith(last_bn):
            # a residual branch's last BN scaled down (as in trained networks), so activations
            # and logits stay O(1) through the depth
            state[n] = rng.uniform(0.1, 0.3, v.shape).astype(np.float32)
        elif n.endswith(("bn1.weight", "bn2.weight", ".1.weight")) or \
                n.endswith("running_var"):
            state[n] = rng.uniform(0.5, 1.5, v.shape).astype(np.float32)
        elif n.endswith(("bias", "running_mean")):
            state[n] = (0.1 * rng.standard_normal(v.shape)).astype(np.float32)
    model.load_state_dict(state)
    return make_detector(model, num_bins=bins, frames=frames, seed=seed, **kw)
