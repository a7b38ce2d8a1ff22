"""Pickle-free model and checkpoint files: safetensors plus a JSON header.

A file is a standard safetensors file (8-byte little-endian header length, a JSON table of
tensors, the raw little-endian tensor bytes), written atomically (:mod:`qdaed.io.atomic`).
Its ``__metadata__`` holds one key, ``"qdaed"``, whose value is a JSON document (safetensors
metadata values must be strings)::

    {"format": "qdaed-model",            # or "qdaed-checkpoint"
     "format_version": 1,                # this module reads versions 1 .. FORMAT_VERSION
     "writer": "qdaed 0.1.0",
     "quantization": {name: {"bits": 4, "group": "row", "symmetric": false,
                             "shape": [512, 64], "dtype": "float32"}, ...},
     "header": {...}}                    # the caller's header, returned unchanged on load

A checkpoint has ``"state"`` (the caller's JSON state) in place of quantization and header.

Model tensors. A float tensor is stored under its own name (PyTorch state_dict names), so a
file without quantized tensors loads directly with ``safetensors.torch.load_file``. Model files
hold float32 (the deployed precision, DESIGN 4): float64 is refused rather than silently
rounded; integer tensors are stored as they are. A quantized tensor ``name`` (a
:class:`qdaed.nn.quant.QuantizedTensor`) is stored as three tensors:

    name:codes   uint8 (ceil(n·k/8),)  the packed codes, ``QuantizedTensor.packed()`` bit order
    name:alpha   float32 (G,)          per-group range α
    name:beta    float32 (G,)          per-group minimum β;   Q = β_g + α_g · code / (2^k − 1)

with bits, group, symmetric, shape and dtype in the header's "quantization" entry; ":" is
therefore not allowed in tensor names. Anything else the caller needs (architecture and its
config, normalisation statistics as float32 tensors, seed, class names, decision thresholds,
versions) goes in ``tensors`` or ``header``; ``header["architecture"]`` (a string) is required
and is what ``load_model(..., expect_arch=...)`` checks. The header must be strict JSON
(no NaN or infinity: readers in other languages refuse them).

Size (DESIGN 2.7): :func:`accounted_bytes` counts float32 tensors at 4 bytes per value (other
dtypes at their item size) and quantized tensors at ceil(n·k/8) + 8·G bytes. The file holds
exactly those bytes of tensor data plus the safetensors/JSON header (a few hundred bytes
plus about 80 bytes per stored tensor) and the 8-byte length prefix: see tests/io.

Checkpoints (:func:`save_checkpoint`) store any arrays exactly (any dtype, e.g. float64
parameters and optimiser moments) and a JSON state (counters, history, the RNG state:
``Generator.bit_generator.state`` is a dict of ints — Python's json writes and reads integers
of any size exactly; NaN and infinity are allowed there, written as Python's json does, since
only qdaed reads checkpoints). Tuples come back as lists.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field

import numpy as np
import safetensors.numpy

from qdaed import __version__
from qdaed.errors import InputError, ModelFileError
from qdaed.io.atomic import atomic_write_bytes

FORMAT_VERSION = 1
MODEL_FORMAT = "qdaed-model"
CHECKPOINT_FORMAT = "qdaed-checkpoint"
QUANT_PARTS = ("codes", "alpha", "beta")
_MAX_HEADER = 100 * 2**20       # safetensors' own limit on the JSON table


# --------------------------------------------------------------------------- JSON


def _json_default(obj):
    """numpy scalars become Python numbers; anything else is not JSON."""
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _to_json(name, obj, allow_nan):
    try:
        return json.dumps(obj, separators=(",", ":"), default=_json_default,
                          allow_nan=allow_nan, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: cannot be written as JSON ({exc})") from None


# --------------------------------------------------------------------------- size


def accounted_bytes(tensors, quantized):
    """Bytes a device must store (DESIGN 2.7) for these float and quantized tensors.

    float32 tensors: 4 bytes per value (other dtypes: their item size);
    quantized: ceil(n·k/8) packed-code bytes + 8 bytes (float32 α, β) per group.
    """
    total = 0
    for name, a in tensors.items():
        if not isinstance(a, np.ndarray):
            raise InputError(f"tensors[{name!r}]: expected a numpy array")
        total += a.size * a.dtype.itemsize
    for name, q in quantized.items():
        n, k, g = int(np.prod(q.shape)), int(q.bits), int(np.size(q.alpha))
        total += -(-n * k // 8) + 8 * g
    return int(total)


# --------------------------------------------------------------------------- models


@dataclass
class ModelFile:
    """What :func:`load_model` returns."""

    tensors: dict                       # name -> ndarray (float32, or integer)
    quantized: dict                     # name -> QuantizedTensor
    header: dict                        # the caller's header, as saved
    format_version: int = FORMAT_VERSION
    writer: str = ""                    # "qdaed <version>" that wrote the file
    path: str | None = None
    quantization: dict = field(default_factory=dict)   # name -> bits, group, ... as stored

    def params(self):
        """Every tensor by name, quantized ones dequantized: what inference uses."""
        return {**self.tensors, **{n: q.dequantize() for n, q in self.quantized.items()}}

    def accounted_bytes(self):
        return accounted_bytes(self.tensors, self.quantized)


def _check_name(where, name):
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}: tensor names must be non-empty strings, got {name!r}")
    if ":" in name or name == "__metadata__":
        raise InputError(f"{where}[{name!r}]: ':' and '__metadata__' are reserved in tensor "
                         f"names")


def _quant_info(name, q):
    from qdaed.nn.quant import QuantizedTensor

    if not isinstance(q, QuantizedTensor):
        raise InputError(f"quantized[{name!r}]: expected a qdaed.nn.quant.QuantizedTensor, "
                         f"got {type(q).__name__}")
    return {"bits": int(q.bits), "group": q.group if isinstance(q.group, str) else int(q.group),
            "symmetric": bool(q.symmetric), "shape": [int(s) for s in q.shape],
            "dtype": np.dtype(q.dtype).name}


def save_model(path, tensors, quantized, header):
    """Write a model file atomically (format: module docstring).

    tensors: name -> float32 (or integer) array.  quantized: name -> QuantizedTensor.
    header: JSON-serialisable dict with at least ``"architecture"`` (str).
    Raises InputError for bad arguments, ModelFileError when the file cannot be written.
    """
    if not isinstance(tensors, dict) or not isinstance(quantized, dict):
        raise InputError("tensors, quantized: expected dicts name -> array / QuantizedTensor")
    if not isinstance(header, dict):
        raise InputError(f"header: expected a dict, got {type(header).__name__}")
    arch = header.get("architecture")
    if not isinstance(arch, str) or not arch:
        raise InputError(f"header['architecture']: expected a non-empty string, got {arch!r}")
    both = sorted(set(tensors) & set(quantized))
    if both:
        raise InputError(f"tensors and quantized share names {both}; each tensor is stored "
                         f"once")
    store = {}
    for name, a in tensors.items():
        _check_name("tensors", name)
        if not isinstance(a, np.ndarray):
            raise InputError(f"tensors[{name!r}]: expected a numpy array, "
                             f"got {type(a).__name__}")
        if a.dtype.kind == "f" and a.dtype != np.float32:
            raise InputError(f"tensors[{name!r}]: model files hold float32, got {a.dtype} "
                             f"(cast with .astype(np.float32))")
        if a.dtype.kind not in "fiu":
            raise InputError(f"tensors[{name!r}]: expected float32 or integer, got {a.dtype}")
        store[name] = np.require(a, requirements="C")   # keeps 0-d shapes
    qinfo = {}
    for name, q in quantized.items():
        _check_name("quantized", name)
        qinfo[name] = _quant_info(name, q)
        store[f"{name}:codes"] = q.packed()
        store[f"{name}:alpha"] = np.require(q.alpha, np.float32, "C")
        store[f"{name}:beta"] = np.require(q.beta, np.float32, "C")
    doc = {"format": MODEL_FORMAT, "format_version": FORMAT_VERSION,
           "writer": f"qdaed {__version__}", "quantization": qinfo, "header": header}
    _write(path, store, _to_json("header", doc, allow_nan=False))


def load_model(path, expect_arch=None):
    """Read a model file; returns :class:`ModelFile`.

    Raises ModelFileError (naming the file) when it is missing, not a safetensors file, has no
    or a malformed qdaed header, was written in a newer format version, is a checkpoint, or
    holds another architecture than ``expect_arch`` (when given).
    """
    data, doc = _read(path, MODEL_FORMAT)
    header, qinfo = doc.get("header"), doc.get("quantization")
    if not isinstance(header, dict) or not isinstance(qinfo, dict):
        raise ModelFileError(f"{path}: malformed qdaed header (no 'header' or 'quantization' "
                             f"object); the file is damaged or was not written by qdaed")
    arch = header.get("architecture")
    if expect_arch is not None and arch != expect_arch:
        raise ModelFileError(f"{path}: holds a {arch!r} model, expected {expect_arch!r}")
    arrays = _tensors(path, data)
    quantized = {}
    for name, info in qinfo.items():
        parts = {p: arrays.pop(f"{name}:{p}", None) for p in QUANT_PARTS}
        missing = [f"{name}:{p}" for p, a in parts.items() if a is None]
        if missing:
            raise ModelFileError(f"{path}: quantized tensor {name!r} lacks {missing}; "
                                 f"the file is damaged")
        quantized[name] = _from_parts(path, name, info, parts)
    stray = sorted(n for n in arrays if ":" in n)
    if stray:
        raise ModelFileError(f"{path}: tensors {stray} belong to no quantized tensor in the "
                             f"header; the file is damaged")
    return ModelFile(arrays, quantized, header, doc["format_version"], str(doc.get("writer")),
                     os.fspath(path), qinfo)


def _from_parts(path, name, info, parts):
    from qdaed.nn.quant import QuantizedTensor

    try:
        return QuantizedTensor.from_packed(
            parts["codes"], tuple(info["shape"]), info["bits"], info["group"], parts["alpha"],
            parts["beta"], symmetric=info["symmetric"], dtype=np.dtype(info["dtype"]))
    except (KeyError, TypeError, ValueError) as exc:     # InputError is a ValueError
        raise ModelFileError(f"{path}: quantized tensor {name!r} is malformed ({exc})") from None


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path, arrays, state):
    """Write a training checkpoint atomically: ``arrays`` (name -> ndarray, any numeric dtype,
    stored bit for bit) and ``state`` (a JSON-serialisable dict)."""
    if not isinstance(arrays, dict):
        raise InputError(f"arrays: expected a dict name -> array, got {type(arrays).__name__}")
    if not isinstance(state, dict):
        raise InputError(f"state: expected a dict, got {type(state).__name__}")
    store = {}
    for name, a in arrays.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise InputError(f"arrays: names must be non-empty strings other than "
                             f"'__metadata__', got {name!r}")
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
            raise InputError(f"arrays[{name!r}]: expected a numeric numpy array, got "
                             f"{getattr(a, 'dtype', type(a).__name__)}")
        store[name] = np.require(a, requirements="C")   # keeps 0-d shapes
    doc = {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION,
           "writer": f"qdaed {__version__}", "state": state}
    _write(path, store, _to_json("state", doc, allow_nan=True))


def load_checkpoint(path):
    """Read a checkpoint; returns ``(arrays, state)`` exactly as saved (tuples as lists)."""
    data, doc = _read(path, CHECKPOINT_FORMAT)
    state = doc.get("state")
    if not isinstance(state, dict):
        raise ModelFileError(f"{path}: malformed qdaed header (no 'state' object); the "
                             f"checkpoint is damaged")
    return _tensors(path, data), state


# --------------------------------------------------------------------------- file level


def _write(path, store, doc_json):
    try:
        data = safetensors.numpy.save(store, metadata={"qdaed": doc_json})
    except Exception as exc:          # safetensors' own error types vary between versions
        raise InputError(f"cannot serialise the tensors: {exc}") from None
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise ModelFileError(f"{os.fspath(path)}: cannot write the file ({exc.strerror or exc})"
                             ) from None


def _read(path, expected_format):
    """Bytes of the file and its qdaed document, after every header check."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: not a file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the file ({exc.strerror or exc})") from None

    not_st = f"{path}: not a safetensors file (a qdaed model or checkpoint is one)"
    if len(data) < 8:
        raise ModelFileError(not_st)
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(_MAX_HEADER, len(data) - 8):
        raise ModelFileError(not_st)
    try:
        table = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelFileError(not_st) from None
    if not isinstance(table, dict):
        raise ModelFileError(not_st)

    meta = table.get("__metadata__")
    if not isinstance(meta, dict) or "qdaed" not in meta:
        raise ModelFileError(f"{path}: a safetensors file without a qdaed header; it was not "
                             f"written by qdaed")
    try:
        doc = json.loads(meta["qdaed"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: malformed qdaed header ({exc})") from None
    version = doc.get("format_version") if isinstance(doc, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: malformed qdaed header (format_version "
                             f"{version!r}, expected an integer >= 1)")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written in qdaed file format version {version} (by "
                             f"{doc.get('writer', 'a newer qdaed')}); this qdaed {__version__} "
                             f"reads format versions up to {FORMAT_VERSION}: upgrade qdaed")
    fmt = doc.get("format")
    if fmt != expected_format:
        kinds = {MODEL_FORMAT: "a model file", CHECKPOINT_FORMAT: "a training checkpoint"}
        raise ModelFileError(f"{path}: is {kinds.get(fmt, f'of format {fmt!r}')}, "
                             f"expected {kinds[expected_format]}")
    return data, doc


def _tensors(path, data):
    try:
        arrays = safetensors.numpy.load(data)
    except Exception as exc:          # truncated or inconsistent tensor table
        raise ModelFileError(f"{path}: damaged safetensors data ({exc})") from None
    return {k: np.require(v, requirements=["C", "W", "O"]) for k, v in arrays.items()}


__all__ = ["FORMAT_VERSION", "ModelFile", "accounted_bytes", "save_model", "load_model",
           "save_checkpoint", "load_checkpoint"]
