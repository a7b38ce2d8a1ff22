"""Golden cases of whole networks: the StudentLSTM and small ResNets end to end (logits and
every parameter gradient), and a deployed detector from 16-bit PCM to scores.

Parameters are stored under ``param.<PyTorch state_dict name>`` (``param.lstm.weight_ih_l0``,
``param.layer1.0.conv1.weight``), ResNet running statistics under ``buffer.<name>``, so that
``torch.nn.Module.load_state_dict`` takes them by name. Every parameter and statistic is
random (no zero biases, no unit batch-norm scales). Outputs: ``logits``, ``dx``,
``grad.<name>`` for a random upstream gradient ``dz`` of the logits, and for the ResNet in
training mode ``new_buffer.<name>`` (the updated running statistics) and ``logits_eval``
(evaluation mode, with the stored statistics, computed before the training forward).
"""

from __future__ import annotations

import numpy as np

from qdaed.detector import Detector
from qdaed.features.fbank import LfbeOptions, lfbe
from qdaed.features.prepare import Normalizer
from qdaed.models import ResNet, StudentLSTM
from qdaed.models.predict import predict_logits
from qdaed.vectors.cases import register
from qdaed.vectors.cases.lfbe import LOG_ATOL
from qdaed.vectors.tolerance import conditioned_tolerance


def _student(b, layers, pooling, batch=3, steps=8, inputs=6, hidden=5, classes=3):
    b.options.update(input_size=inputs, hidden_size=hidden, num_layers=layers,
                     num_classes=classes, pooling=pooling)
    model = StudentLSTM(inputs, hidden, layers, classes, pooling, dtype=np.float64)
    bound = 1.5 / np.sqrt(hidden)
    state = {n: b.input(f"param.{n}", b.uniform(-bound, bound, *s))
             for n, s in model.parameter_shapes().items()}
    model.load_state_dict(state)
    x = b.input("x", b.normal(batch, steps, inputs))
    dz = b.input("dz", b.normal(batch, classes))
    z, cache = model.forward(x, train=True)
    grads, dx = model.backward(cache, dz, input_grad=True)
    note = f"{steps} steps, {layers} layer(s), {pooling} pooling"
    b.output("logits", z, "recurrent", note)
    b.output("dx", dx, "recurrent", note)
    for n, g in grads.items():
        b.output(f"grad.{n}", g, "recurrent", note)


register("student_lstm_2layer_mean", "student_lstm", "StudentLSTM: LSTM(6 -> 5, 2 layers) -> "
         "mean over time -> Linear(5 -> 3) on x (3, 8, 6): logits, dx and every parameter "
         "gradient for a random dz", _student, layers=2, pooling="mean")
register("student_lstm_1layer_last", "student_lstm", "StudentLSTM with 1 layer and pooling "
         "'last' (h_T)", _student, layers=1, pooling="last")
register("student_lstm_1layer_max", "student_lstm", "StudentLSTM with 1 layer and pooling "
         "'max' over time", _student, layers=1, pooling="max")


def _resnet(b, depth, width, shape):
    b.options.update(depth=depth, width=width, in_channels=1, num_classes=3,
                     block="bottleneck" if depth == 50 else "basic",
                     stem="conv 7x7/2 pad 3, bn, relu, max-pool 3x3/2 pad 1",
                     bn_momentum=0.1, bn_eps=1e-5)
    model = ResNet(depth=depth, num_classes=3, width=width, dtype=np.float64)
    state = {}
    for n, v in model.state_dict().items():
        if n.endswith("running_var"):
            val = b.uniform(0.5, 2.0, *v.shape)
        elif n.endswith("running_mean"):
            val = b.normal(*v.shape, scale=0.2)
        elif n.endswith(".weight") and v.ndim == 1:           # batch-norm gamma
            val = b.uniform(0.6, 1.4, *v.shape)
        elif n.endswith(".bias") and not n.startswith("fc."):  # batch-norm beta
            val = b.normal(*v.shape, scale=0.2)
        elif v.ndim == 4:                                       # convolution
            fan_in = v.shape[1] * v.shape[2] * v.shape[3]
            val = b.normal(*v.shape, scale=np.sqrt(2.0 / fan_in))
        else:                                                   # fc
            val = b.normal(*v.shape, scale=0.5)
        prefix = "buffer" if n in model.buffers else "param"
        state[n] = b.input(f"{prefix}.{n}", val)
    model.load_state_dict(state)
    x = b.input("x", b.normal(*shape))
    dz = b.input("dz", b.normal(shape[0], 3))
    golden = _resnet_outputs(model, x, dz)
    # the same computation by qdaed in float32, from the stored inputs: its error against the
    # float64 values measures how much this network amplifies float32 rounding
    model32 = ResNet(depth=depth, num_classes=3, width=width, dtype=np.float32)
    model32.load_state_dict({n: v.astype(np.float32) for n, v in state.items()})
    single = _resnet_outputs(model32, x.astype(np.float32), dz.astype(np.float32))
    note = f"ResNet-{depth}, width {width}"
    notes = {"logits_eval": ", evaluation mode", "logits": ", training mode (batch statistics)"}
    for n, g in golden.items():
        value = g.astype(b.dtype)
        err32 = float(np.max(np.abs(single[n].astype(np.float64) - g)))
        extra = notes.get(n, ", running statistic after one training-mode forward"
                          if n.startswith("new_buffer.") else "")
        b.output(n, value, "", tol=conditioned_tolerance("recurrent", b.dtype, value, err32,
                                                         note + extra))


def _resnet_outputs(model, x, dz):
    """Evaluation logits, then training logits, gradients and updated statistics."""
    buffers = {n: v.copy() for n, v in model.buffers.items()}
    z_eval, _ = model.forward(x, train=False)
    z, cache = model.forward(x, train=True)
    grads = model.backward(cache, dz)
    out = {"logits_eval": z_eval, "logits": z}
    out.update({f"grad.{n}": g for n, g in grads.items()})
    out.update({f"new_buffer.{n}": v.copy() for n, v in model.buffers.items()})
    model.load_state_dict({**model.params, **buffers})
    return {n: v.astype(np.float64) for n, v in out.items()}


register("resnet18_w4_train", "resnet", "ResNet-18 (basic blocks [2, 2, 2, 2]), width 4, "
         "on x (2, 1, 64, 64): logits in evaluation and training mode, every parameter "
         "gradient for a random dz, updated running statistics", _resnet,
         depth=18, width=4, shape=(2, 1, 64, 64))
register("resnet50_w2_train", "resnet", "ResNet-50 (bottleneck blocks [3, 4, 6, 3], stride on "
         "the 3x3 conv), width 2, on x (2, 1, 64, 48): as resnet18_w4_train", _resnet,
         depth=50, width=2, shape=(2, 1, 64, 48))


def _thresholds(rng, scores, margin=0.02):
    """Per class, a threshold at least ``margin`` from every clip's score (so that decisions
    do not hang on rounding), chosen at random among below all, between two, above all."""
    out = []
    for col in scores.T:
        s = np.sort(col)
        cands = [s[0] - margin, s[-1] + margin]
        cands += [(lo + hi) / 2 for lo, hi in zip(s[:-1], s[1:]) if hi - lo > 2 * margin]
        cands = [c for c in cands if 0.0 < c < 1.0]
        out.append(cands[int(rng.integers(len(cands)))])
    return np.array(out)


def _detector(b):
    """float32, as deployed: PCM-16 → waveform → LFBE → fixed length → normalise → student →
    sigmoid → decisions."""
    classes = ("dog", "baby_cry", "gunshot")
    frames, bins, hidden = 120, 64, 8
    opts = LfbeOptions()
    b.options.update(frames=frames, classes=list(classes), sample_rate=16000,
                     waveform="pcm16 / 32768", length_policy="first `frames` frames of a "
                     "longer clip; a shorter one repeated from its start until it fills them",
                     normalisation="(lfbe - normalizer.mean) / normalizer.std per mel bin",
                     decision="scores >= thresholds", lfbe_options=opts.to_dict(),
                     arch_config=dict(input_size=bins, hidden_size=hidden, num_layers=1,
                                      num_classes=3, pooling="mean"))
    model = StudentLSTM(bins, hidden, 1, 3, "mean", dtype=np.float32)
    bound = 1.5 / np.sqrt(hidden)
    model.load_state_dict({n: b.input(f"param.{n}", b.uniform(-bound, bound, *s),
                                      dtype=np.float32)
                           for n, s in model.parameter_shapes().items()})
    mean = b.input("normalizer.mean", b.uniform(-12.0, -4.0, bins), dtype=np.float32)
    std = b.input("normalizer.std", b.uniform(1.0, 3.0, bins), dtype=np.float32)
    # two clips: 1.5 s (truncated to 120 frames) and 0.7 s (68 frames, looped)
    t = np.arange(24000) / 16000
    clip0 = 0.4 * np.sin(2 * np.pi * (400 + 300 * t) * t) + 0.05 * b.normal(t.size)
    clip1 = 0.3 * b.normal(11200) * np.exp(-np.arange(11200) / 3000.0)
    pcm = [b.input(f"pcm16_{i}", np.clip(np.round(c * 32767), -32768, 32767).astype(np.int16))
           for i, c in enumerate((clip0, clip1))]
    det = Detector(model, Normalizer(mean.astype(np.float32), std.astype(np.float32)), frames,
                   classes, opts.to_dict(), np.full(3, 0.5))
    feats = [lfbe((p.astype(np.float64) / 32768.0).astype(np.float32), 16000, options=opts)
             for p in pcm]
    x = det.prepare(feats)

    logits = predict_logits(det.model, x)
    scores = det.scores(x)
    det.thresholds = b.input("thresholds", _thresholds(b.rng, scores),
                             dtype=np.float32).astype(np.float64)
    for i, f in enumerate(feats):
        b.output(f"lfbe_{i}", f, "", dtype=np.float32, tol=(
            0.0, LOG_ATOL, "log energies, absolute (see the lfbe cases)"))
    b.output("features", x, "", dtype=np.float32, tol=(
        0.0, LOG_ATOL, "normalised log energies: the LFBE tolerance (std >= 1)"))
    note = ("float32 student on 120 frames of normalised LFBE; room for the LFBE differences "
            "of a float32 FFT in deep bins, which the pooled LSTM averages")
    b.output("logits", logits, "", dtype=np.float32, tol=(5e-4, 5e-4, note))
    b.output("scores", scores, "", dtype=np.float32, tol=(5e-4, 1.25e-4, note + "; "
             "sigmoid' <= 1/4"))
    b.output("decisions", det.decisions(scores), "exact",
             "every threshold is at least 0.02 away from every score")


register("detector_student_pcm16", "detector", "a float32 StudentLSTM detector (64 bins, "
         "H = 8, 120 frames, 3 classes) on two 16 kHz PCM-16 clips, one truncated and one "
         "looped: LFBE, normalised features, logits, scores, decisions", _detector)
