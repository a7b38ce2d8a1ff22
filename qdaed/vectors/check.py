"""``qdaed vectors check``: compare another implementation's outputs with the golden ones.

For every case of the manifest (or those matching ``patterns``) and every output of the case,
OUT/<case>/<output>.npy is read (``allow_pickle=False``, shape checked from the header
before the data is read) and compared element-wise with DIR/<case>/<output>.npy:

    passes  ⇔  |out − golden| ≤ atol + rtol · |golden|   for every element

in float64 (integer and boolean outputs: equality). NaN never passes. Per tensor the row
reports the largest absolute error, the largest relative error |out − golden| / |golden| over
the elements with golden ≠ 0, the largest ratio of error to allowed error (below 1 passes:
how much of the tolerance was used) and the first mismatching element (C order).

Statuses: ``ok``, ``FAIL`` (a comparison failed: exit 1), ``ERROR`` (the tensor is missing,
not a readable .npy, of another shape, or of a non-numeric type: exit 2). Problems with DIR
itself (manifest, format version, case.json, a golden tensor) raise :class:`VectorsError`.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import asdict, dataclass

import numpy as np

from qdaed.vectors.format import (VectorsError, dumps, read_case_spec, read_manifest,
                                  read_npy)
from qdaed.io.atomic import atomic_write_text


@dataclass
class Row:
    case: str
    tensor: str
    status: str              # "ok", "FAIL", "ERROR"
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    rtol: float = 0.0
    atol: float = 0.0
    first_mismatch: list | None = None
    error_to_tolerance: float | None = None   # max of |out − golden| / (atol + rtol |golden|)
    message: str = ""


def _golden(directory, spec, name):
    where = f"golden case {spec['name']}, tensor {name}"
    g = read_npy(os.path.join(directory, spec["name"], name + ".npy"), where,
                 shape=spec["shapes"][name])
    if g.dtype.name != spec["dtypes"][name]:
        raise VectorsError(f"{where}: dtype {g.dtype}, case.json says {spec['dtypes'][name]}")
    return g


def _finite_or_none(x):
    x = float(x)
    return x if np.isfinite(x) else None


def compare(golden, out, rtol, atol):
    """(ok, max abs error, max rel error, first mismatching index or None, max error /
    allowed error: below 1 passes; 0 or inf for an exact comparison)."""
    if golden.dtype.kind in "biu":
        g = golden.astype(np.int64)
        o = out.astype(np.int64) if out.dtype.kind in "biu" else out.astype(np.float64)
        bad = o != g
        err = np.abs(o.astype(np.float64) - g.astype(np.float64))
        gabs = np.abs(g.astype(np.float64))
    else:
        g = golden.astype(np.float64)
        o = out.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.abs(o - g)
            gabs = np.abs(g)
            bad = ~(err <= atol + rtol * gabs)   # NaN compares False, so it is bad
    if err.size == 0:
        return True, 0.0, 0.0, None, 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        nan_err = np.isnan(err)
        max_abs = np.inf if nan_err.any() else float(err.max())
        nz = gabs > 0
        rel = err[nz] / gabs[nz]
        max_rel = (np.inf if np.isnan(rel).any() else float(rel.max())) if rel.size else 0.0
    first = None
    if bad.any():
        first = [int(i) for i in np.unravel_index(int(np.argmax(bad.reshape(-1))), bad.shape)]
    allowed = atol + rtol * gabs
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(err == 0, 0.0, err / allowed)
    worst = np.inf if bad.any() and not np.isfinite(ratio).all() else float(np.nanmax(ratio))
    if np.isnan(err).any():
        worst = np.inf
    return not bad.any(), max_abs, max_rel, first, worst


def _check_tensor(directory, outputs, spec, name):
    case = spec["name"]
    tol = spec["tolerances"][name]
    rtol, atol = float(tol["rtol"]), float(tol["atol"])
    golden = _golden(directory, spec, name)
    row = Row(case, name, "ERROR", rtol=rtol, atol=atol)
    where = f"case {case}, tensor {name}"
    path = os.path.join(outputs, case, name + ".npy")
    try:
        out = read_npy(path, where, shape=golden.shape)
    except VectorsError as exc:
        row.message = str(exc)
        return row
    if golden.dtype.kind == "f" and out.dtype.kind != "f":
        row.message = f"{where}: dtype {out.dtype}, expected a float tensor ({path})"
        return row
    if golden.dtype.kind in "biu" and out.dtype.kind not in "biu":
        row.message = (f"{where}: dtype {out.dtype}, expected an integer tensor "
                       f"(golden {golden.dtype}) ({path})")
        return row
    ok, max_abs, max_rel, first, worst = compare(golden, out, rtol, atol)
    row.status = "ok" if ok else "FAIL"
    row.max_abs_error, row.max_rel_error, row.first_mismatch = max_abs, max_rel, first
    row.error_to_tolerance = worst
    if not ok:
        idx = tuple(first)
        row.message = (f"{where}: element {list(idx)} is {out[idx]!r}, golden {golden[idx]!r} "
                       f"(allowed |error| <= {atol:g} + {rtol:g} * |golden|)")
    return row


def check(directory, outputs, patterns=None, progress=None):
    """Rows (one per output tensor) of checking OUT = ``outputs`` against DIR = ``directory``.

    patterns: shell-style case-name patterns to check (all cases of the manifest when None).
    progress: callable(Row) as each tensor is compared.
    """
    manifest = read_manifest(directory)
    names = manifest["cases"]
    if patterns:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        if not names:
            raise VectorsError(f"--cases: no case of {directory} matches {' '.join(patterns)}")
    if not os.path.isdir(outputs):
        raise VectorsError(f"--outputs {outputs}: not a directory (expected OUT/<case>/"
                           f"<output>.npy)")
    rows = []
    for name in names:
        spec = read_case_spec(directory, name)
        for tensor in spec["outputs"]:
            row = _check_tensor(directory, outputs, spec, tensor)
            rows.append(row)
            if progress is not None:
                progress(row)
    return manifest, rows


def write_report(path, directory, outputs, manifest, rows):
    """The rows as JSON (sorted keys, no NaN: an infinite error is written as null)."""
    def clean(r):
        d = asdict(r)
        for k in ("max_abs_error", "max_rel_error", "error_to_tolerance"):
            if d[k] is not None:
                d[k] = _finite_or_none(d[k])
        return d

    summary = {s: sum(r.status == s for r in rows) for s in ("ok", "FAIL", "ERROR")}
    report = {"vectors": os.fspath(directory), "outputs": os.fspath(outputs),
              "format": manifest["format"], "format_version": manifest["format_version"],
              "dtype": manifest["dtype"], "summary": summary,
              "exit_status": exit_status(rows), "rows": [clean(r) for r in rows]}
    atomic_write_text(path, dumps(report))


def exit_status(rows):
    """2 if any tensor could not be compared, else 1 if any failed, else 0."""
    if any(r.status == "ERROR" for r in rows):
        return 2
    return 1 if any(r.status == "FAIL" for r in rows) else 0


__all__ = ["Row", "check", "compare", "exit_status", "write_report"]
