"""The integer student in the v3 model file: stored by tensor name, read back exactly, every
field checked on load (hostile values are ModelFileErrors naming the field), a file without
one unchanged, and ``qdaed info`` showing the quantization parameters."""

import json

import numpy as np
import pytest
import safetensors.numpy

from qdaed.cli import main
from qdaed.detector import Detector
from qdaed.errors import InputError, ModelFileError
from qdaed.integer import calibrate
from tests.integer.cases import random_student
from tests.io import files
from tests.io.detectors import resnet, student


def _calibrated(layers=2, hidden=8, bins=16, seed=0):
    det = student(hidden=hidden, layers=layers, bins=bins)
    rng = np.random.default_rng(seed)
    det.integer = calibrate(det, rng.standard_normal((4, 20, bins)).astype(np.float32))
    return det


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    det = _calibrated()
    path = tmp_path_factory.mktemp("store") / "int.safetensors"
    det.save(path)
    return det, path, path.read_bytes()


def test_integer_tensors_are_stored_by_name_with_their_int8_and_int32_values(stored):
    det, path, _ = stored
    t = safetensors.numpy.load_file(str(path))           # an independent reader
    for k, la in enumerate(det.integer.layers):
        assert t[f"integer.lstm.weight_ih_l{k}"].dtype == np.int8
        assert np.array_equal(t[f"integer.lstm.weight_ih_l{k}"], la.w_ih)
        assert np.array_equal(t[f"integer.lstm.weight_hh_l{k}"], la.w_hh)
        assert t[f"integer.lstm.bias_l{k}"].dtype == np.int32
        assert np.array_equal(t[f"integer.lstm.bias_l{k}"], la.bias)
        assert np.array_equal(t[f"integer.lstm.weight_ih_scales_l{k}"], la.w_ih_scales)
    assert np.array_equal(t["integer.fc.weight"], det.integer.fc.weights)
    assert np.array_equal(t["integer.fc.bias"], det.integer.fc.bias)
    doc = json.loads(files.document(path.read_bytes()))
    assert doc["integer"]["layers"][1]["cell_power"] == det.integer.layers[1].cell_power
    assert doc["integer"]["input"] == {"scale": det.integer.input.scale,
                                       "zero_point": det.integer.input.zero_point}


def test_loaded_integer_student_equals_the_saved_one_and_computes_the_same_scores(stored):
    det, path, _ = stored
    back = Detector.load(path).integer
    assert back.input == det.integer.input and back.pooled == det.integer.pooled
    assert back.fc.output == det.integer.fc.output
    for a, b in zip(back.layers, det.integer.layers):
        assert a.hidden == b.hidden and a.cell_power == b.cell_power
        assert np.array_equal(a.w_hh, b.w_hh) and np.array_equal(a.bias, b.bias)
        assert np.array_equal(a.w_hh_scales, b.w_hh_scales)
    x = np.random.default_rng(5).integers(-128, 128, (3, 17, 16)).astype(np.int8)
    assert np.array_equal(back.forward(x).scores, det.integer.forward(x).scores)


def test_random_integer_students_at_int8_extremes_round_trip_through_the_file(tmp_path):
    rng = np.random.default_rng(11)
    for k, extreme in enumerate((None, "min", "max", "pm")):
        det = student(hidden=5, layers=1 + k % 2, bins=16)
        det.integer = random_student(rng, 16, 5, 1 + k % 2, 3, extreme=extreme,
                                     per_channel=k % 2 == 0)
        det.save(tmp_path / f"{k}.safetensors")
        back = Detector.load(tmp_path / f"{k}.safetensors").integer
        x = rng.integers(-128, 128, (2, 9, 16)).astype(np.int8)
        assert np.array_equal(back.forward(x).logits, det.integer.forward(x).logits)
        assert back.fc.per_channel == (k % 2 == 0)


def test_a_file_without_an_integer_student_has_no_integer_field_or_tensor_and_resaves_byte_identical(
        tmp_path):
    det = student(4, hidden=6, layers=2, bins=16)
    det.save(tmp_path / "a.safetensors")
    data = (tmp_path / "a.safetensors").read_bytes()
    assert "integer" not in json.loads(files.document(data))
    assert not [n for n in json.loads(files.split(data)[0]) if n.startswith("integer")]
    loaded = Detector.load(tmp_path / "a.safetensors")
    assert loaded.integer is None
    loaded.save(tmp_path / "b.safetensors")
    assert (tmp_path / "b.safetensors").read_bytes() == data


_set = files.set_field


HOSTILE_FIELDS = [
    (("integer", "input", "scale"), 0.0, "integer.input.scale"),
    (("integer", "input", "scale"), 1e-40, "integer.input.scale"),
    (("integer", "input", "scale"), 0.1, "integer.input.scale: expected a float32"),
    (("integer", "input", "scale"), "0.5", "integer.input.scale"),
    (("integer", "input", "scale"), 10 ** 50, "integer.input.scale"),
    (("integer", "input", "zero_point"), 128, "integer.input.zero_point"),
    (("integer", "input", "zero_point"), 1.0, "integer.input.zero_point"),
    (("integer", "input", "zero_point"), True, "integer.input.zero_point"),
    (("integer", "layers", 0, "cell_power"), 3, "integer.layers[0].cell_power"),
    (("integer", "layers", 1, "cell_power"), -44, "integer.layers[1].cell_power"),
    (("integer", "layers", 0, "hidden"), [], "integer.layers[0].hidden"),
    (("integer", "layers"), [], "integer.layers"),
    (("integer", "pooled", "extra"), 1, "integer.pooled"),
    (("integer", "logits", "scale"), 64.0, "integer.logits.scale"),
    (("integer", "logits", "scale"), 2.0 ** -29, "integer.logits.scale"),
    (("integer", "head_scales"), 2, "integer.head_scales"),
    (("integer", "head_scales"), None, "integer.head_scales"),
    (("integer",), [], "integer"),
    # the mean's rescale s_h / s_pooled beyond 2^30
    (("integer", "pooled", "scale"), 2.0 ** -90, "integer.pooled.scale"),
]


@pytest.mark.parametrize("path,value,field", HOSTILE_FIELDS,
                         ids=[f"{'.'.join(map(str, p))}={v!r}"[:60] for p, v, _ in HOSTILE_FIELDS])
def test_a_hostile_integer_field_is_a_model_file_error_naming_the_field(stored, tmp_path,
                                                                       path, value, field):
    _, _, data = stored
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(files.edit_document(data, _set(path, value)))
    with pytest.raises(ModelFileError, match=r"bad\.safetensors: .*" + field.replace(
            "[", r"\[").replace("]", r"\]")):
        Detector.load(bad)


def _tensor(data, name, value, index=0):
    """The file with element ``index`` of tensor ``name`` set to ``value`` (re-signed)."""
    entry = json.loads(files.split(data)[0])[name]
    dtype = {"F32": "<f4", "I8": "i1", "I32": "<i4"}[entry["dtype"]]
    size = np.dtype(dtype).itemsize
    start = entry["data_offsets"][0] + index * size

    def edit(body):
        body[start:start + size] = np.array([value], dtype).tobytes()
        return body
    return files.edit_body(data, edit)


@pytest.mark.parametrize("value", [0.0, -1.0, np.nan, np.inf, 1e-38, 3e7])
def test_a_weight_scale_tensor_value_out_of_range_is_refused_naming_the_tensor(
        stored, tmp_path, value):
    _, _, data = stored
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(_tensor(data, "integer.lstm.weight_hh_scales_l1", value, 2))
    with pytest.raises(ModelFileError, match="integer.lstm.weight_hh_scales_l1"):
        Detector.load(bad)


def test_scales_in_range_whose_rescale_shift_exceeds_tflites_30_are_refused(stored, tmp_path):
    _, _, data = stored
    # s_h · s_w / 2^-12 = 1e6 · 1e6 · 4096: shift 52
    edited = files.edit_document(_tensor(data, "integer.lstm.weight_hh_scales_l0", 1e6),
                                 _set(("integer", "layers", 0, "hidden", "scale"), 1e6))
    (tmp_path / "bad.safetensors").write_bytes(edited)
    with pytest.raises(ModelFileError, match="weight_hh_scales_l0'?: a rescale of shift 52"):
        Detector.load(tmp_path / "bad.safetensors")


def test_int8_and_int32_tensor_values_need_no_range_check_and_load(stored, tmp_path):
    _, _, data = stored
    edited = _tensor(_tensor(data, "integer.fc.weight", -128), "integer.lstm.bias_l0",
                     -2 ** 31, 3)
    (tmp_path / "ok.safetensors").write_bytes(edited)
    back = Detector.load(tmp_path / "ok.safetensors").integer
    assert back.fc.weights[0, 0] == -128 and back.layers[0].bias[0, 3] == -2 ** 31


def test_integer_tensors_with_a_wrong_dtype_or_shape_in_the_table_are_refused(stored, tmp_path):
    _, _, data = stored

    def as_u8(table):
        table["integer.fc.weight"]["dtype"] = "U8"

    def reshaped(table):
        table["integer.fc.weight"]["shape"] = [8, 3]
    for edit in (as_u8, reshaped):
        (tmp_path / "bad.safetensors").write_bytes(files.edit_table(data, edit))
        with pytest.raises(ModelFileError, match="integer.fc.weight"):
            Detector.load(tmp_path / "bad.safetensors")


def test_an_integer_field_on_a_teacher_or_a_last_pooling_student_is_refused(stored, tmp_path):
    _, _, data = stored
    integer = json.loads(files.document(data))["integer"]
    for det in (resnet(), student(hidden=8, layers=2, bins=16, pooling="last")):
        det.save(tmp_path / "m.safetensors")
        bad = files.edit_document((tmp_path / "m.safetensors").read_bytes(),
                                  _set(("integer",), integer))
        (tmp_path / "bad.safetensors").write_bytes(bad)
        with pytest.raises(ModelFileError, match="integer: an integer student needs a "
                                                 "StudentLSTM with mean pooling"):
            Detector.load(tmp_path / "bad.safetensors")


def test_save_refuses_an_integer_student_of_other_sizes_and_writes_nothing(tmp_path):
    det = _calibrated(hidden=8, bins=16)
    det.integer = _calibrated(hidden=6, bins=16).integer
    with pytest.raises(InputError, match=r"integer.lstm.weight_ih_l0 has shape \(4, 6, 16\)"):
        det.save(tmp_path / "x.safetensors")
    # two classes with one head scale: only the head's shape tells it from the model's three
    det.integer = random_student(np.random.default_rng(0), 16, 8, 2, 2, per_channel=False)
    with pytest.raises(InputError, match=r"integer.fc.weight has shape \(2, 8\)"):
        det.save(tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_info_shows_the_integer_scales_zero_points_and_cell_powers(stored, capsys):
    det, path, data = stored
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    q = det.integer
    int_bytes = sum(a.nbytes for n, a in safetensors.numpy.load_file(str(path)).items()
                    if n.startswith("integer."))
    assert f"{int_bytes:,} bytes of int8/int32 tensors" in out
    assert f"input      scale {q.input.scale:.6g}, zero point {q.input.zero_point}" in out
    for k, la in enumerate(q.layers):
        assert (f"lstm l{k}    hidden scale {la.hidden.scale:.6g}, zero point "
                f"{la.hidden.zero_point}; cell state int16, scale 2^{la.cell_power}") in out
    assert f"logits scale {q.fc.output.scale:.6g}, zero point {q.fc.output.zero_point}" in out
    assert "scores     scale 0.00390625, zero point -128" in out
