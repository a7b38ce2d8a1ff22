"""``qdaed vectors check``: passes on the golden outputs themselves, fails exactly the tensor
that is off by ten times its tolerance (exit 1), and refuses what it cannot compare (exit 2)
with a message naming the case and tensor, never a traceback."""

import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdaed.cli import main
from qdaed.vectors.check import check, compare, exit_status
from tests.helpers.vectors import copy_outputs, load


@pytest.fixture(scope="module")
def perfect(exported, tmp_path_factory):
    return copy_outputs(exported, str(tmp_path_factory.mktemp("out") / "out"))


def run(capsys, *argv):
    status = main(["vectors", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


def test_passes_on_the_exported_outputs_themselves(exported, perfect, capsys, tmp_path):
    report = tmp_path / "r.json"
    status, out, err = run(capsys, "check", exported, "--outputs", perfect, "--json", str(report))
    assert status == 0, err
    assert " 0 failed, 0 could not be compared" in out
    r = json.loads(report.read_text(), parse_constant=lambda c: pytest.fail(c))
    assert r["exit_status"] == 0 and r["summary"]["FAIL"] == 0 and r["summary"]["ok"] > 300
    assert {"case", "tensor", "max_abs_error", "max_rel_error", "rtol", "atol", "status",
            "first_mismatch", "error_to_tolerance"} <= set(r["rows"][0])


def _perturb(golden, spec_tol, index, sign):
    """golden with element ``index`` moved by 10x its allowed error (integers: by one code;
    an exact float: by one ulp)."""
    out = golden.copy()
    flat = out.reshape(-1)
    rtol, atol = spec_tol["rtol"], spec_tol["atol"]
    if out.dtype.kind in "biu":
        top = np.iinfo(out.dtype).max if out.dtype.kind != "b" else 1
        flat[index] = flat[index] + 1 if flat[index] < top else flat[index] - 1
    else:
        g = float(flat[index])
        step = 10 * (atol + rtol * abs(g))
        flat[index] = (g + sign * step if step > 0
                       else np.nextafter(flat[index], np.inf * sign, dtype=out.dtype))
    return out


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_ten_times_the_tolerance_fails_exactly_that_tensor(exported, perfect, data,
                                                           tmp_path_factory):
    names = json.load(open(os.path.join(exported, "manifest.json")))["cases"]
    case = data.draw(st.sampled_from(names), label="case")
    spec = json.load(open(os.path.join(exported, case, "case.json")))
    tensor = data.draw(st.sampled_from(spec["outputs"]), label="tensor")
    golden = load(os.path.join(exported, case, tensor + ".npy"))
    index = data.draw(st.integers(0, golden.size - 1), label="index")
    sign = data.draw(st.sampled_from([1.0, -1.0]), label="sign")
    out = str(tmp_path_factory.mktemp("p"))
    copy_outputs(exported, out, [case])
    np.save(os.path.join(out, case, tensor + ".npy"),
            _perturb(golden, spec["tolerances"][tensor], index, sign))
    _, rows = check(exported, out, patterns=[case])
    failed = [(r.case, r.tensor) for r in rows if r.status != "ok"]
    assert failed == [(case, tensor)]
    bad = next(r for r in rows if r.status != "ok")
    assert bad.status == "FAIL" and exit_status(rows) == 1
    assert bad.first_mismatch == [int(i) for i in np.unravel_index(index, golden.shape)]
    shutil.rmtree(out)


def test_a_failure_exits_1_naming_case_and_tensor(exported, tmp_path, capsys):
    out = copy_outputs(exported, str(tmp_path / "o"), ["lstm_2layer_B2_T6"])
    p = os.path.join(out, "lstm_2layer_B2_T6", "grad.bias_hh_l1.npy")
    g = load(p)
    g[3] *= 1.01
    np.save(p, g)
    status, out_text, err = run(capsys, "check", exported, "--outputs", out,
                                "--cases", "lstm_2layer_*")
    assert status == 1
    assert "FAIL: case lstm_2layer_B2_T6, tensor grad.bias_hh_l1: element [3]" in err
    line = next(l for l in out_text.splitlines() if "grad.bias_hh_l1" in l)
    assert "FAIL" in line and "(3,)" in line
    assert sum("FAIL" in l for l in out_text.splitlines()) == 1


def test_nan_fails(exported, tmp_path):
    out = copy_outputs(exported, str(tmp_path / "o"), ["linear"])
    g = load(os.path.join(out, "linear", "y.npy"))
    g[0, 0, 0] = np.nan
    np.save(os.path.join(out, "linear", "y.npy"), g)
    _, rows = check(exported, out, patterns=["linear"])
    assert [(r.tensor, r.status) for r in rows if r.status != "ok"] == [("y", "FAIL")]


@pytest.mark.parametrize("damage, message", [
    ("missing", r"missing"),
    ("shape", r"shape \(2, 3\), expected \(2, 3, 4\)"),
    ("truncated", r"truncated"),
    ("garbage", r"not a readable \.npy"),
    ("pickle", r"object"),
    ("integer", r"expected a float tensor"),
    ("directory", r"directory"),
])
def test_what_cannot_be_compared_exits_2_naming_case_and_tensor(exported, tmp_path, capsys,
                                                                damage, message):
    out = copy_outputs(exported, str(tmp_path / "o"), ["linear"])
    p = os.path.join(out, "linear", "y.npy")
    os.remove(p)
    if damage == "shape":
        np.save(p, np.zeros((2, 3), np.float32))
    elif damage == "truncated":
        np.save(p, load(os.path.join(exported, "linear", "y.npy")))
        with open(p, "r+b") as f:
            f.truncate(os.path.getsize(p) - 4)
    elif damage == "garbage":
        open(p, "wb").write(b"\x93NUMPY garbage")
    elif damage == "pickle":
        np.save(p, np.array([object()] * 24, dtype=object).reshape(2, 3, 4), allow_pickle=True)
    elif damage == "integer":
        np.save(p, np.zeros((2, 3, 4), np.int32))
    elif damage == "directory":
        os.mkdir(p)
    status, _, err = run(capsys, "check", exported, "--outputs", out, "--cases", "linear")
    assert status == 2
    lines = [l for l in err.splitlines() if "error:" in l]
    assert len(lines) == 1 and "case linear, tensor y" in lines[0]
    import re
    assert re.search(message, lines[0]), lines[0]


def test_an_integer_output_accepts_any_integer_type_but_not_floats(exported, tmp_path):
    out = copy_outputs(exported, str(tmp_path / "o"), ["quant_k4_row_nearest"])
    p = os.path.join(out, "quant_k4_row_nearest", "codes.npy")
    codes = load(p)
    np.save(p, codes.astype(np.int64))
    _, rows = check(exported, out, patterns=["quant_k4_row_nearest"])
    assert exit_status(rows) == 0
    np.save(p, codes.astype(np.float32))
    _, rows = check(exported, out, patterns=["quant_k4_row_nearest"])
    assert exit_status(rows) == 2


@pytest.mark.parametrize("damage, message", [
    ("version", "format version 2; this qdaed reads version 1"),
    ("no manifest", "manifest.json: missing"),
    ("manifest json", "not valid JSON"),
    ("case json", "case linear: case.json"),
    ("golden shape", "golden case linear, tensor y: shape"),
    ("traversal", "case name '../x' is not allowed"),
    ("no case", "case linear: case.json: missing"),
])
def test_a_damaged_vectors_directory_exits_2(exported, tmp_path, capsys, damage, message):
    d = tmp_path / "v"
    shutil.copytree(exported, d)
    out = copy_outputs(exported, str(tmp_path / "o"), ["linear"])
    m = json.load(open(d / "manifest.json"))
    if damage == "version":
        (d / "manifest.json").write_text(json.dumps(dict(m, format_version=2)))
    elif damage == "no manifest":
        os.remove(d / "manifest.json")
    elif damage == "manifest json":
        (d / "manifest.json").write_text('{"format": NaN}')
    elif damage == "case json":
        (d / "linear" / "case.json").write_text("{")
    elif damage == "golden shape":
        np.save(d / "linear" / "y.npy", np.zeros(3, np.float32))
    elif damage == "traversal":
        (d / "manifest.json").write_text(json.dumps(dict(m, cases=["../x"])))
    elif damage == "no case":
        shutil.rmtree(d / "linear")
    status, _, err = run(capsys, "check", str(d), "--outputs", out, "--cases", "linear", "../x")
    assert status == 2
    assert message in err, err


def test_compare_reports_errors_and_the_first_mismatch():
    g = np.array([[1.0, 2.0], [0.0, -4.0]])
    o = np.array([[1.0, 2.1], [0.0, -4.0]])
    ok, mabs, mrel, first, ratio = compare(g, o, rtol=0.0, atol=0.01)
    assert not ok and first == [0, 1] and mabs == pytest.approx(0.1)
    assert mrel == pytest.approx(0.05) and ratio == pytest.approx(10.0)
    ok, *_ = compare(g, o, rtol=0.06, atol=0.0)
    assert ok


def test_export_refuses_a_non_empty_directory_and_bad_options(tmp_path, capsys):
    (tmp_path / "junk").write_text("x")
    status, _, err = run(capsys, "export", str(tmp_path), "--cases", "linear")
    assert status == 2 and "not empty" in err and "--force" in err
    status, _, err = run(capsys, "export", str(tmp_path / "n"), "--cases", "nothing_like_this")
    assert status == 2 and "no case matches" in err
    status, out, _ = run(capsys, "export", str(tmp_path), "--cases", "linear", "--force")
    assert status == 0 and "wrote 1 cases" in out


def test_list_names_every_case(capsys):
    status, out, _ = run(capsys, "list")
    assert status == 0 and len(out.splitlines()) >= 100 and "detector_student_pcm16" in out
