"""examples/torch_reference.py, a second implementation in PyTorch, passes ``qdaed vectors
check``: export -> the script (a subprocess, no qdaed import) -> check."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.torch_ref import torch  # noqa: F401  (skips this module without torch)
from qdaed.cli import main
from qdaed.vectors.export import export
from tests.helpers.vectors import load

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "torch_reference.py")


def _torch_outputs(vectors, out):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, SCRIPT, vectors, out], capture_output=True, text=True,
                       env=env, cwd=os.path.dirname(SCRIPT), timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_script_does_not_import_qdaed():
    import ast

    tree = ast.parse(open(SCRIPT).read())
    mods = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    mods += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert "torch" in mods and not [m for m in mods if m.split(".")[0] in ("qdaed", "tests")]


@pytest.fixture(scope="module")
def torch_out(exported, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("torch") / "out")
    return out, _torch_outputs(exported, out)


@pytest.mark.conformance
def test_export_torch_reference_check_passes(exported, torch_out, capsys):
    out, stdout = torch_out
    n = len(json.load(open(os.path.join(exported, "manifest.json")))["cases"])
    assert f"computed {n} of {n} cases" in stdout and "skipped" not in stdout
    status = main(["vectors", "check", exported, "--outputs", out, "--failures-only"])
    text = capsys.readouterr()
    assert status == 0, text.out + text.err


@pytest.mark.conformance
def test_torch_outputs_off_by_ten_tolerances_fail_that_tensor(exported, torch_out, tmp_path,
                                                             capsys):
    import shutil

    out = str(tmp_path / "torch")
    shutil.copytree(torch_out[0], out)
    case, tensor = "lstm_2layer_B2_T6", "grad.weight_hh_l1"
    spec = json.load(open(os.path.join(exported, case, "case.json")))
    tol = spec["tolerances"][tensor]
    p = os.path.join(out, case, tensor + ".npy")
    a = load(p)
    g = load(os.path.join(exported, case, tensor + ".npy"))
    a[2, 1] = g[2, 1] + 10 * (tol["atol"] + tol["rtol"] * abs(g[2, 1]))
    np.save(p, a)
    status = main(["vectors", "check", exported, "--outputs", out])
    err = capsys.readouterr().err
    assert status == 1
    fails = [l for l in err.splitlines() if "FAIL:" in l]
    assert len(fails) == 1 and f"case {case}, tensor {tensor}: element [2, 1]" in fails[0]


@pytest.mark.conformance
@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_case_in_both_dtypes(tmp_path, dtype, capsys):
    vectors, out = str(tmp_path / "v"), str(tmp_path / "torch")
    export(vectors, dtype=dtype)
    stdout = _torch_outputs(vectors, out)
    assert "skipped" not in stdout
    status = main(["vectors", "check", vectors, "--outputs", out, "--failures-only"])
    text = capsys.readouterr()
    assert status == 0, text.out + text.err
