"""``qdaed vectors check``: compare another implementation's outputs with the golden ones.

For every case of the manifest (or those matching ``patterns``) and every output of the case,
OUT/<case>/<output>.npy is read (``allow_pickle=False``, shape checked from the header
before the data is read) and compared element-wise with DIR/<case>/<output>.npy:

    passes  ⇔  |out − golden| ≤ atol + rtol · |golden|   for every element

in float64 (integer and boolean outputs: equality). NaN never passes. Per tensor the row
reports the largest absolute error, the largest relative error |out − golden| / |golden| over
the elements with golden ≠ 0, the largest ratio of error to allowed error (below 1 passes:
how much of the tolerance was used) and the first mismatching element (C order).

Integer student cases (op ``int8_student``, :mod:`qdaed.vectors.cases.integer`): when a
tensor fails, the case's first divergence is located — the first time step at which any
tensor differs, and at that step the first tensor in dataflow order (layer by layer: input
gates, recurrent gates, pre-activations, gate outputs, cell, h; then pooled, logits,
scores) and its first differing element — and reported on that tensor's row
(``Row.divergence``: tensor, step, element, out, golden, lsb = out − golden).

Statuses: ``ok``, ``FAIL`` (a comparison failed: exit 1), ``ERROR`` (the tensor is missing,
not a readable .npy, of another shape, or of a non-numeric type: exit 2). Problems with DIR
itself (manifest, format version, case.json, a golden tensor) raise :class:`VectorsError`.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import asdict, dataclass

import numpy as np

from qdaed.io.atomic import atomic_write_text
from qdaed.vectors.cases import INTEGER_OP
from qdaed.vectors.format import (VectorsError, dumps, read_case_spec, read_manifest,
                                  read_npy)


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
    divergence: dict | None = None   # integer cases: the first divergence (module docstring)


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


def _dataflow(spec):
    """[(tensor, time axis or None)] and the step count of an integer case; VectorsError if
    case.json's options do not describe them."""
    where = f"case {spec['name']}: case.json options"
    opts = spec.get("options")
    flow = opts.get("dataflow") if isinstance(opts, dict) else None
    steps = opts.get("steps") if isinstance(opts, dict) else None
    if (not isinstance(flow, list) or isinstance(steps, bool) or not isinstance(steps, int)
            or steps < 1):
        raise VectorsError(f"{where}: an integer case needs 'dataflow' (a list) and 'steps' "
                           f"(an integer >= 1)")
    out = []
    for item in flow:
        ok = (isinstance(item, list) and len(item) == 2 and item[0] in spec["outputs"]
              and (item[1] is None or (isinstance(item[1], int) and not isinstance(item[1], bool)
                                       and 0 <= item[1] < len(spec["shapes"][item[0]])
                                       and spec["shapes"][item[0]][item[1]] == steps)))
        if not ok:
            raise VectorsError(f"{where}: dataflow entry {item!r} is not [an output, its time "
                               f"axis of {steps} steps or null]")
        out.append((item[0], item[1]))
    return out, steps


def first_divergence(directory, outputs, spec, rows):
    """The first divergence of an integer case (module docstring) among its comparable
    tensors (rows ok or FAIL), or None when they all agree."""
    flow, steps = _dataflow(spec)
    status = {r.tensor: r.status for r in rows}
    arrays = {}
    for name, _ in flow:
        if status.get(name) in ("ok", "FAIL"):
            where = f"case {spec['name']}, tensor {name}"
            out = read_npy(os.path.join(outputs, spec["name"], name + ".npy"), where)
            arrays[name] = (_golden(directory, spec, name).astype(np.int64),
                            out.astype(np.int64) if out.dtype.kind in "biu" else out)

    def found(name, step, golden, out):
        bad = golden != out
        if not bad.any():
            return None
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad.reshape(-1))),
                                                     bad.shape))
        g, o = int(golden[idx]), out[idx]
        lsb = int(o) - g if float(o).is_integer() else float(o) - g
        return {"tensor": name, "step": step, "element": list(idx),
                "out": int(o) if float(o).is_integer() else float(o), "golden": g, "lsb": lsb}

    for t in range(steps):
        for name, axis in flow:
            if axis is not None and name in arrays:
                g, o = arrays[name]
                hit = found(name, t, np.take(g, t, axis), np.take(o, t, axis))
                if hit:
                    return hit
    for name, axis in flow:
        if axis is None and name in arrays:
            hit = found(name, None, *arrays[name])
            if hit:
                return hit
    return None


def describe_divergence(case, d):
    """One line for a first divergence."""
    step = "" if d["step"] is None else f" at step {d['step']}"
    return (f"case {case}: first divergence in {d['tensor']}{step}, element "
            f"{tuple(d['element'])}: {d['out']} vs golden {d['golden']} ({d['lsb']:+} LSB)")


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
        integer = spec["op"] == INTEGER_OP
        if integer:
            _dataflow(spec)
        case_rows = []
        for tensor in spec["outputs"]:
            row = _check_tensor(directory, outputs, spec, tensor)
            case_rows.append(row)
            if progress is not None and not integer:
                progress(row)
        if integer and any(r.status == "FAIL" for r in case_rows):
            d = first_divergence(directory, outputs, spec, case_rows)
            if d is not None:
                row = next(r for r in case_rows if r.tensor == d["tensor"])
                row.divergence = d
                row.message = describe_divergence(name, d)
        if integer and progress is not None:
            for row in case_rows:
                progress(row)
        rows += case_rows
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


__all__ = ["Row", "check", "compare", "exit_status", "write_report", "first_divergence",
           "describe_divergence"]
