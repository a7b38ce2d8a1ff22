"""The integer ops against the Python-int references of tests/naive.py (zero points not folded,
every rounding as a rational), on corner cases on purpose, and the single ops against TFLite
Micro's MEAN, FULLY_CONNECTED and LOGISTIC."""

import numpy as np
import pytest

from qdaed.errors import InputError
from qdaed.integer import (FullyConnected, LstmLayer, QuantParams, fully_connected, logistic,
                           lstm_layer, mean_over_time)
from qdaed.formats.tflite_export import ModelBuilder
from qdaed.integer.ops import mean_multiplier
from tests import naive
from tests.integer.cases import random_layer, random_qparams, run_tflm


def _naive_layer(layer, x):
    d = layer.derived
    return naive.int8_lstm_layer(
        x, layer.w_ih, layer.w_hh, layer.bias, layer.input.zero_point, layer.hidden.zero_point,
        [naive.quantize_multiplier(layer.input.scale * float(s) / 2.0 ** -12)
         for s in layer.w_ih_scales],
        [naive.quantize_multiplier(layer.hidden.scale * float(s) / 2.0 ** -12)
         for s in layer.w_hh_scales],
        naive.quantize_multiplier(2.0 ** -15), naive.quantize_multiplier(
            2.0 ** -30 / 2.0 ** layer.cell_power),
        naive.quantize_multiplier(2.0 ** -30 / layer.hidden.scale), d["tanh"])


LSTM_CASES = [  # (B, T, I, H, extreme, saturate, seed)
    (1, 1, 1, 1, None, False, 0),
    (1, 1, 3, 1, "max", False, 1),
    (2, 3, 4, 1, "min", False, 2),
    (1, 5, 2, 3, "pm", False, 3),
    (3, 4, 5, 4, None, True, 4),
    (2, 6, 3, 8, None, False, 5),
    (4, 2, 6, 5, "pm", True, 6),
    (1, 12, 4, 6, None, False, 7),
]


@pytest.mark.parametrize("B,T,I,H,extreme,saturate,seed", LSTM_CASES)
def test_lstm_layer_and_its_cell_states_equal_the_python_int_reference(B, T, I, H, extreme,
                                                                        saturate, seed):
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, random_qparams(rng, 0.01, 0.2), I, H, extreme=extreme,
                         saturate=saturate)
    x = rng.integers(-128, 128, (B, T, I)).astype(np.int8)
    if extreme in ("max", "min"):
        x[:] = 127 if extreme == "max" else -128
    y, trace = lstm_layer(layer, x, trace=True)
    y_ref, cells_ref = _naive_layer(layer, x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(trace.cell, cells_ref)
    np.testing.assert_array_equal(lstm_layer(layer, x), y)   # the trace changes nothing


def test_lstm_layer_with_saturating_biases_drives_the_gates_to_their_ends():
    rng = np.random.default_rng(11)
    base = random_layer(rng, random_qparams(rng, 0.01, 0.2), 3, 4)
    bias = np.tile(np.array([1 << 29, -(1 << 29)], np.int32), (4, 2))    # ± in every gate
    layer = LstmLayer(base.w_ih, base.w_hh, bias, base.w_ih_scales, base.w_hh_scales,
                      base.input, base.hidden, base.cell_power)
    x = rng.integers(-128, 128, (2, 5, 3)).astype(np.int8)
    _, trace = lstm_layer(layer, x, trace=True)
    pre, gates = trace.pre.astype(np.int64), trace.gates.astype(np.int64)
    for k, (top, bottom) in enumerate([(32757, 11), (32757, 11), (32767, -32767), (32757, 11)]):
        hi, lo = pre[:, :, k] == 32767, pre[:, :, k] == -32768
        assert hi.any() and lo.any(), f"gate {k}: no saturated pre-activation of each sign"
        assert np.all(gates[:, :, k][hi] == top) and np.all(gates[:, :, k][lo] == bottom)
    np.testing.assert_array_equal(lstm_layer(layer, x), _naive_layer(layer, x)[0])


def test_lstm_layer_constant_input_gives_the_same_sequence_for_every_batch_row():
    rng = np.random.default_rng(12)
    layer = random_layer(rng, random_qparams(rng, 0.01, 0.2), 4, 6)
    x = np.full((3, 7, 4), 17, np.int8)
    y = lstm_layer(layer, x)
    assert np.array_equal(y[0], y[1]) and np.array_equal(y[1], y[2])
    np.testing.assert_array_equal(y, _naive_layer(layer, x)[0])


def test_lstm_layer_refuses_wrong_inputs():
    rng = np.random.default_rng(13)
    layer = random_layer(rng, random_qparams(rng, 0.01, 0.2), 4, 3)
    with pytest.raises(InputError):
        lstm_layer(layer, np.zeros((1, 2, 5), np.int8))          # wrong feature count
    with pytest.raises(InputError):
        lstm_layer(layer, np.zeros((1, 2, 4), np.float32))       # floats are not rounded
    with pytest.raises(InputError):
        lstm_layer(layer, np.full((1, 2, 4), 200))               # outside int8
    with pytest.raises(InputError):
        LstmLayer(layer.w_ih, layer.w_hh, layer.bias, layer.w_ih_scales, layer.w_hh_scales,
                  layer.input, layer.hidden, 3)                   # cell scale 2^3: tanh overflows
    with pytest.raises(InputError):
        QuantParams(0.0, 0)


@pytest.mark.parametrize("T", [1, 2, 3, 7, 100, 1000])
def test_mean_over_time_equals_the_python_int_reference(T):
    rng = np.random.default_rng(T)
    for q_in, q_out in [(random_qparams(rng, 0.004, 0.02), random_qparams(rng, 0.004, 0.02)),
                        (QuantParams(0.5, 3), QuantParams(0.01, -7)),      # s_in/s_out > 1
                        (QuantParams(0.01, -128), QuantParams(0.01, 127))]:
        x = rng.integers(-128, 128, (3, T, 5)).astype(np.int8)
        x[0] = 127
        x[1] = -128
        m, s = naive.quantize_multiplier(q_in.scale / q_out.scale)
        np.testing.assert_array_equal(mean_over_time(x, q_in, q_out),
                                      naive.int8_mean(x, q_in.zero_point, q_out.zero_point, m, s))


def test_mean_multiplier_divides_by_the_count_with_a_shift():
    m, s = mean_multiplier(QuantParams(1.0, 0), QuantParams(1.0, 0), 4)
    assert (m, s) == ((1 << 30) * 4 // 4, 1 - 2)      # 1 = 2^30·2^(1−31), then /4 = 2^-2


@pytest.mark.parametrize("per_channel", [False, True])
def test_fully_connected_equals_the_python_int_reference(per_channel):
    rng = np.random.default_rng(20 + per_channel)
    for B, D, C in [(1, 1, 1), (4, 7, 3), (2, 32, 5)]:
        q_in, q_out = random_qparams(rng, 0.002, 0.05), random_qparams(rng, 0.01, 0.3)
        w = rng.integers(-128, 128, (C, D)).astype(np.int8)
        w[0, :] = -128
        scales = np.exp(rng.uniform(-7, -2, C if per_channel else 1))
        fc = FullyConnected(w, scales, rng.integers(-10000, 10000, C).astype(np.int32), q_in,
                            q_out)
        x = rng.integers(-128, 128, (B, D)).astype(np.int8)
        x[-1] = 127
        pairs = [naive.quantize_multiplier(q_in.scale * float(s) / q_out.scale)
                 for s in np.broadcast_to(fc.weight_scales, (C,))]
        np.testing.assert_array_equal(fully_connected(fc, x), naive.int8_fully_connected(
            x, w, fc.bias, q_in.zero_point, q_out.zero_point, pairs))


ALL_INT8 = np.arange(-128, 128, dtype=np.int8)
LOGISTIC_INPUTS = [QuantParams(0.1, 0), QuantParams(0.0625, -128), QuantParams(0.02, 37),
                   QuantParams(0.3, 127), QuantParams(1.0 / 256, -5), QuantParams(0.75, 10)]


@pytest.mark.parametrize("q", LOGISTIC_INPUTS)
def test_logistic_every_int8_input_equals_the_python_int_reference(q):
    want = [naive.int8_logistic(int(v), q.zero_point, q.scale) for v in ALL_INT8]
    np.testing.assert_array_equal(logistic(ALL_INT8, q), want)
    # and is σ to within a step of the output grid
    real = 1 / (1 + np.exp(-q.dequantize(ALL_INT8)))
    assert np.max(np.abs((logistic(ALL_INT8, q).astype(np.int64) + 128) / 256 - real)) <= 1 / 256


# ---- the single ops against TFLite Micro --------------------------------------------------

@pytest.mark.parametrize("q", LOGISTIC_INPUTS)
def test_logistic_every_int8_input_matches_tflite_micro(q):
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    mb = ModelBuilder()
    x = mb.tensor("x", (256,), np.int8, scales=q.scale, zero_points=q.zero_point)
    y = mb.tensor("y", (256,), np.int8, scales=1 / 256, zero_points=-128)
    mb.operator("LOGISTIC", [x], [y])
    (want,) = run_tflm(runtime, mb.finish([x], [y]), [ALL_INT8])
    np.testing.assert_array_equal(logistic(ALL_INT8, q), want)


def test_mean_and_fully_connected_match_tflite_micro_on_varied_shapes_and_scales():
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    rng = np.random.default_rng(30)
    for case in range(12):
        B, T, H, C = (int(v) for v in (rng.integers(1, 5), rng.choice([1, 2, 5, 100, 333]),
                                       rng.integers(1, 40), rng.integers(1, 6)))
        q_in, q_pool = random_qparams(rng, 0.002, 0.05), random_qparams(rng, 0.002, 0.05)
        fc = FullyConnected(rng.integers(-128, 128, (C, H)).astype(np.int8),
                            np.exp(rng.uniform(-7, -2, C if case % 2 else 1)),
                            rng.integers(-10000, 10000, C).astype(np.int32), q_pool,
                            random_qparams(rng, 0.01, 0.3))
        mb = ModelBuilder()
        xi = mb.tensor("x", (B, T, H), np.int8, scales=q_in.scale, zero_points=q_in.zero_point)
        axis = mb.tensor("axis", (1,), np.int32, data=np.array([1], np.int32))
        p = mb.tensor("p", (B, H), np.int8, scales=q_pool.scale, zero_points=q_pool.zero_point)
        mb.operator("MEAN", [xi, axis], [p], mb.s.ReducerOptionsT())
        w = mb.tensor("w", (C, H), np.int8, scales=fc.weight_scales, data=fc.weights)
        b = mb.tensor("b", (C,), np.int32, data=fc.bias,
                      scales=(np.float32(q_pool.scale) * fc.weight_scales).astype(np.float32))
        z = mb.tensor("z", (B, C), np.int8, scales=fc.output.scale,
                      zero_points=fc.output.zero_point)
        mb.operator("FULLY_CONNECTED", [p, w, b], [z], mb.s.FullyConnectedOptionsT())
        x = rng.integers(-128, 128, (B, T, H)).astype(np.int8)
        pooled, logits = run_tflm(runtime, mb.finish([xi], [p, z]), [x], 2)
        mine = mean_over_time(x, q_in, q_pool)
        np.testing.assert_array_equal(mine, pooled)
        np.testing.assert_array_equal(fully_connected(fc, mine), logits)


def _double_rounding(acc, m, s):
    """Vectorised search aid: rescale(acc, m, s ≤ 0) for an int64 array (the test checks the
    value it finds with tests/naive.py)."""
    ab = acc * m
    q = np.where(ab >= 0, (ab + (1 << 30)) >> 31, -((-(ab + 1 - (1 << 30))) >> 31))
    mask = (1 << -s) - 1
    return (q >> -s) + ((q & mask) > (mask >> 1) + (q < 0))


def test_fully_connected_multiplier_is_the_double_product_of_the_scales_as_in_tflite_micro():
    """Cases where the multiplier from double(s_in)·double(s_w) and from a float32 product
    round an accumulator differently (acc set through the bias): TFLite Micro and qdaed give
    the double-product result."""
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    rng = np.random.default_rng(40)
    checked = 0
    while checked < 4:
        s_in, s_w, s_out = (np.float32(np.exp(rng.uniform(a, b)))
                            for a, b in ((-7, -3), (-9, -3), (-6, -2)))
        m_f32 = naive.quantize_multiplier(float(s_in * s_w) / float(s_out))
        m_dbl = naive.quantize_multiplier(float(s_in) * float(s_w) / float(s_out))
        if m_f32 == m_dbl:
            continue
        limit = int(120 / (float(s_in) * float(s_w) / float(s_out)))
        candidates = np.arange(-limit, limit, dtype=np.int64)
        differ = np.nonzero(_double_rounding(candidates, *m_f32)
                            != _double_rounding(candidates, *m_dbl))[0]
        if not differ.size:
            continue
        accs = [int(candidates[differ[0]])]
        assert naive.rescale(accs[0], *m_f32) != naive.rescale(accs[0], *m_dbl)
        fc = FullyConnected(np.zeros((1, 1), np.int8), [s_w], np.array(accs, np.int32),
                            QuantParams(s_in, 0), QuantParams(s_out, 0))
        mb = ModelBuilder()
        x = mb.tensor("x", (1, 1), np.int8, scales=s_in, zero_points=0)
        w = mb.tensor("w", (1, 1), np.int8, scales=s_w, data=fc.weights)
        b = mb.tensor("b", (1,), np.int32, scales=np.float32(s_in * s_w), data=fc.bias)
        o = mb.tensor("o", (1, 1), np.int8, scales=s_out, zero_points=0)
        mb.operator("FULLY_CONNECTED", [x, w, b], [o], mb.s.FullyConnectedOptionsT())
        (want,) = run_tflm(runtime, mb.finish([x], [o]), [np.zeros((1, 1), np.int8)])
        got = fully_connected(fc, np.zeros((1, 1), np.int8))
        assert int(want[0, 0]) == naive.rescale(accs[0], *m_dbl) == int(got[0, 0])
        checked += 1


def test_quantize_input_rounds_the_float32_quotient_half_away_from_zero():
    q = QuantParams(0.5, 3)
    # quotients 0.5, −0.5, 1.5, −2.5 are ties; 0.49999997 (float32 just below 0.5) is not
    x = np.array([0.25, -0.25, 0.75, -1.25, 0.49999997 * 0.5, 1000.0, -1000.0], np.float32)
    assert q.quantize(x).tolist() == [4, 2, 5, 0, 3, 127, -128]
    with pytest.raises(InputError):
        q.quantize(np.array([np.nan]))
