"""Fuzz test of model-file loading: damaged and hostile files through Detector.load, `qdaed
info` and `qdaed detect` (tests/io/fuzz_modelfile.py: its mutation classes and outcomes), in a
subprocess under an overall timeout, each case under a 10 s alarm and timed. Zero tracebacks,
zero hangs (every case under 2 s), zero changes accepted without a recomputed digest, zero
unusable models accepted, and every accepted re-signed edit gives finite scores."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLASSES = {"field edits", "raw edits", "table edits", "type confusion", "huge numbers", "text",
           "quadratic", "unusable", "document chars", "bytes"}


def _fuzz(tmp_path, cases, seed, timeout):
    report = tmp_path / "report.json"
    try:
        subprocess.run([sys.executable, "-m", "tests.io.fuzz_modelfile", "--cases", str(cases),
                        "--seed", str(seed), "--dir", str(tmp_path), "--report", str(report)],
                       cwd=ROOT, check=True, timeout=timeout, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"the fuzz run failed:\n{exc.stderr[-3000:]}")
    except subprocess.TimeoutExpired:
        pytest.fail(f"the fuzz run of {cases} cases did not finish in {timeout} s (a hang)")
    r = json.loads(report.read_text())
    print({k: v for k, v in r.items() if k != "failures"})
    # the harness tells the same model from a different, validly re-signed one
    assert r["controls"] == {"control:same": "same", "control:threshold": "accepted",
                             "control:bias": "accepted"}
    assert r["failures"] == []
    assert sum(r["counts"].values()) == cases
    assert r["counts"]["refused"] + r["counts"]["same"] + r["counts"]["accepted"] == cases
    assert set(r["by_class"]) == CLASSES                 # every class was drawn
    assert set(r["by_class"]["unusable"]) == {"refused"}
    assert r["max_case_s"] < 2.0, r["slowest_case"]
    assert r["peak_rss_mb"] < 1500
    return r


def test_300_damaged_or_hostile_model_files_are_refused_cleanly_or_load_with_finite_scores(
        tmp_path):
    _fuzz(tmp_path, 300, seed=0, timeout=600)


@pytest.mark.slow
def test_6000_damaged_or_hostile_model_files_3000_re_signed_are_refused_or_finite(tmp_path):
    r = _fuzz(tmp_path, 6000, seed=1, timeout=3600)
    assert r["resigned"] >= 3000
