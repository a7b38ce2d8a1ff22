"""Golden cases of the integer student (``qdaed vectors export --integer``): every intermediate
per time step, exact, with the quantization parameters and the case's .tflite file.

Each case is one int8 student (``qdaed.integer``, TFLite Micro's int8 kernels) on an int8
input. Inputs: ``x`` (B, T, I) int8 and, per layer l, ``l{l}.w_ih`` (4, H, I) int8,
``l{l}.w_hh`` (4, H, H) int8, ``l{l}.bias`` (4, H) int32 (gate order i, f, g, o),
``l{l}.w_ih_scales`` / ``l{l}.w_hh_scales`` (4,) float32; ``fc.weight`` (C, H) int8,
``fc.bias`` (C,) int32, ``fc.weight_scales`` float32. ``options`` holds every zero point and
scale, each layer's cell power p (cell scale 2^p) and every derived (multiplier, shift) pair.
``model.tflite`` is the same network as a TFLite flatbuffer (input ``x``, output ``scores``).

Outputs (all exact), in dataflow order within a time step (``options.dataflow``: [name, time
axis or null]):

    l{l}.input_gates      (B, T, 4, H) int16  x̂_k = sat16(rescale(b' + W_ih[k] x_t))  Q3.12
    l{l}.recurrent_gates  (B, T, 4, H) int16  ĥ_k = sat16(rescale(W_hh[k] (h_{t−1} − z_h)))
    l{l}.pre              (B, T, 4, H) int16  a_k = sat16(x̂_k + ĥ_k)
    l{l}.gates            (B, T, 4, H) int16  i, f, o = σ(a), g = tanh(a)            Q0.15
    l{l}.cell             (B, T, H)    int16  c_t (scale 2^p)
    l{l}.h                (B, T, H)    int8   h_t (the layer's output)
    pooled (B, H), logits (B, C), scores (B, C) int8   MEAN, FULLY_CONNECTED, LOGISTIC

``qdaed vectors check`` reports for such a case the first diverging tensor, time step and
element (steps first, then layers, then the order above) and the difference in LSBs.
"""

from __future__ import annotations

import numpy as np

from qdaed.formats.tflite_export import export_tflite
from qdaed.integer import calibrate, lstm_layer, mean_over_time, fully_connected, logistic
from qdaed.integer.fixedpoint import rescale
from qdaed.integer.ops import FullyConnected, LstmLayer, QuantParams
from qdaed.integer.student import IntegerStudent
from qdaed.models.student import StudentLSTM
from qdaed.vectors.cases import register

OP = "int8_student"
LAYER_TENSORS = ("input_gates", "recurrent_gates", "pre", "gates", "cell", "h")


def _sat16(v):
    return np.clip(v, -32768, 32767).astype(np.int16)


def _gate_products(w, bias, v, pairs):
    """sat16(rescale(bias_k + W[k] v_t, m_k, s_k)) for every step: v (B, T, J) int64 with
    the zero point taken off; returns (B, T, 4, H) int16."""
    acc = np.einsum("khj,btj->btkh", w.astype(np.int64), v) + bias.astype(np.int64)
    acc = ((acc + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int32)     # int32 wrapping sums
    out = np.empty(acc.shape, np.int16)
    for k, (m, s) in enumerate(pairs):
        out[:, :, k] = _sat16(rescale(acc[:, :, k], int(m), int(s)))
    return out


def layer_trace(layer, x):
    """Every intermediate of one layer (module docstring) for x (B, T, I) int8: a dict."""
    y, tr = lstm_layer(layer, x, trace=True)
    d = layer.derived
    z_in, z_h = layer.input.zero_point, layer.hidden.zero_point
    h_prev = np.concatenate([np.full((y.shape[0], 1, y.shape[2]), z_h, np.int64),
                             y[:, :-1].astype(np.int64)], axis=1)
    xg = _gate_products(layer.w_ih, layer.bias, x.astype(np.int64) - z_in,
                        zip(d["m_ih"], d["s_ih"]))
    hg = _gate_products(layer.w_hh, np.zeros_like(layer.bias), h_prev - z_h,
                        zip(d["m_hh"], d["s_hh"]))
    if not np.array_equal(_sat16(xg.astype(np.int32) + hg), tr.pre):   # an internal bug
        raise RuntimeError("integer golden case: gate products disagree with the kernel")
    return {"input_gates": xg, "recurrent_gates": hg, "pre": tr.pre, "gates": tr.gates,
            "cell": tr.cell, "h": y}


def _params(q):
    return {"scale": float(np.float32(q.scale)), "zero_point": int(q.zero_point)}


def _options(student, T):
    layers = []
    for la in student.layers:
        d = la.derived
        layers.append({
            "input": _params(la.input), "hidden": _params(la.hidden),
            "cell_power": int(la.cell_power),
            "input_rescale": [[int(m), int(s)] for m, s in zip(d["m_ih"], d["s_ih"])],
            "recurrent_rescale": [[int(m), int(s)] for m, s in zip(d["m_hh"], d["s_hh"])],
            "forget_cell_rescale": [int(v) for v in d["forget_cell"]],
            "input_cell_rescale": [int(v) for v in d["input_cell"]],
            "output_rescale": [int(v) for v in d["output"]],
            "tanh_cell_input": [int(v) for v in d["tanh"]]})
    fc = student.fc
    return {"layers": layers, "pooled": _params(student.pooled),
            "logits": _params(fc.output), "scores": _params(student.output),
            "fc_rescale": [[int(m), int(s)] for m, s in zip(fc.derived["multipliers"],
                                                           fc.derived["shifts"])],
            "steps": int(T)}


def integer_case(b, student, x):
    """Store ``student`` on ``x`` (B, T, I) int8 in Builder ``b`` (module docstring)."""
    B, T, _ = x.shape
    b.options.update(_options(student, T))
    b.input("x", x)
    for k, la in enumerate(student.layers):
        for name in ("w_ih", "w_hh", "bias"):
            b.input(f"l{k}.{name}", getattr(la, name))
        b.input(f"l{k}.w_ih_scales", la.w_ih_scales, np.float32)
        b.input(f"l{k}.w_hh_scales", la.w_hh_scales, np.float32)
    b.input("fc.weight", student.fc.weights)
    b.input("fc.bias", student.fc.bias)
    b.input("fc.weight_scales", student.fc.weight_scales, np.float32)
    dataflow, y = [], x
    for k, la in enumerate(student.layers):
        tr = layer_trace(la, y)
        for name in LAYER_TENSORS:
            b.output(f"l{k}.{name}", tr[name], "exact")
            dataflow.append([f"l{k}.{name}", 1])
        y = tr["h"]
    pooled = mean_over_time(y, student.layers[-1].hidden, student.pooled)
    logits = fully_connected(student.fc, pooled)
    scores = logistic(logits, student.fc.output)
    for name, v in (("pooled", pooled), ("logits", logits), ("scores", scores)):
        b.output(name, v, "exact")
        dataflow.append([name, None])
    b.options["dataflow"] = dataflow
    b.case.files["model.tflite"] = export_tflite(student, T, B)


def _calibrated(b, inputs, hidden, layers, steps, batch=1, classes=3):
    model = StudentLSTM(inputs, hidden, layers, classes, "mean",
                        seed=int(b.rng.integers(2 ** 31)))
    clips = b.rng.standard_normal((6, steps, inputs)).astype(np.float32)
    student = calibrate(model, clips)
    x = student.quantize_input(b.rng.standard_normal((batch, steps, inputs)))
    integer_case(b, student, x)


def _int8(b, shape):
    return b.rng.integers(-128, 128, shape).astype(np.int8)


def _drawn(b, inputs, hidden, steps, saturate):
    """A student drawn directly at int8's extremes (weights ±128/127, gates saturated by
    large biases when ``saturate``), cell scale 2^-11; input and input-weight scales 2^-4 and
    2^-11, so the input-gate rescale is 2^-3 exactly (multiplier 2^30, shift −2) and its
    rounding ties are frequent."""
    q_in = QuantParams(2.0 ** -4, int(b.rng.integers(-128, 128)))
    w_ih = b.rng.choice(np.array([-128, 127], np.int8), (4, hidden, inputs))
    w_hh = b.rng.choice(np.array([-128, 127], np.int8), (4, hidden, hidden))
    bias = (b.rng.choice([-1, 1], (4, hidden)) * (2 ** 26 if saturate else 3000)).astype(
        np.int32)
    hidden_q = QuantParams(1 / 128, 0)
    la = LstmLayer(w_ih, w_hh, bias, np.full(4, 2.0 ** -11), np.full(4, 0.003), q_in,
                   hidden_q, -11)
    pooled = QuantParams(1 / 128, 0)
    fc = FullyConnected(_int8(b, (3, hidden)), np.array([0.01, 0.02, 0.03]),
                        b.rng.integers(-2000, 2000, 3).astype(np.int32), pooled,
                        QuantParams(0.05, 3))
    integer_case(b, IntegerStudent(q_in, (la,), pooled, fc), _int8(b, (2, steps, inputs)))


register("int8_student_1layer_h8_t20", OP, "int8 student (TFLite Micro semantics) calibrated "
         "from a float LSTM(16 -> 8) + mean + FC(8 -> 3) on x (1, 20, 16) int8: every "
         "intermediate per step, parameters, model.tflite", _calibrated, inputs=16, hidden=8,
         layers=1, steps=20)
register("int8_student_2layer_h8_t40", OP, "int8 student calibrated from a 2-layer float "
         "LSTM(16 -> 8 -> 8) on x (1, 40, 16)", _calibrated, inputs=16, hidden=8, layers=2,
         steps=40)
register("int8_student_1layer_h32_t100_b2", OP, "int8 student calibrated from LSTM(40 -> 32) on "
         "x (2, 100, 40)", _calibrated, inputs=40, hidden=32, layers=1, steps=100, batch=2)
register("int8_student_extremes_saturated", OP, "int8 student drawn at the int8 extremes "
         "(weights -128/127, gate biases of ±2^26: saturated gates) on x (2, 30, 6)", _drawn,
         inputs=6, hidden=5, steps=30, saturate=True)
register("int8_student_extremes", OP, "int8 student drawn at the int8 extremes (weights "
         "-128/127) on x (2, 30, 6)", _drawn, inputs=6, hidden=5, steps=30, saturate=False)
