"""The golden-vector format on disk: the manifest, the case files and the tensors.

Layout of an export directory DIR (format ``FORMAT_NAME``, version ``FORMAT_VERSION``)::

    DIR/manifest.json          {"format", "format_version", "qdaed_version", "dtype", "seed",
                                "tolerance_rule", "cases": [case names, in export order]}
    DIR/<case>/case.json       {"name", "op", "description", "options", "inputs": [names],
                                "outputs": [names], "shapes": {name: [sizes]},
                                "dtypes": {name: numpy dtype name},
                                "tolerances": {output: {"rtol", "atol", "reason"}}}
    DIR/<case>/<name>.npy      every input and output tensor (NumPy .npy, format 1.0,
                                little-endian, C order, never an object array)
    DIR/<case>/model.tflite    an integer student case's network as a TFLite file (its
                                input x.npy, its expected output scores.npy)

Another implementation writes its results as OUT/<case>/<output>.npy, one file per output
of each case, and ``qdaed vectors check`` compares them tensor by tensor with the rule

    |out − golden| ≤ atol + rtol · |golden|      element-wise (integer outputs: rtol = atol = 0)

JSON is written with sorted keys and no NaN or infinity, and read strictly (no NaN or
Infinity literals, no duplicate keys, bounded size). Names of cases and tensors are restricted
to ``[A-Za-z0-9_.-]`` (no leading dot), so a manifest cannot point outside its directory.
Each case folder appears whole or not at all (staged, fsync'ed, renamed: :func:`write_case`),
the manifest atomically (``qdaed.io.atomic``) and last, so a directory without one is an
interrupted export.

Every problem with a file is a :class:`VectorsError` naming the file, and the case and tensor
where there is one.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil

import numpy as np

from qdaed.errors import QdaedError
from qdaed.io.atomic import atomic_write_text, fsync_directory
from qdaed.io.strictjson import parse_json

FORMAT_NAME = "qdaed-golden-vectors"
FORMAT_VERSION = 1
TOLERANCE_RULE = "|out - golden| <= atol + rtol * |golden|, element-wise"
MAX_JSON_BYTES = 4 << 20
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")


class VectorsError(QdaedError):
    """A golden-vector directory or an output tensor that cannot be used as it is."""


def check_name(kind, name, where):
    """``name`` if it is a safe case or tensor name, else VectorsError (``where`` locates it)."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise VectorsError(f"{where}: {kind} name {name!r} is not allowed (letters, digits, "
                           f"'_', '.', '-'; no leading dot, no '..')")
    return name


# ------------------------------------------------------------------------------- JSON

def dumps(obj):
    """Canonical JSON text: sorted keys, two-space indent, NaN and infinity refused."""
    return json.dumps(obj, sort_keys=True, indent=2, allow_nan=False) + "\n"


def read_json(path, what):
    """Parse the JSON object in ``path`` strictly; VectorsError naming ``what`` otherwise."""
    try:
        size = os.path.getsize(path)
        if size > MAX_JSON_BYTES:
            raise VectorsError(f"{what} ({path}): {size} bytes, more than the "
                               f"{MAX_JSON_BYTES} a {os.path.basename(path)} may have")
        with open(path, "rb") as f:
            obj = parse_json(f.read())      # strict: UTF-8, no NaN, no duplicate keys
    except FileNotFoundError:
        raise VectorsError(f"{what}: missing ({path})") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise VectorsError(f"{what} ({path}): not valid JSON ({type(exc).__name__}: "
                           f"{str(exc)[:200]})") from None
    if not isinstance(obj, dict):
        raise VectorsError(f"{what} ({path}): expected a JSON object, got "
                           f"{type(obj).__name__}")
    return obj


# ------------------------------------------------------------------------------- tensors

def npy_header(path, where):
    """(shape, dtype, fortran_order, data offset) from a .npy file's header, checking that
    the file holds exactly the bytes the header announces (nothing read beyond the header)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = f.tell()
    except FileNotFoundError:
        raise VectorsError(f"{where}: missing ({path})") from None
    except IsADirectoryError:
        raise VectorsError(f"{where}: {path} is a directory, not a .npy file") from None
    except (OSError, ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise VectorsError(f"{where}: not a readable .npy file ({path}: "
                           f"{str(exc)[:200]})") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise VectorsError(f"{where}: dtype {dtype} is not a bool, integer or float tensor "
                           f"({path})")
    n = 1
    for s in shape:
        n *= int(s)
    want = offset + n * dtype.itemsize
    have = os.path.getsize(path)
    if have != want:
        raise VectorsError(f"{where}: {path} holds {have} bytes, its header announces "
                           f"{want} (shape {tuple(shape)}, {dtype}); the file is truncated "
                           f"or has trailing data")
    return tuple(int(s) for s in shape), dtype, fortran, offset


def read_npy(path, where, shape=None):
    """The array in a .npy file (``allow_pickle=False``). With ``shape``, a file of another
    shape is refused from its header, before its data is read."""
    got, dtype, _, _ = npy_header(path, where)
    if shape is not None and got != tuple(shape):
        raise VectorsError(f"{where}: shape {got}, expected {tuple(shape)} ({path})")
    try:
        with open(path, "rb") as f:
            data = f.read()
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise VectorsError(f"{where}: not a readable .npy file ({path}: "
                           f"{str(exc)[:200]})") from None


# ------------------------------------------------------------------------------- cases

class Case:
    """One golden case in memory: named inputs and outputs with a tolerance per output.

    ``tolerances[output] = (rtol, atol, reason)``. ``options`` must be JSON-ready.
    """

    def __init__(self, name, op, description, options=None):
        self.name = check_name("case", name, "case")
        self.op = op
        self.description = description
        self.options = dict(options or {})
        self.inputs = {}
        self.outputs = {}
        self.tolerances = {}
        self.files = {}         # other files of the case folder: name -> bytes

    def add_input(self, name, array):
        check_name("tensor", name, f"case {self.name}")
        if name in self.inputs or name in self.outputs:
            raise ValueError(f"case {self.name}: tensor {name} added twice")
        self.inputs[name] = np.array(array, order="C")
        return self.inputs[name]

    def add_output(self, name, array, rtol, atol, reason):
        check_name("tensor", name, f"case {self.name}")
        if name in self.inputs or name in self.outputs:
            raise ValueError(f"case {self.name}: tensor {name} added twice")
        array = np.array(array, order="C")
        if array.dtype.kind in "biu" and (rtol or atol):
            raise ValueError(f"case {self.name}: integer output {name} must be exact")
        if not np.isfinite(array.astype(np.float64)).all():
            raise ValueError(f"case {self.name}: output {name} is not finite")
        self.outputs[name] = array
        self.tolerances[name] = (float(rtol), float(atol), reason)
        return array

    def spec(self):
        """The JSON object of case.json."""
        tensors = {**self.inputs, **self.outputs}
        return {
            "name": self.name, "op": self.op, "description": self.description,
            "options": self.options,
            "inputs": list(self.inputs), "outputs": list(self.outputs),
            "shapes": {n: list(a.shape) for n, a in tensors.items()},
            "dtypes": {n: a.dtype.name for n, a in tensors.items()},
            "tolerances": {n: {"rtol": r, "atol": a, "reason": why}
                           for n, (r, a, why) in self.tolerances.items()},
        }


def write_case(directory, case):
    """Write DIR/<case>/ (every tensor and case.json); returns the bytes written.

    The folder is atomic as a whole: its files are written and fsync'ed in a hidden staging
    folder DIR/.<case>.partial, which is then renamed to DIR/<case> (an older folder of that
    name, from an export written over with --force, is removed first). One fsync per file and
    one of DIR per case, instead of two per file with ``qdaed.io.atomic``: an export holds
    over a thousand small files.
    """
    final = os.path.join(directory, case.name)
    staging = os.path.join(directory, f".{case.name}.partial")
    if os.path.isdir(staging):
        shutil.rmtree(staging)
    os.makedirs(staging)
    total = 0
    try:
        files = {n + ".npy": a for n, a in {**case.inputs, **case.outputs}.items()}
        for fname, content in case.files.items():
            check_name("file", fname, f"case {case.name}")
            if fname in files or fname == "case.json" or not isinstance(content, bytes):
                raise VectorsError(f"case {case.name}: file {fname} clashes with a tensor or "
                                   f"is not bytes")
            files[fname] = content
        files["case.json"] = dumps(case.spec()).encode("utf-8")
        for fname, content in files.items():
            path = os.path.join(staging, fname)
            if isinstance(content, bytes):
                data = content
            else:
                if content.dtype.hasobject or content.dtype.kind not in "biuf":
                    raise VectorsError(f"{path}: only bool, integer and float tensors are "
                                       f"written, got dtype {content.dtype}")
                buf = io.BytesIO()
                np.save(buf, np.array(content, order="C"), allow_pickle=False)
                data = buf.getvalue()
            with open(path, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            total += len(data)
        fsync_directory(staging)
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_directory(directory)
    return total


def write_manifest(directory, manifest):
    atomic_write_text(os.path.join(directory, "manifest.json"), dumps(manifest))


def _check_keys(obj, keys, where):
    missing = [k for k in keys if k not in obj]
    if missing:
        raise VectorsError(f"{where}: missing field(s) {', '.join(missing)}")


def read_manifest(directory):
    """The manifest of an export directory, its format and version checked."""
    path = os.path.join(directory, "manifest.json")
    if not os.path.isdir(directory):
        raise VectorsError(f"{directory}: not a directory (expected a golden-vector export "
                           f"made by 'qdaed vectors export')")
    m = read_json(path, "manifest.json")
    if m.get("format") != FORMAT_NAME:
        raise VectorsError(f"manifest.json ({path}): format {m.get('format')!r}, expected "
                           f"{FORMAT_NAME!r}")
    version = m.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise VectorsError(f"manifest.json ({path}): format version {version!r}; this qdaed "
                           f"reads version {FORMAT_VERSION} only (export the vectors again "
                           f"with this qdaed, or check them with the qdaed that wrote them)")
    _check_keys(m, ("cases", "dtype", "qdaed_version"), f"manifest.json ({path})")
    cases = m["cases"]
    if not isinstance(cases, list) or not cases:
        raise VectorsError(f"manifest.json ({path}): 'cases' must be a non-empty list")
    for name in cases:
        check_name("case", name, f"manifest.json ({path})")
    if len(set(cases)) != len(cases):
        raise VectorsError(f"manifest.json ({path}): a case is listed twice")
    return m


def read_case_spec(directory, name):
    """case.json of case ``name``, every field typed and consistent; VectorsError naming
    the case otherwise."""
    path = os.path.join(directory, name, "case.json")
    where = f"case {name}"
    spec = read_json(path, f"{where}: case.json")
    _check_keys(spec, ("name", "op", "inputs", "outputs", "shapes", "dtypes", "tolerances"),
                f"{where} ({path})")
    if spec["name"] != name:
        raise VectorsError(f"{where} ({path}): case.json names case {spec['name']!r}")
    for key in ("inputs", "outputs"):
        if not isinstance(spec[key], list):
            raise VectorsError(f"{where} ({path}): '{key}' must be a list of tensor names")
        for t in spec[key]:
            check_name("tensor", t, f"{where} ({path})")
    if not spec["outputs"]:
        raise VectorsError(f"{where} ({path}): no outputs")
    names = spec["inputs"] + spec["outputs"]
    if len(set(names)) != len(names):
        raise VectorsError(f"{where} ({path}): a tensor is listed twice")
    for key in ("shapes", "dtypes", "tolerances"):
        if not isinstance(spec[key], dict):
            raise VectorsError(f"{where} ({path}): '{key}' must be an object")
    for t in names:
        shape = spec["shapes"].get(t)
        if (not isinstance(shape, list) or len(shape) > 32
                or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**40
                           for s in shape)):
            raise VectorsError(f"{where}, tensor {t}: shape {shape!r} in case.json is not a "
                               f"list of sizes")
        try:
            dt = np.dtype(spec["dtypes"].get(t))
        except TypeError:
            dt = None
        if dt is None or dt.kind not in "biuf" or not isinstance(spec["dtypes"].get(t), str):
            raise VectorsError(f"{where}, tensor {t}: dtype {spec['dtypes'].get(t)!r} in "
                               f"case.json is not a numeric dtype name")
    for t in spec["outputs"]:
        tol = spec["tolerances"].get(t)
        ok = isinstance(tol, dict) and all(
            isinstance(tol.get(k), (int, float)) and not isinstance(tol.get(k), bool)
            and 0 <= tol.get(k) < 1e6 for k in ("rtol", "atol"))
        if not ok:
            raise VectorsError(f"{where}, tensor {t}: tolerance {tol!r} in case.json must be "
                               f"{{'rtol': number >= 0, 'atol': number >= 0, 'reason': ...}}")
    return spec


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "TOLERANCE_RULE", "VectorsError", "Case",
           "check_name", "dumps", "read_json", "read_npy", "npy_header",
           "write_case", "write_manifest", "read_manifest", "read_case_spec"]
