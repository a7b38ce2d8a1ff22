"""qdaed.io.modelfile: exact round trips, size on disk, bad files, atomic writes, no pickle."""

import json
import math
import os
import pickle
import struct

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given
from hypothesis import strategies as st

from qdaed.errors import InputError, ModelFileError
from qdaed.io import atomic
from qdaed.io.modelfile import (FORMAT_VERSION, accounted_bytes, load_checkpoint, load_model,
                                save_checkpoint, save_model)
from qdaed.nn.quant import quantize
from qdaed.train.optim import Adam
from tests.strategies import rng_from, seeds

HEADER = {"architecture": "StudentLSTM",
          "arch_config": {"input_size": 64, "hidden_size": 128, "num_layers": 2,
                          "num_classes": 3, "pooling": "mean"},
          "classes": ["dog", "baby_cry", "gunshot"], "thresholds": [0.43, 0.5123456789, 0.3],
          "seed": 7, "frames": 998, "qdaed_version": "0.1.0"}


def _lstm(rng, hidden=128, inputs=64, layers=2, classes=3):
    """PyTorch-named parameters of a 2-layer LSTM student with a linear head, float32."""
    p = {}
    for l in range(layers):
        p[f"weight_ih_l{l}"] = rng.standard_normal((4 * hidden, inputs if l == 0 else hidden))
        p[f"weight_hh_l{l}"] = rng.standard_normal((4 * hidden, hidden))
        p[f"bias_ih_l{l}"] = rng.standard_normal(4 * hidden)
        p[f"bias_hh_l{l}"] = rng.standard_normal(4 * hidden)
    p["fc.weight"] = rng.standard_normal((classes, hidden))
    p["fc.bias"] = rng.standard_normal(classes)
    return {n: a.astype(np.float32) for n, a in p.items()}


def _quantized_model(rng, bits=4, group="row", **kw):
    params = _lstm(rng, **kw)
    q = {n: quantize(a, bits, group=group) for n, a in params.items() if "weight" in n}
    return {n: a for n, a in params.items() if n not in q}, q


def _assert_same_quantized(a, b):
    assert (a.bits, a.group, a.symmetric, a.shape, a.dtype) == \
           (b.bits, b.group, b.symmetric, b.shape, b.dtype)
    for attr in ("codes", "alpha", "beta"):
        x, y = getattr(a, attr), getattr(b, attr)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    assert a.dequantize().tobytes() == b.dequantize().tobytes()


# --------------------------------------------------------------------------- round trips


def test_model_round_trip_is_bit_exact(tmp_path):
    tensors, quantized = _quantized_model(rng_from(0))
    tensors["normalizer.mean"] = rng_from(1).standard_normal(64).astype(np.float32)
    tensors["scalar"] = np.array(2.5, np.float32)   # 0-d shapes survive
    path = tmp_path / "m.safetensors"
    save_model(path, tensors, quantized, HEADER)
    mf = load_model(path, expect_arch="StudentLSTM")
    assert mf.header == HEADER
    assert mf.format_version == FORMAT_VERSION and mf.writer.startswith("qdaed ")
    assert sorted(mf.tensors) == sorted(tensors)
    for n, a in tensors.items():
        assert mf.tensors[n].dtype == a.dtype and mf.tensors[n].tobytes() == a.tobytes()
    assert sorted(mf.quantized) == sorted(quantized)
    for n, q in quantized.items():
        _assert_same_quantized(mf.quantized[n], q)
    params = mf.params()
    assert params["weight_hh_l1"].tobytes() == quantized["weight_hh_l1"].dequantize().tobytes()
    assert params["fc.bias"].tobytes() == tensors["fc.bias"].tobytes()


@pytest.mark.parametrize("bits, group, symmetric, dtype", [
    (1, "tensor", False, np.float32),
    (2, 5, False, np.float32),          # buckets of 5, last one short
    (3, "row", True, np.float32),
    (8, "row", False, np.float64),      # dequantizes to float64 by default
    (16, 7, True, np.float32),
])
def test_quantized_variants_round_trip(tmp_path, bits, group, symmetric, dtype):
    w = rng_from(bits).standard_normal((6, 11)).astype(dtype)
    q = quantize(w, bits, group=group, symmetric=symmetric)
    save_model(tmp_path / "m", {}, {"w": q}, {"architecture": "x"})
    mf = load_model(tmp_path / "m")
    _assert_same_quantized(mf.quantized["w"], q)
    assert mf.quantization["w"] == {"bits": bits, "group": group, "symmetric": symmetric,
                                    "shape": [6, 11], "dtype": np.dtype(dtype).name}


def test_tensors_of_mixed_kinds_come_back_in_the_layout_order_given(tmp_path):
    rng = rng_from(4)
    tensors = {"a": rng.standard_normal((2, 3)).astype(np.float32),
               "c": rng.standard_normal(5).astype(np.float32)}
    quantized = {"b": quantize(rng.standard_normal((4, 3)), 3, group="row"),
                 "d": quantize(rng.standard_normal((2, 2)), 8, group="tensor", symmetric=True)}
    order = ["d", "a", "b", "c"]
    save_model(tmp_path / "m", tensors, quantized, {"architecture": "x"}, order=order)
    layout = [("d", (2, 2)), ("a", (2, 3)), ("b", (4, 3)), ("c", (5,))]
    mf = load_model(tmp_path / "m", layout=layout)
    for n in tensors:
        assert mf.tensors[n].tobytes() == tensors[n].tobytes()
    for n in quantized:
        _assert_same_quantized(mf.quantized[n], quantized[n])
    # the same layout given as a function of the header
    assert load_model(tmp_path / "m", layout=lambda h: layout).header == {"architecture": "x"}


def test_implied_layout_is_required_and_checked(tmp_path):
    t = {"a": np.ones((2, 3), np.float32), "b": np.zeros(4, np.float32)}
    save_model(tmp_path / "m", t, {}, {"architecture": "x"}, order=["a", "b"])
    with pytest.raises(ModelFileError, match="implied by its architecture"):
        load_model(tmp_path / "m")
    # same sizes, other names or order or shapes: all refused by the digest
    for wrong in ([("b", (4,)), ("a", (2, 3))], [("a", (3, 2)), ("b", (4,))],
                  [("a", (2, 3)), ("B", (4,))]):
        with pytest.raises(ModelFileError, match="do not match the 'x' architecture"):
            load_model(tmp_path / "m", layout=wrong)


def test_an_explicit_layout_is_checked_against_a_given_one(tmp_path):
    save_model(tmp_path / "m", {"a": np.ones(3, np.float32)}, {}, {"architecture": "x"})
    assert load_model(tmp_path / "m", layout=[("a", (3,))]).tensors["a"].shape == (3,)
    with pytest.raises(ModelFileError, match="not the ones this architecture has"):
        load_model(tmp_path / "m", layout=[("a", (4,))])


def test_order_must_name_every_tensor_once(tmp_path):
    t = {"a": np.ones(2, np.float32), "b": np.ones(2, np.float32)}
    for order in (["a"], ["a", "a"], ["a", "b", "c"]):
        with pytest.raises(InputError, match="order: expected every tensor name exactly once"):
            save_model(tmp_path / "m", t, {}, {"architecture": "x"}, order=order)
    assert os.listdir(tmp_path) == []


def test_constant_tensor_round_trips(tmp_path):
    q = quantize(np.full((3, 4), 0.25, np.float32), 4, group="row")
    save_model(tmp_path / "m", {"b": np.zeros(1, np.float32)}, {"w": q}, {"architecture": "x"})
    mf = load_model(tmp_path / "m")
    np.testing.assert_array_equal(mf.quantized["w"].dequantize(), np.full((3, 4), 0.25))


def test_loaded_arrays_are_writeable_copies(tmp_path):
    save_model(tmp_path / "m", {"b": np.ones(3, np.float32)}, {}, {"architecture": "x"})
    b = load_model(tmp_path / "m").tensors["b"]
    b += 1.0
    assert b.flags.owndata and b.flags.c_contiguous


def test_file_is_plain_safetensors_with_three_concatenated_blobs(tmp_path):
    # Any safetensors reader can open it; the blobs are the tensors in layout order.
    tensors, quantized = _quantized_model(rng_from(2), hidden=4, inputs=3)
    save_model(tmp_path / "m", tensors, quantized, HEADER)
    plain = safetensors.numpy.load_file(str(tmp_path / "m"))
    assert sorted(plain) == ["codes", "float32", "scales"]
    np.testing.assert_array_equal(plain["float32"], np.concatenate(
        [a.reshape(-1) for a in tensors.values()]))
    np.testing.assert_array_equal(plain["codes"], np.concatenate(
        [q.packed() for q in quantized.values()]))
    np.testing.assert_array_equal(plain["scales"], np.concatenate(
        [np.concatenate([q.alpha, q.beta]) for q in quantized.values()]))


# --------------------------------------------------------------------------- size


def test_accounted_bytes_by_hand():
    # float32 (3, 5): 60 B.  4-bit (3, 5) by row: ceil(60/8) = 8 B codes + 3 groups · 8 B.
    # 3-bit (7,) whole tensor: ceil(21/8) = 3 B + 8 B.
    rng = rng_from(0)
    tensors = {"a": np.zeros((3, 5), np.float32)}
    quantized = {"q": quantize(rng.standard_normal((3, 5)), 4, group="row"),
                 "r": quantize(rng.standard_normal(7), 3, group="tensor")}
    assert accounted_bytes(tensors, quantized) == 60 + (8 + 24) + (3 + 8)


@pytest.mark.parametrize("order", [False, True])
def test_file_size_is_accounted_size_plus_a_small_header(tmp_path, order):
    # 2-layer LSTM, H = 128, 64 inputs, 3 classes; every weight matrix 4-bit with per-row
    # groups, biases float32: 139,492 accounted bytes. The tensor data on disk is exactly
    # that; the rest is the 8-byte length and the JSON table, which lists the layout (about
    # 40 bytes per tensor) unless the caller's architecture implies it (``order``).
    tensors, quantized = _quantized_model(rng_from(0))
    acc = accounted_bytes(tensors, quantized)
    want = (4 * 512 * 4 + 3 * 4                                   # biases
            + (512 * 64 + 3 * 512 * 128 + 3 * 128) * 4 // 8        # packed 4-bit codes
            + (4 * 512 + 3) * 8)                                   # α, β per row
    assert acc == want == 139_492
    path = tmp_path / "m.safetensors"
    names = list(tensors) + list(quantized)
    save_model(path, tensors, quantized, HEADER, order=names if order else None)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    assert size - 8 - n == acc
    assert 0 < size - acc < (1024 if order else 1500)


# --------------------------------------------------------------------------- bad files


def _raw(path, metadata, tensors=None):
    tensors = {"x": np.zeros(2, np.float32)} if tensors is None else tensors
    with open(path, "wb") as f:
        f.write(safetensors.numpy.save(tensors, metadata=metadata))
    return path


def _doc(**over):
    doc = {"format": "qdaed-model", "format_version": FORMAT_VERSION, "writer": "qdaed 0.1.0",
           "layout": [["x", [2]]], "quantization": [], "header": {"architecture": "StudentLSTM"}}
    doc.update(over)
    return {"qdaed": json.dumps(doc)}


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match="nope.safetensors: no such file"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(ModelFileError, match="not a file"):
        load_model(tmp_path)


@pytest.mark.parametrize("content", [b"", b"1234567", b"hello, this is a text file\n",
                                     struct.pack("<Q", 5) + b"{nope", struct.pack("<Q", 2) +
                                     b"[]", struct.pack("<Q", 10**9) + b"{}"])
def test_not_safetensors(tmp_path, content):
    p = tmp_path / "bad.bin"
    p.write_bytes(content)
    with pytest.raises(ModelFileError, match="bad.bin: not a safetensors file"):
        load_model(p)


def test_safetensors_without_qdaed_header(tmp_path):
    for i, meta in enumerate([None, {"format": "pt"}]):
        p = _raw(tmp_path / f"plain{i}", meta)
        with pytest.raises(ModelFileError, match="without a qdaed header"):
            load_model(p)


@pytest.mark.parametrize("meta, match", [
    ({"qdaed": "{not json"}, "malformed qdaed header"),
    ({"qdaed": "[1, 2]"}, r"malformed qdaed header \(format_version None"),
    (_doc(format_version="1"), "format_version '1'"),
    (_doc(format_version=0), "format_version 0"),
    (_doc(header=None), "no 'header' object or 'quantization' list"),
    (_doc(quantization={"w": {"bits": 4}}), "no 'header' object or 'quantization' list"),
    (_doc(quantization=[{"bits": 4, "tensors": ["w"]}]), "'w', which is not in the layout"),
    (_doc(quantization=[{"bits": 4}]), "malformed 'quantization' entry"),
    (_doc(layout=[["x", "two"]]), "malformed 'layout'"),
    (_doc(layout=None), "implied by its architecture"),
    (_doc(format_version=1), "format version 1.*re-run the pipeline"),
])
def test_malformed_qdaed_header(tmp_path, meta, match):
    with pytest.raises(ModelFileError, match=match):
        load_model(_raw(tmp_path / "m", meta))


def test_newer_format_version_names_both_versions(tmp_path):
    p = _raw(tmp_path / "m", _doc(format_version=FORMAT_VERSION + 1, writer="qdaed 9.0"))
    with pytest.raises(ModelFileError, match=(
            f"format version {FORMAT_VERSION + 1} \\(by qdaed 9.0\\).*reads format versions "
            f"up to {FORMAT_VERSION}: upgrade qdaed")):
        load_model(p)


def test_other_architecture_refused(tmp_path):
    save_model(tmp_path / "m", {"b": np.zeros(1, np.float32)}, {}, {"architecture": "ResNet"})
    with pytest.raises(ModelFileError, match="holds a 'ResNet' model, expected 'StudentLSTM'"):
        load_model(tmp_path / "m", expect_arch="StudentLSTM")
    assert load_model(tmp_path / "m", expect_arch="ResNet").header["architecture"] == "ResNet"


def test_checkpoint_and_model_are_not_confused(tmp_path):
    save_checkpoint(tmp_path / "c", {"a": np.zeros(1)}, {"epoch": 1})
    with pytest.raises(ModelFileError, match="is a training checkpoint, expected a model file"):
        load_model(tmp_path / "c")
    save_model(tmp_path / "m", {"b": np.zeros(1, np.float32)}, {}, {"architecture": "x"})
    with pytest.raises(ModelFileError, match="is a model file, expected a training checkpoint"):
        load_checkpoint(tmp_path / "m")


def _blobs(q, floats=()):
    return {"float32": np.asarray(floats, np.float32), "codes": q.packed(),
            "scales": np.concatenate([q.alpha, q.beta])}


def test_damaged_tensor_data(tmp_path):
    q = quantize(rng_from(0).standard_normal((4, 6)), 4, group="row")
    meta = _doc(layout=[["w", [4, 6]]], quantization=[{"bits": 4, "group": "row",
                                                       "tensors": ["w"]}])
    good = _blobs(q)
    del good["float32"]
    assert load_model(_raw(tmp_path / "ok", meta, good)).quantized["w"].bits == 4
    cases = [
        ({**good, "extra": np.zeros(1, np.float32)}, r"unexpected tensors \['extra'\]"),
        ({**good, "codes": q.packed()[:-1]}, "end before the codes of 'w'"),
        ({**good, "codes": np.concatenate([q.packed(), [0]]).astype(np.uint8)},
         r"\{'codes': 1\} values left over"),
        ({**good, "scales": good["scales"][:-1]}, "end before the scales of 'w'"),
        ({**good, "codes": q.packed().astype(np.int16)}, "'codes' is int16"),
        ({**good, "float32": np.ones(2, np.float32)}, r"\{'float32': 2\} values left over"),
    ]
    for i, (tensors, match) in enumerate(cases):
        with pytest.raises(ModelFileError, match=match):
            load_model(_raw(tmp_path / f"b{i}", meta, tensors))
    # a spec without its bit width; a bit width that does not fit the stored codes
    bad = _doc(layout=[["w", [4, 6]]], quantization=[{"group": "row", "tensors": ["w"]}])
    with pytest.raises(ModelFileError, match="quantized tensor 'w' is malformed"):
        load_model(_raw(tmp_path / "c", bad, good))
    bad = _doc(layout=[["w", [4, 6]]], quantization=[{"bits": 2, "group": "row",
                                                      "tensors": ["w"]}])
    with pytest.raises(ModelFileError):
        load_model(_raw(tmp_path / "d", bad, good))


def test_truncated_file(tmp_path):
    tensors, quantized = _quantized_model(rng_from(0), hidden=8, inputs=4)
    save_model(tmp_path / "m", tensors, quantized, HEADER)
    data = (tmp_path / "m").read_bytes()
    (tmp_path / "m").write_bytes(data[:-100])
    with pytest.raises(ModelFileError, match="damaged safetensors data"):
        load_model(tmp_path / "m")


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("tensors, quantized, header, match", [
    ({"w": np.zeros(2)}, {}, {"architecture": "x"}, r"tensors\['w'\]: model files hold "
                                                      r"float32, got float64"),
    ({"": np.zeros(2, np.float32)}, {}, {"architecture": "x"}, "non-empty strings"),
    ({"w": np.zeros(2, np.int64)}, {}, {"architecture": "x"}, "hold float32, got int64$"),
    ({"w": [1.0]}, {}, {"architecture": "x"}, "expected a numpy array"),
    ({}, {"w": np.zeros(2, np.float32)}, {"architecture": "x"}, "expected a qdaed.nn.quant"),
    ({}, {}, {"seed": 1}, r"header\['architecture'\]: expected a non-empty string"),
    ({}, {}, {"architecture": "x", "thresholds": [float("nan")]}, "cannot be written as JSON"),
    ({}, {}, {"architecture": "x", "w": np.zeros(2)}, "ndarray is not JSON-serialisable"),
    ({}, {}, [("architecture", "x")], "header: expected a dict"),
])
def test_bad_save_arguments(tmp_path, tensors, quantized, header, match):
    with pytest.raises(InputError, match=match):
        save_model(tmp_path / "m", tensors, quantized, header)
    assert os.listdir(tmp_path) == []


def test_name_in_both_tensors_and_quantized_refused(tmp_path):
    q = quantize(np.ones((2, 2)), 4)
    with pytest.raises(InputError, match=r"share names \['w'\]"):
        save_model(tmp_path / "m", {"w": np.ones((2, 2), np.float32)}, {"w": q},
                   {"architecture": "x"})


def test_unwritable_destination_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="cannot write the file"):
        save_model(tmp_path / "missing" / "m", {}, {}, {"architecture": "x"})


@pytest.mark.parametrize("save", ["model", "checkpoint"])
def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch, save):
    path = tmp_path / "m"
    if save == "model":
        save_model(path, {"b": np.ones(3, np.float32)}, {}, {"architecture": "x"})
    else:
        save_checkpoint(path, {"b": np.ones(3)}, {"epoch": 1})
    before = path.read_bytes()

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(ModelFileError, match="No space left on device"):
        if save == "model":
            save_model(path, {"b": np.zeros(3, np.float32)}, {}, {"architecture": "x"})
        else:
            save_checkpoint(path, {"b": np.zeros(3)}, {"epoch": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m"]
    if save == "model":
        np.testing.assert_array_equal(load_model(path).tensors["b"], np.ones(3))
    else:
        assert load_checkpoint(path)[1] == {"epoch": 1}


def test_no_pickle_is_used(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    for name in ("load", "loads", "dump", "dumps"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(np, "load", forbidden)
    tensors, quantized = _quantized_model(rng_from(0), hidden=4, inputs=3)
    save_model(tmp_path / "m", tensors, quantized, HEADER)
    load_model(tmp_path / "m")
    save_checkpoint(tmp_path / "c", tensors, {"epoch": 1})
    load_checkpoint(tmp_path / "c")
    assert b"\x80\x04\x95" not in (tmp_path / "m").read_bytes()[:64]   # no pickle protocol 4


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(12345)
    rng.standard_normal(17)                     # move the state off its seed
    arrays = {"model/weight": rng.standard_normal((5, 3)),
              "model/bias": rng.standard_normal(5).astype(np.float32),
              "opt/step": np.array(7, dtype=np.int64),
              "mask": np.array([True, False]),
              "codes": np.arange(6, dtype=np.uint16).reshape(2, 3)}
    state = {"epoch": 3, "best_eer": 0.1 + 0.2, "history": {"loss": [0.5, float("nan")]},
             "inf": float("inf"), "none": None, "rng": rng.bit_generator.state,
             "np_scalar": np.float32(0.25), "np_int": np.int64(5)}
    save_checkpoint(tmp_path / "c", arrays, state)
    got_arrays, got_state = load_checkpoint(tmp_path / "c")
    assert sorted(got_arrays) == sorted(arrays)
    for n, a in arrays.items():
        assert got_arrays[n].dtype == a.dtype and got_arrays[n].shape == a.shape
        assert got_arrays[n].tobytes() == a.tobytes()
    assert got_state["best_eer"] == 0.1 + 0.2
    assert math.isnan(got_state["history"]["loss"][1]) and got_state["inf"] == math.inf
    assert got_state["np_scalar"] == 0.25 and got_state["np_int"] == 5
    assert got_state["rng"] == rng.bit_generator.state          # 128-bit ints exact
    restored = np.random.default_rng()
    restored.bit_generator.state = got_state["rng"]
    np.testing.assert_array_equal(restored.standard_normal(8), rng.standard_normal(8))


@given(seed=seeds, steps=st.integers(1, 4))
def test_optimizer_resumed_from_checkpoint_continues_bit_for_bit(tmp_path_factory, seed, steps):
    path = tmp_path_factory.mktemp("ckpt") / "c"
    rng = rng_from(seed)
    params = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(3)}
    grads = [{n: rng.standard_normal(a.shape) for n, a in params.items()} for _ in range(6)]
    opt = Adam(params, lr=1e-2)
    for g in grads[:steps]:
        opt.step(g)
    sd = opt.state_dict()
    save_checkpoint(path, {**{f"model/{n}": a for n, a in params.items()},
                           **{f"opt/{k}": v for k, v in sd.items() if isinstance(v, np.ndarray)}},
                    {"opt": {k: v for k, v in sd.items() if not isinstance(v, np.ndarray)}})
    for g in grads[steps:]:
        opt.step(g)

    arrays, state = load_checkpoint(path)
    p2 = {n[6:]: a for n, a in arrays.items() if n.startswith("model/")}
    opt2 = Adam(p2, lr=1e-2)
    opt2.load_state_dict({**{k[4:]: v for k, v in arrays.items() if k.startswith("opt/")},
                          **state["opt"]})
    for g in grads[steps:]:
        opt2.step(g)
    for n in params:
        assert p2[n].tobytes() == params[n].tobytes()


@pytest.mark.parametrize("arrays, state, match", [
    ({"a": np.zeros(2, dtype=object)}, {}, r"arrays\['a'\]: expected a numeric numpy array"),
    ({"a": [1, 2]}, {}, r"arrays\['a'\]"),
    ({"__metadata__": np.zeros(1)}, {}, "other than '__metadata__'"),
    ({}, {"x": np.zeros(2)}, "state: cannot be written as JSON"),
    ({}, {"x": {1, 2}}, "state: cannot be written as JSON"),
    ({}, [1], "state: expected a dict"),
])
def test_bad_checkpoint_arguments(tmp_path, arrays, state, match):
    with pytest.raises(InputError, match=match):
        save_checkpoint(tmp_path / "c", arrays, state)
    assert os.listdir(tmp_path) == []
