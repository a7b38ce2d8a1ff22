"""qdaed.formats.header: every field of a model document checked before anything is built.

Each case edits a saved file's document and recomputes its SHA-256 (tests/io/files.py), so
the checks of the fields, not the digest, must refuse it, naming the file and the field."""

import json
import resource

import numpy as np
import pytest

from qdaed.cli import main
from qdaed.detector import Detector
from qdaed.errors import ModelFileError
from qdaed.models import ResNet, StudentLSTM
from qdaed.models.resnet import state_shapes as resnet_shapes
from qdaed.models.student import state_shapes as student_shapes
from tests.io import files
from tests.io.detectors import student


_set = files.set_field


_DELETE = files.DELETE
Q = "lstm.weight_ih_l0"

CASES = [
    # (base, document path, value, field named in the message)
    ("float", ("arch_config", "hidden_size"), 8000, "tensor"),        # in range: the table
    ("float", ("arch_config", "hidden_size"), 10**30, "arch_config.hidden_size"),
    ("float", ("arch_config", "hidden_size"), 9, "tensor"),      # valid, but not the tensors
    ("float", ("arch_config", "hidden_size"), True, "arch_config.hidden_size"),
    ("float", ("arch_config", "hidden_size"), "8", "arch_config.hidden_size"),
    ("float", ("arch_config", "hidden_size"), 8.0, "arch_config.hidden_size"),
    ("float", ("arch_config", "num_layers"), 10**6, "arch_config.num_layers"),
    ("float", ("arch_config", "num_layers"), 0, "arch_config.num_layers"),
    ("float", ("arch_config", "pooling"), "median", "arch_config.pooling"),
    ("float", ("arch_config", "input_size"), 32, "features.num_mel_bins"),
    ("float", ("arch_config", "dropout"), 0.5, "arch_config"),
    ("float", ("arch_config",), [], "arch_config"),
    ("float", ("architecture",), "Transformer", "architecture"),
    ("float", ("architecture",), "ResNet", "arch_config"),
    ("float", ("frames",), True, "frames"),
    ("float", ("frames",), 0, "frames"),
    ("float", ("frames",), 10**12, "frames"),
    ("float", ("frames",), "40", "frames"),
    ("float", ("frames",), 40.5, "frames"),
    ("float", ("classes",), "dog", "classes"),
    ("float", ("classes",), ["dog", "baby_cry"], "classes"),
    ("float", ("classes",), ["dog", "dog", "gunshot"], "classes"),
    ("float", ("classes",), ["dog", "", "gunshot"], r"classes\[1\]"),
    ("float", ("classes",), ["dog", 2, "gunshot"], r"classes\[1\]"),
    ("float", ("classes",), ["dog", "b\x1b[31m", "gunshot"], r"classes\[1\]"),
    ("float", ("classes",), ["dog", "x" * 101, "gunshot"], r"classes\[1\]"),
    ("float", ("thresholds",), [0.5], "thresholds"),
    ("float", ("thresholds",), 0.5, "thresholds"),
    ("float", ("thresholds",), [0.5, "0.5", 0.5], r"thresholds\[1\]"),
    ("float", ("thresholds",), [0.5, 1.5, 0.5], r"thresholds\[1\]"),
    ("float", ("thresholds",), [0.5, None, 0.5], r"thresholds\[1\]"),
    ("float", ("thresholds",), [0.5, True, 0.5], r"thresholds\[1\]"),
    ("float", ("features", "num_mel_bins"), 10**9, "features.num_mel_bins"),
    ("float", ("features", "num_mel_bins"), 15, "features.num_mel_bins"),
    ("float", ("features", "fft_size"), 2**40, "features.fft_size"),
    ("float", ("features", "fft_size"), 256, "features"),          # shorter than a frame
    ("float", ("features", "window"), "kaiser", "features"),
    ("float", ("features", "frame_length_ms"), "25", "features.frame_length_ms"),
    ("float", ("features", "frame_length_ms"), 10**6, "features.frame_length_ms"),
    ("float", ("features", "snip_edges"), 1, "features.snip_edges"),
    ("float", ("features", "low_freq"), 9000.0, "features"),
    ("float", ("features", "dither"), 1.0, "features.dither"),
    ("float", ("features", "preemphasis"), _DELETE, "features.preemphasis"),
    ("float", ("features", "color"), "red", "features"),
    ("float", ("features",), "lfbe-1", "features"),
    ("float", ("frames",), _DELETE, "frames"),
    ("float", ("extra",), 1, "document"),
    ("float", ("writer",), 7, "writer"),
    ("float", ("info",), [], "info"),
    ("float", ("info", "seed"), -1, "info.seed"),
    ("float", ("info", "name"), 5, "info.name"),
    ("float", ("quantized", "fc.bias"), {"bits": 4, "group": "row", "rounding": "nearest",
                                         "symmetric": False, "shape": [3]}, "tensor"),
    ("float", ("quantized", "nope"), {}, r"quantized\['nope'\]"),
    ("q4", ("quantized", Q, "bits"), 0, "bits"),
    ("q4", ("quantized", Q, "bits"), 17, "bits"),
    ("q4", ("quantized", Q, "bits"), True, "bits"),
    ("q4", ("quantized", Q, "bits"), 3, "tensor"),
    ("q4", ("quantized", Q, "group"), "col", "group"),
    ("q4", ("quantized", Q, "group"), 0, "group"),
    ("q4", ("quantized", Q, "group"), "tensor", "tensor"),
    ("q4", ("quantized", Q, "rounding"), "up", "rounding"),
    ("q4", ("quantized", Q, "symmetric"), "no", "symmetric"),
    ("q4", ("quantized", Q, "shape"), [16, 32], "shape"),
    ("q4", ("quantized", Q, "shape"), [32.0, 16], "shape"),
    ("q4", ("quantized", Q), _DELETE, "tensor"),
    ("q4", ("quantized",), [], "quantized"),
    ("resnet", ("arch_config", "width"), 4096, "arch_config.width"),
    ("resnet", ("arch_config", "depth"), 101, "arch_config.depth"),
    ("resnet", ("arch_config", "depth"), True, "arch_config.depth"),
    ("resnet", ("arch_config", "in_channels"), 3, "arch_config.in_channels"),
    ("resnet", ("frames",), 0, "frames"),     # a ResNet runs on any non-empty input (issue 14)
]


@pytest.mark.parametrize("base, where, value, field", CASES,
                         ids=[f"{c[0]}-{'.'.join(c[1])}-{str(c[2])[:12]}" for c in CASES])
def test_a_re_signed_bad_field_is_refused_naming_it(tmp_path, saved, base, where, value,
                                                    field):
    p = tmp_path / "m.safetensors"
    p.write_bytes(files.edit_document(saved[base], _set(where, value)))
    with pytest.raises(ModelFileError, match=f"m.safetensors: .*{field}"):
        Detector.load(p)
    p.write_bytes(files.edit_document(saved[base], _set(where, value), resign=False))
    with pytest.raises(ModelFileError, match="m.safetensors: "):       # refused either way
        Detector.load(p)


@pytest.mark.parametrize("raw, match", [
    (('"frames":40', '"frames":1e400'), "overflows a double"),
    (('"frames":40', '"frames":NaN'), "NaN is not JSON"),
    (('"frames":40', '"frames":40,"frames":41'), "duplicate key 'frames'"),
    (('"thresholds":[', '"thresholds":[Infinity,'), "Infinity is not JSON"),
    (('"info":{', '"info":{"deep":' + "[" * 40 + "]" * 40 + ","), "nested 4[0-9] levels"),
])
def test_document_text_that_is_not_strict_json_is_refused(tmp_path, saved, raw, match):
    data = saved["float"]
    text = files.document(data)
    assert raw[0] in text
    p = tmp_path / "m"
    p.write_bytes(files.with_document(data, text.replace(raw[0], raw[1], 1)))
    with pytest.raises(ModelFileError, match=f"not strict JSON .*{match}"):
        Detector.load(p)


def test_huge_architecture_sizes_are_refused_without_allocating(tmp_path, saved):
    # the architecture is checked, and its tensor bytes bounded, before anything is built
    for cfg in ({"hidden_size": 8192, "num_layers": 16}, {"hidden_size": 8192}):
        p = tmp_path / "m"
        p.write_bytes(files.edit_document(saved["float"],
                                          lambda d: d["arch_config"].update(cfg)))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with pytest.raises(ModelFileError, match="m: (arch_config|tensor)"):
            Detector.load(p)
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000   # KiB


def test_non_finite_or_negative_values_in_tensors_are_refused(tmp_path, saved):
    import struct

    for key, name, value in [("float", "fc.bias", np.nan), ("float", "normalizer.std", 0.0),
                             ("float", "normalizer.std", -1.0),
                             ("resnet", "bn1.running_var", -1.0),
                             ("q4", f"{Q}.scales", np.inf), ("q4", f"{Q}.scales", -1.0)]:
        data = saved[key]
        table = json.loads(files.split(data)[0])
        start = table[name]["data_offsets"][0]

        def edit(body):
            body[start:start + 4] = struct.pack("<f", value)
            return body
        p = tmp_path / "m"
        p.write_bytes(files.edit_body(data, edit))
        with pytest.raises(ModelFileError, match="m: "):
            Detector.load(p)


def _body_edit(data, name, at, byte):
    """``data`` with byte ``at`` (negative: from the end) of tensor ``name`` set, re-signed."""
    start, end = json.loads(files.split(data)[0])[name]["data_offsets"]
    pos = (end if at < 0 else start) + at
    return files.edit_body(data, lambda b: b[:pos] + bytes([byte]) + b[pos + 1:])


def test_padding_bits_and_out_of_range_codes_are_refused(tmp_path):
    # fc.weight of H = 5: 15 codes of 3 bits = 45 bits in 6 bytes, 3 padding bits
    student(3, hidden=5).save(tmp_path / "a")
    data = (tmp_path / "a").read_bytes()
    p = tmp_path / "m"
    p.write_bytes(_body_edit(data, "fc.weight.codes", -1, 0x80))
    with pytest.raises(ModelFileError, match="tensor 'fc.weight': packed: padding bits"):
        Detector.load(p)
    p.write_bytes(_body_edit(data, "fc.weight.codes", -1, 0x1F))    # the 5 used bits: fine
    assert Detector.load(p).quantized["fc.weight"].codes.reshape(-1)[-1] == 0x1F >> 2
    # symmetric 4-bit codes stop at 2^k - 2 = 14
    student(4, symmetric=True).save(tmp_path / "s")
    p.write_bytes(_body_edit((tmp_path / "s").read_bytes(), f"{Q}.codes", 0, 0xFF))
    with pytest.raises(ModelFileError, match=f"tensor '{Q}': codes: expected codes in"):
        Detector.load(p)


def test_state_shapes_are_the_built_models_shapes():
    for cfg in ({"input_size": 5, "hidden_size": 3, "num_layers": 3, "num_classes": 2},
                {"input_size": 64, "hidden_size": 32, "num_layers": 1, "num_classes": 3}):
        built = StudentLSTM(**cfg).state_dict()
        assert [(n, v.shape) for n, v in built.items()] == list(student_shapes(**cfg).items())
    for depth in (18, 34, 50):
        for width in (1, 3):
            built = ResNet(depth, 4, 1, width).state_dict()
            assert [(n, v.shape) for n, v in built.items()] == \
                list(resnet_shapes(depth, 4, 1, width).items())


def test_info_escapes_control_characters_from_the_file(tmp_path, capsys):
    det = student()
    det.info = {**det.info, "name": "evil\x1b[2J\x1b[31m\u202e\x00", "schedule": "s\r\n"}
    det.save(tmp_path / "m")
    assert main(["info", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\x00" not in out and "\r" not in out
    assert r"evil\x1b[2J\x1b[31m\u202e\x00" in out
    assert "accounted" in out and "of overhead" in out
    assert main(["info", "--json", str(tmp_path / "m")]) == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text and json.loads(text)["info"]["name"] == det.info["name"]


def test_info_prints_the_accounted_size_and_the_files_overhead(tmp_path, capsys):
    det = student(4)
    det.save(tmp_path / "m")
    main(["info", str(tmp_path / "m")])
    out = capsys.readouterr().out
    size, acc = (tmp_path / "m").stat().st_size, det.accounted_bytes()
    assert f"bytes        {acc:,} accounted" in out
    assert f"file         {size:,} bytes = {acc:,} of tensor data + {size - acc:,} of " \
           f"overhead" in out


def test_a_bad_file_is_exit_2_without_a_traceback(tmp_path, capsys):
    (tmp_path / "m").write_bytes(b"\0" * 100)
    assert main(["info", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "qdaed info: error:" in err and "Traceback" not in err
