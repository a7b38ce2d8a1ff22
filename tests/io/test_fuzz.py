"""Fuzz test of model-file loading: damaged files through Detector.load, `qdaed info` and
`qdaed detect` (tests/io/fuzz_modelfile.py), in a subprocess under an overall timeout, each
case under a 10 s alarm. Zero tracebacks, zero hangs, zero silently accepted changes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
    # the harness tells a changed model from the same one
    assert r["controls"] == {"control:same": "same", "control:threshold": "changed",
                             "control:bias": "changed"}
    assert r["failures"] == []
    assert sum(r["counts"].values()) == cases
    assert r["counts"]["refused"] + r["counts"]["same"] == cases
    assert r["peak_rss_mb"] < 1500
    return r


def test_200_damaged_model_files_are_refused_cleanly(tmp_path):
    _fuzz(tmp_path, 200, seed=0, timeout=600)


@pytest.mark.slow
def test_2000_damaged_model_files_are_refused_cleanly(tmp_path):
    _fuzz(tmp_path, 2000, seed=1, timeout=3000)
