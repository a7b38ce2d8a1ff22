"""A deployable detector: a trained network with everything needed to run it on audio.

A :class:`Detector` bundles the network (StudentLSTM or ResNet), the per-bin normalisation
fitted on the training split, the equal-length policy (``frames``), the LFBE options, the
class names, the per-class decision thresholds (chosen at the validation EER point) and, for a
quantized model, the k-bit codes of every quantized tensor. It is what a model file holds.

Size accounting (DESIGN 2.7) — what a device must store: every float tensor needed for
inference (parameters, for the ResNet its BN running statistics, and the per-bin
normalisation mean and standard deviation, 2F values) at 4 bytes per value; each quantized
tensor at ceil(n·k/8) bytes of packed codes plus 8 bytes (float32 α, β) per group.

Model file (``qdaed.io.modelfile``): the tensors in the model's state_dict order followed by
``normalizer.mean`` and ``normalizer.std``; the order and shapes follow from the header's
architecture, config and ``features["num_mel_bins"]``, so the file stores only their digest.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from qdaed import __version__
from qdaed.errors import ModelFileError
from qdaed.features.prepare import Normalizer, fix_length
from qdaed.models import ResNet, StudentLSTM
from qdaed.models.predict import predict_logits
from qdaed.nn.losses import sigmoid

if TYPE_CHECKING:
    from qdaed.nn.quant import QuantizedTensor

ARCHITECTURES = {"StudentLSTM": StudentLSTM, "ResNet": ResNet}

# The LFBE options a model file leaves out: it stores only the options that differ from the
# table it names in "features_base". A table never changes once files name it (a test pins
# "lfbe-1" to LfbeOptions' defaults, DESIGN 2.1); new defaults would get a new table. This
# keeps ~400 bytes of JSON out of every model file (its size is the accounted size plus a
# small header).
FEATURE_BASES = {"lfbe-1": {
    "frame_length_ms": 25.0, "frame_shift_ms": 10.0, "snip_edges": True, "remove_dc": True,
    "preemphasis": 0.97, "window": "povey", "blackman_coeff": 0.42, "fft_size": 512,
    "num_mel_bins": 64, "low_freq": 20.0, "high_freq": 8000.0, "mel_scale": "htk",
    "mel_norm": None, "use_power": True, "use_log": True, "log_floor": 1.1920928955078125e-07,
    "dither": 0.0, "int16_scale": False}}
FEATURE_BASE = "lfbe-1"


def architecture_of(model):
    """(name, constructor kwargs) that rebuild ``model``'s shape."""
    for name, cls in ARCHITECTURES.items():
        if isinstance(model, cls):
            return name, dict(model.config)
    raise ModelFileError(f"unknown model class {type(model).__name__}")


@dataclass
class Detector:
    model: StudentLSTM | ResNet
    normalizer: Normalizer
    frames: int
    classes: tuple[str, ...]
    features: dict[str, Any]
    thresholds: NDArray[np.float64]
    quantized: dict[str, QuantizedTensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # name, schedule, seed, config, ...

    # ---- size accounting -------------------------------------------------------------
    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.model.params.values()))

    def accounted_bytes(self) -> int:
        """Bytes a device must store (DESIGN 2.7); see the module docstring."""
        from qdaed.io.modelfile import accounted_bytes

        return accounted_bytes(self._float_tensors(), self.quantized)

    def _float_tensors(self):
        """Every float tensor of the model file, float32, in file order (quantized left out)."""
        state = self.model.state_dict()
        tensors = {k: v.astype(np.float32) for k, v in state.items() if k not in self.quantized}
        tensors["normalizer.mean"] = self.normalizer.mean.astype(np.float32)
        tensors["normalizer.std"] = self.normalizer.std.astype(np.float32)
        return tensors

    # ---- inference ---------------------------------------------------------------------
    def prepare(self, feats_list: Sequence[np.ndarray]) -> NDArray[np.float32]:
        """List of raw LFBE matrices (T_i, F) → normalised (N, frames, F) float32."""
        x = np.stack([fix_length(f, self.frames) for f in feats_list])
        return self.normalizer.apply(x)

    def scores(self, x: np.ndarray) -> NDArray[np.float64]:
        """σ(logits) (N, C) for prepared inputs (N, frames, F)."""
        return sigmoid(predict_logits(self.model, x)).astype(np.float64)

    def decisions(self, scores: np.ndarray) -> NDArray[np.bool_]:
        return scores >= self.thresholds[None, :]

    # ---- files ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        from qdaed.io.modelfile import save_model

        arch, arch_cfg = architecture_of(self.model)
        header = {
            "architecture": arch,
            "arch_config": arch_cfg,
            "classes": list(self.classes),
            "frames": int(self.frames),
            "features_base": FEATURE_BASE,
            "features": {k: v for k, v in self.features.items()
                         if k not in FEATURE_BASES[FEATURE_BASE]
                         or FEATURE_BASES[FEATURE_BASE][k] != v},
            "thresholds": [float(t) for t in self.thresholds],
            **self.info,
        }
        order = [n for n, _ in _layout(self.model, self.normalizer.mean.size)]
        save_model(path, self._float_tensors(), self.quantized, header, order=order)

    @classmethod
    def load(cls, path: str | os.PathLike[str], expect_arch: str | None = None
             ) -> Detector:
        from qdaed.io.modelfile import load_model

        built = {}

        def layout(h):
            if h.get("architecture") not in ARCHITECTURES:
                raise ModelFileError(f"{path}: unknown architecture {h.get('architecture')!r}"
                                     f"; this qdaed has {sorted(ARCHITECTURES)}")
            built["model"] = ARCHITECTURES[h["architecture"]](**h["arch_config"])
            base = h.get("features_base")
            if base not in FEATURE_BASES or not isinstance(h.get("features"), dict):
                raise ModelFileError(f"{path}: unknown or missing LFBE option table "
                                     f"{base!r}; this qdaed knows {sorted(FEATURE_BASES)}")
            built["features"] = {**FEATURE_BASES[base], **h["features"]}
            return _layout(built["model"], built["features"]["num_mel_bins"])

        try:
            mf = load_model(path, expect_arch=expect_arch, layout=layout)
            h, model = mf.header, built["model"]
            tensors = dict(mf.tensors)
            norm = Normalizer(tensors.pop("normalizer.mean"), tensors.pop("normalizer.std"))
            state = {**tensors, **{n: q.dequantize() for n, q in mf.quantized.items()}}
            model.load_state_dict({k: v.astype(model.dtype) for k, v in state.items()})
            info = {k: v for k, v in h.items() if k not in (
                "architecture", "arch_config", "classes", "frames", "features_base",
                "features", "thresholds")}
            return cls(model, norm, int(h["frames"]), tuple(h["classes"]), built["features"],
                       np.asarray(h["thresholds"], dtype=np.float64), dict(mf.quantized), info)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: model file is missing or has a malformed "
                                 f"entry ({type(exc).__name__}: {exc})") from None


def _layout(model, num_bins):
    """[(name, shape)] of a model file: the state_dict, then the normalisation (F,) twice."""
    shapes = [(n, v.shape) for n, v in model.state_dict().items()]
    return shapes + [("normalizer.mean", (num_bins,)), ("normalizer.std", (num_bins,))]
