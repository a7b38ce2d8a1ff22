"""The whole detector as an ONNX graph (``qdaed export MODEL --onnx OUT.onnx``).

Input ``lfbe``: raw LFBE, float32 (N, frames, F) — already cut or looped to the model's
``frames`` (``Detector.prepare`` without the normalisation). Output ``scores``: σ(logits),
float32 (N, C). In the graph:

    x = (lfbe − normalizer.mean) / normalizer.std                      Sub, Div
    StudentLSTM: Transpose to (T, N, F); per layer one ONNX ``LSTM`` op (gate order i, o, f, c:
        PyTorch's i, f, g, o rows are reordered by a Gather; B = [b_ih; b_hh]); pooling over
        time: mean → ReduceMean, max → ReduceMax, last → the op's Y_h; then Gemm (fc)
    ResNet: Unsqueeze to (N, 1, T, F); Conv (no bias) / BatchNormalization (eps 1e-5, running
        statistics) / Relu / MaxPool 3×3/2 (pads 1) / Add; GlobalAveragePool, Flatten, Gemm
    scores = Sigmoid(logits)

A k-bit tensor is stored as its integer codes (uint8, or uint16 above 8 bits; one code per
element, unpacked) with α and β per group, and dequantized in the graph in double precision,
in qdaed's order of operations, then cast to float32:

    W = Cast<float>(β + (α · Cast<double>(codes)) / (2^k − 1))

so the graph computes with exactly the weights qdaed runs with. Groups: per row, α and β of
shape (rows, 1, …); per tensor, shape (1,); buckets of d, the codes are padded to (G, d),
dequantized, flattened, sliced to n values and reshaped. The model's metadata_props hold the
classes, thresholds, frames, LFBE options (JSON) and the source file's SHA-256.

Built with the ``onnx`` package's helper API (an optional dependency, imported here only):
opset 17, IR version 8.
"""

from __future__ import annotations

import json
import os

import numpy as np

from qdaed.errors import InputError
from qdaed.io.atomic import atomic_write_bytes
from qdaed.models import ResNet
from qdaed.models.resnet import block_layout

OPSET = 17
IR_VERSION = 8


def _onnx():
    try:
        import onnx  # here: an optional extra (conformance), slow to import
    except ImportError:
        raise InputError("--onnx: needs the onnx package (pip install onnx, or qdaed's "
                         "'conformance' extra)") from None
    return onnx


class _Graph:
    def __init__(self, onnx, det):
        self.onnx, self.h, self.nh = onnx, onnx.helper, onnx.numpy_helper
        self.det, self.nodes, self.inits, self.n = det, [], [], 0
        self.state = det.model.state_dict()

    def name(self, base):
        self.n += 1
        return f"{base}__{self.n}"

    def const(self, name, array):
        self.inits.append(self.nh.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, base=None, outputs=1, **attrs):
        names = [self.name(base or op_type) for _ in range(outputs)]
        self.nodes.append(self.h.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def tensor(self, name):
        """A graph value holding state tensor ``name`` as float32, dequantized if k-bit."""
        q = self.det.quantized.get(name)
        if q is None:
            return self.const(name, self.state[name].astype(np.float32))
        codes = q.codes.reshape(-1) if not isinstance(q.group, str) else q.codes
        g = q.groups
        if q.group == "row":
            scale_shape = (g,) + (1,) * (q.codes.ndim - 1)
        elif q.group == "tensor":
            scale_shape = (1,)
        else:
            d = q.bucket
            codes = np.concatenate([codes, np.zeros(g * d - codes.size, codes.dtype)])
            codes = codes.reshape(g, d)
            scale_shape = (g, 1)
        c = self.const(f"{name}.codes", codes)
        a = self.const(f"{name}.alpha", q.alpha.astype(np.float64).reshape(scale_shape))
        b = self.const(f"{name}.beta", q.beta.astype(np.float64).reshape(scale_shape))
        s = self.const(f"{name}.levels", np.array(float(q.levels)))
        cd = self.op("Cast", [c], f"{name}.cast", to=self.onnx.TensorProto.DOUBLE)
        v = self.op("Add", [b, self.op("Div", [self.op("Mul", [a, cd]), s])], name)
        if not isinstance(q.group, str):
            flat = self.op("Reshape", [v, self.const(self.name("shape"),
                                                     np.array([-1], np.int64))])
            v = self.op("Slice", [flat, self.const(self.name("start"), np.array([0], np.int64)),
                                  self.const(self.name("end"),
                                             np.array([q.codes.size], np.int64))])
            v = self.op("Reshape", [v, self.const(self.name("shape"),
                                                  np.array(q.shape, np.int64))])
        return self.op("Cast", [v], f"{name}.dequantized", to=self.onnx.TensorProto.FLOAT)

    def axes(self, values):
        return self.const(self.name("axes"), np.array(values, np.int64))

    # ---------------------------------------------------------------------- networks
    def student(self, x):
        cfg = self.det.model.config
        h = cfg["hidden_size"]
        order = np.concatenate([np.arange(0, h), np.arange(3 * h, 4 * h),    # i, o, f, c
                                np.arange(h, 2 * h), np.arange(2 * h, 3 * h)]).astype(np.int64)
        idx = self.const("lstm.gate_order_iofc", order)

        def gates(name):
            return self.op("Gather", [self.tensor(name), idx], f"{name}.iofc", axis=0)

        y = self.op("Transpose", [x], "time_major", perm=[1, 0, 2])
        for layer in range(cfg["num_layers"]):
            w = self.op("Unsqueeze", [gates(f"lstm.weight_ih_l{layer}"), self.axes([0])])
            r = self.op("Unsqueeze", [gates(f"lstm.weight_hh_l{layer}"), self.axes([0])])
            b = self.op("Concat", [gates(f"lstm.bias_ih_l{layer}"),
                                   gates(f"lstm.bias_hh_l{layer}")], axis=0)
            b = self.op("Unsqueeze", [b, self.axes([0])])
            seq, last, _ = self.op("LSTM", [y, w, r, b],
                                   f"lstm_l{layer}", outputs=3, hidden_size=h)
            y = self.op("Squeeze", [seq, self.axes([1])])           # (T, N, H)
        pool = cfg["pooling"]
        if pool == "mean":
            p = self.op("ReduceMean", [y], "pool_mean", axes=[0], keepdims=0)
        elif pool == "max":
            p = self.op("ReduceMax", [y], "pool_max", axes=[0], keepdims=0)
        else:
            p = self.op("Squeeze", [last, self.axes([0])], "pool_last")
        return self.op("Gemm", [p, self.tensor("fc.weight"), self.tensor("fc.bias")],
                       "fc", transB=1)

    def conv(self, name, x, k, stride, pad):
        return self.op("Conv", [x, self.tensor(f"{name}.weight")], name, kernel_shape=[k, k],
                       strides=[stride, stride], pads=[pad] * 4)

    def bn(self, name, x):
        return self.op("BatchNormalization",
                       [x] + [self.tensor(f"{name}.{p}") for p in
                              ("weight", "bias", "running_mean", "running_var")],
                       name, epsilon=1e-5)

    def resnet(self, x):
        m = self.det.model
        y = self.op("Unsqueeze", [x, self.axes([1])], "one_channel")
        y = self.op("Relu", [self.bn("bn1", self.conv("conv1", y, 7, 2, 3))])
        y = self.op("MaxPool", [y], "maxpool", kernel_shape=[3, 3], strides=[2, 2],
                    pads=[1, 1, 1, 1])
        for blk in block_layout(m.depth, m.width):
            n, s = blk["name"], blk["stride"]
            if blk["kind"] == "bottleneck":
                h = self.op("Relu", [self.bn(f"{n}.bn1", self.conv(f"{n}.conv1", y, 1, 1, 0))])
                h = self.op("Relu", [self.bn(f"{n}.bn2", self.conv(f"{n}.conv2", h, 3, s, 1))])
                h = self.bn(f"{n}.bn3", self.conv(f"{n}.conv3", h, 1, 1, 0))
            else:
                h = self.op("Relu", [self.bn(f"{n}.bn1", self.conv(f"{n}.conv1", y, 3, s, 1))])
                h = self.bn(f"{n}.bn2", self.conv(f"{n}.conv2", h, 3, 1, 1))
            sc = y
            if blk["downsample"]:
                sc = self.bn(f"{n}.downsample.1", self.conv(f"{n}.downsample.0", y, 1, s, 0))
            y = self.op("Relu", [self.op("Add", [h, sc], f"{n}.add")])
        y = self.op("Flatten", [self.op("GlobalAveragePool", [y])], axis=1)
        return self.op("Gemm", [y, self.tensor("fc.weight"), self.tensor("fc.bias")], "fc",
                       transB=1)


def build_onnx(det, source_sha256=None):
    """The detector as an ``onnx.ModelProto`` (module docstring)."""
    onnx = _onnx()
    g = _Graph(onnx, det)
    bins, frames, classes = det.normalizer.mean.size, int(det.frames), len(det.classes)
    mean = g.const("normalizer.mean", det.normalizer.mean.astype(np.float32))
    std = g.const("normalizer.std", det.normalizer.std.astype(np.float32))
    x = g.op("Div", [g.op("Sub", ["lfbe", mean], "centre"), std], "normalised")
    logits = g.resnet(x) if isinstance(det.model, ResNet) else g.student(x)
    g.nodes.append(g.h.make_node("Sigmoid", [logits], ["scores"], name="scores"))
    for i, node in enumerate(g.nodes):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    graph = g.h.make_graph(
        g.nodes, "qdaed_detector",
        [g.h.make_tensor_value_info("lfbe", onnx.TensorProto.FLOAT, ["N", frames, bins])],
        [g.h.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, ["N", classes])],
        g.inits)
    model = g.h.make_model(graph, producer_name="qdaed",
                           opset_imports=[g.h.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    meta = {"classes": json.dumps(list(det.classes)),
            "thresholds": json.dumps([float(t) for t in det.thresholds]),
            "frames": str(frames), "features": json.dumps(det.features, sort_keys=True),
            "source_sha256": source_sha256 or ""}
    g.h.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def export_onnx(det, path, source_sha256=None):
    """Write :func:`build_onnx` to ``path`` atomically."""
    data = build_onnx(det, source_sha256).SerializeToString()
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise InputError(f"{os.fspath(path)}: cannot write the file ({exc.strerror or exc})"
                         ) from None
