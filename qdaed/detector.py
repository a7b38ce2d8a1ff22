"""A deployable detector: a trained network with everything needed to run it on audio.

A :class:`Detector` bundles the network (StudentLSTM or ResNet), the per-bin normalisation
fitted on the training split, the equal-length policy (``frames``), the LFBE options, the
class names, the per-class decision thresholds (chosen at the validation EER point) and, for a
quantized model, the k-bit codes of every quantized tensor. It is what a model file holds.

Size accounting (DESIGN 2.7) — what a device must store: every float tensor needed for
inference (parameters and, for the ResNet, BN running statistics) at 4 bytes per value; each
quantized tensor at ceil(n·k/8) bytes of packed codes plus 8 bytes (float32 α, β) per group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qdaed import __version__
from qdaed.errors import ModelFileError
from qdaed.models import ResNet, StudentLSTM
from qdaed.train.dataset import Normalizer, fix_length
from qdaed.nn.losses import sigmoid
from qdaed.train.loop import predict_logits

ARCHITECTURES = {"StudentLSTM": StudentLSTM, "ResNet": ResNet}


def architecture_of(model):
    """(name, constructor kwargs) that rebuild ``model``'s shape."""
    for name, cls in ARCHITECTURES.items():
        if isinstance(model, cls):
            return name, dict(model.config)
    raise ModelFileError(f"unknown model class {type(model).__name__}")


@dataclass
class Detector:
    model: object
    normalizer: Normalizer
    frames: int
    classes: tuple
    features: dict
    thresholds: np.ndarray
    quantized: dict = field(default_factory=dict)     # name -> QuantizedTensor
    info: dict = field(default_factory=dict)          # name, schedule, seed, config, ...

    # ---- size accounting -------------------------------------------------------------
    def num_parameters(self):
        return int(sum(p.size for p in self.model.params.values()))

    def accounted_bytes(self):
        """Bytes a device must store (DESIGN 2.7); see the module docstring."""
        from qdaed.io.modelfile import accounted_bytes

        state = self.model.state_dict()
        return accounted_bytes({k: v for k, v in state.items() if k not in self.quantized},
                               self.quantized)

    # ---- inference ---------------------------------------------------------------------
    def prepare(self, feats_list):
        """List of raw LFBE matrices (T_i, F) → normalised (N, frames, F) float32."""
        x = np.stack([fix_length(f, self.frames) for f in feats_list])
        return self.normalizer.apply(x)

    def scores(self, x):
        """σ(logits) (N, C) for prepared inputs (N, frames, F)."""
        return sigmoid(predict_logits(self.model, x)).astype(np.float64)

    def decisions(self, scores):
        return scores >= self.thresholds[None, :]

    # ---- files ---------------------------------------------------------------------------
    def save(self, path):
        from qdaed.io.modelfile import save_model

        arch, arch_cfg = architecture_of(self.model)
        state = self.model.state_dict()
        tensors = {k: v.astype(np.float32) for k, v in state.items() if k not in self.quantized}
        tensors["normalizer.mean"] = self.normalizer.mean.astype(np.float32)
        tensors["normalizer.std"] = self.normalizer.std.astype(np.float32)
        header = {
            "architecture": arch,
            "arch_config": arch_cfg,
            "classes": list(self.classes),
            "frames": int(self.frames),
            "features": self.features,
            "thresholds": [float(t) for t in self.thresholds],
            "params": self.num_parameters(),
            "bytes": self.accounted_bytes(),
            "qdaed_version": __version__,
            **self.info,
        }
        save_model(path, tensors, self.quantized, header)

    @classmethod
    def load(cls, path, expect_arch=None):
        from qdaed.io.modelfile import load_model

        mf = load_model(path, expect_arch=expect_arch)
        h = mf.header
        try:
            model = ARCHITECTURES[h["architecture"]](**h["arch_config"])
            tensors = dict(mf.tensors)
            norm = Normalizer(tensors.pop("normalizer.mean"), tensors.pop("normalizer.std"))
            state = {**tensors, **{n: q.dequantize() for n, q in mf.quantized.items()}}
            model.load_state_dict({k: v.astype(model.dtype) for k, v in state.items()})
            info = {k: v for k, v in h.items() if k not in (
                "architecture", "arch_config", "classes", "frames", "features", "thresholds",
                "params", "bytes", "qdaed_version", "format_version")}
            return cls(model, norm, int(h["frames"]), tuple(h["classes"]), h["features"],
                       np.asarray(h["thresholds"], dtype=np.float64), dict(mf.quantized), info)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: model file is missing or has a malformed "
                                 f"entry ({exc})") from None
