"""Hostile model files: the reproducers of an outside audit of mutated v3 files (each one a
traceback, a hang or a silently accepted unusable model before the loader was hardened), the
linear JSON depth scan, and the semantic checks of what makes a model unusable or misleading.

Edits recompute the file's SHA-256 (tests/io/files.py) unless said otherwise, so the checks of
the fields, not the digest, must refuse them."""

import json
import struct
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from qdaed.cli import main
from qdaed.detector import Detector
from qdaed.errors import InputError, ModelFileError
from qdaed.io import strictjson
from qdaed.io.strictjson import JSONError, json_depth, parse_json
from tests.io import files
from tests.io.detectors import student
from tests.io.fuzz_modelfile import adversarial_tables

ROOT = Path(__file__).resolve().parents[2]


def _set(*path_value):
    """``files.set_field`` with the path's keys and the value as one argument list."""
    return files.set_field(path_value[:-1], path_value[-1])


def _load(tmp_path, data):
    p = tmp_path / "m.safetensors"
    p.write_bytes(data)
    return Detector.load(p)


def _refused(tmp_path, data, match):
    with pytest.raises(ModelFileError, match=r"m\.safetensors: " + match):
        _load(tmp_path, data)


def _with_table(data, table_text):
    """``data`` with its JSON table replaced by ``table_text`` (str, any content)."""
    return files.assemble(table_text, files.split(data)[1])


def _set_tensor(data, name, index, value):
    """``data`` with float32 element ``index`` (flat) of tensor ``name`` set, re-signed."""
    start = json.loads(files.split(data)[0])[name]["data_offsets"][0] + 4 * index

    def edit(body):
        body[start:start + 4] = struct.pack("<f", value)
        return body
    return files.edit_body(data, edit)


# --------------------------------------------------------------------------- the audit's four
# tracebacks (each one raised something other than a ModelFileError before)


def test_a_lone_surrogate_in_the_json_table_is_a_model_file_error_not_unicode_encode_error(
        tmp_path, saved):
    # the table's JSON escapes it as \ud800: parsed, the document string holds U+D800, which
    # cannot be encoded as UTF-8 for the digest (UnicodeEncodeError in _document before)
    table = json.loads(files.split(saved["float"])[0])
    table["__metadata__"]["qdaed"] = table["__metadata__"]["qdaed"].replace('"dog"',
                                                                            '"do\ud800g"')
    text = json.dumps(table)
    assert "\\ud800" in text
    _refused(tmp_path, _with_table(saved["float"], text), "not a safetensors file.*lone UTF-16 "
                                                          r"surrogate \(\\ud800\)")


@pytest.mark.parametrize("text", ['{"a": "\\ud800"}', '{"\\udfff": 1}', '["x\\udbff"]',
                                  '[["\\ud800\\ud800"]]'])
def test_parse_json_refuses_a_string_holding_a_lone_surrogate(text):
    with pytest.raises(JSONError, match="lone UTF-16 surrogate"):
        parse_json(text.encode())


def test_parse_json_keeps_a_surrogate_pair_and_an_escaped_backslash_before_u_d800():
    assert parse_json(b'["\\ud83d\\ude00"]') == ["\U0001f600"]
    assert parse_json(b'["\\\\ud800"]') == ["\\ud800"]          # a backslash, then text


@pytest.mark.parametrize("raw", [b'["\xed\xa0\x80"]', b'["\xff"]', b'["\xc0\xaf"]',
                                 b'["\xe2\x82"]'])
def test_parse_json_refuses_invalid_utf8_encoded_surrogates_and_overlong_forms(raw):
    with pytest.raises(JSONError, match="not UTF-8"):
        parse_json(raw)


def test_a_4300_digit_integer_threshold_is_refused_by_the_parser(tmp_path, saved):
    # before: accepted by the parser (Python's limit is 4300 digits), then OverflowError in
    # io/header.py's _number (int too large to convert to float)
    data = files.edit_document(saved["float"], _set("thresholds", 0, 7))
    text = files.document(data).replace('"thresholds":[7,', '"thresholds":[' + "1" * 4300 + ",")
    assert "1" * 4300 in text
    _refused(tmp_path, files.with_document(data, text),
             r"the qdaed document is not strict JSON \(a number of 4,300 characters")


@pytest.mark.parametrize("literal, ok", [("1" * 100, True), ("1" * 101, False),
                                         ("-" + "9" * 99, True), ("0." + "0" * 98 + "1", False),
                                         ("1e-400", True), ("-0", True)])
def test_parse_json_bounds_the_length_of_a_number_literal_before_converting_it(literal, ok):
    raw = f"[{literal}]".encode()
    if ok:
        assert parse_json(raw) == [json.loads(literal)]
    else:
        with pytest.raises(JSONError, match=f"a number of {len(literal)} characters"):
            parse_json(raw)


def test_a_checkpoints_128_bit_integers_are_within_the_number_bound():
    assert parse_json(str([2**128 - 1, -(2**127)]).encode(), allow_nan=True) == \
        [2**128 - 1, -(2**127)]


@pytest.mark.parametrize("value", [[], {}, ["qdaed-model"], {"qdaed-model": 1}])
@pytest.mark.parametrize("resign", [False, True])
def test_format_given_as_a_list_or_an_object_is_refused_naming_format(tmp_path, saved, value,
                                                                      resign):
    # before: TypeError (unhashable type) in _check_format, with the original digest too,
    # i.e. before the digest is checked
    _refused(tmp_path, files.edit_document(saved["float"], _set("format", value), resign),
             "format: expected the string 'qdaed-model', got")


@pytest.mark.parametrize("value", [["StudentLSTM"], {"StudentLSTM": 1}, ["ResNet", "x"]])
def test_architecture_given_as_a_list_or_object_is_refused_naming_it(tmp_path, saved, value):
    _refused(tmp_path, files.edit_document(saved["float"], _set("architecture", value)),
             "architecture: expected one of")


def test_a_resnet_depth_given_as_a_float_is_refused(tmp_path, saved):
    # 18.0 == 18 and was accepted as a depth
    _refused(tmp_path, files.edit_document(saved["resnet"], _set("arch_config", "depth", 18.0)),
             "arch_config.depth: expected one of")


# --------------------------------------------------------------------------- the depth scan

def test_the_depth_scan_is_linear_on_1_mib_adversarial_tables(tmp_path):
    """1 MiB tables of escaped quotes (open and closed), quote runs, brackets, backslashes
    (``adversarial_tables``), each through parse_json and Detector.load (as a file's table), in a
    subprocess under a time limit: each under 2 s (the regular expression it replaces took
    0.86 s at 16 KiB, 3.4 s at 32 KiB, about an hour at 1 MiB)."""
    script = (
        "import json, struct, sys, time\n"
        "from qdaed.detector import Detector\n"
        "from qdaed.errors import ModelFileError\n"
        "from qdaed.io.modelfile import MAX_HEADER_BYTES\n"
        "from qdaed.io.strictjson import JSONError, parse_json\n"
        "from tests.io.fuzz_modelfile import adversarial_tables\n"
        "times, loaded = {}, []\n"
        "for name, raw in adversarial_tables().items():\n"
        "    assert len(raw) <= MAX_HEADER_BYTES, name\n"
        "    path = sys.argv[1] + '/m'\n"
        "    with open(path, 'wb') as f:\n"
        "        f.write(struct.pack('<Q', len(raw)) + raw)\n"
        "    t = time.perf_counter()\n"
        "    try:\n"
        "        parse_json(raw)\n"
        "    except JSONError:\n"
        "        pass\n"
        "    try:\n"
        "        Detector.load(path)\n"
        "        loaded.append(name)\n"
        "    except ModelFileError:\n"
        "        pass\n"
        "    times[name] = time.perf_counter() - t\n"
        "print(json.dumps({'times': times, 'loaded': loaded}))\n")
    try:
        r = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the 1 MiB adversarial tables did not finish in 120 s (a quadratic scan)")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["loaded"] == [] and set(out["times"]) == set(adversarial_tables())
    print("seconds per 1 MiB table (parse_json + Detector.load):", out["times"])
    assert max(out["times"].values()) < 2.0, out["times"]


def _reference_depth(raw):
    """Deepest nesting by a character-at-a-time state machine (the definition)."""
    depth = deepest = 0
    in_string = escaped = False
    for c in raw.decode("latin-1"):
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


_pieces = st.one_of(st.sampled_from(list("[]{}a,:")),
                    st.text(alphabet='"\\[]{}a', max_size=6).map(json.dumps))


@given(pieces=st.lists(_pieces, max_size=16), tail=st.sampled_from(["", '"', '"\\', '"\\\\']),
       block=st.sampled_from([1, 2, 3, 5, 1 << 20]))
def test_the_depth_scan_agrees_with_a_character_state_machine_across_block_edges(
        pieces, tail, block):
    # backslashes only inside strings, as JSON has them (outside one the parser stops first);
    # small blocks put the block edges inside escapes, backslash runs and strings
    raw = ("".join(pieces) + tail).encode()
    real = strictjson._SCAN_BLOCK
    try:
        strictjson._SCAN_BLOCK = block
        assert json_depth(raw) == _reference_depth(raw)
    finally:
        strictjson._SCAN_BLOCK = real


@pytest.mark.parametrize("raw, depth", [(b"", 0), (b'"[[["', 0), (b'["\\"[", [[]]', 3),
                                        (b'["\\\\", [[]]]', 3), (b'{"a": {"b": [1]}}', 3),
                                        (b'["\\\\\\"]"]', 1)])
def test_the_depth_scan_by_hand(raw, depth):
    assert json_depth(raw) == depth


# --------------------------------------------------------------------------- unusable models,
# accepted silently before (every detect then failed blaming its input)


@pytest.mark.parametrize("value", [1e-45, 0.0, -0.0, 9e-7, -1.0, np.inf, np.nan])
def test_a_normaliser_std_below_1e_minus_6_is_refused_naming_it(tmp_path, saved, value):
    _refused(tmp_path, _set_tensor(saved["float"], "normalizer.std", 5, value),
             r"tensor 'normalizer.std': value .* at \[5\] (is not finite|is outside \[1e-06, "
             r"1e\+06\])")


def test_a_normaliser_std_just_above_the_floor_loads(tmp_path, saved):
    det = _load(tmp_path, _set_tensor(saved["float"], "normalizer.std", 5, 1.1e-6))
    assert det.normalizer.std[5] == np.float32(1.1e-6)


def test_detect_names_the_normaliser_not_its_input(tmp_path, saved, capsys):
    p = tmp_path / "m.safetensors"
    p.write_bytes(_set_tensor(saved["float"], "normalizer.std", 0, 1e-45))
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(8000, np.float32), 16000)
    assert main(["detect", str(p), str(wav)]) == 2
    err = capsys.readouterr().err
    assert "tensor 'normalizer.std'" in err and "x: contains NaN" not in err


@pytest.mark.parametrize("name, value", [
    ("bn1.weight", 3.4e38), ("bn1.weight", -3.4e38), ("layer1.0.conv1.weight", 1.5e6),
    ("fc.bias", -2e6), ("bn1.running_var", -1e-3), ("bn1.running_var", 2e12),
    ("bn1.running_mean", 1e7), ("bn1.bias", np.nan)])
def test_a_resnet_tensor_value_outside_its_range_is_refused_naming_it(tmp_path, saved, name,
                                                                      value):
    _refused(tmp_path, _set_tensor(saved["resnet"], name, 1, value),
             f"tensor '{name}': value .* at \\[(0, )*1\\] ")


@pytest.mark.parametrize("name, index, value", [
    ("lstm.weight_hh_l0", 0, 3.4e38), ("fc.weight", 2, -1.0000001e6),
    ("normalizer.mean", 0, 2e6), ("lstm.weight_ih_l0.scales", 0, -1e-3),    # alpha < 0
    ("lstm.weight_ih_l0.scales", 0, 2e6), ("lstm.weight_ih_l0.scales", 1, -2e6)])
def test_a_student_tensor_value_outside_its_range_is_refused_naming_it(tmp_path, saved, name,
                                                                       index, value):
    key = "q4" if name.endswith(".scales") else "float"
    _refused(tmp_path, _set_tensor(saved[key], name, index, value), f"tensor '{name}': value")


def test_values_at_the_bounds_load(tmp_path, saved):
    data = _set_tensor(saved["resnet"], "bn1.weight", 0, 1e6)
    data = _set_tensor(data, "fc.bias", 0, -1e6)
    data = _set_tensor(data, "bn1.running_var", 0, 0.0)
    det = _load(tmp_path, data)
    assert det.model.state_dict()["bn1.weight"][0] == 1e6
    assert det.model.state_dict()["bn1.running_var"][0] == 0.0


@pytest.mark.parametrize("thresholds, field", [([0.0, 0.0, 0.0], r"thresholds\[0\]"),
                                               ([0.5, -0.0, 0.5], r"thresholds\[1\]"),
                                               ([0.5, 0.5, 0], r"thresholds\[2\]")])
def test_a_threshold_of_zero_is_refused(tmp_path, saved, thresholds, field):
    _refused(tmp_path, files.edit_document(saved["float"], _set("thresholds", thresholds)),
             field + r": expected a threshold in \(0, 1\]")


def test_a_threshold_of_exactly_one_loads(tmp_path, saved):
    # the pipeline's EER threshold is exactly 1.0 for a class whose validation positives all
    # saturate float32's sigmoid (logits above about 17); "score >= 1" still decides
    det = _load(tmp_path, files.edit_document(saved["float"],
                                              _set("thresholds", [1.0, 1, 5e-324])))
    assert det.thresholds.tolist() == [1.0, 1.0, 5e-324]


@pytest.mark.parametrize("name, value, ok", [
    ("log_floor", 1e30, False), ("log_floor", 1.0000001, False), ("log_floor", 1.0, True),
    ("log_floor", 1e-30, True), ("blackman_coeff", 1e9, False),
    ("blackman_coeff", -1e9, False), ("blackman_coeff", -0.01, False),
    ("blackman_coeff", 0.51, False), ("blackman_coeff", 0.5, True),
    ("blackman_coeff", 0.0, True)])
def test_lfbe_options_outside_their_documented_ranges_are_refused(tmp_path, saved, name, value,
                                                                  ok):
    data = files.edit_document(saved["float"], _set("features", name, value))
    if ok:
        assert _load(tmp_path, data).features[name] == value
    else:
        _refused(tmp_path, data, f"features.{name}: expected a number in ")


NFD_CAFE, NFC_CAFE = "cafe\u0301", "caf\u00e9"


@pytest.mark.parametrize("classes, match", [
    (["dog", "dog ", "gunshot"], r"classes: names must be unique: classes\[0\] 'dog' and "
                                 r"classes\[1\] 'dog ' are the same name once NFC-normalised"),
    ([NFC_CAFE, NFD_CAFE, "gunshot"], r"classes: names must be unique: classes\[0\] .* and "
                                      r"classes\[1\] .* once NFC-normalised"),
    (["dog", "\u00a0gunshot", "gunshot"], r"classes: names must be unique"),
    (["dog", "baby_cry", "gunshot\u3000"], r"classes\[2\]: .* has surrounding whitespace"),
    (["dog", NFD_CAFE, "gunshot"], r"classes\[1\]: .* is not in Unicode NFC form"),
])
def test_class_names_that_collide_or_are_not_normalised_are_refused(tmp_path, saved, classes,
                                                                    match):
    _refused(tmp_path, files.edit_document(saved["float"], _set("classes", classes)), match)


def test_nfc_class_names_load_as_written(tmp_path, saved):
    names = [NFC_CAFE, "baby cry", "\u72ac"]
    assert all(unicodedata.is_normalized("NFC", n) for n in names)
    assert _load(tmp_path, files.edit_document(saved["float"],
                                               _set("classes", names))).classes == tuple(names)


def test_save_refuses_what_load_would_refuse(tmp_path):
    det = student()
    det.classes = ("dog", "dog ", "gunshot")
    with pytest.raises(InputError, match="cannot save .*names must be unique"):
        det.save(tmp_path / "m")
    det = student()
    det.thresholds = np.zeros(3)
    with pytest.raises(InputError, match=r"cannot save .*thresholds\[0\]"):
        det.save(tmp_path / "m")
