"""Pickle-free model and checkpoint files: safetensors plus a JSON header.

A file is a standard safetensors file (8-byte little-endian header length, a JSON table of
tensors, the raw little-endian tensor bytes), written atomically (:mod:`qdaed.io.atomic`).
Its ``__metadata__`` holds one key, ``"qdaed"``, whose value is a JSON document (safetensors
metadata values must be strings).

Model files (format version 2). The file size is the point of the format: it must show that
the accounted size of DESIGN 2.7 is real, so the file is that size plus a small header of
constant size, whatever the number of tensors. The tensor data are three 1-D tensors:

    float32  F32 (Σ n,)          every float tensor, flattened (C order), one after another
    codes    U8  (Σ ceil(n·k/8),) every quantized tensor's packed codes
                                  (``QuantizedTensor.packed()`` bit order), one after another
    scales   F32 (Σ 2·G,)        per quantized tensor its G values α, then its G values β;
                                  Q = β_g + α_g · code / (2^k − 1)

(a blob with nothing in it is left out), all in the order of the *layout*: the list of
(name, shape) of every tensor. The qdaed document is::

    {"format": "qdaed-model", "format_version": 2, "writer": "qdaed 0.1.0",
     "layout": [[name, shape], ...]          # or, when the architecture implies it:
     "layout_sha256": "<16 hex digits>",     #   a digest of that list, checked on load
     "quantization": [{"bits": 4, "group": "row", "tensors": [name, ...]}, ...],
                                             # + "symmetric": true, "dtype": "float64"
                                             #   when not the defaults (false, float32)
     "header": {...}}                        # the caller's header, returned unchanged

A model's tensor names and shapes follow from its architecture and config (in the header), so
``qdaed.detector`` stores only the digest: a per-tensor table would cost about 40 bytes per
tensor (10 KB for a ResNet-50 with its batch-norm statistics). Tensor names follow PyTorch's
state_dict; ``qdaed.detector.Detector.load(path).model.state_dict()`` gives them by name.
Model files hold float32 (the deployed precision, DESIGN 4): float64 is refused rather than
silently rounded. ``header["architecture"]`` (a string) is required and is what
``load_model(..., expect_arch=...)`` checks. The header must be strict JSON (no NaN or
infinity: readers in other languages refuse them).

Size (DESIGN 2.7): :func:`accounted_bytes` counts float32 tensors at 4 bytes per value and
quantized tensors at ceil(n·k/8) + 8·G bytes. The file holds exactly those bytes of tensor
data, the 8-byte length prefix and the JSON table: see tests/io and ``qdaed info``.

Checkpoints (:func:`save_checkpoint`) store any arrays exactly, one safetensors tensor each
(any dtype, e.g. float64 parameters and optimiser moments), and a JSON state (counters, the
RNG state: ``Generator.bit_generator.state`` is a dict of ints — Python's json writes and
reads integers of any size exactly; NaN and infinity are allowed there, written as Python's
json does, since only qdaed reads checkpoints). Tuples come back as lists.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import safetensors.numpy

from qdaed import __version__
from qdaed.errors import InputError, ModelFileError
from qdaed.io.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from qdaed.nn.quant import QuantizedTensor

    Layout = Sequence[tuple[str, Sequence[int]]]     # [(name, shape), ...]

FORMAT_VERSION = 2
MODEL_FORMAT_VERSIONS = (2,)    # version 1 (one safetensors entry per tensor) is not read
MODEL_FORMAT = "qdaed-model"
CHECKPOINT_FORMAT = "qdaed-checkpoint"
BLOBS = ("float32", "codes", "scales")
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


def accounted_bytes(tensors: Mapping[str, np.ndarray],
                    quantized: Mapping[str, QuantizedTensor]) -> int:
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

    tensors: dict[str, np.ndarray]              # name -> float32 ndarray
    quantized: dict[str, QuantizedTensor]       # name -> QuantizedTensor
    header: dict[str, Any]                      # the caller's header, as saved
    format_version: int = FORMAT_VERSION
    writer: str = ""                    # "qdaed <version>" that wrote the file
    path: str | None = None
    quantization: dict[str, dict[str, Any]] = field(default_factory=dict)  # as stored

    def params(self) -> dict[str, np.ndarray]:
        """Every tensor by name, quantized ones dequantized: what inference uses."""
        return {**self.tensors, **{n: q.dequantize() for n, q in self.quantized.items()}}

    def accounted_bytes(self) -> int:
        return accounted_bytes(self.tensors, self.quantized)


def layout_digest(layout: Iterable[tuple[str, Sequence[int]]]) -> str:
    """16 hex digits of SHA-256 over the layout [(name, shape), ...] as compact JSON."""
    canon = json.dumps([[str(n), [int(d) for d in shape]] for n, shape in layout],
                       separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def _check_name(where, name):
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}: tensor names must be non-empty strings, got {name!r}")


def _quant_spec(name, q):
    from qdaed.nn.quant import QuantizedTensor

    if not isinstance(q, QuantizedTensor):
        raise InputError(f"quantized[{name!r}]: expected a qdaed.nn.quant.QuantizedTensor, "
                         f"got {type(q).__name__}")
    spec = {"bits": int(q.bits), "group": q.group if isinstance(q.group, str) else int(q.group)}
    if q.symmetric:           # the defaults, asymmetric and float32, are left out
        spec["symmetric"] = True
    if np.dtype(q.dtype) != np.float32:
        spec["dtype"] = np.dtype(q.dtype).name
    return spec


def save_model(path: str | os.PathLike[str], tensors: dict[str, np.ndarray],
               quantized: dict[str, QuantizedTensor], header: dict[str, Any],
               order: Sequence[str] | None = None) -> None:
    """Write a model file atomically (format: module docstring).

    tensors: name -> float32 array.  quantized: name -> QuantizedTensor.
    header: JSON-serialisable dict with at least ``"architecture"`` (str).
    order:  None: the layout is ``tensors`` then ``quantized`` in dict order, listed in the
            file. A list of every name: the layout in that order, stored as a digest only;
            the reader must then give :func:`load_model` the same layout (a model's
            architecture implies it).
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
    for name, a in tensors.items():
        _check_name("tensors", name)
        if not isinstance(a, np.ndarray):
            raise InputError(f"tensors[{name!r}]: expected a numpy array, "
                             f"got {type(a).__name__}")
        if a.dtype != np.float32:
            hint = " (cast with .astype(np.float32))" if a.dtype.kind == "f" else ""
            raise InputError(f"tensors[{name!r}]: model files hold float32, got {a.dtype}"
                             + hint)
    specs = {}
    for name, q in quantized.items():
        _check_name("quantized", name)
        specs[name] = _quant_spec(name, q)
    names = list(tensors) + list(quantized)
    if order is not None:
        if sorted(map(str, order)) != sorted(names) or len(order) != len(names):
            raise InputError(f"order: expected every tensor name exactly once, got {order!r} "
                             f"for {sorted(names)}")
        names = list(order)
    layout = [(n, tensors[n].shape if n in tensors else quantized[n].shape) for n in names]

    floats, codes, scales = [], [], []
    for name in names:
        if name in tensors:
            floats.append(tensors[name].reshape(-1))
        else:
            q = quantized[name]
            codes.append(q.packed())
            scales += [np.asarray(q.alpha, np.float32), np.asarray(q.beta, np.float32)]
    store = {}
    for key, parts, dtype in (("float32", floats, np.float32), ("codes", codes, np.uint8),
                              ("scales", scales, np.float32)):
        if parts:
            store[key] = np.concatenate(parts).astype(dtype, copy=False)

    groups = []     # one entry per distinct quantization spec, naming its tensors
    for name in names:
        if name in specs:
            spec = specs[name]
            for g in groups:
                if all(g[k] == v for k, v in spec.items()):
                    g["tensors"].append(name)
                    break
            else:
                groups.append({**spec, "tensors": [name]})
    doc = {"format": MODEL_FORMAT, "format_version": FORMAT_VERSION,
           "writer": f"qdaed {__version__}"}
    if order is None:
        doc["layout"] = [[n, [int(d) for d in shape]] for n, shape in layout]
    else:
        doc["layout_sha256"] = layout_digest(layout)
    doc["quantization"] = groups
    doc["header"] = header
    _write(path, store, _to_json("header", doc, allow_nan=False))


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The caller's header of a model file, after the file-level checks (no tensor is read)."""
    return _model_doc(path, _read(path, MODEL_FORMAT)[1])[0]


def _model_doc(path, doc):
    """(header, quantization groups) of a model document, or ModelFileError."""
    version = doc["format_version"]
    if version not in MODEL_FORMAT_VERSIONS:
        raise ModelFileError(f"{path}: a model file of format version {version}, written by "
                             f"{doc.get('writer', 'an older qdaed')} during development; this "
                             f"qdaed reads model format version(s) "
                             f"{', '.join(map(str, MODEL_FORMAT_VERSIONS))}: re-run the "
                             f"pipeline to rewrite it")
    header, groups = doc.get("header"), doc.get("quantization")
    if not isinstance(header, dict) or not isinstance(groups, list):
        raise ModelFileError(f"{path}: malformed qdaed header (no 'header' object or "
                             f"'quantization' list); the file is damaged or was not written "
                             f"by qdaed")
    return header, groups


def load_model(path: str | os.PathLike[str], expect_arch: str | None = None,
               layout: Layout | Callable[[dict[str, Any]], Layout] | None = None) -> ModelFile:
    """Read a model file; returns :class:`ModelFile`.

    layout: the [(name, shape), ...] the caller's architecture implies, or a function of the
            header that returns it; required for files that store only its digest (those
            written with ``order``), checked against the file when given.
    Raises ModelFileError (naming the file) when it is missing, not a safetensors file, has no
    or a malformed qdaed header, was written in another format version, is a checkpoint,
    holds another architecture than ``expect_arch`` (when given), or its tensor data do not
    match its layout.
    """
    data, doc = _read(path, MODEL_FORMAT)
    header, groups = _model_doc(path, doc)
    arch = header.get("architecture")
    if expect_arch is not None and arch != expect_arch:
        raise ModelFileError(f"{path}: holds a {arch!r} model, expected {expect_arch!r}")
    if callable(layout):
        layout = layout(header)
    if layout is not None:
        layout = [(str(n), tuple(int(d) for d in shape)) for n, shape in layout]
    stored = doc.get("layout")
    if stored is not None:
        try:
            stored = [(str(n), tuple(int(d) for d in shape)) for n, shape in stored]
        except (TypeError, ValueError):
            raise ModelFileError(f"{path}: malformed 'layout' in the qdaed header") from None
        if layout is not None and layout != stored:
            raise ModelFileError(f"{path}: its tensors {stored} are not the ones this "
                                 f"architecture has: {layout}")
        layout = stored
    elif layout is None:
        raise ModelFileError(f"{path}: its tensor layout is implied by its architecture; "
                             f"load it with qdaed.detector.Detector.load")
    elif doc.get("layout_sha256") != layout_digest(layout):
        raise ModelFileError(f"{path}: its tensors do not match the {arch!r} architecture in "
                             f"its header (layout digest {doc.get('layout_sha256')!r}, "
                             f"expected {layout_digest(layout)!r}); the file is damaged or "
                             f"was written by an incompatible qdaed")
    specs = _specs(path, groups, {n for n, _ in layout})
    arrays = _tensors(path, data)
    unknown = sorted(set(arrays) - set(BLOBS))
    if unknown:
        raise ModelFileError(f"{path}: unexpected tensors {unknown}; a qdaed model file holds "
                             f"only {list(BLOBS)}")
    tensors, quantized = _split_blobs(path, arrays, layout, specs)
    return ModelFile(tensors, quantized, header, doc["format_version"],
                     str(doc.get("writer")), os.fspath(path),
                     {n: {**specs[n], "shape": list(shape)} for n, shape in layout
                      if n in specs})


def _specs(path, groups, names):
    """name -> quantization spec from the header's groups (each name at most once)."""
    specs = {}
    for g in groups:
        tensors = g.get("tensors") if isinstance(g, dict) else None
        if not isinstance(tensors, list):
            raise ModelFileError(f"{path}: malformed 'quantization' entry {g!r}")
        for n in tensors:
            if n not in names or n in specs:
                raise ModelFileError(f"{path}: quantization names {n!r}, which is "
                                     f"{'listed twice' if n in specs else 'not in the layout'}"
                                     f"; the file is damaged")
            specs[n] = {"symmetric": False, "dtype": "float32",
                        **{k: v for k, v in g.items() if k != "tensors"}}
    return specs


def _split_blobs(path, arrays, layout, specs):
    """Cut the three blobs into the layout's tensors; ModelFileError unless sizes match."""
    from qdaed.nn.quant import QuantizedTensor, num_groups

    want = {"float32": np.float32, "codes": np.uint8, "scales": np.float32}
    blobs = {}
    for key, dtype in want.items():
        a = arrays.get(key, np.zeros(0, dtype))
        if a.dtype != dtype or a.ndim != 1:
            raise ModelFileError(f"{path}: tensor {key!r} is {a.dtype} {a.shape}, expected "
                                 f"1-D {np.dtype(dtype).name}; the file is damaged")
        blobs[key] = a
    pos = dict.fromkeys(want, 0)

    def take(key, n, what):
        a = blobs[key][pos[key]:pos[key] + n]
        if a.size != n:
            raise ModelFileError(f"{path}: tensor data end before {what}; the file is damaged")
        pos[key] += n
        return a

    tensors, quantized = {}, {}
    for name, shape in layout:
        n = int(np.prod(shape))
        if name not in specs:
            tensors[name] = take("float32", n, repr(name)).reshape(shape).copy()
            continue
        spec = specs[name]
        try:
            bits, group = spec["bits"], spec["group"]
            g = num_groups(shape, group)
            packed = take("codes", -(-n * int(bits) // 8), f"the codes of {name!r}")
            sc = take("scales", 2 * g, f"the scales of {name!r}")
            quantized[name] = QuantizedTensor.from_packed(
                packed.copy(), shape, bits, group, sc[:g].copy(), sc[g:].copy(),
                symmetric=spec["symmetric"], dtype=np.dtype(spec["dtype"]))
        except (KeyError, TypeError, ValueError) as exc:     # InputError is a ValueError
            raise ModelFileError(f"{path}: quantized tensor {name!r} is malformed ({exc})"
                                 ) from None
    left = {k: blobs[k].size - pos[k] for k in want if blobs[k].size != pos[k]}
    if left:
        raise ModelFileError(f"{path}: {left} values left over after every tensor of the "
                             f"layout; the file is damaged")
    return tensors, quantized


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike[str], arrays: dict[str, np.ndarray],
                    state: dict[str, Any]) -> None:
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


def load_checkpoint(path: str | os.PathLike[str]
                    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
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


__all__ = ["FORMAT_VERSION", "ModelFile", "accounted_bytes", "layout_digest", "save_model",
           "read_header", "load_model", "save_checkpoint", "load_checkpoint"]
