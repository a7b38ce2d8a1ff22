"""The teacher: ResNet-18/34/50 (He et al. 2016) on a one-channel T × F log-mel input.

Architecture (torchvision's v1.5 ResNet, docs/method/resnet.md), for input x (B, in_channels, T, F):

    stem     conv1 7×7/2 (w) → bn1 → ReLU → max-pool 3×3/2 (padding 1)
    layer1   n₁ blocks, w·e output channels, stride 1
    layer2   n₂ blocks, 2w·e, first block stride 2
    layer3   n₃ blocks, 4w·e, first block stride 2
    layer4   n₄ blocks, 8w·e, first block stride 2
    head     global average pool → fc (num_classes logits)

with w = ``width`` (64 in the paper's network; smaller for small presets) and expansion e.

    BasicBlock (18, 34; e = 1):  y = ReLU(bn2(conv2₃ₓ₃(ReLU(bn1(conv1₃ₓ₃/s(x))))) + sc(x))
    Bottleneck (50; e = 4):      h = ReLU(bn2(conv2₃ₓ₃/s(ReLU(bn1(conv1₁ₓ₁(x))))))
                                 y = ReLU(bn3(conv3₁ₓ₁(h)) + sc(x))

The stride s sits on the 3×3 convolution of the bottleneck (torchvision "v1.5"). The shortcut
sc(x) is x where the shape is kept, else the projection downsample.1(downsample.0(x)): a 1×1
convolution with stride s and a batch-norm. Depths: 18 → BasicBlock [2, 2, 2, 2],
34 → BasicBlock [3, 4, 6, 3], 50 → Bottleneck [3, 4, 6, 3]. Convolutions have no bias.

Names and layouts are torchvision's state_dict (``conv1.weight``, ``bn1.running_mean``,
``layer2.0.downsample.0.weight``, ``fc.bias``, …), so weights move to and from PyTorch by name;
``num_batches_tracked`` is not kept (PyTorch's loader fills it in when absent).

Initialisation as torchvision: convolutions Kaiming normal, fan_out mode, ReLU gain
(std = √(2 / (O·kh·kw))); batch-norm γ = 1, β = 0, running mean 0, running variance 1;
fc as PyTorch's ``nn.Linear`` default, weight and bias ~ U(−1/√fan_in, 1/√fan_in).
All draws come from one ``numpy.random.Generator`` (seeded), in state_dict order.

Smallest input: each of the five stride-2 steps (stem convolution, max-pool, layer2–4) maps a
length n to ⌈n/2⌉ (⌊(n + 2p − k)/2⌋ + 1 with the kernels and paddings above), so layer4's map
is T₄ × F₄ = ⌈T/32⌉ × ⌈F/32⌉ and no stage's map is ever empty: every window holds at least one
input value, however short the input. Any non-empty input is therefore computed, as PyTorch
computes it (a 37 × 21 input gives a 2 × 1 map at layer4, a 1 × 1 input a 1 × 1 map). What
cannot be computed is refused, where PyTorch refuses it: batch-norm in training mode needs more
than one value per channel, and the fewest are at layer4: B·T₄·F₄ ≥ 2 (B = 1 needs T or F
above 32; B ≥ 2 takes any size). Empty arrays (a zero B, T or F) are refused in both modes.
(qdaed used to refuse T or F below 32, as Keras's ResNet50 does, although nothing fails there:
short inputs see windows made mostly of zero padding, which is a modelling question, not a
computation that cannot be done.)
"""

from __future__ import annotations

import numpy as np

from qdaed.errors import InputError
from qdaed.models.state import StateDict
from qdaed.nn import batchnorm2d, conv2d, global_avg_pool, linear, maxpool2d, relu
from qdaed.validate import check_array, check_choice, check_int

STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}
EXPANSION = {"basic": 1, "bottleneck": 4}
BN_BUFFERS = ("running_mean", "running_var")


def block_layout(depth, width):
    """The residual blocks of a ResNet of ``depth`` and ``width``: name, kind, planes, stride,
    input and output channels, projection shortcut (plain Python, nothing allocated)."""
    kind, counts = STAGES[depth]
    e = EXPANSION[kind]
    blocks, cin = [], width
    for stage, n in enumerate(counts):
        planes = width * 2 ** stage
        for i in range(n):
            stride = 2 if (stage > 0 and i == 0) else 1
            blocks.append(dict(name=f"layer{stage + 1}.{i}", kind=kind, planes=planes,
                               stride=stride, out=planes * e, **{"in": cin},
                               downsample=(stride != 1 or cin != planes * e)))
            cin = planes * e
    return blocks


def state_shapes(depth=18, num_classes=3, in_channels=1, width=64):
    """{state_dict name: shape} of ``ResNet(depth, num_classes, in_channels, width)`` in its
    state_dict order, computed without building the network (model-file checks use it before
    anything is allocated). The arguments must already be valid (see ``ResNet``)."""
    shapes = {}

    def conv(name, cin, cout, k):
        shapes[f"{name}.weight"] = (cout, cin, k, k)

    def bn(name, c):
        for part in ("weight", "bias", *BN_BUFFERS):
            shapes[f"{name}.{part}"] = (c,)

    conv("conv1", in_channels, width, 7)
    bn("bn1", width)
    blocks = block_layout(depth, width)
    for blk in blocks:
        convs = (1, 3, 1) if blk["kind"] == "bottleneck" else (3, 3)
        cin = blk["in"]
        for i, k in enumerate(convs, start=1):
            cout = blk["out"] if i == len(convs) else blk["planes"]
            conv(f"{blk['name']}.conv{i}", cin, cout, k)
            bn(f"{blk['name']}.bn{i}", cout)
            cin = cout
        if blk["downsample"]:
            conv(f"{blk['name']}.downsample.0", blk["in"], blk["out"], 1)
            bn(f"{blk['name']}.downsample.1", blk["out"])
    shapes["fc.weight"] = (num_classes, blocks[-1]["out"])
    shapes["fc.bias"] = (num_classes,)
    return shapes


class ResNet(StateDict):
    """ResNet teacher: ``params`` (trainable, name → array), ``buffers`` (running statistics).

    forward(x, train) → (logits, cache); backward(cache, dlogits) → grads keyed like ``params``.
    A training-mode forward updates the running statistics in place, as PyTorch's does.
    """

    def __init__(self, depth=18, num_classes=3, in_channels=1, width=64, seed=0,
                 dtype=np.float32):
        self.depth = check_choice("depth", depth, tuple(STAGES))
        self.num_classes = check_int("num_classes", num_classes, lo=1)
        self.in_channels = check_int("in_channels", in_channels, lo=1)
        self.width = check_int("width", width, lo=1)
        if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise InputError(f"dtype: expected float32 or float64, got {np.dtype(dtype)}")
        self.dtype = np.dtype(dtype)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(
            check_int("seed", seed, lo=0))
        self.block_kind, counts = STAGES[self.depth]
        self.blocks = self._layout(counts)
        self.params = {}
        self.buffers = {}
        self._order = []   # every state_dict name, in torchvision's order
        self._conv("conv1", self.in_channels, self.width, 7, rng)
        self._bn("bn1", self.width)
        for blk in self.blocks:
            convs = ((1, 3, 1) if blk["kind"] == "bottleneck" else (3, 3))
            cin = blk["in"]
            for i, k in enumerate(convs, start=1):
                cout = blk["out"] if i == len(convs) else blk["planes"]
                self._conv(f"{blk['name']}.conv{i}", cin, cout, k, rng)
                self._bn(f"{blk['name']}.bn{i}", cout)
                cin = cout
            if blk["downsample"]:
                self._conv(f"{blk['name']}.downsample.0", blk["in"], blk["out"], 1, rng)
                self._bn(f"{blk['name']}.downsample.1", blk["out"])
        fan_in = self.blocks[-1]["out"]
        bound = 1.0 / np.sqrt(fan_in)
        self._add("fc.weight", rng.uniform(-bound, bound, (self.num_classes, fan_in)))
        self._add("fc.bias", rng.uniform(-bound, bound, self.num_classes))

    # ----------------------------------------------------------------------------- building
    def _layout(self, counts):
        return block_layout(self.depth, self.width)

    def _add(self, name, value, buffer=False):
        (self.buffers if buffer else self.params)[name] = np.ascontiguousarray(value, self.dtype)
        self._order.append(name)

    def _conv(self, name, cin, cout, k, rng):
        std = np.sqrt(2.0 / (cout * k * k))
        self._add(f"{name}.weight", rng.normal(0.0, std, (cout, cin, k, k)))

    def _bn(self, name, c):
        self._add(f"{name}.weight", np.ones(c))
        self._add(f"{name}.bias", np.zeros(c))
        self._add(f"{name}.running_mean", np.zeros(c), buffer=True)
        self._add(f"{name}.running_var", np.ones(c), buffer=True)

    # ----------------------------------------------------------------------------- state
    input_layout = "BCTF"  # x is (B, in_channels, T, F)

    @property
    def config(self):
        """The constructor arguments that fix the architecture (for model files)."""
        return dict(depth=self.depth, num_classes=self.num_classes,
                    in_channels=self.in_channels, width=self.width)

    def num_parameters(self):
        """Number of trainable values (running statistics excluded, as PyTorch counts)."""
        return int(sum(p.size for p in self.params.values()))

    # the state protocol (qdaed.models.state): parameters and running statistics
    def _state_arrays(self):
        return {n: self.params[n] if n in self.params else self.buffers[n] for n in self._order}

    def _state_name(self):
        return f"ResNet-{self.depth} (width {self.width})"

    def _check_state_entry(self, name, value):
        if name.endswith("running_var") and np.any(value < 0):
            raise InputError(f"state[{name!r}]: a running variance cannot be negative")

    # ----------------------------------------------------------------------------- sizes
    def feature_size(self, t, f):
        """Height and width of layer4's output for a T × F input: (⌈T/32⌉, ⌈F/32⌉)."""
        for k, s, p in [(7, 2, 3), (3, 2, 1)] + [(3, 2, 1)] * 3:
            t, f = conv2d.output_size(t, k, s, p), conv2d.output_size(f, k, s, p)
        return t, f

    def _check_input(self, x, train):
        if not isinstance(x, np.ndarray):
            raise InputError(f"x: expected a numpy array (B, {self.in_channels}, T, F), "
                             f"got {type(x).__name__}")
        if x.ndim != 4:
            raise InputError(f"x: expected 4 dimensions (B, in_channels={self.in_channels}, T, F), "
                             f"got shape {x.shape}")
        if x.shape[1] != self.in_channels:
            raise InputError(f"x: expected {self.in_channels} input channel(s) in axis 1 "
                             f"(B, in_channels, T, F), got {x.shape[1]} (shape {x.shape})")
        x = check_array("x", x, dtype=self.dtype)   # dtype, non-empty and finite
        if not isinstance(train, (bool, np.bool_)):
            raise InputError(f"train: expected True or False, got {train!r}")
        t4, f4 = self.feature_size(x.shape[2], x.shape[3])
        if train and x.shape[0] * t4 * f4 < 2:
            raise InputError(
                f"x: batch-norm in training mode needs at least two values per channel, but "
                f"a {x.shape[2]}×{x.shape[3]} input gives layer4 a {t4}×{f4} map, so "
                f"B×T₄×F₄ = {x.shape[0]}×{t4}×{f4} = {x.shape[0] * t4 * f4}; use B ≥ 2, "
                f"T or F above 32, or train=False")
        return x

    # ----------------------------------------------------------------------------- passes
    def _sub(self, prefix):
        return {k: self.params[f"{prefix}.{k}"] for k in ("weight", "bias")
                if f"{prefix}.{k}" in self.params}

    def _bn_buffers(self, prefix):
        return {k: self.buffers[f"{prefix}.{k}"] for k in BN_BUFFERS}

    def _conv_bn(self, prefix_conv, prefix_bn, x, stride, padding, train, relu_after,
                 residual=None):
        # check_finite=False: forward checked x once; every value in here is computed from it.
        y, c_conv = conv2d.forward(self._sub(prefix_conv), x, stride, padding,
                                   check_finite=False)
        y, c_bn = batchnorm2d.forward(self._sub(prefix_bn), y, self._bn_buffers(prefix_bn),
                                      train, relu=relu_after, residual=residual,
                                      check_finite=False)
        return y, (prefix_conv, prefix_bn, c_conv, c_bn)

    def _conv_bn_backward(self, cache, dy, grads, input_grad=True):
        prefix_conv, prefix_bn, c_conv, c_bn = cache
        dy, g = batchnorm2d.backward(self._sub(prefix_bn), c_bn, dy)
        grads[f"{prefix_bn}.weight"], grads[f"{prefix_bn}.bias"] = g["weight"], g["bias"]
        dx, g = conv2d.backward(self._sub(prefix_conv), c_conv, dy, input_grad=input_grad)
        grads[f"{prefix_conv}.weight"] = g["weight"]
        return dx

    def _block_forward(self, blk, x, train):
        n = blk["name"]
        if blk["kind"] == "bottleneck":
            convs = [(1, 0, 1), (3, 1, blk["stride"]), (1, 0, 1)]
        else:
            convs = [(3, 1, blk["stride"]), (3, 1, 1)]
        if blk["downsample"]:
            shortcut, c_sc = self._conv_bn(f"{n}.downsample.0", f"{n}.downsample.1", x,
                                           blk["stride"], 0, train, relu_after=False)
        else:
            shortcut, c_sc = x, None
        caches = []
        h = x
        for i, (_, pad, stride) in enumerate(convs, start=1):
            last = i == len(convs)
            # The last batch-norm adds the shortcut and applies the block's ReLU in one pass.
            h, c = self._conv_bn(f"{n}.conv{i}", f"{n}.bn{i}", h, stride, pad, train,
                                 relu_after=not last, residual=shortcut if last else None)
            caches.append(c)
        return h, (caches, c_sc, (h,))

    def _block_backward(self, cache, dy, grads):
        caches, c_sc, c_out = cache
        g, _ = relu.backward({}, c_out, dy)   # the gradient of both branches of the sum
        dh = g
        for c in reversed(caches):
            dh = self._conv_bn_backward(c, dh, grads)
        if c_sc is None:
            dh += g
        else:
            dh += self._conv_bn_backward(c_sc, g, grads)
        return dh

    def forward(self, x, train):
        """logits z (B, num_classes) for x (B, in_channels, T, F); see the module docstring.

        train=True: batch statistics in every batch-norm, running statistics updated in place;
        train=False: running statistics.  Returns z and the cache for :meth:`backward`.
        In evaluation mode nothing is kept while the forward runs (each layer's output is
        freed once the next one has used it, so inference needs far less memory); the cache
        is then just x, and :meth:`backward` re-runs this forward keeping every layer's cache
        (evaluation mode is deterministic, so the recomputed values are the same).
        """
        x = self._check_input(x, train)
        if not train:
            z, _ = self._forward(x, train, keep=False)
            return z, ("recompute", x)
        return self._forward(x, train, keep=True)

    def _forward(self, x, train, keep):
        stem, c_stem = self._conv_bn("conv1", "bn1", x, 2, 3, train, relu_after=True)
        h, c_pool = maxpool2d.forward({}, stem, 3, 2, 1, check_finite=False)
        del stem
        if not keep:
            c_stem = c_pool = None
        c_blocks = []
        for blk in self.blocks:
            h, c = self._block_forward(blk, h, train)
            if keep:
                c_blocks.append(c)
            del c
        pooled, c_gap = global_avg_pool.forward({}, h)
        z, c_fc = linear.forward(self._sub("fc"), pooled)
        if not keep:
            return z, None
        return z, (c_stem, c_pool, c_blocks, c_gap, c_fc, x.shape)

    def backward(self, cache, dlogits):
        """Gradients of every parameter given dL/dz (B, num_classes); keys as ``params``."""
        if cache[0] == "recompute":   # an evaluation-mode forward kept only x
            cache = self._forward(cache[1], False, keep=True)[1]
        c_stem, c_pool, c_blocks, c_gap, c_fc, shape = cache
        dlogits = check_array("dlogits", dlogits, shape=(shape[0], self.num_classes),
                              dtype=self.dtype, finite=False)
        grads = {}
        dpooled, g = linear.backward(self._sub("fc"), c_fc, dlogits)
        grads["fc.weight"], grads["fc.bias"] = g["weight"], g["bias"]
        dh, _ = global_avg_pool.backward({}, c_gap, dpooled)
        for c in reversed(c_blocks):
            dh = self._block_backward(c, dh, grads)
        dh, _ = maxpool2d.backward({}, c_pool, dh)
        self._conv_bn_backward(c_stem, dh, grads, input_grad=False)   # x is data
        return {n: grads[n] for n in self.params}
