"""qdaed.io.modelfile: the v3 container (tensors by name, SHA-256, bounded strict reading),
checkpoints, atomic writes, no pickle. The model document's schema is tests/test_detector.py's
and tests/io/test_header.py's."""

import json
import math
import os
import pickle
import struct
from types import SimpleNamespace

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given
from hypothesis import strategies as st

from qdaed.errors import InputError, ModelFileError
from qdaed.formats.sizes import accounted_bytes
from qdaed.io import atomic
from qdaed.io.checkpoint import load_checkpoint, save_checkpoint
from qdaed.io.modelfile import MAX_HEADER_BYTES, encode_model, read_model, write_model
from qdaed.io.strictjson import JSONError, parse_json
from qdaed.nn.quant import quantize, tensor_bytes
from qdaed.train.optim import Adam
from tests.io import files
from tests.strategies import rng_from, seeds

DOC = {"format": "qdaed-model", "format_version": 3, "writer": "test", "x": [1, 2.5, "é"]}


def _tensors(seed=0):
    rng = rng_from(seed)
    return [("a.weight", rng.standard_normal((3, 4)).astype(np.float32)),
            ("a.bias", rng.standard_normal(3).astype(np.float32)),
            ("b.codes", rng.integers(0, 256, 7).astype(np.uint8)),
            ("b.scales", rng.standard_normal((2, 2)).astype(np.float32)),
            ("c", rng.standard_normal(3).astype(np.float32))]


def _layout(tensors):
    codes = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8"}
    return [(n, codes[a.dtype], a.shape) for n, a in tensors]


def _validate(tensors):
    return lambda doc: SimpleNamespace(layout=_layout(tensors))


def _file(tmp_path, tensors=None, doc=DOC, name="m"):
    tensors = _tensors() if tensors is None else tensors
    path = tmp_path / name
    write_model(path, doc, tensors)
    return path


# --------------------------------------------------------------------------- strict JSON


@pytest.mark.parametrize("text, match", [
    ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ('{"a": NaN}', "NaN is not JSON"),
    ('{"a": -Infinity}', "-Infinity is not JSON"),
    ('{"a": 1e400}', "overflows a double"),
    ('[' * 33 + ']' * 33, "nested 33 levels deep"),
    ('{"a": "' + '[' * 100 + '"}', None),            # brackets inside a string do not count
    (b'{"a": "\xff"}'.decode("unicode_escape").encode("latin-1"), "not UTF-8"),
    ('{"a": ' + "9" * 5000 + '}', "a number of 5,000 characters"),
    ('{"a": 1} x', "Extra data"),
])
def test_strict_json(text, match):
    raw = text if isinstance(text, bytes) else text.encode()
    if match is None:
        assert parse_json(raw) == {"a": "[" * 100}
        return
    with pytest.raises(JSONError, match=match):
        parse_json(raw)


def test_deep_nesting_is_refused_before_parsing():
    # 100,000 levels would be a RecursionError in json.loads
    with pytest.raises(JSONError, match="nested 100000 levels"):
        parse_json(b"[" * 100_000 + b"]" * 100_000)


# --------------------------------------------------------------------------- round trips


def test_round_trip_is_bit_exact_and_any_safetensors_reader_gets_the_tensors(tmp_path):
    tensors = _tensors()
    path = _file(tmp_path, tensors)
    mf = read_model(path, _validate(tensors))
    assert mf.doc == DOC
    assert list(mf.tensors) == [n for n, _ in tensors]
    plain = safetensors.numpy.load_file(str(path))
    for n, a in tensors:
        assert mf.tensors[n].dtype == a.dtype and mf.tensors[n].tobytes() == a.tobytes()
        assert plain[n].dtype == a.dtype and plain[n].tobytes() == a.tobytes()
        assert mf.tensors[n].flags.writeable and mf.tensors[n].flags.owndata
    data = path.read_bytes()
    # the data section is the tensors back to back, in the order given
    assert files.split(data)[1] == b"".join(a.tobytes() for _, a in tensors)
    assert mf.header_bytes + sum(a.nbytes for _, a in tensors) == mf.file_bytes == len(data)
    # the digest, recomputed from the format's definition
    doc_text = files.document(data)
    assert json.loads(doc_text) == DOC
    assert doc_text == json.dumps(DOC, sort_keys=True, separators=(",", ":"))   # canonical
    assert mf.sha256 == files.sha256(doc_text, files.split(data)[1])
    assert encode_model(DOC, tensors) == data                  # deterministic bytes


def test_the_table_is_padded_to_8_bytes(tmp_path):
    (n,) = struct.unpack("<Q", _file(tmp_path).read_bytes()[:8])
    assert n % 8 == 0


# --------------------------------------------------------------------------- damaged files


def _refused(path, tensors, match):
    with pytest.raises(ModelFileError, match=match):
        read_model(path, _validate(tensors))


def test_any_flipped_bit_of_the_data_or_the_document_is_refused(tmp_path):
    tensors = _tensors()
    data = _file(tmp_path, tensors).read_bytes()
    table_text, body = files.split(data)
    for i, pos in enumerate(range(0, len(body), 7)):
        flipped = bytearray(body)
        flipped[pos] ^= 1 << (i % 8)
        p = tmp_path / f"b{i}"
        p.write_bytes(files.assemble(table_text, bytes(flipped)))
        _refused(p, tensors, "SHA-256 .* does not match")
    p = tmp_path / "d"
    p.write_bytes(files.with_document(data, files.document(data).replace("2.5", "2.6"),
                                      resign=False))
    _refused(p, tensors, "does not match")


@pytest.mark.parametrize("edit, match", [
    (lambda t: t["a.bias"].update(dtype="F64"), "tensor 'a.bias': table entry"),
    (lambda t: t["a.weight"].update(shape=[4, 3]), "tensor 'a.weight': table entry"),
    (lambda t: t["a.weight"].update(shape=[3.0, 4]), "tensor 'a.weight': table entry"),
    # two tensors of the same size swapped: the data section and its digest are unchanged
    (lambda t: (lambda a, c: (t["a.bias"].update(data_offsets=c),
                              t["c"].update(data_offsets=a)))(t["a.bias"]["data_offsets"],
                                                              t["c"]["data_offsets"]),
     "tensor 'a.bias': table entry"),
    (lambda t: t.pop("c"), r"missing 'c'"),
    (lambda t: t.update(d=t["c"]), r"unexpected 'd'"),
    (lambda t: t["__metadata__"].update(other="1"), r"__metadata__: unexpected keys"),
    (lambda t: t["__metadata__"].update(qdaed_sha256="0" * 63), "64 lowercase hex"),
    (lambda t: t["__metadata__"].pop("qdaed_sha256"), "64 lowercase hex"),
    (lambda t: t["__metadata__"].pop("qdaed"), "without a qdaed document"),
    (lambda t: t["__metadata__"].update(qdaed="[1"), "not strict JSON"),
])
def test_a_table_that_does_not_match_the_document_is_refused(tmp_path, edit, match):
    tensors = _tensors()
    p = tmp_path / "e"
    p.write_bytes(files.edit_table(_file(tmp_path, tensors).read_bytes(), edit))
    _refused(p, tensors, match)


def test_truncated_or_extended_files_are_refused_before_the_data_are_read(tmp_path):
    tensors = _tensors()
    data = _file(tmp_path, tensors).read_bytes()
    for i, cut in enumerate([len(data) - 1, len(data) - 40]):
        (tmp_path / f"t{i}").write_bytes(data[:cut])
        _refused(tmp_path / f"t{i}", tensors, "truncated")
    (tmp_path / "x").write_bytes(data + b"\0")
    _refused(tmp_path / "x", tensors, "extra bytes at the end")


@pytest.mark.parametrize("content, match", [
    (b"", "not a safetensors file.*0 bytes"),
    (b"1234567", "not a safetensors file"),
    (b"hello, this is a text file\n", "exceeds the file"),
    (struct.pack("<Q", 5) + b"{nope", "not strict JSON"),
    (struct.pack("<Q", 2) + b"[]", "not an object"),
    (struct.pack("<Q", 2**63) + b"{}", "exceeds the file"),
])
def test_not_safetensors(tmp_path, content, match):
    p = tmp_path / "bad.bin"
    p.write_bytes(content)
    _refused(p, [], "bad.bin: .*" + match)


def test_a_header_over_the_bound_is_refused_before_it_is_read(tmp_path, monkeypatch):
    p = tmp_path / "big"
    p.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b" " * (MAX_HEADER_BYTES + 8))
    reads = []
    real_open = open

    class Spy:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            reads.append(n)
            return self.f.read(n)

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr("builtins.open", lambda *a, **k: Spy(real_open(*a, **k)))
    _refused(p, [], "header length 1,048,577 bytes, more than a qdaed file may have")
    assert reads == [8]


def test_missing_file_and_directory(tmp_path):
    _refused(tmp_path / "nope.safetensors", [], "nope.safetensors: no such file")
    _refused(tmp_path, [], "not a file")


def test_plain_safetensors_and_older_and_newer_versions(tmp_path):
    p = tmp_path / "plain"
    p.write_bytes(safetensors.numpy.save({"x": np.zeros(2, np.float32)}))
    _refused(p, [], "without a qdaed document")
    v2 = {"format": "qdaed-model", "format_version": 2, "writer": "qdaed 0.1.0",
          "layout_sha256": "0" * 16, "quantization": [], "header": {"architecture": "x"}}
    p.write_bytes(safetensors.numpy.save({"float32": np.zeros(2, np.float32)},
                                         metadata={"qdaed": json.dumps(v2)}))
    _refused(p, [], r"format version 2 \(written by 'qdaed 0.1.0'\); this qdaed reads "
                    r"version 3 only.*Re-create it with this qdaed.*qdaed import")
    p = _file(tmp_path, [], {**DOC, "format_version": 4, "writer": "qdaed 9.0"})
    _refused(p, [], r"format version 4 \(by 'qdaed 9.0'\); this qdaed .* reads version 3: "
                    r"upgrade qdaed")
    for bad in ("3", True, 0, None):
        p = _file(tmp_path, [], {**DOC, "format_version": bad})
        _refused(p, [], "format_version: expected an integer")


def test_checkpoint_and_model_are_not_confused(tmp_path):
    save_checkpoint(tmp_path / "c", {"a": np.zeros(1)}, {"epoch": 1})
    _refused(tmp_path / "c", [], "is a training checkpoint, expected a model file")
    with pytest.raises(ModelFileError, match="is a model file, expected a training checkpoint"):
        load_checkpoint(_file(tmp_path))


# --------------------------------------------------------------------------- size


def test_tensor_bytes_and_accounted_bytes_by_hand():
    # float32 (3, 5): 60 B.  4-bit (3, 5) by row: ceil(60/8) = 8 B codes + 3 groups · 8 B.
    # 3-bit (7,) whole tensor: ceil(21/8) = 3 B + 8 B.
    assert tensor_bytes(15) == 60
    assert tensor_bytes(15, 4, 3) == 8 + 24 and tensor_bytes(7, 3, 1) == 3 + 8
    assert tensor_bytes(9, 1, 0) == 2 and tensor_bytes(3, 16, 1) == 6 + 8
    rng = rng_from(0)
    tensors = {"a": np.zeros((3, 5), np.float32)}
    quantized = {"q": quantize(rng.standard_normal((3, 5)), 4, group="row"),
                 "r": quantize(rng.standard_normal(7), 3, group="tensor")}
    assert accounted_bytes(tensors, quantized) == 60 + (8 + 24) + (3 + 8)
    assert quantized["q"].nbytes == 32 and quantized["r"].nbytes == 11


# --------------------------------------------------------------------------- writing


def test_bad_write_arguments(tmp_path):
    for tensors, match in [([("a", np.zeros(2))], "float32, uint8, int8 or int32, got float64"),
                           ([("", np.zeros(2, np.float32))], "unique non-empty"),
                           ([("a", np.zeros(1, np.float32))] * 2, "unique non-empty"),
                           ([("__metadata__", np.zeros(1, np.float32))], "other than")]:
        with pytest.raises(InputError, match=match):
            write_model(tmp_path / "m", DOC, tensors)
    with pytest.raises(InputError, match="cannot be written as JSON"):
        write_model(tmp_path / "m", {"x": float("nan")}, [])
    assert os.listdir(tmp_path) == []


def test_unwritable_destination_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="cannot write the file"):
        write_model(tmp_path / "missing" / "m", DOC, [])


@pytest.mark.parametrize("save", ["model", "checkpoint"])
def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch, save):
    path = tmp_path / "m"
    one = [("b", np.ones(3, np.float32))]
    if save == "model":
        write_model(path, DOC, one)
    else:
        save_checkpoint(path, {"b": np.ones(3)}, {"epoch": 1})
    before = path.read_bytes()

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(ModelFileError, match="No space left on device"):
        if save == "model":
            write_model(path, DOC, [("b", np.zeros(3, np.float32))])
        else:
            save_checkpoint(path, {"b": np.zeros(3)}, {"epoch": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m"]
    if save == "model":
        np.testing.assert_array_equal(read_model(path, _validate(one)).tensors["b"],
                                      np.ones(3))
    else:
        assert load_checkpoint(path)[1] == {"epoch": 1}


def test_no_pickle_is_used(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    for name in ("load", "loads", "dump", "dumps"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(np, "load", forbidden)
    tensors = _tensors()
    read_model(_file(tmp_path, tensors), _validate(tensors))
    save_checkpoint(tmp_path / "c", dict(tensors), {"epoch": 1})
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
