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

With the front end (``qdaed export MODEL --onnx OUT.onnx --with-frontend``) the graph scores
one window from its samples, as ``qdaed detect`` scores it (``qdaed.streaming``):

    input  samples  float64 (n,): 16 kHz mono samples of the window, n = (W − 1)·S + L for a
                    window of W frames of L samples every S (fewer for a file shorter than
                    one window: its frames are looped to W, as in training)
    LFBE   (``qdaed.features.fbank.lfbe``, in float64 like qdaed, cast to float32 at the end)
           [×32768 if int16_scale]; framing T = (n − L) // S + 1 frames by Gather; frames
           t mod T for t < W (``fix_length``); DC removal (ReduceMean, Sub); pre-emphasis
           (Slice, Mul, Sub, Concat); the analysis window (Mul); power spectrum as two
           MatMuls with the constant real DFT matrices cos and −sin(2π·jk/N) (N the FFT
           size), re² + im²; the mel matrix (MatMul); Max with the log floor; Log
    then the normalisation and the network as above, batch of one.
    StudentLSTM also: inputs h, c float32 (layers, 1, H), the state at the window's first
        frame (zeros at a file's start), and advance int64 (1,) in [1, W]; outputs h_next,
        c_next, the state after the window's first ``advance`` frames, i.e. at the next
        window's start. Each LSTM layer runs a batch of two copies of its input, the first
        with sequence_lens = advance (whose Y_h, Y_c are that state).
    output scores float32 (1, C).

Dither and centred frames (snip_edges false) are refused (:func:`check_frontend`). The
metadata also hold what a caller needs around the graph: sample_rate, frame_length,
frame_shift (samples), window_frames, hop_frames (``qdaed detect``'s default hop), the
resampling and mixdown rules, the architecture and the state's layout.
``examples/onnx_detect.py`` is such a caller (docs/guides/onnx_and_pytorch.md).

Built with the ``onnx`` package's helper API (an optional dependency, imported here only):
opset 17, IR version 8.
"""

from __future__ import annotations

import json
import os

import numpy as np

from qdaed.data.rates import SAMPLE_RATE
from qdaed.errors import InputError
from qdaed.features.fbank import make_options, mel_filterbank, window_function
from qdaed.io.atomic import atomic_write_bytes
from qdaed.models import ResNet
from qdaed.models.registry import architecture_of
from qdaed.models.resnet import block_layout

OPSET = 17
IR_VERSION = 8
FRONTEND_RATE = SAMPLE_RATE     # every recording is resampled to it (qdaed.data.rates)
RESAMPLING = ("scipy.signal.resample_poly(x, up, down) with up = 16000 / g, down = rate / g, "
              "g = gcd(16000, rate), scipy's default filter (Kaiser window, beta 5), float64; "
              "none at 16000 Hz")
STATE_DOC = {"h": "(num_layers, 1, hidden_size) float32, zeros at the start of a file",
             "c": "(num_layers, 1, hidden_size) float32, zeros at the start of a file",
             "advance": "int64 (1,): frames after which h_next, c_next are taken, in [1, W]"}


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

    def ints(self, name, values):
        return self.const(name, np.array(values, np.int64))

    # ---------------------------------------------------------------------- networks
    def student(self, x, state=None):
        """Logits (N, C) of the student on normalised frames ``x`` (N, T, F). With ``state``
        = (h, c, advance) (the front-end graph, N = 1): the LSTM starts from (h, c) (layers, 1,
        H) and the state after the first ``advance`` frames is returned too: (logits, h_next,
        c_next). ONNX's LSTM gives its state only at a sequence's end, so each layer runs a
        batch of two copies of its input, the first with ``sequence_lens`` = advance (its Y_h
        and Y_c are the state after that many frames), the second over all T frames (its Y is
        what the next layer and the pooling read)."""
        cfg = self.det.model.config
        h = cfg["hidden_size"]
        order = np.concatenate([np.arange(0, h), np.arange(3 * h, 4 * h),    # i, o, f, c
                                np.arange(h, 2 * h), np.arange(2 * h, 3 * h)]).astype(np.int64)
        idx = self.const("lstm.gate_order_iofc", order)

        def gates(name):
            return self.op("Gather", [self.tensor(name), idx], f"{name}.iofc", axis=0)

        y = self.op("Transpose", [x], "time_major", perm=[1, 0, 2])
        if state is not None:
            h_in, c_in, advance = state
            steps = self.op("Shape", [y], "steps", start=0, end=1)
            lens = self.op("Concat", [advance, steps], "sequence_lens", axis=0)
            lens = self.op("Cast", [lens], "sequence_lens", to=self.onnx.TensorProto.INT32)
        h_next, c_next = [], []
        for layer in range(cfg["num_layers"]):
            w = self.op("Unsqueeze", [gates(f"lstm.weight_ih_l{layer}"), self.axes([0])])
            r = self.op("Unsqueeze", [gates(f"lstm.weight_hh_l{layer}"), self.axes([0])])
            b = self.op("Concat", [gates(f"lstm.bias_ih_l{layer}"),
                                   gates(f"lstm.bias_hh_l{layer}")], axis=0)
            b = self.op("Unsqueeze", [b, self.axes([0])])
            if state is None:
                seq, last, _ = self.op("LSTM", [y, w, r, b],
                                       f"lstm_l{layer}", outputs=3, hidden_size=h)
                y = self.op("Squeeze", [seq, self.axes([1])])           # (T, N, H)
                continue
            pick = self.const(self.name("layer"), np.array([layer], np.int64))
            h0 = self.op("Gather", [h_in, pick], f"h_in_l{layer}", axis=0)     # (1, 1, H)
            c0 = self.op("Gather", [c_in, pick], f"c_in_l{layer}", axis=0)
            two = [self.op("Concat", [v, v], axis=1) for v in (y, h0, c0)]     # batch of 2
            seq, hs, cs = self.op("LSTM", [two[0], w, r, b, lens, two[1], two[2]],
                                  f"lstm_l{layer}", outputs=3, hidden_size=h)
            first, second = (self.const(self.name("batch"), np.array(v, np.int64))
                             for v in ([0], [1]))
            h_next.append(self.op("Gather", [hs, first], f"h_next_l{layer}", axis=1))
            c_next.append(self.op("Gather", [cs, first], f"c_next_l{layer}", axis=1))
            y = self.op("Gather", [self.op("Squeeze", [seq, self.axes([1])]), second],
                        f"lstm_l{layer}.y", axis=1)                  # (T, 1, H)
            last = self.op("Gather", [hs, second], f"lstm_l{layer}.last", axis=1)
        pool = cfg["pooling"]
        if pool == "mean":
            p = self.op("ReduceMean", [y], "pool_mean", axes=[0], keepdims=0)
        elif pool == "max":
            p = self.op("ReduceMax", [y], "pool_max", axes=[0], keepdims=0)
        else:
            p = self.op("Squeeze", [last, self.axes([0])], "pool_last")
        logits = self.op("Gemm", [p, self.tensor("fc.weight"), self.tensor("fc.bias")],
                         "fc", transB=1)
        if state is None:
            return logits
        return (logits, self.op("Concat", h_next, "h_next", axis=0),
                self.op("Concat", c_next, "c_next", axis=0))

    # ---------------------------------------------------------------------- front end
    def lfbe(self, samples):
        """Raw LFBE (W, F) float32 of a window's 16 kHz samples (float64, (n,)), computed as
        ``qdaed.features.fbank.lfbe`` computes them (float64 throughout, float32 at the end),
        then cut or looped to the model's W frames (``fix_length``)."""
        opts = make_options(**self.det.features)
        length, shift, nfft = opts.frame_sizes(FRONTEND_RATE)
        x = samples
        if opts.int16_scale:
            x = self.op("Mul", [x, self.const("int16_scale", np.array(32768.0))], "int16")
        # framing (snip_edges): T = (n − L) // S + 1 frames, frame t = samples [t·S, t·S + L)
        n = self.op("Shape", [x], "num_samples")                                    # (1,)
        rest = self.op("Sub", [n, self.ints("frame_length", [length])])
        count = self.op("Add", [self.op("Div", [rest, self.ints("frame_shift", [shift])]),
                                self.ints("one", [1])], "num_frames")                # (1,)
        t = self.op("Range", [self.ints("zero", 0), self.op("Squeeze", [count, self.axes([0])]),
                              self.ints("step", 1)], "frame_numbers")
        starts = self.op("Mul", [t, self.ints("shift", shift)], "frame_starts")
        index = self.op("Add", [self.op("Unsqueeze", [starts, self.axes([1])]),
                                self.ints("frame_offsets", np.arange(length)[None, :])],
                        "frame_index")                                               # (T, L)
        # the equal-length policy on the frames: frame t mod T for t < W (cut or looped)
        looped = self.op("Mod", [self.ints("window_frames", np.arange(self.det.frames)),
                                 count], "looped")
        frames = self.op("Gather", [self.op("Gather", [x, index], "frames"), looped],
                         "window", axis=0)                                           # (W, L)
        if opts.remove_dc:
            frames = self.op("Sub", [frames, self.op("ReduceMean", [frames], "dc", axes=[1],
                                                     keepdims=1)], "remove_dc")
        if opts.preemphasis != 0.0:
            # y[0] = (1 − p)·x[0], y[j] = x[j] − p·x[j − 1]
            def cols(a, b):
                return self.op("Slice", [frames, self.ints(self.name("start"), [a]),
                                         self.ints(self.name("end"), [b]),
                                         self.ints(self.name("axis"), [1])])

            p = opts.preemphasis
            first = self.op("Mul", [cols(0, 1), self.const("preemphasis_first",
                                                           np.array(1.0 - p))])
            later = self.op("Sub", [cols(1, length), self.op(
                "Mul", [self.const("preemphasis", np.array(p)), cols(0, length - 1)])])
            frames = self.op("Concat", [first, later], "preemphasis", axis=1)
        frames = self.op("Mul", [frames, self.const(
            "analysis_window", np.array(window_function(opts.window, length,
                                                        opts.blackman_coeff))[None, :])],
                         "windowed")
        k = np.arange(nfft // 2 + 1)[None, :] * np.arange(length)[:, None]
        angle = -2.0 * np.pi * (k % nfft) / nfft
        re = self.op("MatMul", [frames, self.const("dft_real", np.cos(angle))], "dft_real")
        im = self.op("MatMul", [frames, self.const("dft_imag", np.sin(angle))], "dft_imag")
        power = self.op("Add", [self.op("Mul", [re, re]), self.op("Mul", [im, im])], "power")
        if not opts.use_power:
            power = self.op("Sqrt", [power], "magnitude")
        bank = mel_filterbank(FRONTEND_RATE, nfft, opts.num_mel_bins, opts.low_freq,
                              opts.high_freq, opts.mel_scale, opts.mel_norm)
        energies = self.op("Max", [self.op("MatMul", [power, self.const("mel_filterbank",
                                                                         np.array(bank))]),
                                   self.const("log_floor", np.array(opts.log_floor))], "mel")
        if opts.use_log:
            energies = self.op("Log", [energies], "log_mel")
        return self.op("Cast", [energies], "lfbe", to=self.onnx.TensorProto.FLOAT)

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


def check_available():
    """InputError unless the onnx package can be imported (before any output is written)."""
    _onnx()


def check_frontend(det):
    """InputError unless ``det``'s front end can be written in the graph: no dither (random
    noise the graph cannot reproduce) and Kaldi's default framing (snip_edges)."""
    opts = make_options(**det.features)
    if opts.dither > 0:
        raise InputError(f"--with-frontend: the model's front end adds dither ({opts.dither}), "
                         f"random noise a graph cannot reproduce")
    if not opts.snip_edges:
        raise InputError("--with-frontend: the model's front end uses centred frames "
                         "(snip_edges false), which the graph does not implement")
    opts.frame_sizes(FRONTEND_RATE)
    return opts


def _metadata(det, source_sha256, frontend):
    meta = {"classes": json.dumps(list(det.classes)),
            "thresholds": json.dumps([float(t) for t in det.thresholds]),
            "frames": str(int(det.frames)),
            "features": json.dumps(det.features, sort_keys=True),
            "source_sha256": source_sha256 or ""}
    if frontend:
        opts = make_options(**det.features)
        length, shift, _ = opts.frame_sizes(FRONTEND_RATE)
        arch, cfg = architecture_of(det.model)
        meta.update({
            "input": "samples", "architecture": arch, "arch_config": json.dumps(cfg),
            "sample_rate": str(FRONTEND_RATE), "frame_length": str(length),
            "frame_shift": str(shift), "window_frames": str(int(det.frames)),
            "hop_frames": str(max(1, int(det.frames) // 2)),
            "resampling": RESAMPLING, "mixdown": "mean over channels",
            "state": json.dumps(STATE_DOC if arch == "StudentLSTM" else None)})
    return meta


def build_onnx(det, source_sha256=None, frontend=False):
    """The detector as an ``onnx.ModelProto`` (module docstring); ``frontend``: from a
    window's 16 kHz samples, the student with its (h, c) state (module docstring)."""
    onnx = _onnx()
    if frontend:
        check_frontend(det)
    g = _Graph(onnx, det)
    bins, frames, classes = det.normalizer.mean.size, int(det.frames), len(det.classes)
    tp, info = onnx.TensorProto, g.h.make_tensor_value_info
    is_resnet = isinstance(det.model, ResNet)
    if frontend:
        inputs = [info("samples", tp.DOUBLE, ["num_samples"])]
        raw = g.lfbe("samples")
    else:
        inputs = [info("lfbe", tp.FLOAT, ["N", frames, bins])]
        raw = "lfbe"
    mean = g.const("normalizer.mean", det.normalizer.mean.astype(np.float32))
    std = g.const("normalizer.std", det.normalizer.std.astype(np.float32))
    x = g.op("Div", [g.op("Sub", [raw, mean], "centre"), std], "normalised")
    if frontend:
        x = g.op("Unsqueeze", [x, g.axes([0])], "batch_of_one")            # (1, W, F)
    outputs = [info("scores", tp.FLOAT, ["N" if not frontend else 1, classes])]
    if is_resnet:
        logits = g.resnet(x)
    elif frontend:
        cfg = det.model.config
        shape = [cfg["num_layers"], 1, cfg["hidden_size"]]
        inputs += [info("h", tp.FLOAT, shape), info("c", tp.FLOAT, shape),
                   info("advance", tp.INT64, [1])]
        logits, h_next, c_next = g.student(x, ("h", "c", "advance"))
        g.nodes.append(g.h.make_node("Identity", [h_next], ["h_next"], name="h_next_out"))
        g.nodes.append(g.h.make_node("Identity", [c_next], ["c_next"], name="c_next_out"))
        outputs += [info("h_next", tp.FLOAT, shape), info("c_next", tp.FLOAT, shape)]
    else:
        logits = g.student(x)
    g.nodes.append(g.h.make_node("Sigmoid", [logits], ["scores"], name="scores"))
    for i, node in enumerate(g.nodes):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    graph = g.h.make_graph(g.nodes, "qdaed_detector", inputs, outputs, g.inits)
    model = g.h.make_model(graph, producer_name="qdaed",
                           opset_imports=[g.h.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    g.h.set_model_props(model, _metadata(det, source_sha256, frontend))
    onnx.checker.check_model(model)
    return model


def export_onnx(det, path, source_sha256=None, frontend=False):
    """Write :func:`build_onnx` to ``path`` atomically."""
    data = build_onnx(det, source_sha256, frontend).SerializeToString()
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise InputError(f"{os.fspath(path)}: cannot write the file ({exc.strerror or exc})"
                         ) from None
