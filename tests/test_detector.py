"""qdaed.detector: size accounting, model files (v3) readable by name, exact round trips."""

import json
import os
import struct

import numpy as np
import pytest
import safetensors.numpy

from qdaed.detector import Detector
from qdaed.errors import InputError, ModelFileError
from qdaed.features.fbank import LfbeOptions
from qdaed.models import ResNet, StudentLSTM
from tests.io import files
from tests.io.detectors import CLASSES, make_detector, resnet, student
from tests.strategies import rng_from


def test_accounted_bytes_count_parameters_and_normalisation_by_hand():
    # StudentLSTM(8, 4, 1, 3): W_ih 16x8, W_hh 16x4, 2 biases of 16, fc 3x4 + 3 = 239 params.
    model = StudentLSTM(8, 4, 1, 3)
    assert make_detector(model, num_bins=8).accounted_bytes() == 4 * 239 + 4 * 2 * 8
    # 4-bit, per row: W_ih 128 values -> 64 B + 16 rows·8; W_hh 64 -> 32 B + 16·8;
    # fc.weight 12 -> 6 B + 3·8; float: biases 32 + fc.bias 3 + normalisation 16 values.
    assert make_detector(model, bits=4, num_bins=8).accounted_bytes() == \
        (64 + 128) + (32 + 128) + (6 + 24) + 4 * (32 + 3 + 16)


@pytest.mark.parametrize("make, bits, limit", [
    (lambda: StudentLSTM(64, 32, 1, 3), None, 2048),
    (lambda: StudentLSTM(64, 32, 1, 3), 4, 3072),
    (lambda: StudentLSTM(64, 512, 2, 3), 2, 4096),    # the paper's student shape
    (lambda: ResNet(18, width=16), None, 12_288),
    (lambda: ResNet(50), None, 32_768),               # 267 tensors, 94 MB
])
def test_model_file_is_the_accounted_size_plus_its_json_table(tmp_path, make, bits, limit):
    det = make_detector(make(), bits)
    path = tmp_path / "m.safetensors"
    det.save(path)
    overhead = os.path.getsize(path) - det.accounted_bytes()
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    assert overhead == 8 + n                  # tensor data = accounted bytes, exactly
    assert 0 < overhead < limit


def _unpack(packed, n, k):
    """Codes from a little-endian bit stream (least significant bit first), by hand."""
    bits = np.unpackbits(packed, bitorder="little")[:n * k].reshape(n, k)
    return (bits.astype(np.int64) << np.arange(k)).sum(axis=1)


@pytest.mark.parametrize("bits", [None, 3, 4])
def test_any_safetensors_reader_gets_every_tensor_by_name(tmp_path, bits):
    det = student(bits, hidden=8, layers=2)
    det.save(tmp_path / "m")
    plain = safetensors.numpy.load_file(str(tmp_path / "m"))
    state = det.model.state_dict()
    expected = []
    for name in state:
        expected += [f"{name}.codes", f"{name}.scales"] if name in det.quantized else [name]
    assert sorted(plain) == sorted(expected + ["normalizer.mean", "normalizer.std"])
    for name, value in state.items():
        if name not in det.quantized:
            assert plain[name].dtype == np.float32 and plain[name].tobytes() == value.tobytes()
            continue
        scales = plain[f"{name}.scales"]
        assert plain[f"{name}.codes"].dtype == np.uint8
        assert scales.dtype == np.float32 and scales.shape == (value.shape[0], 2)   # per row
        codes = _unpack(plain[f"{name}.codes"], value.size, bits).reshape(value.shape)
        # Q = β + α · code / (2^k − 1), per row, in float64 then float32
        deq = scales[:, 1:2].astype(np.float64) + \
            scales[:, 0:1].astype(np.float64) * codes / (2 ** bits - 1)
        np.testing.assert_array_equal(deq.astype(np.float32), value)
    np.testing.assert_array_equal(plain["normalizer.mean"], det.normalizer.mean)
    np.testing.assert_array_equal(plain["normalizer.std"], det.normalizer.std)


def test_the_document_holds_every_lfbe_option_and_each_quantized_tensor(tmp_path):
    det = student(4, features={"high_freq": 4000.0, "preemphasis": 0.0})
    det.save(tmp_path / "m")
    doc = json.loads(files.document((tmp_path / "m").read_bytes()))
    assert doc["features"] == LfbeOptions(num_mel_bins=16, high_freq=4000.0,
                                          preemphasis=0.0).to_dict()
    assert doc["quantized"]["lstm.weight_ih_l0"] == {
        "bits": 4, "group": "row", "rounding": "nearest", "symmetric": False, "shape": [32, 16]}
    assert doc["architecture"] == "StudentLSTM" and doc["arch_config"] == det.model.config
    assert doc["classes"] == list(CLASSES) and doc["frames"] == 40
    assert doc["thresholds"] == list(det.thresholds) and doc["info"] == det.info
    assert doc["format"] == "qdaed-model" and doc["format_version"] == 3


@pytest.mark.parametrize("make", [
    lambda: student(None, layers=2),
    lambda: student(3, layers=2, features={"high_freq": 4000.0, "preemphasis": 0.0}),
    lambda: student(2, pooling="max", group=5),
    lambda: student(4, pooling="last", symmetric=True),
    lambda: resnet(),
])
def test_round_trip_is_bit_exact(tmp_path, make):
    det = make()
    det.save(tmp_path / "m")
    back = Detector.load(tmp_path / "m")
    bins = det.normalizer.mean.size
    x = det.prepare([rng_from(1).standard_normal((t, bins)) for t in (30, 40, 55)])
    np.testing.assert_array_equal(back.prepare([np.ones((12, bins))]),
                                  det.prepare([np.ones((12, bins))]))
    np.testing.assert_array_equal(back.scores(x), det.scores(x))
    np.testing.assert_array_equal(back.thresholds, det.thresholds)
    assert back.features == det.features and back.classes == CLASSES and back.frames == 40
    assert back.info == det.info
    sd, sd0 = back.model.state_dict(), det.model.state_dict()
    assert list(sd) == list(sd0) and all(sd[k].tobytes() == sd0[k].tobytes() for k in sd)
    assert sorted(back.quantized) == sorted(det.quantized)
    for n, q in det.quantized.items():
        b = back.quantized[n]
        assert (b.bits, b.group, b.symmetric, b.rounding) == (q.bits, q.group, q.symmetric,
                                                               q.rounding)
        for attr in ("codes", "alpha", "beta"):
            assert getattr(b, attr).tobytes() == getattr(q, attr).tobytes()
    back.save(tmp_path / "again")                     # the same bytes again
    assert (tmp_path / "again").read_bytes() == (tmp_path / "m").read_bytes()


def test_expect_arch(tmp_path):
    resnet().save(tmp_path / "m")
    with pytest.raises(ModelFileError, match="holds a 'ResNet' model, expected 'StudentLSTM'"):
        Detector.load(tmp_path / "m", expect_arch="StudentLSTM")


def test_a_detector_that_could_not_be_read_back_is_not_saved(tmp_path):
    det = student()
    for edit, match in [(lambda d: setattr(d, "thresholds", np.array([0.5, np.nan, 0.5])),
                         "not JSON"),
                        (lambda d: setattr(d, "thresholds", np.array([0.5, 0.5])),
                         "thresholds: expected a list of 3 numbers"),
                        (lambda d: setattr(d, "classes", ("a", "a", "b")),
                         "classes: names must be unique"),
                        (lambda d: setattr(d, "frames", 0), "frames: expected an integer in")]:
        bad = student()
        edit(bad)
        with pytest.raises(InputError, match=match):
            bad.save(tmp_path / "m")
    assert os.listdir(tmp_path) == []
    det.save(tmp_path / "m")


def test_a_version_2_file_names_the_fix(tmp_path):
    v2 = {"format": "qdaed-model", "format_version": 2, "writer": "qdaed 0.1.0",
          "layout_sha256": "0123456789abcdef", "quantization": [],
          "header": {"architecture": "StudentLSTM"}}
    (tmp_path / "old.safetensors").write_bytes(safetensors.numpy.save(
        {"float32": np.zeros(4, np.float32)}, metadata={"qdaed": json.dumps(v2)}))
    with pytest.raises(ModelFileError, match=r"old.safetensors: a model file of format version "
                                             r"2 .*Re-create it with this qdaed"):
        Detector.load(tmp_path / "old.safetensors")


def test_weights_within_bounds_that_overflow_in_a_resnet_are_a_model_file_error(tmp_path):
    import warnings

    from tests.io.detectors import resnet

    det = resnet()
    state = det.model.state_dict()
    det.model.load_state_dict({k: (np.full_like(v, 1e6) if v.ndim == 4 else v)
                               for k, v in state.items()})      # every conv weight at 1e6
    path = tmp_path / "overflow.safetensors"
    det.save(path)
    loaded = Detector.load(path)       # every value is within the loader's bound of 1e6
    wav = np.random.default_rng(0).normal(scale=0.1, size=16000).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no NumPy overflow warning leaks out
        with pytest.raises(ModelFileError, match="non-finite logits on finite input"):
            loaded.predict(wav, 16000)
        with pytest.raises(ModelFileError, match="non-finite logits"):
            loaded.scores(loaded.prepare([np.zeros((40, 32), np.float32)]))
