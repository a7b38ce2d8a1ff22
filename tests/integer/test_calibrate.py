"""Calibration: TFLite's post-training rules, checked against values worked out by hand and
against the ranges of an independent float64 NumPy LSTM run over the representative set."""

import numpy as np
import pytest

from qdaed.detector import Detector
from qdaed.errors import InputError
from qdaed.integer.calibrate import (asymmetric_params, calibrate, cell_power, quantize_bias,
                                     symmetric_weights)
from qdaed.integer.ops import QuantParams
from qdaed.models.quantized import QuantSpec, dequantized_state
from qdaed.models.student import StudentLSTM


def test_asymmetric_params_follow_tflite_rules_on_hand_worked_ranges():
    # [−1, 1.55]: s = 2.55 / 255 = 0.01, z = round(−128 + 100) = −28
    q = asymmetric_params(-1.0, 1.55)
    assert q.scale == float(np.float32(0.01)) and q.zero_point == -28
    # a range above zero is widened to contain 0: [0, 2.55] → z = −128
    assert asymmetric_params(0.5, 2.55) == QuantParams(float(np.float32(0.01)), -128)
    # below zero: [−2.55, 0] → z = 127
    assert asymmetric_params(-2.55, -0.5) == QuantParams(float(np.float32(0.01)), 127)
    assert asymmetric_params(0.0, 0.0) == QuantParams(1.0, 0)
    with pytest.raises(InputError):
        asymmetric_params(-np.inf, 1.0)


def test_asymmetric_params_represent_zero_exactly():
    rng = np.random.default_rng(0)
    for lo, hi in rng.normal(size=(50, 2)) * 3:
        q = asymmetric_params(min(lo, hi), max(lo, hi))
        assert q.quantize(np.array([0.0]))[0] == q.zero_point
        assert q.dequantize(q.zero_point) == 0.0


def test_symmetric_weights_scale_by_max_abs_and_round_ties_away_from_zero():
    w = np.array([[1.27, -0.635, 0.005], [0.015, -0.005, 0.0]])
    q, s = symmetric_weights(w)
    assert s == np.float32(0.01)
    # 0.005/0.01 = 0.5 → 1 and −0.5 → −1 (ties away; the float32 scale is a hair above 0.01,
    # so compare with the exact quotient's rounding)
    want = np.sign(w / float(s)) * np.floor(np.abs(w / float(s)) + 0.5)
    np.testing.assert_array_equal(q, want)
    assert q.max() == 127 and q.min() >= -127
    q0, s0 = symmetric_weights(np.zeros((2, 2)))
    assert s0 == 1.0 and not q0.any()


def test_quantize_bias_and_cell_power_rules():
    np.testing.assert_array_equal(quantize_bias(np.array([0.25, -0.25, 0.3]), 0.5),
                                  [1, -1, 1])           # 0.5 ties away from zero
    with pytest.raises(InputError):
        quantize_bias(np.array([1.0]), 1e-12)           # past int32
    assert cell_power(1.0) == -14        # 32767·2^-15 < 1 ≤ 32767·2^-14
    assert cell_power(32767 * 2.0 ** -15) == -15
    assert cell_power(32767 * 2.0 ** -15 * (1 + 1e-9)) == -14
    assert cell_power(0.0) == -20 and cell_power(1e-12) == -20
    assert cell_power(1e9) == 2


def _textbook_lstm_ranges(params, x, num_layers, hidden):
    """Per layer min/max of h and max |c|, and the pooled mean, by an independent loop."""
    def sig(a):
        return 1 / (1 + np.exp(-a))
    inp = x.astype(np.float64)
    stats = []
    for layer in range(num_layers):
        w_ih, w_hh = params[f"lstm.weight_ih_l{layer}"], params[f"lstm.weight_hh_l{layer}"]
        b = params[f"lstm.bias_ih_l{layer}"] + params[f"lstm.bias_hh_l{layer}"]
        h = np.zeros((x.shape[0], hidden))
        c = np.zeros_like(h)
        out, c_max = [], 0.0
        for t in range(x.shape[1]):
            a = inp[:, t] @ w_ih.T + h @ w_hh.T + b
            i, f = sig(a[:, :hidden]), sig(a[:, hidden:2 * hidden])
            g, o = np.tanh(a[:, 2 * hidden:3 * hidden]), sig(a[:, 3 * hidden:])
            c = f * c + i * g
            c_max = max(c_max, np.abs(c).max())
            h = o * np.tanh(c)
            out.append(h)
        inp = np.stack(out, axis=1)
        stats.append((inp.min(), inp.max(), c_max))
    return stats, inp.mean(axis=1)


def test_calibration_scales_come_from_the_float_network_ranges_over_the_representative_set():
    rng = np.random.default_rng(3)
    model = StudentLSTM(6, 5, 2, 3, seed=4)
    clips = rng.standard_normal((7, 9, 6)).astype(np.float32)
    st = calibrate(model, clips)
    params = {n: v.astype(np.float64) for n, v in model.params.items()}
    stats, pooled = _textbook_lstm_ranges(params, clips, 2, 5)
    assert st.input == asymmetric_params(clips.min(), clips.max())
    for layer, (lo, hi, c_max) in zip(st.layers, stats):
        # the cell scale 2^p: the smallest power of two with 32767·2^p ≥ max |c|
        assert 32767 * 2.0 ** layer.cell_power >= c_max > 32767 * 2.0 ** (layer.cell_power - 1)
        want = asymmetric_params(lo, hi)
        assert layer.hidden.zero_point == want.zero_point
        assert layer.hidden.scale == pytest.approx(want.scale, rel=1e-6)
    assert st.pooled.scale == pytest.approx(asymmetric_params(pooled.min(), pooled.max()).scale,
                                            rel=1e-6)
    logits = pooled @ params["fc.weight"].T + params["fc.bias"]
    assert st.fc.output.scale == pytest.approx(
        asymmetric_params(logits.min(), logits.max()).scale, rel=1e-6)
    # weights: one scale per gate matrix, max |w| / 127; head per row
    w0 = params["lstm.weight_ih_l0"].reshape(4, 5, 6)
    np.testing.assert_allclose(st.layers[0].w_ih_scales, np.abs(w0).max(axis=(1, 2)) / 127,
                               rtol=1e-6)
    np.testing.assert_allclose(st.fc.weight_scales, np.abs(params["fc.weight"]).max(axis=1) / 127,
                               rtol=1e-6)
    # biases: (b_ih + b_hh) / (s_in · s_w) rounded
    b0 = (params["lstm.bias_ih_l0"] + params["lstm.bias_hh_l0"]).reshape(4, 5)
    s = np.float32(st.input.scale) * st.layers[0].w_ih_scales
    assert np.max(np.abs(st.layers[0].bias - b0 / s[:, None].astype(np.float64))) <= 0.5 + 1e-6


def test_calibrated_student_scores_stay_close_to_the_float_student():
    rng = np.random.default_rng(5)
    model = StudentLSTM(8, 16, 2, 4, seed=6)
    clips = rng.standard_normal((16, 30, 8)).astype(np.float32)
    st = calibrate(model, clips)
    z, _ = model.forward(clips)
    np.testing.assert_allclose(st.scores(st.quantize_input(clips)), 1 / (1 + np.exp(-z)),
                               atol=0.03)


def test_calibration_of_a_k_bit_student_uses_its_quantized_weights():
    rng = np.random.default_rng(6)
    model = StudentLSTM(4, 6, 1, 2, seed=7)
    quantized = QuantSpec(2).quantize(model.params)
    clips = rng.standard_normal((3, 5, 4)).astype(np.float32)
    st = calibrate(model, clips, quantized)
    deq = dequantized_state(model.params, quantized)["lstm.weight_hh_l0"].reshape(4, 6, 6)
    np.testing.assert_allclose(st.layers[0].w_hh_scales, np.abs(deq).max(axis=(1, 2)) / 127,
                               rtol=1e-6)
    # Q_2(w) has 4 levels per row (group "row"), so its int8 codes have at most 4 per row,
    # where the float weights give 6 distinct codes in some row
    codes = st.layers[0].w_hh.reshape(24, 6)
    assert max(len(set(row.tolist())) for row in codes) <= 4
    plain = calibrate(model, clips).layers[0].w_hh.reshape(24, 6)
    assert max(len(set(row.tolist())) for row in plain) == 6
    det = Detector.from_state_dict(model.state_dict(), classes=["a", "b"], frames=5)
    assert calibrate(det, clips).fc.output == calibrate(model, clips).fc.output


def test_calibrate_refuses_what_it_cannot_represent():
    model = StudentLSTM(4, 3, 1, 2, seed=1)
    with pytest.raises(InputError):
        calibrate(model, np.zeros((2, 3, 5), np.float32))           # wrong feature count
    with pytest.raises(InputError):
        calibrate(model, np.full((2, 3, 4), np.nan, np.float32))
    with pytest.raises(InputError):
        calibrate(StudentLSTM(4, 3, 1, 2, pooling="last"), np.zeros((2, 3, 4), np.float32))
    with pytest.raises(InputError):
        calibrate("model", np.zeros((2, 3, 4), np.float32))
