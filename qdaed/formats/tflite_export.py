"""The integer student as a TensorFlow Lite flatbuffer, written without TensorFlow.

``export_tflite(student, frames, batch=1)`` returns the bytes of a .tflite file (schema
version 3, identifier ``TFL3``) with one subgraph:

    input  "lfbe_int8"  int8 (B, T, F)   normalised LFBE frames quantized with student.input
    UNIDIRECTIONAL_SEQUENCE_LSTM × L     batch-major (time_major false), cell gate TANH, no
        clip, no peephole/projection/layer norm; 24 inputs in TFLite's order: x; input-to-
        {input, forget, cell, output} weights (H, I) int8; recurrent-to-{…} (H, H) int8;
        three absent peephole tensors; {input, forget, cell, output} gate biases (H,) int32
        (scale s_in·s_w, zero point 0, zero points *not* folded in: TFLite folds them at run
        time); absent projection weights and bias; the hidden state (B, H) int8 and the cell
        state (B, H) int16 (scale 2^p) as variable tensors; four absent layer-norm tensors.
        Output (B, T, H) int8 with the hidden state's quantization.
    MEAN over axis 1, keep_dims false    (B, H) int8
    FULLY_CONNECTED                      (B, C) int8 logits; weights (C, H) int8 symmetric,
        per channel (quantized_dimension 0) when the student's head is; bias (C,) int32
    LOGISTIC                             output "scores" int8 (B, C), scale 1/256, zp −128

Buffers are 16-byte aligned. Every scale is written as the float32 the integer path uses, so
a TFLite (Micro) interpreter derives the same multipliers (qdaed.integer.ops).

:class:`ModelBuilder` is the small writer underneath (tensors, buffers, operators); it uses
the flatbuffer schema module shipped by the ``tflite-micro`` package (qdaed's ``tflm`` extra),
imported only when a file is written.
"""

from __future__ import annotations

import numpy as np

from qdaed.errors import InputError
from qdaed.integer.student import IntegerStudent
from qdaed.io.atomic import atomic_open
from qdaed.validate import check_int

_NP_TO_TFLITE = {"int8": "INT8", "int16": "INT16", "int32": "INT32", "float32": "FLOAT32"}


def _schema():
    """(schema module, flatbuffers module): optional dependencies, imported on first use."""
    try:
        import flatbuffers  # here: optional extra 'tflm', as tflite_micro below
        from tflite_micro.tensorflow.lite.micro.python import (  # here: optional extra 'tflm'
            schema_py_generated as schema)
    except ImportError:
        raise InputError("--tflite: needs the tflite-micro package (pip install --pre "
                         "tflite-micro, or qdaed's 'tflm' extra)") from None
    return schema, flatbuffers


def check_available():
    """InputError unless the optional tflite-micro package (the schema module) is installed."""
    _schema()


class ModelBuilder:
    """Assembles a single-subgraph TFLite model: ``tensor`` and ``operator`` append, and
    ``finish`` packs the flatbuffer. Tensor indices are returned by ``tensor``; an absent
    optional operator input is −1."""

    def __init__(self, description="qdaed"):
        self.s, self._flatbuffers = _schema()
        self.description = description
        self.buffers = [self._buffer(None)]     # buffer 0: the empty sentinel
        self.tensors, self.operators, self.opcodes = [], [], []

    def _buffer(self, data):
        schema = self.s

        class AlignedBuffer(schema.BufferT):
            def Pack(self, builder):           # noqa: N802 (the schema's method name)
                vec = None
                if self.data is not None:
                    payload = bytes(self.data)
                    builder.StartVector(1, len(payload), 16)
                    builder.head -= len(payload)
                    builder.Bytes[builder.head:builder.head + len(payload)] = payload
                    builder.vectorNumElems = len(payload)
                    vec = builder.EndVector()
                schema.BufferStart(builder)
                if vec is not None:
                    schema.BufferAddData(builder, vec)
                return schema.BufferEnd(builder)

        b = AlignedBuffer()
        b.data = data
        return b

    def tensor(self, name, shape, dtype, *, scales=None, zero_points=None, axis=0, data=None,
               variable=False):
        """Append a tensor; ``data`` (an array of ``dtype``) makes it a constant."""
        s = self.s
        t = s.TensorT()
        t.name = name
        t.shape = [int(d) for d in shape]
        t.type = getattr(s.TensorType, _NP_TO_TFLITE[np.dtype(dtype).name])
        t.isVariable = bool(variable)
        if scales is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(np.float32(v)) for v in np.atleast_1d(scales)]
            zps = np.zeros(len(q.scale), np.int64) if zero_points is None else zero_points
            q.zeroPoint = [int(v) for v in np.atleast_1d(zps)]
            q.quantizedDimension = int(axis)
            t.quantization = q
        if data is not None:
            arr = np.ascontiguousarray(data, dtype=np.dtype(dtype).newbyteorder("<"))
            if tuple(arr.shape) != tuple(t.shape):
                raise InputError(f"tensor {name}: data shape {arr.shape} differs from {shape}")
            self.buffers.append(self._buffer(arr.tobytes()))
            t.buffer = len(self.buffers) - 1
        else:
            t.buffer = 0
        self.tensors.append(t)
        return len(self.tensors) - 1

    def operator(self, op_name, inputs, outputs, options=None):
        """Append a builtin operator (``op_name`` as in BuiltinOperator, e.g. "MEAN");
        ``options`` an instance of the op's *OptionsT class, or None."""
        s = self.s
        code = getattr(s.BuiltinOperator, op_name)
        if code not in self.opcodes:
            self.opcodes.append(code)
        op = s.OperatorT()
        op.opcodeIndex = self.opcodes.index(code)
        op.inputs = [int(i) for i in inputs]
        op.outputs = [int(i) for i in outputs]
        if options is not None:
            op.builtinOptionsType = getattr(s.BuiltinOptions, type(options).__name__[:-1])
            op.builtinOptions = options
        self.operators.append(op)

    def finish(self, inputs, outputs):
        """The model's bytes, with the given graph input and output tensor indices."""
        s = self.s
        sub = s.SubGraphT()
        sub.tensors, sub.operators = self.tensors, self.operators
        sub.inputs, sub.outputs = list(inputs), list(outputs)
        sub.name = "main"
        model = s.ModelT()
        model.version = 3
        model.description = self.description
        model.subgraphs = [sub]
        model.buffers = self.buffers
        codes = []
        for code in self.opcodes:
            oc = s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = 1
            codes.append(oc)
        model.operatorCodes = codes
        builder = self._flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def add_lstm_layer(mb, layer, x_index, batch, frames, name):
    """Append one UNIDIRECTIONAL_SEQUENCE_LSTM (its constant and state tensors) reading tensor
    ``x_index``; returns the index of its output (B, T, H)."""
    s = mb.s
    H, s_in = layer.hidden_size, layer.input.scale
    w_ih, w_hh = [], []
    # TFLite's input order is input, forget, cell, output = PyTorch's i, f, g, o
    for k, gate in enumerate(("input", "forget", "cell", "output")):
        w_ih.append(mb.tensor(f"{name}/input_to_{gate}_w", layer.w_ih[k].shape, np.int8,
                              scales=layer.w_ih_scales[k], data=layer.w_ih[k]))
    for k, gate in enumerate(("input", "forget", "cell", "output")):
        w_hh.append(mb.tensor(f"{name}/recurrent_to_{gate}_w", layer.w_hh[k].shape, np.int8,
                              scales=layer.w_hh_scales[k], data=layer.w_hh[k]))
    biases = [mb.tensor(f"{name}/{gate}_gate_bias", (H,), np.int32,
                        scales=np.float32(s_in) * layer.w_ih_scales[k], data=layer.bias[k])
              for k, gate in enumerate(("input", "forget", "cell", "output"))]
    h = mb.tensor(f"{name}/hidden_state", (batch, H), np.int8, scales=layer.hidden.scale,
                  zero_points=layer.hidden.zero_point, variable=True)
    c = mb.tensor(f"{name}/cell_state", (batch, H), np.int16,
                  scales=2.0 ** layer.cell_power, zero_points=0, variable=True)
    out = mb.tensor(f"{name}/output", (batch, frames, H), np.int8, scales=layer.hidden.scale,
                    zero_points=layer.hidden.zero_point)
    opts = s.UnidirectionalSequenceLSTMOptionsT()
    opts.fusedActivationFunction = s.ActivationFunctionType.TANH
    opts.cellClip = 0.0
    opts.projClip = 0.0
    opts.timeMajor = False
    inputs = [x_index, *w_ih, *w_hh, -1, -1, -1, *biases, -1, -1, h, c, -1, -1, -1, -1]
    mb.operator("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, [out], opts)
    return out


def add_head(mb, student, x_index, batch):
    """Append MEAN over time, FULLY_CONNECTED and LOGISTIC after tensor ``x_index``
    (B, T, H); returns the indices (pooled, logits, scores)."""
    s = mb.s
    top, fc = student.layers[-1], student.fc
    C, H = fc.weights.shape
    axis = mb.tensor("mean/axis", (1,), np.int32, data=np.array([1], np.int32))
    pooled = mb.tensor("pooled", (batch, H), np.int8, scales=student.pooled.scale,
                       zero_points=student.pooled.zero_point)
    ropts = s.ReducerOptionsT()
    ropts.keepDims = False
    mb.operator("MEAN", [x_index, axis], [pooled], ropts)
    w = mb.tensor("fc/weights", (C, H), np.int8, scales=fc.weight_scales,
                  zero_points=np.zeros(fc.weight_scales.size, np.int64), axis=0,
                  data=fc.weights)
    bias_scales = (np.float32(fc.input.scale) * fc.weight_scales).astype(np.float32)
    b = mb.tensor("fc/bias", (C,), np.int32, scales=bias_scales,
                  zero_points=np.zeros(bias_scales.size, np.int64), data=fc.bias)
    logits = mb.tensor("logits", (batch, C), np.int8, scales=fc.output.scale,
                       zero_points=fc.output.zero_point)
    fopts = s.FullyConnectedOptionsT()
    fopts.fusedActivationFunction = s.ActivationFunctionType.NONE
    fopts.keepNumDims = False
    mb.operator("FULLY_CONNECTED", [pooled, w, b], [logits], fopts)
    out = student.output
    scores = mb.tensor("scores", (batch, C), np.int8, scales=out.scale,
                       zero_points=out.zero_point)
    mb.operator("LOGISTIC", [logits], [scores])
    return pooled, logits, scores


def export_tflite(student, frames, batch=1, path=None, *, outputs="scores"):
    """The .tflite bytes of ``student`` (an IntegerStudent) for inputs of ``frames`` steps and
    ``batch`` sequences (TFLite Micro's shapes are fixed); written to ``path`` too if given.

    outputs: "scores" (the model), or "lstm" (the sub-graph input → LSTM layers, whose output
    is the top layer's (B, T, H), for checking the layers alone), or "all" (the model with
    every op's output as a graph output: each layer's, pooled, logits, scores).
    """
    if not isinstance(student, IntegerStudent):
        raise InputError(f"student: expected an IntegerStudent, got {type(student).__name__}")
    frames = check_int("frames", frames, lo=1)
    batch = check_int("batch", batch, lo=1)
    if outputs not in ("scores", "lstm", "all"):
        raise InputError(f"outputs: expected 'scores', 'lstm' or 'all', got {outputs!r}")
    mb = ModelBuilder("qdaed integer student")
    x = mb.tensor("lfbe_int8", (batch, frames, student.input_size), np.int8,
                  scales=student.input.scale, zero_points=student.input.zero_point)
    y, layer_outs = x, []
    for k, layer in enumerate(student.layers):
        y = add_lstm_layer(mb, layer, y, batch, frames, f"lstm_l{k}")
        layer_outs.append(y)
    if outputs == "lstm":
        graph_out = [y]
    else:
        pooled, logits, scores = add_head(mb, student, y, batch)
        graph_out = [scores] if outputs == "scores" else [*layer_outs, pooled, logits, scores]
    data = mb.finish([x], graph_out)
    if path is not None:
        with atomic_open(path, "wb") as f:
            f.write(data)
    return data
