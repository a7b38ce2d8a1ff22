"""``qdaed vectors export``: build the golden cases and write them in the format of
``qdaed.vectors.format``."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from qdaed._version import __version__
from qdaed.vectors import cases as _cases
from qdaed.vectors.cases.lfbe import real_case, real_case_name
from qdaed.vectors.format import (FORMAT_NAME, FORMAT_VERSION, TOLERANCE_RULE, VectorsError,
                                  write_case, write_manifest)

DTYPES = ("float32", "float64")


@dataclass
class ExportSummary:
    directory: str
    cases: int
    tensors: int
    bytes: int
    seconds: float


def export(directory, dtype="float32", seed=0, patterns=None, audio=(), force=False,
           progress=None, integer=False):
    """Write the cases matching ``patterns`` (all when None) to ``directory``.

    dtype: the export dtype, float32 (the default: what a deployed implementation computes
    in) or float64. seed: of every case's inputs. audio: paths of real recordings, each adding
    an ``lfbe_real_<stem>`` case. The directory must be empty or absent unless ``force``.
    progress: callable(case name) after each case. integer: add the integer student's cases
    (``qdaed.vectors.cases.integer``). Returns an :class:`ExportSummary`.
    """
    t0 = time.perf_counter()
    if dtype not in DTYPES:
        raise VectorsError(f"--dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise VectorsError(f"--seed: expected an integer >= 0, got {seed!r}")
    names = _cases.select(patterns, integer=integer)
    if patterns and not names and not audio:
        raise VectorsError(f"--cases: no case matches {' '.join(patterns)}; the cases are "
                           f"listed by 'qdaed vectors list'")
    if os.path.exists(directory):
        if not os.path.isdir(directory):
            raise VectorsError(f"{directory}: exists and is not a directory")
        if os.listdir(directory) and not force:
            raise VectorsError(f"{directory}: not empty; choose a new directory or pass "
                               f"--force to write over it")
    os.makedirs(directory, exist_ok=True)
    old_manifest = os.path.join(directory, "manifest.json")
    if os.path.exists(old_manifest):   # --force: the old manifest must not outlive its cases
        os.remove(old_manifest)

    def real(path):
        b = _cases.Builder(real_case_name(path), "lfbe", f"LFBE of the first 2 s of the real "
                           f"recording {os.path.basename(os.fspath(path))} (decoded and "
                           f"resampled to 16 kHz by qdaed)", dtype, seed)
        real_case(b, path)
        return b.case

    jobs = [(n, lambda n=n: _cases.build(n, dtype, seed)) for n in names]
    jobs += [(real_case_name(p), lambda p=p: real(p)) for p in audio]
    written = [n for n, _ in jobs]
    if len(set(written)) != len(written):
        raise VectorsError("--audio: two files give the same case name "
                           "(lfbe_real_<file stem>); rename one")
    total, tensors = 0, 0
    for _, make in jobs:     # one case in memory at a time
        case = make()
        total += write_case(directory, case)
        tensors += len(case.inputs) + len(case.outputs)
        if progress is not None:
            progress(case.name)
    manifest = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "qdaed_version": __version__,
        "dtype": dtype, "seed": int(seed), "tolerance_rule": TOLERANCE_RULE,
        "outputs_layout": "OUT/<case>/<output>.npy for every output of every case",
        "cases": written,
    }
    write_manifest(directory, manifest)
    total += os.path.getsize(os.path.join(directory, "manifest.json"))
    return ExportSummary(directory, len(written), tensors, total, time.perf_counter() - t0)


__all__ = ["DTYPES", "ExportSummary", "export"]
