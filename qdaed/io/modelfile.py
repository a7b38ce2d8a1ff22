"""Pickle-free model and checkpoint files: safetensors with a JSON document, read defensively.

Model files (format version 3)
==============================

A model file is a standard safetensors file that any safetensors reader opens by tensor name
(``safetensors.numpy.load_file(path)["fc.weight"]``):

    8 bytes      N, the length of the JSON table (unsigned little-endian)
    N bytes      the JSON table: per tensor {"dtype", "shape", "data_offsets"}, and
                 "__metadata__": {"qdaed": DOCUMENT, "qdaed_sha256": DIGEST} (two strings)
    the rest     the data section: every tensor's little-endian bytes, back to back

Tensors, in the order of the *layout* (the data section holds them in that order, no gaps):

    NAME                F32 (shape)       every float tensor, under its PyTorch state_dict name
    NAME.codes          U8  (ceil(n·k/8),) a k-bit tensor's packed codes (bit order:
                                           ``qdaed.kernels.quant.pack_codes``, least
                                           significant bit first, zero padding bits)
    NAME.scales         F32 (G, 2)        its G groups' (α, β): Q = β_g + α_g · code / (2^k − 1)
    normalizer.mean     F32 (F,)          per-bin normalisation, x̂ = (x − mean) / std
    normalizer.std      F32 (F,)
    integer.…           I8 / I32 / F32    only in a file holding a calibrated integer student:
                                           its int8 weights, int32 biases and weight scales
                                           (:mod:`qdaed.integer.store`)

so the data section is exactly the accounted size (:func:`qdaed.formats.sizes.accounted_bytes`,
from :func:`qdaed.nn.quant.tensor_bytes`), plus the integer student's tensors when there are
any, and the file's overhead is 8 + N bytes.

DOCUMENT is canonical JSON (sorted keys, no whitespace, ASCII, no NaN or infinity) of the
model's description — architecture, its configuration, classes, thresholds, frames, the LFBE
options in full, per quantized tensor its bits, grouping, rounding and shape, provenance —
whose schema and checks are :mod:`qdaed.formats.header`. DIGEST is 64 lowercase hex digits:

    SHA-256( len(DOCUMENT) as 8 bytes little-endian ‖ DOCUMENT (UTF-8) ‖ data section )

checked on load, so a changed bit anywhere in the document or the tensor data is refused; the
JSON table's entries must be exactly the ones the document implies (names, dtypes, shapes,
offsets in layout order), so nothing outside the digest carries meaning.

The digest detects accidental corruption, not tampering: it is a checksum that anyone who
edits a file can recompute, not a signature. To know that a file is the one you trained or
were given, pin the SHA-256 of the whole file — what ``sha256sum FILE`` and ``qdaed info FILE
--sha256`` print — and load with ``read_model(..., expect_sha256=HEX)`` (``Detector.load(path,
expect_sha256=HEX)``, ``qdaed detect|evaluate|export --expect-sha256 HEX``): the file's bytes
are hashed and compared before anything is parsed, and again over the very bytes that were
parsed, so a file replaced during the read is refused too.

Reading trusts nothing (:func:`read_model`): the 8-byte length is read first and a table over
``MAX_HEADER_BYTES`` (or longer than the file) is refused before it is read; JSON is parsed
strictly (:func:`parse_json`: UTF-8 and no string holding a lone surrogate such as
``"\ud800"``; no NaN/Infinity, numbers finite, and a number literal of more than
``MAX_NUMBER_CHARS`` characters refused before it is converted; nesting at most
``MAX_JSON_DEPTH``, measured first by a scan whose time is linear in the table's bytes whatever
they are; duplicate keys refused); the document is checked field by field by the caller's
``validate``
(which derives the layout from the architecture without allocating anything); the file's size
must be exactly what that layout implies (bounded by ``MAX_MODEL_BYTES``) before the data
section is read; then the digest. Every failure is a :class:`~qdaed.errors.ModelFileError`
naming the file and the field. Writes are atomic (:mod:`qdaed.io.atomic`).

Version 2 (one float32 blob + a layout digest, LFBE options as a diff from a table inside
qdaed) is no longer read: such a file gets an error saying how to re-create it.

Checkpoints use the same container (:mod:`qdaed.io.checkpoint`); the strict JSON parser is
:mod:`qdaed.io.strictjson`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from qdaed._version import __version__
from qdaed.errors import InputError, ModelFileError
from qdaed.io.atomic import atomic_write_bytes
from qdaed.io.strictjson import JSONError, canonical_json, parse_json, short_repr

MODEL_FORMAT = "qdaed-model"
MODEL_FORMAT_VERSION = 3
CHECKPOINT_FORMAT = "qdaed-checkpoint"
CHECKPOINT_FORMAT_VERSION = 2
FORMAT_VERSION = MODEL_FORMAT_VERSION
MAX_HEADER_BYTES = 1 << 20      # 1 MiB; a ResNet-50's table is about 50 KB
MAX_CHECKPOINT_HEADER_BYTES = 100 * 2**20   # safetensors' own limit
MAX_MODEL_BYTES = 2**31         # tensor data of a model file, 2 GiB (a ResNet-50: 94 MB)
DTYPES = {"F32": np.dtype("<f4"), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
          "I32": np.dtype("<i4")}
DIGEST_KEY = "qdaed_sha256"



# --------------------------------------------------------------------------- models


def digest(doc_bytes: bytes, data: bytes) -> str:
    """The model file's SHA-256 (module docstring) as 64 lowercase hex digits."""
    h = hashlib.sha256(struct.pack("<Q", len(doc_bytes)))
    h.update(doc_bytes)
    h.update(data)
    return h.hexdigest()


def encode_model(doc: dict[str, Any], tensors: list[tuple[str, np.ndarray]]) -> bytes:
    """The bytes of a v3 model file: ``doc`` (dict, written as canonical JSON) and ``tensors``,
    a list of (name, float32 or uint8 array) in layout order."""
    try:
        doc_str = canonical_json(doc)
    except (TypeError, ValueError) as exc:
        raise InputError(f"model document: cannot be written as JSON ({exc})") from None
    table, parts, offset = {}, [], 0
    for name, a in tensors:
        if not isinstance(name, str) or not name or name == "__metadata__" or name in table:
            raise InputError(f"tensors: names must be unique non-empty strings other than "
                             f"'__metadata__', got {name!r}")
        code = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8", np.dtype(np.int8): "I8",
                np.dtype(np.int32): "I32"}.get(np.dtype(a.dtype))
        if code is None:
            raise InputError(f"tensors[{name!r}]: model files hold float32, uint8, int8 or "
                             f"int32, got {a.dtype}")
        b = np.ascontiguousarray(a, DTYPES[code]).tobytes()
        table[name] = {"dtype": code, "shape": [int(d) for d in a.shape],
                       "data_offsets": [offset, offset + len(b)]}
        parts.append(b)
        offset += len(b)
    data = b"".join(parts)
    doc_bytes = doc_str.encode("ascii")
    meta = {"__metadata__": {"qdaed": doc_str, DIGEST_KEY: digest(doc_bytes, data)}}
    head = json.dumps({**meta, **table}, separators=(",", ":"), ensure_ascii=True).encode()
    head += b" " * (-len(head) % 8)        # safetensors pads its table to 8 bytes
    return struct.pack("<Q", len(head)) + head + data


def write_model(path: str | os.PathLike[str], doc: dict[str, Any],
                tensors: list[tuple[str, np.ndarray]]) -> None:
    """Write a v3 model file atomically (see :func:`encode_model`)."""
    write_file_bytes(path, encode_model(doc, tensors))


@dataclass
class ModelFileContents:
    """What :func:`read_model` returns."""

    doc: dict               # the document, parsed
    checked: object         # what the caller's validate(doc) returned
    tensors: dict           # name -> array (a writeable copy), in layout order
    sha256: str             # the format's digest (document and tensor data)
    header_bytes: int       # 8 + N: the file's overhead over its data section
    file_bytes: int
    file_sha256: str        # SHA-256 of the whole file's bytes (what sha256sum prints)


def fail(path, msg):
    """The ModelFileError of a file: its path, then ``msg``."""
    return ModelFileError(f"{path}: {msg}")


def read_model_document(path: str | os.PathLike[str],
                        validate: Callable[[dict], Any] | None = None) -> tuple:
    """(document, validate(document), table, header length N, file size) of a v3 model file
    after every check that does not need the data section."""
    path = os.fspath(path)
    with open_file(path) as f:
        return _document(path, f, validate)[:5]


def _document(path, f, validate):
    size = os.fstat(f.fileno()).st_size
    n, table, head = read_table(path, f, size, MAX_HEADER_BYTES, allow_nan=False)
    meta = table.get("__metadata__")
    if not isinstance(meta, dict) or "qdaed" not in meta:
        raise fail(path, "a safetensors file without a qdaed document; it was not written "
                          "by qdaed")
    if not all(isinstance(v, str) for v in meta.values()):
        raise fail(path, "__metadata__: values must be strings")
    try:
        doc = parse_json(meta["qdaed"].encode("utf-8"))
    except JSONError as exc:
        raise fail(path, f"the qdaed document is not strict JSON ({exc})") from None
    check_format(path, doc, MODEL_FORMAT)
    extra = sorted(set(meta) - {"qdaed", DIGEST_KEY})
    if extra:
        raise fail(path, f"__metadata__: unexpected keys {extra}")
    h = meta.get(DIGEST_KEY)
    if not isinstance(h, str) or not re.fullmatch(r"[0-9a-f]{64}", h):
        raise fail(path, f"__metadata__.{DIGEST_KEY}: expected 64 lowercase hex digits, "
                          f"got {short_repr(h)}")
    checked = validate(doc) if validate is not None else None
    return doc, checked, table, n, size, head


def check_sha256(value: str, name: str = "expect_sha256 (--expect-sha256)") -> str:
    """``value`` as 64 lowercase hex digits (upper case accepted, as ``sha256sum`` users
    paste either), else InputError naming ``name``."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise InputError(f"{name}: expected a SHA-256 digest, 64 hexadecimal digits as "
                         f"`sha256sum FILE` or `qdaed info FILE --sha256` print it, got "
                         f"{short_repr(value, 72)}")
    return value.lower()


def read_model(path: str | os.PathLike[str], validate: Callable[[dict], Any],
               expect_sha256: str | None = None) -> ModelFileContents:
    """Read a v3 model file; returns :class:`ModelFileContents`.

    validate(doc) checks the document (raising ModelFileError) and returns an object whose
    ``layout`` is the list of (tensor name, dtype code "F32"/"U8", shape) the file must hold,
    in order. The JSON table must list exactly those, back to back; the file size must be
    8 + N + their bytes (at most ``MAX_MODEL_BYTES``) before the data are read; then the
    format's SHA-256 must match.

    expect_sha256 (64 hex digits, else InputError): the SHA-256 of the whole file must equal
    it, checked before anything is parsed, and again over the very bytes that were parsed (a
    file replaced during the read is refused too).
    """
    path = os.fspath(path)
    if expect_sha256 is not None:
        expect_sha256 = check_sha256(expect_sha256)
    with open_file(path) as f:
        if expect_sha256 is not None:
            _check_pinned(path, f, expect_sha256)
            f.seek(0)
        return _read_model(path, f, validate, expect_sha256)


def _check_pinned(path, f, expect_sha256):
    """ModelFileError unless the open file's bytes (bounded) have the SHA-256 expected."""
    size, limit = os.fstat(f.fileno()).st_size, 8 + MAX_HEADER_BYTES + MAX_MODEL_BYTES
    if size > limit:
        raise fail(path, f"{size:,} bytes, more than a model file may have ({limit:,})")
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    if h.hexdigest() != expect_sha256:
        raise _not_pinned(path, h.hexdigest(), expect_sha256)


def _not_pinned(path, got, expected):
    return fail(path, f"its SHA-256 is {got}, expected {expected} (the pinned digest): this "
                       f"is not the file that was pinned; refusing it")


def _read_model(path, f, validate, expect_sha256):
    doc, checked, table, n, size, head = _document(path, f, validate)
    layout = checked.layout
    names = [name for name, _, _ in layout]
    have = sorted(set(table) - {"__metadata__"})
    if have != sorted(names):
        missing = sorted(set(names) - set(have))
        extra = sorted(set(have) - set(names))
        raise fail(path, f"tensors: do not match the document's architecture (missing "
                          f"{_list(missing)}, unexpected {_list(extra)})")
    offset = 0
    for name, code, shape in layout:
        entry = table[name]
        nbytes = int(np.prod(shape, dtype=object)) * DTYPES[code].itemsize
        want = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        if not isinstance(entry, dict) or canonical_json(entry) != canonical_json(want):
            raise fail(path, f"tensor {name!r}: table entry {short_repr(entry)}, expected {want}")
        offset += nbytes
    if offset > MAX_MODEL_BYTES:
        raise fail(path, f"tensors: {offset:,} bytes of tensor data, more than a model file "
                          f"may hold ({MAX_MODEL_BYTES:,})")
    if size != 8 + n + offset:
        raise fail(path, f"the file is {size:,} bytes; its table implies {8 + n + offset:,} "
                          f"({'truncated' if size < 8 + n + offset else 'extra bytes at the end'})")
    f.seek(8 + n)
    data = f.read(offset)
    if len(data) != offset or f.read(1):
        raise fail(path, "the file changed while it was read")
    whole = hashlib.sha256(head)
    whole.update(data)
    file_sha256 = whole.hexdigest()
    if expect_sha256 is not None and file_sha256 != expect_sha256:
        raise _not_pinned(path, file_sha256, expect_sha256)
    meta = table["__metadata__"]
    if digest(meta["qdaed"].encode("utf-8"), data) != meta[DIGEST_KEY]:
        raise fail(path, f"__metadata__.{DIGEST_KEY}: the SHA-256 of the document and tensor "
                          f"data does not match; the file is damaged or was edited")
    tensors, pos = {}, 0
    for name, code, shape in layout:
        count = int(np.prod(shape, dtype=object))
        a = np.frombuffer(data, DTYPES[code], count, pos).reshape(shape)
        tensors[name] = a.astype(a.dtype.newbyteorder("="), copy=True)
        pos += count * DTYPES[code].itemsize
    return ModelFileContents(doc, checked, tensors, meta[DIGEST_KEY], 8 + n, size,
                             file_sha256)


def _list(names):
    return "none" if not names else ", ".join(map(repr, names[:5])) + (
        f", … ({len(names)} in all)" if len(names) > 5 else "")


# --------------------------------------------------------------------------- file level (models and checkpoints)


def write_file_bytes(path, data):
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise ModelFileError(f"{os.fspath(path)}: cannot write the file ({exc.strerror or exc})"
                             ) from None


class open_file:
    """open(path, "rb") with qdaed errors for a missing, non-regular or unreadable file."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def __enter__(self):
        if not os.path.exists(self.path):
            raise ModelFileError(f"{self.path}: no such file")
        if not os.path.isfile(self.path):
            raise ModelFileError(f"{self.path}: not a file")
        try:
            self.f = open(self.path, "rb")
        except OSError as exc:
            raise ModelFileError(f"{self.path}: cannot read the file ({exc.strerror or exc})"
                                 ) from None
        return self.f

    def __exit__(self, *exc):
        self.f.close()


def read_table(path, f, size, limit, allow_nan):
    """(N, the parsed JSON table, the 8 + N bytes read) of an open safetensors file, reading
    8 + N bytes at most, N checked against ``limit`` and the file size before the table is
    read."""
    not_st = "not a safetensors file (a qdaed model or checkpoint is one)"
    head = f.read(8)
    if len(head) < 8:
        raise fail(path, not_st + f": {size} bytes")
    (n,) = struct.unpack("<Q", head)
    if n > size - 8:
        raise fail(path, not_st + f": its 8-byte header length {n:,} exceeds the file "
                              f"({size:,} bytes)")
    if n > limit:
        raise fail(path, f"header length {n:,} bytes, more than a qdaed file may have "
                          f"({limit:,}); the file is damaged or not a qdaed file")
    raw = f.read(n)
    try:
        table = parse_json(raw, allow_nan=allow_nan, max_depth=4)
    except JSONError as exc:
        raise fail(path, not_st + f": its JSON table is not strict JSON ({exc})") from None
    if not isinstance(table, dict):
        raise fail(path, not_st + ": its JSON table is not an object")
    return n, table, head + raw


def check_format(path, doc, expected):
    version = doc.get("format_version") if isinstance(doc, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise fail(path, f"format_version: expected an integer >= 1, got {short_repr(version)} "
                          f"(malformed qdaed header)")
    fmt = doc.get("format")
    kinds = {MODEL_FORMAT: "a model file", CHECKPOINT_FORMAT: "a training checkpoint"}
    if not isinstance(fmt, str):
        raise fail(path, f"format: expected the string {expected!r}, got {short_repr(fmt)} "
                          f"(malformed qdaed header)")
    if fmt != expected:
        raise fail(path, f"is {kinds.get(fmt, f'of format {short_repr(fmt, 40)}')}, expected "
                          f"{kinds[expected]}")
    current = MODEL_FORMAT_VERSION if expected == MODEL_FORMAT else CHECKPOINT_FORMAT_VERSION
    writer = doc.get("writer") if isinstance(doc.get("writer"), str) else "another qdaed"
    writer = short_repr(writer, 40)
    if version > current:
        raise fail(path, f"written in {kinds[expected][2:]} format version {version} (by "
                          f"{writer}); this qdaed {__version__} reads version {current}: "
                          f"upgrade qdaed")
    if version < current:
        if expected == MODEL_FORMAT:
            raise fail(path, f"a model file of format version {version} (written by "
                              f"{writer}); this qdaed reads version {current} only (tensors "
                              f"by name, SHA-256 checked). Re-create it with this qdaed: re-run "
                              f"the pipeline that trained it (a new --out), or wrap a PyTorch "
                              f"state_dict with `qdaed import`")
        raise fail(path, f"a checkpoint of format version {version}; this qdaed reads "
                          f"version {current}: restart the training without --resume")


__all__ = ["MODEL_FORMAT_VERSION", "CHECKPOINT_FORMAT_VERSION", "ModelFileContents", "digest",
           "check_sha256", "encode_model", "write_model", "read_model", "read_model_document",
           "open_file", "read_table", "write_file_bytes", "check_format"]
