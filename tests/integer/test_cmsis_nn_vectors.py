"""qdaed's int8 LSTM against CMSIS-NN's published test vectors (issue 26, item 4).

The vectors (``tests/integer/data/cmsis_nn_lstm``, converted by
``tests/integer/cmsis_nn_vectors.py``; source commit and licence in ``cases.json``) are the
tests of ``arm_lstm_unidirectional_s8``, whose expected outputs TensorFlow Lite Micro's
interpreter computed. They carry the (multiplier, shift) pairs, not the float scales they came
from, so the layer's gate and output rescales are set to the published pairs; qdaed derives
the rest itself from the zero points and the cell power p (the folded biases, the cell
rescales — compared with the published ones — and tanh(c)'s input parameters). Every step's h
must match exactly, from qdaed's kernel and from the naive element-by-element reference.

The earlier generations of three cases are checked too: the one TFLite Micro computed
(601d96c6) like the current ones; for all of them, the published effective biases (zero points
folded in) against qdaed's folding. The two oldest generations' expected outputs come from
TensorFlow Lite's interpreter (tflite_runtime 2.11), whose int8 LSTM kernel is not TFLite
Micro's, and are not compared (qdaed matches lstm_1@bee2550a exactly and differs on the other
five, mostly from the second step on, by up to 84 LSB; docs/guides/porting.md, section 5).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from qdaed.integer import LstmLayer, QuantParams, lstm_layer
from qdaed.integer.fixedpoint import tanh_input_params
from qdaed.integer.ops import LstmState
from tests import naive

DATA = Path(__file__).resolve().parent / "data" / "cmsis_nn_lstm"
DOC = json.loads((DATA / "cases.json").read_text())
CONFIG = {**DOC["cases"], **DOC["legacy_cases"]}
# the current cases, and the earlier generations whose expected outputs TFLite Micro computed
CASES = sorted(DOC["cases"]) + sorted(k for k, c in DOC["legacy_cases"].items()
                                      if c["interpreter"] == "tflite_micro")
# generations computed by TensorFlow Lite's interpreter (not TFLite Micro's kernel)
TFLITE_CASES = sorted(k for k, c in DOC["legacy_cases"].items()
                      if c["interpreter"] == "tflite_runtime")
LEGACY = sorted(DOC["legacy_cases"])


def _arrays(case):
    names = ["x", "w_ih", "w_hh", "bias", "expected"]
    if case in DOC["legacy_cases"]:
        names += ["eff_bias_ih", "eff_bias_hh"]
    return {name: np.load(DATA / case / f"{name}.npy", allow_pickle=False) for name in names}


def _layer(case):
    """An LstmLayer with the case's tensors, zero points and cell power, whose gate and output
    rescales are the published pairs (the scales given here are placeholders: the pairs they
    would derive are replaced)."""
    c, a = CONFIG[case], _arrays(case)
    layer = LstmLayer(a["w_ih"], a["w_hh"], a["bias"], np.ones(4, np.float32),
                      np.ones(4, np.float32), QuantParams(1.0, c["input_zero_point"]),
                      QuantParams(1.0, c["hidden_zero_point"]), c["cell_power"])
    d = dict(layer.derived)
    for kind, m, s in (("input", "m_ih", "s_ih"), ("recurrent", "m_hh", "s_hh")):
        pairs = np.array(c[f"{kind}_rescale"], np.int64)
        d[m], d[s] = pairs[:, 0].copy(), pairs[:, 1].copy()
    d["output"] = tuple(c["output_rescale"])
    object.__setattr__(layer, "derived", d)
    return layer


def test_the_vectors_are_the_published_ones():
    assert DOC["source"] == "https://github.com/ARM-software/CMSIS-NN"
    assert DOC["license"] == "Apache-2.0" and len(DOC["commit"]) == 40
    assert set(DOC["cases"]) == {"lstm_1", "lstm_2", "lstm_one_time_step",
                                 "lstm_stateful_batch_major_multibatch"}
    assert len(CASES) == 7 and len(TFLITE_CASES) == 6
    for case in CASES + TFLITE_CASES:
        c, a = CONFIG[case], _arrays(case)
        B, T, I, H = c["batch"], c["steps"], c["input_size"], c["hidden_size"]
        assert a["x"].shape == (B, T, I) and a["x"].dtype == np.int8
        assert a["expected"].shape == (B, T, H) and a["expected"].dtype == np.int8
        assert a["w_ih"].shape == (4, H, I) and a["w_hh"].shape == (4, H, H)
        assert a["bias"].shape == (4, H) and a["bias"].dtype == np.int32
    # every other lstm_* folder is listed with its reason (int16x8 or floating point)
    assert DOC["not_expressible"] and all(
        k.endswith(("_s16", "_f16", "_f32")) for k in DOC["not_expressible"])


@pytest.mark.parametrize("case", CASES)
def test_qdaed_reproduces_every_step_of_the_published_output(case):
    a = _arrays(case)
    y, trace = lstm_layer(_layer(case), a["x"], trace=True)
    np.testing.assert_array_equal(y, a["expected"])
    # The vectors' model clips the cell at ±cell_clip = ±32767; qdaed has no cell clip (it
    # saturates at [−32768, 32767], TFLite's behaviour without one). The two differ only where
    # a cell value is −32768 (lstm_1 has some): there tanh(c) is the same for −32768 and
    # −32767 (at every p, checked below for this case's), so h is too, and every step of the
    # published h matches.
    assert CONFIG[case]["cell_clip"] in (32767, None)
    t = tanh_input_params(CONFIG[case]["cell_power"])
    if trace.cell.min() == -32768:
        assert naive.tanh_int16(-32768, *t) == naive.tanh_int16(-32767, *t)


@pytest.mark.parametrize("case", CASES)
def test_the_cell_rescales_qdaed_derives_from_p_are_the_published_ones(case):
    c = CONFIG[case]
    d = _layer(case).derived
    assert tuple(d["forget_cell"]) == tuple(c["forget_cell_rescale"])
    assert tuple(d["input_cell"]) == tuple(c["input_cell_rescale"])
    assert tuple(d["tanh"]) == tanh_input_params(c["cell_power"])


@pytest.mark.parametrize("case", LEGACY)
def test_the_folded_biases_are_the_published_effective_biases(case):
    """The earlier generations publish the biases with the zero points folded in
    (bias − z_in·Σw_ih and −z_h·Σw_hh): qdaed's folding gives them exactly."""
    a = _arrays(case)
    d = _layer(case).derived
    np.testing.assert_array_equal(d["b_ih"], a["eff_bias_ih"])
    np.testing.assert_array_equal(d["b_hh"], a["eff_bias_hh"])


@pytest.mark.parametrize("case", CASES)
def test_the_naive_reference_reproduces_the_published_output(case):
    """The data's conventions (gate order, layout, the zero points' signs) checked without
    qdaed's kernels: the element-by-element reference of tests/naive.py."""
    c, a = CONFIG[case], _arrays(case)
    p = c["cell_power"]
    y, _ = naive.int8_lstm_layer(a["x"], a["w_ih"], a["w_hh"], a["bias"],
                                 c["input_zero_point"], c["hidden_zero_point"],
                                 c["input_rescale"], c["recurrent_rescale"],
                                 c["forget_cell_rescale"], c["input_cell_rescale"],
                                 c["output_rescale"], tanh_input_params(p))
    np.testing.assert_array_equal(y, a["expected"])


@pytest.mark.parametrize("case", [c for c in CASES if CONFIG[c]["steps"] > 1])
def test_streaming_the_case_step_by_step_gives_the_published_output(case):
    """(h, c) carried across calls of one step each (CMSIS-NN PR #219's bug was a reset)."""
    a = _arrays(case)
    layer = _layer(case)
    state = LstmState.zero(layer, a["x"].shape[0])
    y = np.concatenate([lstm_layer(layer, a["x"][:, t:t + 1], state=state)
                        for t in range(a["x"].shape[1])], axis=1)
    np.testing.assert_array_equal(y, a["expected"])


def test_a_wrong_convention_is_caught():
    """The comparison can fail: the input zero point's sign flipped (reading CMSIS-NN's input
    offset as the zero point) changes the output."""
    case = "lstm_2"
    c, a = DOC["cases"][case], _arrays(case)
    layer = _layer(case)
    wrong = LstmLayer(layer.w_ih, layer.w_hh, layer.bias, layer.w_ih_scales,
                      layer.w_hh_scales, QuantParams(1.0, min(127, -c["input_zero_point"])),
                      layer.hidden, layer.cell_power)
    d = dict(layer.derived)
    d.update(b_ih=wrong.derived["b_ih"])
    object.__setattr__(wrong, "derived", d)
    assert not np.array_equal(lstm_layer(wrong, a["x"]), a["expected"])
