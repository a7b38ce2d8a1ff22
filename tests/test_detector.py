"""qdaed.detector: size accounting, model files of constant overhead, exact round trips."""

import dataclasses
import json
import os
import struct

import numpy as np
import pytest
import safetensors.numpy

from qdaed.detector import FEATURE_BASE, FEATURE_BASES, Detector
from qdaed.errors import ModelFileError
from qdaed.features.fbank import LfbeOptions
from qdaed.models import ResNet, StudentLSTM
from qdaed.nn.quant import quantize
from qdaed.features.prepare import Normalizer
from tests.strategies import rng_from

CLASSES = ("dog", "baby_cry", "gunshot")


def _detector(model, bits=None, features=None, num_bins=64, seed=0):
    rng = rng_from(seed)
    quantized = {}
    if bits:
        quantized = {n: quantize(v, bits, group="row") for n, v in model.params.items()
                     if n.rsplit(".", 1)[-1].startswith("weight") and v.ndim >= 2}
        # as the schedules deploy it: the model runs with the dequantized weights
        model.load_state_dict({**model.params,
                               **{n: q.dequantize() for n, q in quantized.items()}})
    norm = Normalizer(rng.standard_normal(num_bins).astype(np.float32),
                      rng.uniform(0.5, 2.0, num_bins).astype(np.float32))
    feats = dataclasses.asdict(LfbeOptions(num_mel_bins=num_bins, **(features or {})))
    return Detector(model, norm, 40, CLASSES, feats, rng.uniform(0.1, 0.9, 3), quantized,
                    {"name": "qd-4bit" if bits else "student", "schedule": "test",
                     "bits": bits, "seed": seed})


def test_feature_base_table_is_pinned_to_the_lfbe_defaults():
    # Files name this table instead of storing every option: it must be the defaults.
    assert FEATURE_BASES[FEATURE_BASE] == dataclasses.asdict(LfbeOptions())


def test_accounted_bytes_count_parameters_and_normalisation_by_hand():
    # StudentLSTM(8, 4, 1, 3): W_ih 16x8, W_hh 16x4, 2 biases of 16, fc 3x4 + 3 = 239 params.
    model = StudentLSTM(8, 4, 1, 3)
    assert _detector(model, num_bins=8).accounted_bytes() == 4 * 239 + 4 * 2 * 8
    # 4-bit, per row: W_ih 128 values -> 64 B + 16 rows·8; W_hh 64 -> 32 B + 16·8;
    # fc.weight 12 -> 6 B + 3·8; float: biases 32 + fc.bias 3 + normalisation 16 values.
    assert _detector(model, bits=4, num_bins=8).accounted_bytes() == \
        (64 + 128) + (32 + 128) + (6 + 24) + 4 * (32 + 3 + 16)


@pytest.mark.parametrize("make, bits", [
    (lambda: StudentLSTM(64, 32, 1, 3), None),
    (lambda: StudentLSTM(64, 32, 1, 3), 4),
    (lambda: StudentLSTM(64, 512, 2, 3), 2),       # the paper's student shape
    (lambda: ResNet(18, width=16), None),
    (lambda: ResNet(50), None),                     # 267 tensors, 94 MB
])
def test_model_file_is_the_accounted_size_plus_under_1024_bytes(tmp_path, make, bits):
    det = _detector(make(), bits)
    path = tmp_path / "m.safetensors"
    det.save(path)
    overhead = os.path.getsize(path) - det.accounted_bytes()
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    assert overhead == 8 + n                  # tensor data = accounted bytes, exactly
    assert 0 < overhead < 1024


@pytest.mark.parametrize("bits", [None, 3])
@pytest.mark.parametrize("features", [None, {"high_freq": 4000.0, "preemphasis": 0.0}])
def test_round_trip_reproduces_scores_decisions_and_options_exactly(tmp_path, bits, features):
    det = _detector(StudentLSTM(16, 8, 2, 3, seed=3), bits, features, num_bins=16)
    det.save(tmp_path / "m")
    back = Detector.load(tmp_path / "m", expect_arch="StudentLSTM")
    x = det.prepare([rng_from(1).standard_normal((t, 16)) for t in (30, 40, 55)])
    np.testing.assert_array_equal(back.prepare([np.ones((12, 16))]),
                                  det.prepare([np.ones((12, 16))]))
    np.testing.assert_array_equal(back.scores(x), det.scores(x))
    np.testing.assert_array_equal(back.thresholds, det.thresholds)
    assert back.features == det.features and back.classes == CLASSES and back.frames == 40
    assert back.info == det.info
    assert sorted(back.quantized) == sorted(det.quantized)


def _rewrite_header(path, edit):
    tensors = safetensors.numpy.load_file(str(path))
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(f.read(n))["__metadata__"]
    doc = json.loads(meta["qdaed"])
    edit(doc["header"])
    with open(path, "wb") as f:
        f.write(safetensors.numpy.save(tensors, metadata={"qdaed": json.dumps(doc)}))


def test_a_header_whose_architecture_does_not_fit_the_tensors_is_refused(tmp_path):
    # hidden_size 8 -> 4: the sizes change, and so does the layout digest
    _detector(StudentLSTM(16, 8, 1, 3), num_bins=16).save(tmp_path / "m")
    _rewrite_header(tmp_path / "m", lambda h: h["arch_config"].update(hidden_size=4))
    with pytest.raises(ModelFileError, match="do not match the 'StudentLSTM' architecture"):
        Detector.load(tmp_path / "m")


@pytest.mark.parametrize("edit, match", [
    (lambda h: h.update(features_base="lfbe-99"), "unknown or missing LFBE option table"),
    (lambda h: h.update(architecture="Transformer"), "unknown architecture 'Transformer'"),
    (lambda h: h.pop("classes"), "malformed entry"),
])
def test_bad_headers_are_model_file_errors(tmp_path, edit, match):
    _detector(StudentLSTM(16, 8, 1, 3), num_bins=16).save(tmp_path / "m")
    _rewrite_header(tmp_path / "m", edit)
    with pytest.raises(ModelFileError, match=match):
        Detector.load(tmp_path / "m")


def test_read_header_returns_the_saved_header_without_reading_tensors(tmp_path):
    from qdaed.io.modelfile import read_header

    det = _detector(StudentLSTM(16, 8, 1, 3), bits=4, features={"high_freq": 4000.0},
                    num_bins=16)
    det.save(tmp_path / "m")
    h = read_header(tmp_path / "m")
    assert h["architecture"] == "StudentLSTM" and h["arch_config"] == det.model.config
    assert h["features_base"] == FEATURE_BASE
    assert h["features"] == {"high_freq": 4000.0, "num_mel_bins": 16}   # the diff only
    assert h["thresholds"] == list(det.thresholds) and h["bits"] == 4
    with pytest.raises(ModelFileError, match="no such file"):
        read_header(tmp_path / "missing")
