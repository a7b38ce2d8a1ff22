"""The files of an export: readable without pickle, canonical JSON, every tensor as case.json
says; and the reader's refusals."""

import json
import os
import shutil

import numpy as np
import pytest

from qdaed.vectors import cases
from qdaed.vectors.format import (FORMAT_NAME, FORMAT_VERSION, Case, VectorsError, dumps,
                                  read_case_spec, read_json, read_manifest, read_npy,
                                  write_case)
from tests.helpers.vectors import load


def _strict(path):
    def no_const(x):
        raise AssertionError(f"{path}: non-finite {x}")
    text = open(path).read()
    obj = json.loads(text, parse_constant=no_const)
    assert text == json.dumps(obj, sort_keys=True, indent=2) + "\n", f"{path}: not canonical"
    return obj


def test_manifest_names_format_version_and_every_case(exported):
    m = _strict(os.path.join(exported, "manifest.json"))
    assert m["format"] == FORMAT_NAME and m["format_version"] == FORMAT_VERSION
    assert m["dtype"] == "float32" and m["seed"] == 0 and m["qdaed_version"]
    assert sorted(m["cases"]) == sorted(set(os.listdir(exported)) - {"manifest.json"})


def test_every_tensor_loads_without_pickle_as_case_json_says(exported):
    m = read_manifest(exported)
    n = 0
    for name in m["cases"]:
        spec = _strict(os.path.join(exported, name, "case.json"))
        assert spec == read_case_spec(exported, name)
        files = set(os.listdir(os.path.join(exported, name))) - {"case.json"}
        assert files == {t + ".npy" for t in spec["inputs"] + spec["outputs"]}
        for t in spec["inputs"] + spec["outputs"]:
            a = load(os.path.join(exported, name, t + ".npy"))
            assert not a.dtype.hasobject and a.dtype.kind in "biuf"
            assert list(a.shape) == spec["shapes"][t] and a.dtype.name == spec["dtypes"][t]
            assert a.dtype.byteorder in "=<|"
            n += 1
        for t in spec["outputs"]:
            tol = spec["tolerances"][t]
            assert tol["rtol"] >= 0 and tol["atol"] >= 0 and len(tol["reason"]) > 20
            if spec["dtypes"][t][0] in "biu":
                assert tol["rtol"] == tol["atol"] == 0
    assert n > 300


def test_case_names_say_what_they_hold_and_are_unique():
    names = cases.names()
    assert len(names) == len(set(names)) >= 100
    for family in ("linear", "lstm_2layer", "temporal_pool_max", "loss_distillation_T2",
                   "quant_k16_bucket7_nearest", "quant_sym_k8_row_nearest",
                   "quant_k3_row_stochastic", "conv2d_7x7_s2_p3", "batchnorm2d_eval",
                   "lfbe_silence", "lfbe_noise_int16", "resnet50_w2_train",
                   "student_lstm_2layer_mean", "adam_step1", "qd_step_student_k4_row",
                   "detector_student_pcm16"):
        assert any(n.startswith(family) for n in names), family


def test_a_case_is_the_same_whether_exported_alone_or_with_others(exported, tmp_path):
    from qdaed.vectors.export import export

    export(str(tmp_path / "one"), patterns=["quant_k4_row_stochastic"])
    for f in os.listdir(tmp_path / "one" / "quant_k4_row_stochastic"):
        a = open(os.path.join(exported, "quant_k4_row_stochastic", f), "rb").read()
        assert a == open(tmp_path / "one" / "quant_k4_row_stochastic" / f, "rb").read(), f


def test_seed_and_dtype_change_the_inputs(tmp_path):
    from qdaed.vectors.export import export

    for seed, dt in ((0, "float32"), (1, "float32"), (0, "float64")):
        export(str(tmp_path / f"{seed}{dt}"), dtype=dt, seed=seed, patterns=["linear"])
    x = {k: load(tmp_path / k / "linear" / "x.npy") for k in ("0float32", "1float32", "0float64")}
    assert x["0float32"].dtype == np.float32 and x["0float64"].dtype == np.float64
    assert not np.array_equal(x["0float32"], x["1float32"])
    np.testing.assert_array_equal(x["0float32"], x["0float64"].astype(np.float32))


def test_zero_dimensional_outputs_stay_zero_dimensional(exported):
    assert load(os.path.join(exported, "loss_hard", "loss.npy")).shape == ()


def test_json_reader_refuses_nan_duplicates_and_non_objects(tmp_path):
    for text, what in (('{"a": NaN}', "NaN"), ('{"a": 1, "a": 2}', "duplicate"),
                       ("[1, 2]", "object"), ("{", "JSON"), ("[" * 100000, "JSON")):
        p = tmp_path / "x.json"
        p.write_text(text)
        with pytest.raises(VectorsError) as e:
            read_json(str(p), "thing")
        assert "thing" in str(e.value)
    with pytest.raises(ValueError):
        dumps({"a": float("nan")})


def test_unsafe_names_are_refused(tmp_path):
    for bad in ("../x", ".hidden", "a/b", "", "a..b", 3):
        with pytest.raises(VectorsError):
            Case(bad, "op", "")
    case = Case("ok", "op", "")
    with pytest.raises(VectorsError):
        case.add_input("../../etc", np.zeros(1))


def test_read_npy_checks_the_header_before_the_data(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.zeros((3, 4)))
    with pytest.raises(VectorsError, match=r"shape \(3, 4\), expected \(4, 3\)"):
        read_npy(str(p), "here", shape=(4, 3))
    data = p.read_bytes()
    p.write_bytes(data[:-5])
    with pytest.raises(VectorsError, match="truncated"):
        read_npy(str(p), "here")
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(VectorsError, match="object"):
        read_npy(str(p), "here")
    p.write_bytes(b"not a numpy file at all")
    with pytest.raises(VectorsError, match="here"):
        read_npy(str(p), "here")


def test_write_case_replaces_a_folder_whole(tmp_path):
    case = Case("c", "op", "")
    case.add_input("x", np.arange(3.0))
    case.add_output("y", np.arange(3.0), 0, 0, "copy")
    write_case(str(tmp_path), case)
    (tmp_path / "c" / "stale.npy").write_bytes(b"x")
    write_case(str(tmp_path), case)
    assert sorted(os.listdir(tmp_path / "c")) == ["case.json", "x.npy", "y.npy"]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]


def test_other_format_versions_and_names_are_refused(exported, tmp_path):
    d = tmp_path / "v"
    shutil.copytree(exported, d)
    m = json.load(open(d / "manifest.json"))
    for field, value, msg in (("format_version", 2, "format version 2"),
                              ("format_version", "1", "format version '1'"),
                              ("format", "other", "format 'other'")):
        bad = dict(m, **{field: value})
        (d / "manifest.json").write_text(json.dumps(bad))
        with pytest.raises(VectorsError, match=msg):
            read_manifest(str(d))
