"""The document of a v3 model file: its schema, and every check made before anything is built.

The document (canonical JSON in the file's ``__metadata__["qdaed"]``, :mod:`qdaed.io.modelfile`)
has exactly these fields:

    format          "qdaed-model"
    format_version  3
    writer          "qdaed <version>"
    architecture    "StudentLSTM" | "ResNet"
    arch_config     StudentLSTM: {input_size, hidden_size, num_layers, num_classes, pooling}
                    ResNet:      {depth, num_classes, in_channels, width}
    classes         C unique class names, C = arch_config.num_classes
    frames          the clip length the network sees (every input is cut or looped to it)
    features        every LfbeOptions field (qdaed.features.fbank), written out in full;
                    the samples are at 16 kHz
    thresholds      C decision thresholds in (0, 1] ("present" iff score ≥ threshold)
    quantized       {state_dict name: {bits, group, rounding, symmetric, shape}} for every
                    k-bit tensor, stored as NAME.codes + NAME.scales (others: float32 NAME)
    info            provenance: name, schedule, bits, seed (each may be null), and, for a
                    network brought in by ``qdaed import``, "imported": {...}; other keys are
                    kept as given
    integer         (only in a file holding a calibrated integer student; a StudentLSTM with
                    mean pooling) its quantization parameters; its int8/int32 tensors follow
                    the normaliser's, named ``integer.…``: schema and checks in
                    :mod:`qdaed.integer.store`

:func:`check_document` checks the type and range of every field, in an order where nothing is
allocated: the architecture's sizes are bounded (``ARCH_LIMITS``) and its tensor shapes derived
as plain integers (``state_shapes`` of each model, nothing built), their bytes summed and
bounded; every field's type is checked before its value is used (a list where a string is
expected is refused naming the field). Classes must be non-empty strings without control
characters, one per logit, stored NFC-normalised and without surrounding whitespace — a name
that is not is refused (not normalised: what the file says is what is printed and matched
against manifests), and names that are the same once normalised and stripped are refused as
duplicates. Thresholds are in (0, 1], one per class: 0 would detect the class in every input
(no score is below it), while exactly 1 is what the pipeline's EER threshold is for a class
whose validation positives all saturate float32's sigmoid (logits above about 17) and still
decides. Frames are within ``MAX_FRAMES`` (a ResNet runs on any non-empty input in evaluation
mode, as PyTorch's does). The LFBE options pass LfbeOptions' own checks, give valid frame
sizes at 16 kHz and a filterbank without empty bins, within bounds that keep the front end
small (``FEATURE_LIMITS``; no dither, a detector is deterministic) and meaningful
(``FEATURE_RANGES``: blackman_coeff in [0, 0.5], log_floor at most 1). It returns a
:class:`CheckedDocument` whose ``layout`` is the list of tensors the file must hold.

Tensor values (:func:`check_values`, after the data are read and the digest checked, before
anything is built): every float32 value finite; a network parameter (weight, bias, batch-norm
weight and bias, running mean), a quantized tensor's β and the normaliser's mean within
±``MAX_VALUE`` = 1e6, α in [0, 1e6]; a running variance in [0, ``MAX_VARIANCE`` = 1e12]; the
normaliser's std in [``MIN_STD`` = 1e-6, 1e6] (``Normalizer.fit`` floors it at 1e-5). Trained
networks' values are O(1); with these bounds a student's float32 arithmetic cannot overflow
(its normalised inputs stay below about 1e12, its LSTM states in [−1, 1]), where a std of
1e-45 or a weight of 3.4e38 made every score NaN and ``detect`` blame its input.

Allocation bound: the loader reads the data section only once the file's size equals what the
layout implies, then builds the network from it; what it allocates is the tensor data (a
copy), the network's float32 parameters — for a k-bit tensor 32/k times its packed codes, plus
the unpacked codes (one or two bytes per value) — and the initial draw of the network before
its parameters are loaded: at most about (32/k + 4)× the file's bytes for k-bit tensors and
4× for float32 ones (k = 1: 36×), never more than the file can prove it holds.

One module of about 500 lines, on purpose: the schema and every check of one document, in
the order the loader applies them, read in one place by whoever ports the format.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass

import numpy as np

from qdaed.data.rates import SAMPLE_RATE
from qdaed.errors import InputError, ModelFileError
from qdaed.features.fbank import LfbeOptions, mel_filterbank
from qdaed.formats.sizes import shape_bytes
from qdaed.integer import store as integer_store
from qdaed.io.modelfile import MAX_MODEL_BYTES, MODEL_FORMAT, MODEL_FORMAT_VERSION
from qdaed.models.registry import state_shapes_of
from qdaed.nn.quant import MAX_BITS, ROUNDINGS, num_groups, tensor_bytes

DOCUMENT_FIELDS = ("format", "format_version", "writer", "architecture", "arch_config",
                   "classes", "frames", "features", "thresholds", "quantized", "info")
OPTIONAL_FIELDS = ("integer",)
MAX_FRAMES = 100_000            # 1,000 s at a 10 ms shift
MAX_CLASSES = 1024
MAX_NAME = 100                  # characters of a class name
MAX_TEXT = 1000                 # characters of a provenance string
# name -> {field: (lo, hi) for integers, or a tuple of allowed values}
ARCH_LIMITS = {
    "StudentLSTM": {"input_size": (1, 256), "hidden_size": (1, 8192), "num_layers": (1, 16),
                    "num_classes": (1, MAX_CLASSES), "pooling": ("mean", "last", "max")},
    "ResNet": {"depth": (18, 34, 50), "num_classes": (1, MAX_CLASSES), "in_channels": (1, 1),
               "width": (1, 256)},
}
FEATURE_LIMITS = {"frame_length_ms": 256.0, "frame_shift_ms": 1000.0, "fft_size": 4096,
                  "num_mel_bins": 256}
# name -> (lo, hi, why): ranges of LFBE options narrower than LfbeOptions' own checks, so that
# a file cannot describe a front end whose features are meaningless
FEATURE_RANGES = {
    "blackman_coeff": (0.0, 0.5, "a0 of the generalised Blackman window, (1 - alpha)/2 for "
                                 "alpha in [0, 1]; Kaldi's 0.42"),
    "log_floor": (0.0, 1.0, "a floor above 1 flattens the energies of ordinary sounds to one "
                            "value; qdaed and Kaldi use float32 eps, 1.19e-7"),
}
MAX_VALUE = 1e6                 # |v| of a weight, bias, BN parameter, running mean, alpha, beta,
#                                 normaliser mean (trained networks: O(1); PyTorch's too)
MAX_VARIANCE = MAX_VALUE ** 2   # a BN running variance: in [0, 1e12]
MIN_STD = 1e-6                  # the normaliser's std: in [1e-6, 1e6] (Normalizer.fit: >= 1e-5)
MAX_INT_AS_FLOAT = 10 ** 300    # an integer where a number is expected: |v| at most this
QUANT_FIELDS = ("bits", "group", "rounding", "symmetric", "shape")


class HeaderError(Exception):
    """A document field that fails its check: ``field`` (a dotted path) and the reason."""

    def __init__(self, field, msg):
        super().__init__(f"{field}: {msg}")
        self.field, self.msg = field, msg


@dataclass
class CheckedDocument:
    """A document that passed :func:`check_document`, with what follows from it."""

    architecture: str
    arch_config: dict
    classes: tuple
    frames: int
    features: dict
    thresholds: np.ndarray          # float64 (C,)
    quantized: dict                 # name -> {bits, group, rounding, symmetric, shape}
    info: dict
    writer: str
    state_shapes: dict              # state_dict name -> shape, in order
    layout: list                    # [(file tensor name, "F32" | "U8", shape)], in file order
    tensor_bytes: int               # the data section: the accounted size (+ integer_bytes)
    integer: dict | None = None     # the checked integer field (qdaed.integer.store), or None
    integer_bytes: int = 0          # bytes of the integer student's tensors


def show(value, limit=60):
    """A value for an error message or a terminal: repr (control characters escaped), cut."""
    s = repr(value)
    return s if len(s) <= limit else s[:limit] + "…"


def printable(text):
    """``text`` with control and format characters (ANSI escapes, bidi overrides, NUL, …)
    replaced by their \\x / \\u escapes, for printing to a terminal."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def _has_control(text):
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
               for ch in text)


def _int(field, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int):
        raise HeaderError(field, f"expected an integer, got {show(v)}")
    if not lo <= v <= hi:
        raise HeaderError(field, f"expected an integer in [{lo}, {hi}], got {show(v)}")
    return v


def _number(field, v, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise HeaderError(field, f"expected a number, got {show(v)}")
    if isinstance(v, int) and not -MAX_INT_AS_FLOAT <= v <= MAX_INT_AS_FLOAT:
        raise HeaderError(field, f"expected a finite number in [{lo}, {hi}], got an integer of "
                                 f"{len(str(abs(v)))} digits")
    v = float(v)
    if not np.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise HeaderError(field, f"expected a finite number in [{lo}, {hi}], got {show(v)}")
    return v


def _str(field, v, limit=MAX_TEXT, allow_none=False):
    if v is None and allow_none:
        return None
    if not isinstance(v, str) or len(v) > limit:
        raise HeaderError(field, f"expected a string of at most {limit} characters, "
                                 f"got {show(v)}")
    return v


def _fields(field, obj, names, optional=()):
    """obj must be a dict with exactly ``names``, and any of ``optional``."""
    if not isinstance(obj, dict):
        raise HeaderError(field or "document", f"expected an object, got {show(obj)}")
    missing = [n for n in names if n not in obj]
    extra = sorted(set(obj) - set(names) - set(optional))
    if missing:
        raise HeaderError(f"{field}.{missing[0]}" if field else missing[0], "missing")
    if extra:
        raise HeaderError(field or "document", f"unexpected field(s) {show(extra)}")


def _arch(doc):
    arch = doc["architecture"]
    if not isinstance(arch, str) or arch not in ARCH_LIMITS:
        raise HeaderError("architecture", f"expected one of {sorted(ARCH_LIMITS)}, got "
                                          f"{show(arch)}")
    limits = ARCH_LIMITS[arch]
    cfg = doc["arch_config"]
    _fields("arch_config", cfg, tuple(limits))
    out = {}
    for name, lim in limits.items():
        v = cfg[name]
        if isinstance(lim[0], str):
            if not isinstance(v, str) or v not in lim:
                raise HeaderError(f"arch_config.{name}", f"expected one of {list(lim)}, got "
                                                         f"{show(v)}")
            out[name] = v
        elif arch == "ResNet" and name == "depth":
            if isinstance(v, bool) or not isinstance(v, int) or v not in lim:
                raise HeaderError("arch_config.depth", f"expected one of {list(lim)}, got "
                                                       f"{show(v)}")
            out[name] = int(v)
        else:
            out[name] = _int(f"arch_config.{name}", v, *lim)
    return arch, out, state_shapes_of(arch, out)


def _features(doc, arch, cfg):
    f = doc["features"]
    fields = {fl.name: fl for fl in dataclasses.fields(LfbeOptions)}
    _fields("features", f, tuple(fields))
    kinds = {"snip_edges": bool, "remove_dc": bool, "use_power": bool, "use_log": bool,
             "int16_scale": bool, "window": str, "mel_scale": str, "mel_norm": (str, None),
             "fft_size": (int, None), "num_mel_bins": int}
    for name in fields:
        v, kind, where = f[name], kinds.get(name, float), f"features.{name}"
        if kind is bool and not isinstance(v, bool):
            raise HeaderError(where, f"expected true or false, got {show(v)}")
        if kind in (str, (str, None)) and not (isinstance(v, str) or
                                                (v is None and kind == (str, None))):
            raise HeaderError(where, f"expected a string, got {show(v)}")
        if kind in (int, (int, None)) and not (v is None and kind == (int, None)):
            _int(where, v, 1, 2**31)
        if kind is float:
            _number(where, v)
    for name, hi in FEATURE_LIMITS.items():
        v = f[name]
        if v is not None and v > hi:
            raise HeaderError(f"features.{name}", f"expected at most {hi:g}, got {show(v)}")
    for name, (lo, hi, why) in FEATURE_RANGES.items():
        if not lo <= f[name] <= hi:
            raise HeaderError(f"features.{name}", f"expected a number in [{lo:g}, {hi:g}] "
                                                  f"({why}), got {show(f[name])}")
    if f["dither"] != 0:
        raise HeaderError("features.dither", f"expected 0 (a detector's front end is "
                                             f"deterministic), got {show(f['dither'])}")
    try:
        opts = LfbeOptions(**f)
        length, _, nfft = opts.frame_sizes(SAMPLE_RATE)
        if nfft > FEATURE_LIMITS["fft_size"]:
            raise InputError(f"fft_size: {nfft} at {SAMPLE_RATE} Hz, more than "
                             f"{FEATURE_LIMITS['fft_size']}")
        mel_filterbank(SAMPLE_RATE, nfft, opts.num_mel_bins, opts.low_freq, opts.high_freq,
                       opts.mel_scale, opts.mel_norm)
    except InputError as exc:
        raise HeaderError("features", f"not accepted by the LFBE front end ({exc})") from None
    bins = opts.num_mel_bins
    if arch == "StudentLSTM" and bins != cfg["input_size"]:
        raise HeaderError("features.num_mel_bins", f"{bins}, but the LSTM's input_size is "
                                                   f"{cfg['input_size']}")
    return opts.to_dict()


def _classes(doc, num_classes):
    classes = doc["classes"]
    if not isinstance(classes, list):
        raise HeaderError("classes", f"expected a list of class names, got {show(classes)}")
    if len(classes) != num_classes:
        raise HeaderError("classes", f"{len(classes)} names for the network's {num_classes} "
                                     f"outputs")
    for i, c in enumerate(classes):
        if not isinstance(c, str) or not c or len(c) > MAX_NAME or _has_control(c):
            raise HeaderError(f"classes[{i}]", f"expected a non-empty name of at most "
                                               f"{MAX_NAME} printable characters, got {show(c)}")
    seen = {}
    for i, c in enumerate(classes):
        key = unicodedata.normalize("NFC", c).strip()
        if key in seen:
            j = seen[key]
            same = "the same name" if classes[j] == c else (
                "the same name once NFC-normalised and stripped of surrounding whitespace")
            raise HeaderError("classes", f"names must be unique: classes[{j}] {show(classes[j])} "
                                         f"and classes[{i}] {show(c)} are {same}")
        seen[key] = i
    for i, c in enumerate(classes):
        if c != c.strip():
            raise HeaderError(f"classes[{i}]", f"{show(c)} has surrounding whitespace; class "
                                               f"names are stored stripped ({show(c.strip())})")
        if not unicodedata.is_normalized("NFC", c):
            raise HeaderError(f"classes[{i}]", f"{show(c)} is not in Unicode NFC form; class "
                                               f"names are stored NFC-normalised "
                                               f"({show(unicodedata.normalize('NFC', c))})")
    return tuple(classes)


def _thresholds(doc, num_classes):
    t = doc["thresholds"]
    if not isinstance(t, list) or len(t) != num_classes:
        raise HeaderError("thresholds", f"expected a list of {num_classes} numbers (one per "
                                        f"class), got {show(t)}")
    out = np.array([_number(f"thresholds[{i}]", v, 0.0, 1.0) for i, v in enumerate(t)],
                   dtype=np.float64)
    for i, v in enumerate(out):
        if v <= 0.0:
            raise HeaderError(f"thresholds[{i}]", f"expected a threshold in (0, 1], got "
                                                  f"{show(t[i])}: a score is never below 0, so "
                                                  f"the class would be detected in every input")
    return out


def _quantized(doc, shapes):
    q = doc["quantized"]
    if not isinstance(q, dict):
        raise HeaderError("quantized", f"expected an object, got {show(q)}")
    out = {}
    for name, spec in q.items():
        where = f"quantized[{show(name)}]"
        if name not in shapes:
            raise HeaderError(where, "not a tensor of this architecture")
        _fields(where, spec, QUANT_FIELDS)
        bits = _int(f"{where}.bits", spec["bits"], 1, MAX_BITS)
        group = spec["group"]
        if not (isinstance(group, str) and group in ("tensor", "row")):
            _int(f"{where}.group", group, 1, 2**31)
        if spec["rounding"] not in ROUNDINGS:
            raise HeaderError(f"{where}.rounding", f"expected one of {list(ROUNDINGS)}, got "
                                                   f"{show(spec['rounding'])}")
        if not isinstance(spec["symmetric"], bool) or (spec["symmetric"] and bits < 2):
            raise HeaderError(f"{where}.symmetric", f"expected true or false (true needs "
                                                    f"bits >= 2), got {show(spec['symmetric'])}")
        shape = spec["shape"]
        if (not isinstance(shape, list) or any(isinstance(d, bool) or not isinstance(d, int)
                                               for d in shape)
                or tuple(shape) != tuple(shapes[name])):
            raise HeaderError(f"{where}.shape", f"expected {list(shapes[name])}, got "
                                                f"{show(shape)}")
        out[name] = {"bits": bits, "group": group, "rounding": spec["rounding"],
                     "symmetric": spec["symmetric"], "shape": tuple(shape),
                     "groups": num_groups(shape, group)}
    return out


def _info(doc):
    info = doc["info"]
    if not isinstance(info, dict):
        raise HeaderError("info", f"expected an object, got {show(info)}")
    for key in ("name", "schedule"):
        if key in info:
            _str(f"info.{key}", info[key], allow_none=True)
    for key, lo, hi in (("bits", 1, 32), ("seed", 0, 2**63)):
        if key in info and info[key] is not None:
            _int(f"info.{key}", info[key], lo, hi)
    if "imported" in info and not isinstance(info["imported"], dict):
        raise HeaderError("info.imported", f"expected an object, got {show(info['imported'])}")
    return info


def validate(doc):
    """Check a parsed document (module docstring); :class:`CheckedDocument` or HeaderError."""
    _fields("", doc, DOCUMENT_FIELDS, OPTIONAL_FIELDS)
    if doc["format"] != MODEL_FORMAT or doc["format_version"] != MODEL_FORMAT_VERSION:
        raise HeaderError("format", f"expected {MODEL_FORMAT!r} version "
                                    f"{MODEL_FORMAT_VERSION}")
    writer = _str("writer", doc["writer"], limit=100)
    arch, cfg, shapes = _arch(doc)
    classes = _classes(doc, cfg["num_classes"])
    thresholds = _thresholds(doc, cfg["num_classes"])
    frames = _int("frames", doc["frames"], 1, MAX_FRAMES)
    features = _features(doc, arch, cfg)
    quantized = _quantized(doc, shapes)
    info = _info(doc)
    layout, float_sizes, quantized_sizes = [], [], []
    for name, shape in shapes.items():
        n = int(np.prod(shape, dtype=object))
        if name in quantized:
            q = quantized[name]
            code_bytes = tensor_bytes(n, q["bits"], 0)
            layout += [(f"{name}.codes", "U8", (code_bytes,)),
                       (f"{name}.scales", "F32", (q["groups"], 2))]
            quantized_sizes.append((n, q["bits"], q["groups"]))
        else:
            layout.append((name, "F32", tuple(shape)))
            float_sizes.append(n)
    bins = features["num_mel_bins"]
    layout += [("normalizer.mean", "F32", (bins,)), ("normalizer.std", "F32", (bins,))]
    total = shape_bytes(float_sizes + [bins, bins], quantized_sizes)
    integer, integer_bytes = _integer(doc, arch, cfg)
    if integer is not None:
        extra = integer_store.tensor_layout(cfg["hidden_size"], cfg["input_size"],
                                            cfg["num_layers"], cfg["num_classes"],
                                            integer["head_scales"])
        layout += extra
        integer_bytes = sum(int(np.prod(shape)) * {"I8": 1, "I32": 4, "F32": 4}[code]
                            for _, code, shape in extra)
    if total + integer_bytes > MAX_MODEL_BYTES:
        raise HeaderError("arch_config", f"{total + integer_bytes:,} bytes of tensors, more "
                                         f"than a model file may hold ({MAX_MODEL_BYTES:,})")
    return CheckedDocument(arch, cfg, classes, frames, features, thresholds, quantized, info,
                           writer, shapes, layout, total, integer, integer_bytes)


def _integer(doc, arch, cfg):
    """(the checked ``integer`` field or None, 0): only a StudentLSTM with mean pooling can
    hold an integer student."""
    if "integer" not in doc:
        return None, 0
    if arch != "StudentLSTM" or cfg["pooling"] != "mean":
        raise HeaderError("integer", f"an integer student needs a StudentLSTM with mean "
                                     f"pooling, this file holds a {arch}"
                                     + (f" with {cfg['pooling']} pooling"
                                        if arch == "StudentLSTM" else ""))
    try:
        return integer_store.check_field(doc["integer"], cfg["num_layers"],
                                         cfg["num_classes"]), 0
    except integer_store.IntegerFieldError as exc:
        raise HeaderError(exc.field, exc.msg) from None


def _value_range(name):
    """(lo, hi, what) of the values of the file's float tensor ``name`` (for NAME.scales,
    per column: alpha, beta)."""
    if name.startswith("integer."):
        return (integer_store.MIN_SCALE, integer_store.MAX_SCALE,
                "an integer student's weight scale")
    if name.endswith(".scales"):
        return (0.0, -MAX_VALUE), (MAX_VALUE, MAX_VALUE), "a quantized tensor's (alpha, beta)"
    if name == "normalizer.std":
        return MIN_STD, MAX_VALUE, ("a normaliser's standard deviation (dividing by less "
                                    "overflows float32 features; Normalizer.fit floors it at "
                                    "1e-5)")
    if name.endswith(".running_var"):
        return 0.0, MAX_VARIANCE, "a batch-norm running variance"
    if name == "normalizer.mean":
        return -MAX_VALUE, MAX_VALUE, "a normaliser's mean (LFBE values are within ±750)"
    return -MAX_VALUE, MAX_VALUE, ("a network parameter (a trained network's are O(1); "
                                   "larger ones overflow float32 activations)")


def check_values(checked, tensors):
    """Check the float32 tensors read from the file (``tensors``: name -> array, the layout
    of ``checked``) before anything is built from them: finite, and within the ranges of the
    module docstring, which keep a network's float32 arithmetic finite and its inputs
    meaningful. HeaderError naming the tensor, the value, its index and the range."""
    for name, code, _ in checked.layout:
        if code != "F32":
            continue
        a = tensors[name]
        lo, hi, what = _value_range(name)
        lo, hi = np.broadcast_to(lo, a.shape), np.broadcast_to(hi, a.shape)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(a) | (a < lo) | (a > hi)
        if bad.any():
            at = np.unravel_index(int(np.argmax(bad)), a.shape)
            v = float(a[at])
            reason = "is not finite" if not np.isfinite(v) else \
                f"is outside [{lo[at]:g}, {hi[at]:g}], the range of {what}"
            raise HeaderError(f"tensor {name!r}", f"value {v:g} at [{', '.join(map(str, at))}] "
                                                   f"{reason}; the model cannot work: the file "
                                                   f"is damaged or was edited, re-create it")


def check_tensor_values(path, checked, tensors):
    """:func:`check_values`, with a failure as a ModelFileError naming the file and tensor."""
    try:
        check_values(checked, tensors)
    except HeaderError as exc:
        raise ModelFileError(f"{path}: {exc.field}: {exc.msg}") from None


def check_document(path, doc):
    """:func:`validate`, with a failure as a ModelFileError naming the file and the field."""
    try:
        return validate(doc)
    except HeaderError as exc:
        raise ModelFileError(f"{path}: {exc.field}: {exc.msg}") from None


__all__ = ["DOCUMENT_FIELDS", "ARCH_LIMITS", "FEATURE_LIMITS", "FEATURE_RANGES", "MAX_FRAMES",
           "MAX_VALUE", "MAX_VARIANCE", "MIN_STD", "CheckedDocument", "HeaderError", "validate",
           "check_document", "check_values", "check_tensor_values", "printable", "show"]
