"""A deployable detector: a trained network with everything needed to run it on audio.

A :class:`Detector` bundles the network (StudentLSTM or ResNet), the per-bin normalisation
fitted on the training split, the equal-length policy (``frames``), the LFBE options, the
class names, the per-class decision thresholds (chosen at the validation EER point) and, for a
quantized model, the k-bit codes of every quantized tensor. It is what a model file holds.

Size accounting (docs/method/size.md) — what a device must store: every float tensor needed for
inference (parameters, for the ResNet its BN running statistics, and the per-bin
normalisation mean and standard deviation, 2F values) at 4 bytes per value; each quantized
tensor at ceil(n·k/8) bytes of packed codes plus 8 bytes (float32 α, β) per group.

A student may also carry its calibrated integer version (``integer``, a
:class:`qdaed.integer.IntegerStudent`, e.g. ``qdaed.integer.calibrate(det, clips)``): saved
with the model (int8/int32 tensors named ``integer.…``, :mod:`qdaed.integer.store`) and
loaded back; a detector without one saves exactly as before.

Model file (format version 3, ``qdaed.io.modelfile``; its document ``qdaed.formats.header``): every
tensor of the model's state_dict under its name, in state_dict order — float32, or for a
quantized tensor ``NAME.codes`` (packed) and ``NAME.scales`` (α, β per group) — then
``normalizer.mean`` and ``normalizer.std``; the document holds the architecture, classes,
thresholds, frames, the LFBE options in full and the provenance (``info``), and a SHA-256 covers
it and the tensors — against accidental damage, not tampering (anyone who edits a file can
recompute it): pin the whole file's digest with ``Detector.load(path, expect_sha256=HEX)``.
:meth:`Detector.load` checks every field, then every tensor value, before it builds anything.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qdaed._version import __version__
from qdaed.errors import InputError, ModelFileError
from qdaed.events import EventOptions, scan_events
from qdaed.features.fbank import make_options
from qdaed.features.prepare import Normalizer, fix_length
from qdaed.formats.header import HeaderError, check_document, check_tensor_values, validate
from qdaed.formats.sizes import accounted_bytes
from qdaed.integer.store import IntegerFieldError, build, document
from qdaed.integer.student import IntegerStudent
from qdaed.io.modelfile import MODEL_FORMAT, MODEL_FORMAT_VERSION, read_model, write_model
from qdaed.io.strictjson import JSONError, canonical_json, parse_json
from qdaed.models import ResNet, StudentLSTM
from qdaed.models.predict import deployed_logits
from qdaed.models.quantized import dequantized_state
from qdaed.models.registry import ARCHITECTURES, architecture_of
from qdaed.nn.losses import sigmoid
from qdaed.nn.quant import QuantizedTensor
from qdaed.streaming import hop_frames, scan_waveform
from qdaed.validate import check_int


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
    # SHA-256 of the model file's bytes when loaded from one (what sha256sum prints)
    file_sha256: str | None = field(default=None, compare=False)
    # the calibrated integer student (qdaed.integer), stored with the model when present
    integer: IntegerStudent | None = field(default=None, compare=False)

    # ---- size accounting -------------------------------------------------------------
    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.model.params.values()))

    def accounted_bytes(self) -> int:
        """Bytes a device must store (docs/method/size.md); see the module docstring."""
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
        return sigmoid(deployed_logits(self.model, x)).astype(np.float64)

    def decisions(self, scores: np.ndarray) -> NDArray[np.bool_]:
        return scores >= self.thresholds[None, :]

    # ---- whole recordings (qdaed.streaming; the Python API of the README) ------------------
    def scan(self, waveform: np.ndarray, sample_rate: int, *, hop: float | None = None,
             frames: bool = False, bounds: Any = None) -> Any:
        """One streaming pass over a waveform: a :class:`qdaed.streaming.Scan` (window
        scores, and the student's frame scores with ``frames=True``).

        waveform: (n,) or (n, channels) float samples in [−1, 1] (or int16) at
        ``sample_rate`` Hz (1 kHz – 384 kHz); hop: window hop in seconds (default: half a
        window).
        """
        return scan_waveform(self, waveform, sample_rate, hop=hop_frames(self, hop),
                             frames=frames, bounds=bounds)

    def predict(self, waveform: np.ndarray, sample_rate: int, *,
                hop: float | None = None) -> NDArray[np.float64]:
        """(C,) scores of a recording of any length: per class, the maximum over windows of
        the training length every ``hop`` seconds (``qdaed detect`` prints the same)."""
        return self.scan(waveform, sample_rate, hop=hop).file_scores

    def window_scores(self, waveform: np.ndarray, sample_rate: int, *,
                      hop: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(times (N, 2) window onset/offset in s, scores (N, C))."""
        sc = self.scan(waveform, sample_rate, hop=hop)
        return sc.window_times(), sc.scores

    def frame_scores(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        """(T, C) σ(W_fc h_t + b) per 10 ms frame (students only; the LSTM runs over the
        whole recording from a zero state)."""
        return self.scan(waveform, sample_rate, frames=True).frame_scores

    def events(self, waveform: np.ndarray, sample_rate: int, *, hop: float | None = None,
               median: int = 3, min_gap: float = 0.0,
               min_duration: float = 0.0) -> list[dict[str, Any]]:
        """Time-stamped events [{"class", "onset", "offset", "score"}] from the window
        scores and the stored thresholds (``qdaed.events``)."""
        opts = EventOptions(median, min_gap, min_duration)
        return scan_events(self.scan(waveform, sample_rate, hop=hop), self.thresholds,
                           self.classes, opts)

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray], *, classes: Sequence[str],
                        frames: int, architecture: str = "StudentLSTM",
                        config: dict[str, Any] | None = None,
                        normalizer: tuple[np.ndarray, np.ndarray] | None = None,
                        features: dict[str, Any] | None = None,
                        thresholds: Sequence[float] | None = None,
                        info: dict[str, Any] | None = None) -> Detector:
        """A detector from outside weights, e.g. a PyTorch ``state_dict()`` converted with
        ``{k: v.numpy() for k, v in sd.items()}``: names and layouts as PyTorch's.

        classes: the C class names; frames: the window (training clip) length in frames;
        config: the architecture's constructor arguments (for the student inferred from the
        shapes when None: input size, hidden size, layers, classes; mean pooling);
        normalizer: (mean, std) per mel bin, or None for none (0, 1); features: LFBE options
        differing from qdaed's defaults; thresholds: (C,) decision thresholds (default 0.5).
        """
        if architecture not in ARCHITECTURES:
            raise InputError(f"architecture: expected one of {sorted(ARCHITECTURES)}, got "
                             f"{architecture!r}")
        if not isinstance(state, dict):
            raise InputError(f"state: expected a dict of arrays, got {type(state).__name__}")
        state = {k: np.asarray(v) for k, v in state.items()}
        classes = tuple(str(c) for c in classes)
        if config is None:
            if architecture != "StudentLSTM":
                raise InputError("config: needed for a ResNet (depth, width, num_classes, ...)")
            try:
                w_ih, w_hh = state["lstm.weight_ih_l0"], state["lstm.weight_hh_l0"]
                layers = sum(1 for k in state if k.startswith("lstm.weight_ih_l"))
                config = dict(input_size=int(w_ih.shape[1]), hidden_size=int(w_hh.shape[1]),
                              num_layers=layers, num_classes=int(state["fc.weight"].shape[0]))
            except (KeyError, IndexError) as exc:
                raise InputError(f"state: not a StudentLSTM state_dict ({exc})") from None
        model = ARCHITECTURES[architecture](**config)
        model.load_state_dict({k: v.astype(model.dtype) if v.dtype.kind == "f" else v
                               for k, v in state.items()})
        opts = make_options(**(features or {})).to_dict()
        bins = opts["num_mel_bins"]
        if normalizer is None:
            norm = Normalizer(np.zeros(bins, np.float32), np.ones(bins, np.float32))
        else:
            norm = Normalizer(*(np.asarray(v, np.float32).reshape(bins) for v in normalizer))
        num_classes = getattr(model, "num_classes", None) or config.get("num_classes")
        if num_classes is not None and len(classes) != num_classes:
            raise InputError(f"classes: {len(classes)} names for a model with {num_classes} "
                             "outputs")
        th = np.full(len(classes), 0.5) if thresholds is None else \
            np.asarray(thresholds, np.float64).reshape(len(classes))
        return cls(model, norm, check_int("frames", frames, lo=1), classes, opts, th, {},
                   dict(info or {}))

    # ---- files ---------------------------------------------------------------------------
    def _document(self):
        """The model file's document (qdaed.formats.header) and tensors [(name, array)] in order."""
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
        if self.integer is not None:
            doc["integer"], integer_tensors = document(self.integer)
            tensors += integer_tensors
        return doc, tensors

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model file (format 3) atomically; InputError when the detector could not
        be read back (every field is checked as :meth:`load` checks it)."""
        doc, tensors = self._document()
        try:
            checked = validate(parse_json(canonical_json(doc)))  # what load reads
            if checked.integer is not None:
                shapes = {n: tuple(a.shape) for n, a in tensors}
                for name, _, shape in checked.layout:
                    if shapes[name] != tuple(shape):
                        raise HeaderError("integer", f"tensor {name} has shape {shapes[name]}, "
                                                     f"the model's architecture needs {shape}")
                build(checked.integer, dict(tensors))
        except IntegerFieldError as exc:
            raise InputError(f"cannot save {path}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"cannot save {path}: not JSON ({exc})") from None
        except (HeaderError, JSONError) as exc:
            raise InputError(f"cannot save {path}: {exc}") from None
        write_model(path, doc, tensors)

    @classmethod
    def load(cls, path: str | os.PathLike[str], expect_arch: str | None = None,
             expect_sha256: str | None = None) -> Detector:
        """Read a model file written by :meth:`save` (or ``qdaed import``); ModelFileError
        (naming the file and the field) for anything that is not exactly such a file.

        expect_sha256: the SHA-256 of the whole file (64 hex digits, as ``sha256sum`` or
        ``qdaed info FILE --sha256`` print it; InputError if malformed): a file with any
        other digest is refused. The file's own digest only detects accidental damage (anyone
        who edits a file can recompute it); a pinned digest detects any change."""

        path = os.fspath(path)
        mf = read_model(path, lambda doc: check_document(path, doc), expect_sha256)
        c, t = mf.checked, mf.tensors
        if expect_arch is not None and c.architecture != expect_arch:
            raise ModelFileError(f"{path}: holds a {c.architecture!r} model, expected "
                                 f"{expect_arch!r}")
        check_tensor_values(path, c, t)
        mean, std = t["normalizer.mean"], t["normalizer.std"]
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
        except InputError as exc:
            raise ModelFileError(f"{path}: tensor {name!r}: {exc}") from None
        integer = None
        if c.integer is not None:
            try:
                integer = build(c.integer, t)
            except IntegerFieldError as exc:
                raise ModelFileError(f"{path}: {exc.field}: {exc.msg}") from None
        state = dequantized_state(state, quantized)   # the one way to put Q_k(w) in a model
        model = ARCHITECTURES[c.architecture](**c.arch_config)
        try:
            model.load_state_dict({k: v.astype(model.dtype) for k, v in state.items()})
        except InputError as exc:
            raise ModelFileError(f"{path}: {exc}") from None
        return cls(model, Normalizer(mean, std), c.frames, c.classes, c.features,
                   c.thresholds.copy(), quantized, dict(c.info), mf.file_sha256, integer)


def load(path: str | os.PathLike[str], expect_sha256: str | None = None) -> Detector:
    """A :class:`Detector` from a model file; ``qdaed.load`` is this function.

    Parameters
    ----------
    path : str or os.PathLike
        A model file written by ``qdaed pipeline``, ``qdaed import`` or
        :meth:`~qdaed.detector.Detector.save`.
    expect_sha256 : str or None
        When given, the SHA-256 of the whole file (64 hex digits, as ``sha256sum`` prints
        it): a file with any other digest is refused.

    Returns
    -------
    Detector
        Ready to ``predict``; ModelFileError (naming the file and the field) for anything
        that is not exactly such a file (:meth:`~qdaed.detector.Detector.load`).
    """
    return Detector.load(path, expect_sha256=expect_sha256)
