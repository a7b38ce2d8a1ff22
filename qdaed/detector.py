"""A deployable detector: a trained network with everything needed to run it on audio.

A :class:`Detector` bundles the network (StudentLSTM or ResNet), the per-bin normalisation
fitted on the training split, the equal-length policy (``frames``), the LFBE options, the
class names, the per-class decision thresholds (chosen at the validation EER point) and, for a
quantized model, the k-bit codes of every quantized tensor. It is what a model file holds.

Size accounting (DESIGN 2.7) — what a device must store: every float tensor needed for
inference (parameters, for the ResNet its BN running statistics, and the per-bin
normalisation mean and standard deviation, 2F values) at 4 bytes per value; each quantized
tensor at ceil(n·k/8) bytes of packed codes plus 8 bytes (float32 α, β) per group.

Model file (format version 3, ``qdaed.io.modelfile``; its document ``qdaed.io.header``): every
tensor of the model's state_dict under its name, in state_dict order — float32, or for a
quantized tensor ``NAME.codes`` (packed) and ``NAME.scales`` (α, β per group) — then
``normalizer.mean`` and ``normalizer.std``; the document holds the architecture, classes,
thresholds, frames, the LFBE options in full and the provenance (``info``), and a SHA-256 covers
it and the tensors. :meth:`Detector.load` checks every field before it builds anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qdaed import __version__
from qdaed.errors import InputError, ModelFileError
from qdaed.features.prepare import Normalizer, fix_length
from qdaed.models import ResNet, StudentLSTM
from qdaed.models.predict import predict_logits
from qdaed.nn.losses import sigmoid

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

        return accounted_bytes(self._float_tensors(), self.quantized)

    def _float_tensors(self):
        """Every float tensor of the model file, float32, in file order (quantized left out)."""
        state = self.model.state_dict()
        tensors = {k: v.astype(np.float32) for k, v in state.items() if k not in self.quantized}
        tensors["normalizer.mean"] = self.normalizer.mean.astype(np.float32)
        tensors["normalizer.std"] = self.normalizer.std.astype(np.float32)
        return tensors

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
    def _document(self):
        """The model file's document (qdaed.io.header) and tensors [(name, array)] in order."""
        from qdaed.features.fbank import make_options
        from qdaed.io.modelfile import MODEL_FORMAT, MODEL_FORMAT_VERSION

        arch, arch_cfg = architecture_of(self.model)
        state = self.model.state_dict()
        quantized, tensors = {}, []
        for name, value in state.items():
            q = self.quantized.get(name)
            if q is None:
                tensors.append((name, value.astype(np.float32)))
                continue
            if tuple(q.shape) != tuple(value.shape):
                raise InputError(f"quantized[{name!r}]: shape {q.shape}, the model's "
                                 f"{name} is {value.shape}")
            quantized[name] = {"bits": int(q.bits), "group": q.group, "rounding": q.rounding,
                               "symmetric": bool(q.symmetric), "shape": list(q.shape)}
            tensors += [(f"{name}.codes", q.packed()),
                        (f"{name}.scales", np.stack([q.alpha, q.beta], axis=1)
                         .astype(np.float32))]
        unknown = sorted(set(self.quantized) - set(state))
        if unknown:
            raise InputError(f"quantized: {unknown} are not tensors of the model")
        tensors += [("normalizer.mean", self.normalizer.mean.astype(np.float32)),
                    ("normalizer.std", self.normalizer.std.astype(np.float32))]
        doc = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
               "writer": f"qdaed {__version__}", "architecture": arch, "arch_config": arch_cfg,
               "classes": list(self.classes), "frames": int(self.frames),
               "features": make_options(**self.features).to_dict(),
               "thresholds": [float(t) for t in self.thresholds], "quantized": quantized,
               "info": dict(self.info)}
        return doc, tensors

    def save(self, path):
        """Write the model file (format 3) atomically; InputError when the detector could not
        be read back (every field is checked as :meth:`load` checks it)."""
        from qdaed.io.header import HeaderError, validate
        from qdaed.io.modelfile import JSONError, canonical_json, parse_json, write_model

        doc, tensors = self._document()
        try:
            validate(parse_json(canonical_json(doc)))   # what is written is what load reads
        except (TypeError, ValueError) as exc:
            raise InputError(f"cannot save {path}: not JSON ({exc})") from None
        except (HeaderError, JSONError) as exc:
            raise InputError(f"cannot save {path}: {exc}") from None
        write_model(path, doc, tensors)

    @classmethod
    def load(cls, path, expect_arch=None):
        """Read a model file written by :meth:`save` (or ``qdaed import``); ModelFileError
        (naming the file and the field) for anything that is not exactly such a file."""
        import os

        from qdaed.io.header import check_document
        from qdaed.io.modelfile import read_model
        from qdaed.nn.quant import QuantizedTensor

        path = os.fspath(path)
        mf = read_model(path, lambda doc: check_document(path, doc))
        c, t = mf.checked, mf.tensors
        if expect_arch is not None and c.architecture != expect_arch:
            raise ModelFileError(f"{path}: holds a {c.architecture!r} model, expected "
                                 f"{expect_arch!r}")
        mean, std = t["normalizer.mean"], t["normalizer.std"]
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ModelFileError(f"{path}: normalizer.mean/std: expected finite values and a "
                                 f"positive std")
        quantized, state = {}, {}
        try:
            for name in c.state_shapes:
                if name not in c.quantized:
                    state[name] = t[name]
                    continue
                spec, scales = c.quantized[name], t[f"{name}.scales"]
                quantized[name] = QuantizedTensor.from_packed(
                    t[f"{name}.codes"], spec["shape"], spec["bits"], spec["group"],
                    scales[:, 0].copy(), scales[:, 1].copy(), symmetric=spec["symmetric"],
                    rounding=spec["rounding"])
                state[name] = quantized[name].dequantize()
        except InputError as exc:
            raise ModelFileError(f"{path}: tensor {name!r}: {exc}") from None
        model = ARCHITECTURES[c.architecture](**c.arch_config)
        try:
            model.load_state_dict({k: v.astype(model.dtype) for k, v in state.items()})
        except InputError as exc:
            raise ModelFileError(f"{path}: {exc}") from None
        return cls(model, Normalizer(mean, std), c.frames, c.classes, c.features,
                   c.thresholds.copy(), quantized, dict(c.info))
