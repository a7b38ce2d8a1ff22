"""The .tflite writer: the file read back with the TFLite schema holds the documented graph,
tensors, quantization and 16-byte aligned constant data."""

import numpy as np
import pytest

from qdaed.errors import InputError
from qdaed.formats.tflite_export import export_tflite
from tests.integer.cases import random_student

schema = pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")


def _read(data):
    assert data[4:8] == b"TFL3"
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def test_export_writes_the_documented_graph_with_unfolded_biases_and_state_variables():
    rng = np.random.default_rng(0)
    st = random_student(rng, 5, 4, 2, 3)
    model = _read(export_tflite(st, frames=7, batch=2))
    (sub,) = model.subgraphs
    ops = [model.operatorCodes[op.opcodeIndex].builtinCode for op in sub.operators]
    B = schema.BuiltinOperator
    assert ops == [B.UNIDIRECTIONAL_SEQUENCE_LSTM] * 2 + [B.MEAN, B.FULLY_CONNECTED, B.LOGISTIC]
    tensors = sub.tensors
    x = tensors[sub.inputs[0]]
    assert x.type == schema.TensorType.INT8 and list(x.shape) == [2, 7, 5]
    assert x.quantization.scale[0] == np.float32(st.input.scale)
    assert x.quantization.zeroPoint[0] == st.input.zero_point
    out = tensors[sub.outputs[0]]
    assert list(out.shape) == [2, 3]
    assert (out.quantization.scale[0], out.quantization.zeroPoint[0]) == (1 / 256, -128)
    for k, op in enumerate(sub.operators[:2]):
        layer = st.layers[k]
        assert len(op.inputs) == 24
        assert [i for i in range(24) if op.inputs[i] == -1] == [9, 10, 11, 16, 17, 20, 21, 22, 23]
        assert not op.builtinOptions.timeMajor
        assert op.builtinOptions.fusedActivationFunction == schema.ActivationFunctionType.TANH
        for gate in range(4):       # TFLite's input, forget, cell, output = i, f, g, o
            w = tensors[op.inputs[1 + gate]]
            data = np.frombuffer(bytes(model.buffers[w.buffer].data), np.int8)
            np.testing.assert_array_equal(data.reshape(w.shape), layer.w_ih[gate])
            b = tensors[op.inputs[12 + gate]]
            bias = np.frombuffer(bytes(model.buffers[b.buffer].data), "<i4")
            np.testing.assert_array_equal(bias, layer.bias[gate])      # zero points not folded
        h, c = tensors[op.inputs[18]], tensors[op.inputs[19]]
        assert h.isVariable and c.isVariable
        assert h.type == schema.TensorType.INT8 and c.type == schema.TensorType.INT16
        assert c.quantization.scale[0] == 2.0 ** layer.cell_power
        assert h.quantization.zeroPoint[0] == layer.hidden.zero_point


def test_export_aligns_every_constant_buffer_to_16_bytes():
    rng = np.random.default_rng(1)
    st = random_student(rng, 3, 5, 1, 2)
    data = export_tflite(st, frames=3)
    model = _read(data)
    for buf in model.buffers:
        if buf.data is not None and len(buf.data):
            payload = bytes(buf.data)
            starts = [i for i in range(0, len(data) - len(payload) + 1, 16)
                      if data[i:i + len(payload)] == payload]
            assert starts, "buffer data not found at a 16-byte aligned offset"


def test_export_to_a_path_writes_the_returned_bytes(tmp_path):
    st = random_student(np.random.default_rng(2), 3, 2, 1, 2)
    path = tmp_path / "student.tflite"
    data = export_tflite(st, 4, path=path)
    assert path.read_bytes() == data


def test_export_refuses_what_is_not_an_integer_student_or_a_valid_shape():
    st = random_student(np.random.default_rng(3), 3, 2, 1, 2)
    with pytest.raises(InputError):
        export_tflite("student", 4)
    with pytest.raises(InputError):
        export_tflite(st, 0)
    with pytest.raises(InputError):
        export_tflite(st, 4, batch=0)
    with pytest.raises(InputError):
        export_tflite(st, 4, outputs="gates")
