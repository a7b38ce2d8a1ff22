"""Moving detectors to and from PyTorch: plain state_dicts by name (no torch needed here).

Export (:func:`torch_state_dict`, ``qdaed export MODEL --torch OUT.safetensors``): every tensor
of the network's state_dict as float32 under its PyTorch name, k-bit tensors dequantized
(Q = β + α·code/(2^k − 1), exactly the values qdaed runs with). Loaded with
``load_state_dict(..., strict=True)`` into

    StudentLSTM(input_size=I, hidden_size=H, num_layers=L, num_classes=C, pooling=P):
        class Student(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = torch.nn.LSTM(I, H, L, batch_first=True)
                self.fc = torch.nn.Linear(H, C)
            def forward(self, x):                     # x: normalised LFBE (N, T, I)
                y, (h, c) = self.lstm(x)
                p = y.mean(1) if P == "mean" else y[:, -1] if P == "last" else y.amax(1)
                return self.fc(p)                     # logits; scores = sigmoid(logits)

    ResNet(depth, num_classes=C, in_channels=1, width=w): torchvision's ResNet v1.5 layout with a
        one-channel stem and C outputs; for w = 64,
            m = torchvision.models.resnet50(num_classes=C)        # or resnet18 / resnet34
            m.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        (torchvision has no stem-width option: for w ≠ 64 build the same modules with every
        width scaled, as bench/torch_resnet.py does); input (N, 1, T, F).

``*.num_batches_tracked`` is not written: PyTorch's BatchNorm fills it in when a state_dict
without it is loaded (strict=True accepts it, tested). The file's metadata ``qdaed_export``
(JSON) holds what the state_dict cannot: architecture and config, classes, thresholds, frames,
the LFBE options, the normalisation (``normalizer_mean``/``normalizer_std``, float32 values as
decimal strings of their exact value) and the source model's SHA-256.

Import (:func:`model_from_state`): a PyTorch state_dict (safetensors, float32 or float64) of
either network becomes a qdaed model; the sizes are read from the tensor shapes and checked
against the options given.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import safetensors.numpy

from qdaed.errors import InputError, ModelFileError
from qdaed.io.atomic import atomic_write_bytes
from qdaed.io.modelfile import MAX_CHECKPOINT_HEADER_BYTES, open_file, read_table
from qdaed.models import ResNet, StudentLSTM
from qdaed.models.quantized import dequantized_state
from qdaed.models.registry import architecture_of
from qdaed.models.resnet import STAGES


def torch_state_dict(det):
    """{name: float32 array}: the network's state_dict, k-bit tensors dequantized."""
    state = dequantized_state(det.model.state_dict(), det.quantized, np.float32)
    return {n: np.ascontiguousarray(v, dtype=np.float32) for n, v in state.items()}


def export_torch(det, path, source_sha256=None):
    """Write :func:`torch_state_dict` as a safetensors file (atomically) with its metadata."""
    arch, cfg = architecture_of(det.model)
    meta = {"format": "qdaed-torch-export", "architecture": arch, "arch_config": cfg,
            "classes": list(det.classes), "frames": int(det.frames),
            "thresholds": [float(t) for t in det.thresholds], "features": dict(det.features),
            "normalizer_mean": [repr(float(v)) for v in det.normalizer.mean],
            "normalizer_std": [repr(float(v)) for v in det.normalizer.std],
            "source_sha256": source_sha256}
    data = safetensors.numpy.save(torch_state_dict(det), metadata={
        "qdaed_export": json.dumps(meta, sort_keys=True, separators=(",", ":"))})
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise InputError(f"{os.fspath(path)}: cannot write the file ({exc.strerror or exc})"
                         ) from None


# --------------------------------------------------------------------------- import


def read_state(path):
    """A PyTorch state_dict saved as safetensors: {name: float array}; InputError otherwise."""
    path = os.fspath(path)
    try:
        with open_file(path) as f:     # bounded, strict header before the tensors are read
            read_table(path, f, os.fstat(f.fileno()).st_size, MAX_CHECKPOINT_HEADER_BYTES,
                        allow_nan=False)
        state = safetensors.numpy.load_file(path)
    except ModelFileError as exc:
        raise InputError(str(exc)) from None
    except Exception as exc:       # safetensors' own errors
        raise InputError(f"{path}: not a readable safetensors file ({exc})") from None
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    for name, v in state.items():
        if v.dtype.kind != "f":
            raise InputError(f"{path}: tensor {name!r} is {v.dtype}; expected floating point")
    return state


def _given(option, given, found, what):
    if given is not None and given != found:
        raise InputError(f"--{option}: {given}, but the state_dict's {what} is {found}")
    return found


def model_from_state(state, arch, path="state", pooling="mean", hidden_size=None,
                     num_layers=None, depth=None, width=None, num_classes=None):
    """A StudentLSTM (``arch`` "student") or ResNet ("resnet") holding ``state``; the sizes are
    read from the shapes (and must equal the options given). InputError when the names or
    shapes are not those of the architecture."""
    def shape(name):
        if name not in state:
            raise InputError(f"{path}: no tensor {name!r}; not a {arch} state_dict (names: "
                             f"{', '.join(sorted(state)[:6])}, …)")
        return state[name].shape

    if arch == "student":
        layers = 0
        while f"lstm.weight_ih_l{layers}" in state:
            layers += 1
        h4, inputs = shape("lstm.weight_ih_l0")
        cfg = dict(input_size=inputs,
                   hidden_size=_given("hidden-size", hidden_size, h4 // 4, "hidden size"),
                   num_layers=_given("num-layers", num_layers, layers, "number of layers"),
                   num_classes=_given("num-classes", num_classes, shape("fc.weight")[0],
                                      "number of classes"),
                   pooling=pooling)
        model = StudentLSTM(**cfg)
    elif arch == "resnet":
        out_w, in_ch = shape("conv1.weight")[:2]
        blocks = {}
        for name in state:
            m = re.match(r"layer([1-4])\.(\d+)\.", name)
            if m:
                blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
        counts = tuple(len(blocks.get(s, ())) for s in (1, 2, 3, 4))
        kind = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
        found = [d for d, (k, c) in STAGES.items() if k == kind and c == counts]
        if not found:
            raise InputError(f"{path}: {kind} blocks {counts} per stage are not ResNet-18, 34 "
                             f"or 50")
        out_w, in_ch = shape("conv1.weight")[:2]
        cfg = dict(depth=_given("depth", depth, found[0], "depth"),
                   num_classes=_given("num-classes", num_classes, shape("fc.weight")[0],
                                      "number of classes"),
                   in_channels=in_ch, width=_given("width", width, out_w, "stem width"))
        if in_ch != 1:
            raise InputError(f"{path}: conv1 takes {in_ch} input channels; a qdaed detector "
                             f"feeds one (LFBE as a 1 × T × F image)")
        model = ResNet(**cfg)
    else:
        raise InputError(f"--arch: expected 'student' or 'resnet', got {arch!r}")
    try:
        model.load_state_dict({k: v.astype(np.float32) for k, v in state.items()})
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    return model
