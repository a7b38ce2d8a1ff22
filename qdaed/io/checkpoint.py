"""Training checkpoints: any arrays stored exactly, with a JSON state, in qdaed's container.

Checkpoints (:func:`save_checkpoint`) store any arrays exactly, one safetensors tensor each
(any dtype, e.g. float64 parameters and optimiser moments), and a JSON state (counters, the
RNG state: ``Generator.bit_generator.state`` is a dict of ints — Python's json writes and
reads integers of any size exactly; NaN and infinity are allowed there, written as Python's
json does, since only qdaed reads checkpoints). Tuples come back as lists. They are read with
the container's bounded header (:mod:`qdaed.io.modelfile`) and the strict parser (NaN allowed).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import safetensors.numpy

from qdaed._version import __version__
from qdaed.errors import InputError
from qdaed.io.modelfile import (CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION,
                                MAX_CHECKPOINT_HEADER_BYTES, check_format, fail, open_file,
                                read_table, write_file_bytes)
from qdaed.io.strictjson import JSONError, parse_json, to_json


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
    doc = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_FORMAT_VERSION,
           "writer": f"qdaed {__version__}", "state": state}
    doc_json = to_json("state", doc, allow_nan=True)
    try:
        data = safetensors.numpy.save(store, metadata={"qdaed": doc_json})
    except Exception as exc:          # safetensors' own error types vary between versions
        raise InputError(f"cannot serialise the tensors: {exc}") from None
    write_file_bytes(path, data)


def load_checkpoint(path: str | os.PathLike[str]
                    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint; returns ``(arrays, state)`` exactly as saved (tuples as lists)."""
    path = os.fspath(path)
    with open_file(path) as f:
        size = os.fstat(f.fileno()).st_size
        n, table, _ = read_table(path, f, size, MAX_CHECKPOINT_HEADER_BYTES, allow_nan=True)
        meta = table.get("__metadata__")
        if not isinstance(meta, dict) or not isinstance(meta.get("qdaed"), str):
            raise fail(path, "a safetensors file without a qdaed header; it was not written "
                              "by qdaed")
        try:
            doc = parse_json(meta["qdaed"], allow_nan=True, max_depth=64)
        except JSONError as exc:
            raise fail(path, f"malformed qdaed header ({exc})") from None
        check_format(path, doc, CHECKPOINT_FORMAT)
        state = doc.get("state")
        if not isinstance(state, dict):
            raise fail(path, "malformed qdaed header (no 'state' object); the checkpoint is "
                              "damaged")
        f.seek(0)
        data = f.read()
    try:
        arrays = safetensors.numpy.load(data)
    except Exception as exc:          # truncated or inconsistent tensor table
        raise fail(path, f"damaged safetensors data ({exc})") from None
    return {k: np.require(v, requirements=["C", "W", "O"]) for k, v in arrays.items()}, state


__all__ = ["save_checkpoint", "load_checkpoint"]
