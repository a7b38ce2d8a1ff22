"""Integer golden vectors (issue 26, item 6): ``qdaed vectors export --integer`` writes every
intermediate per step, exact, with each case's .tflite (TFLite Micro reproduces its
scores.npy from its x.npy); a port written from the vectors alone (tests/integer/port.py,
on tests/naive.py's Python-int primitives) reproduces every tensor; and ``qdaed vectors
check`` locates each seeded porting fault at the right tensor, step and element."""

import json
import os

import numpy as np
import pytest

from qdaed.cli import main
from qdaed.vectors.check import check
from qdaed.vectors.format import VectorsError, read_manifest
from tests import naive
from tests.integer import port
from tests.integer.cases import run_tflm

runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")

CASES = ("int8_student_1layer_h8_t20", "int8_student_2layer_h8_t40",
         "int8_student_1layer_h32_t100_b2", "int8_student_extremes_saturated",
         "int8_student_extremes")


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8vectors") / "v"
    assert main(["vectors", "export", str(d), "--integer", "--cases", "int8_*"]) == 0
    return str(d)


def _load(d, case, name):
    return np.load(os.path.join(d, case, name + ".npy"), allow_pickle=False)


def test_export_integer_writes_the_cases_with_tflite_input_and_output(vectors):
    assert read_manifest(vectors)["cases"] == list(CASES)
    for case in CASES:
        spec = json.load(open(os.path.join(vectors, case, "case.json")))
        assert spec["op"] == "int8_student"
        assert all(spec["tolerances"][n] == {"rtol": 0.0, "atol": 0.0, "reason":
                                             spec["tolerances"][n]["reason"]}
                   for n in spec["outputs"])
        x, scores = _load(vectors, case, "x"), _load(vectors, case, "scores")
        assert x.dtype == np.int8 and scores.dtype == np.int8
        L = len(spec["options"]["layers"])
        assert spec["outputs"][:6] == [f"l0.{n}" for n in ("input_gates", "recurrent_gates",
                                                            "pre", "gates", "cell", "h")]
        assert len(spec["outputs"]) == 6 * L + 3
        with open(os.path.join(vectors, case, "model.tflite"), "rb") as f:
            (tflm,) = run_tflm(runtime, f.read(), [x])
        assert np.array_equal(tflm, scores), case


def test_plain_export_has_no_integer_case(tmp_path):
    assert main(["vectors", "export", str(tmp_path / "v"), "--cases", "int8_*"]) == 2
    assert not (tmp_path / "v" / "manifest.json").exists()


def test_a_port_written_from_the_vectors_reproduces_every_tensor_at_0_lsb(vectors, tmp_path,
                                                                          capsys):
    out = tmp_path / "out"
    for case in CASES:
        port.write(out, case, port.run(vectors, case))
    assert main(["vectors", "check", vectors, "--outputs", str(out)]) == 0
    assert "51 tensors in 5 cases: 51 ok, 0 failed" in capsys.readouterr().out


# ---- the seeded faults: where each must be found, worked out from the fault itself


def _step_where(values):
    """First step index with a True in the per-step booleans (a list), else None."""
    hits = [t for t, v in enumerate(values) if v]
    return hits[0] if hits else None


def _input_accumulators(d, case, gate):
    """Σ w_ih[gate] (x_t − z_in) + bias[gate] for every step of sequence 0: (T, H) ints."""
    spec = json.load(open(os.path.join(d, case, "case.json")))
    z_in = spec["options"]["layers"][0]["input"]["zero_point"]
    x = _load(d, case, "x").astype(np.int64)[0] - z_in
    w, b = _load(d, case, "l0.w_ih").astype(np.int64), _load(d, case, "l0.bias")
    return x @ w[gate].T + b[gate], spec["options"]["layers"][0]


def _rounding_fault_step(d, case, gates, rounding):
    """First step where the faulty rounding changes an input-gate pre-activation of
    sequence 0 (the input gates do not depend on the state)."""
    per_step = None
    for q in gates:
        acc, lo = _input_accumulators(d, case, q)
        m, s = lo["input_rescale"][q]
        diff = [any(max(-32768, min(32767, port.rescale(int(v), m, s, rounding)))
                    != max(-32768, min(32767, port.rescale(int(v), m, s))) for v in row)
                for row in acc]
        per_step = diff if per_step is None else [a or b for a, b in zip(per_step, diff)]
    return _step_where(per_step)


def _table_fault_location(d, case):
    """(tensor, step) where a sigmoid table entry off by one first shows: a gate output from
    the stored pre-activations, else h through tanh(c) of the stored cell."""
    table = np.array(naive.SIGMOID_TABLE_UINT16, np.int64)
    table[port.TABLE_ENTRY] += 1
    pre, gates = _load(d, case, "l0.pre")[0], _load(d, case, "l0.gates")[0]
    cell, h = _load(d, case, "l0.cell")[0], _load(d, case, "l0.h")[0]
    lo = json.load(open(os.path.join(d, case, "case.json")))["options"]["layers"][0]
    for t in range(pre.shape[0]):
        for q in range(4):
            fn = naive.tanh_int16 if q == 2 else naive.sigmoid_int16
            if any(fn(int(a), table=table) != g for a, g in zip(pre[t, q], gates[t, q])):
                return "l0.gates", t
        for r in range(h.shape[1]):
            th = naive.tanh_int16(int(cell[t, r]), *lo["tanh_cell_input"], table=table)
            v = max(-128, min(127, lo["hidden"]["zero_point"] + naive.rescale(
                th * int(gates[t, 3, r]), *lo["output_rescale"])))
            if v != h[t, r]:
                return "l0.h", t
    return None


def _overflow_step(d, case):
    """First step where f·c + i·g (each rescaled and saturated) leaves int16, from the
    stored gates and cell of sequence 0."""
    g, c = _load(d, case, "l0.gates")[0].astype(np.int64), _load(d, case, "l0.cell")[0]
    lo = json.load(open(os.path.join(d, case, "case.json")))["options"]["layers"][0]
    prev = np.concatenate([np.zeros((1, c.shape[1]), np.int64), c[:-1].astype(np.int64)])
    over = []
    for t in range(c.shape[0]):
        sums = [max(-32768, min(32767, naive.rescale(int(g[t, 1, r] * prev[t, r]),
                                                     *lo["forget_cell_rescale"])))
                + max(-32768, min(32767, naive.rescale(int(g[t, 0, r] * g[t, 2, r]),
                                                       *lo["input_cell_rescale"])))
                for r in range(c.shape[1])]
        over.append(any(abs(v) > 32767 for v in sums))
    return _step_where(over)


FAULT_CASES = {
    # fault: (case, expected (tensor, step) or a function of the vectors giving it)
    "shift": ("int8_student_2layer_h8_t40", ("l0.recurrent_gates", 1)),   # ĥ = 0 at step 0
    "reset": ("int8_student_2layer_h8_t40", ("l0.recurrent_gates", port.CHUNK)),
    "cell_not_pow2": ("int8_student_2layer_h8_t40", ("l0.cell", 0)),      # c_0 = i·g
    "truncate": ("int8_student_extremes", lambda d, c: (
        "l0.input_gates", _rounding_fault_step(d, c, [1], "truncate"))),
    "ties_down": ("int8_student_extremes", lambda d, c: (
        "l0.input_gates", _rounding_fault_step(d, c, range(4), "ties_down"))),
    "table": ("int8_student_extremes", _table_fault_location),
    "no_saturation": ("int8_student_extremes_saturated", lambda d, c: (
        "l0.cell", _overflow_step(d, c))),
}


@pytest.mark.parametrize("fault", port.FAULTS)
def test_each_seeded_fault_is_located_at_its_tensor_step_and_element(vectors, tmp_path,
                                                                     fault):
    case, where = FAULT_CASES[fault]
    tensor, step = where(vectors, case) if callable(where) else where
    assert step is not None, f"{fault} never shows in {case}: the case cannot test it"
    faulty = port.run(vectors, case, fault)
    port.write(tmp_path, case, faulty)
    _, rows = check(vectors, str(tmp_path), patterns=[case])
    found = [r.divergence for r in rows if r.divergence is not None]
    assert len(found) == 1
    d = found[0]
    assert (d["tensor"], d["step"]) == (tensor, step), (fault, d)
    golden = _load(vectors, case, tensor)
    # the element: the first (C order) differing one of that step, and its LSB difference
    g, o = np.take(golden, step, 1), np.take(faulty[tensor], step, 1)
    first = np.argwhere(g != o)[0].tolist()
    assert d["element"] == first
    assert d["lsb"] == int(o[tuple(first)]) - int(g[tuple(first)]) != 0


def test_check_prints_the_first_divergence_and_exits_1(vectors, tmp_path, capsys):
    case = "int8_student_2layer_h8_t40"
    port.write(tmp_path, case, port.run(vectors, case, "reset"))
    assert main(["vectors", "check", vectors, "--outputs", str(tmp_path), "--cases", case,
                 "--json", str(tmp_path / "r.json")]) == 1
    err = capsys.readouterr().err
    assert (f"case {case}: first divergence in l0.recurrent_gates at step 10, element "
            f"(0, 0, 0)") in err
    report = json.load(open(tmp_path / "r.json"))
    rows = [r for r in report["rows"] if r["divergence"]]
    assert [(r["tensor"], r["divergence"]["step"]) for r in rows] == [
        ("l0.recurrent_gates", 10)]


def test_a_case_json_with_a_malformed_dataflow_is_refused(vectors, tmp_path):
    case = "int8_student_extremes"
    d = tmp_path / "v"
    os.makedirs(d / case)
    for f in os.listdir(os.path.join(vectors, case)):
        with open(os.path.join(vectors, case, f), "rb") as src:
            (d / case / f).write_bytes(src.read())
    (d / "manifest.json").write_text(open(os.path.join(vectors, "manifest.json")).read()
                                     .replace('"int8_student_1layer_h8_t20",', "")
                                     .replace('"int8_student_2layer_h8_t40",', "")
                                     .replace('"int8_student_1layer_h32_t100_b2",', "")
                                     .replace('"int8_student_extremes_saturated",', ""))
    spec = json.load(open(d / case / "case.json"))
    spec["options"]["dataflow"][0] = ["l0.input_gates", 7]
    (d / case / "case.json").write_text(json.dumps(spec))
    os.makedirs(tmp_path / "out")
    with pytest.raises(VectorsError, match="dataflow entry"):
        check(str(d), str(tmp_path / "out"))
