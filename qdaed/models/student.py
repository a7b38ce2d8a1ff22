"""The student: a shallow LSTM with a pooled linear head (docs/method/lstm.md).

    y = LSTM(x)                  x (B, T, I) → y (B, T, H), top layer's h_1..h_T
    p = pool_t(y)                (B, H);  mean (default), last or max over time
    z = p W_fcᵀ + b_fc           (B, C) logits, one per event class (sigmoid outputs)

Parameters are a flat dict keyed by the names of the equivalent PyTorch module's state_dict,

    class Student(torch.nn.Module):
        def __init__(self, I, H, L, C):
            super().__init__()
            self.lstm = torch.nn.LSTM(I, H, L, batch_first=True)
            self.fc = torch.nn.Linear(H, C)

i.e. ``lstm.weight_ih_l0``, ``lstm.weight_hh_l0``, ``lstm.bias_ih_l0``, ``lstm.bias_hh_l0``,
…, ``fc.weight``, ``fc.bias``, with identical shapes and layouts, so weights move between
qdaed and PyTorch by name.
"""

from __future__ import annotations

import copy

import numpy as np

from qdaed.errors import InputError
from qdaed.models.state import StateDict
from qdaed.nn import linear, lstm, temporal_pool
from qdaed.validate import check_array, check_choice, check_int

_LSTM = "lstm."
_FC = "fc."


def state_shapes(input_size, hidden_size, num_layers, num_classes, pooling="mean"):
    """{state_dict name: shape} of a StudentLSTM of this config, in PyTorch's state_dict order,
    without building it (model-file checks use it before anything is allocated)."""
    shapes = {_LSTM + name: shape for name, shape in
              lstm.parameter_shapes(input_size, hidden_size, num_layers).items()}
    shapes[_FC + "weight"] = (num_classes, hidden_size)
    shapes[_FC + "bias"] = (num_classes,)
    return shapes


class StudentLSTM(StateDict):
    """LSTM(input_size → hidden_size, num_layers) → pool over time → Linear(hidden_size → num_classes).

    Initialisation is PyTorch's default, drawn from ``rng`` (a ``numpy.random.Generator``;
    ``seed`` makes one when rng is None) in state_dict order, in float64, then cast to dtype:

        LSTM, every tensor:     U(−1/√H, 1/√H)
        fc.weight, fc.bias:     U(−1/√H, 1/√H)   (kaiming_uniform(a=√5) on fan_in = H gives
                                                   the same bound as the bias rule)

    The same seed gives the same values in float32 and float64 (up to rounding).
    """

    def __init__(self, input_size, hidden_size, num_layers, num_classes, pooling="mean",
                 *, seed=0, rng=None, dtype=np.float32):
        self.input_size = check_int("input_size", input_size, lo=1)
        self.hidden_size = check_int("hidden_size", hidden_size, lo=1)
        self.num_layers = check_int("num_layers", num_layers, lo=1)
        self.num_classes = check_int("num_classes", num_classes, lo=1)
        self.pooling = check_choice("pooling", pooling, temporal_pool.MODES)
        dtype = np.dtype(dtype)
        check_choice("dtype", dtype.name, ("float32", "float64"))
        self.dtype = dtype
        if rng is None:
            rng = np.random.default_rng(check_int("seed", seed, lo=0))
        elif not isinstance(rng, np.random.Generator):
            raise InputError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
        self._workspace = None  # training-step buffers, made by the first forward(train=True)
        self.params = {}
        bound = 1.0 / np.sqrt(self.hidden_size)
        for name, shape in self.parameter_shapes().items():
            self.params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)

    input_layout = "BTF"   # x is (B, T, input_size)

    def __deepcopy__(self, memo):
        """A copy with its own parameters and no workspace (its buffers are scratch space,
        up to ~0.5 GB at the paper's shapes, rebuilt by the copy's first training step)."""
        new = copy.copy(self)
        new._workspace = None
        new.params = copy.deepcopy(self.params, memo)
        return new

    @property
    def config(self):
        """The constructor arguments that fix the architecture (for model files)."""
        return dict(input_size=self.input_size, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, num_classes=self.num_classes,
                    pooling=self.pooling)

    def parameter_shapes(self):
        """{state_dict name: shape}, in PyTorch's state_dict order."""
        return state_shapes(self.input_size, self.hidden_size, self.num_layers,
                            self.num_classes)

    def num_parameters(self):
        """Number of scalar parameters."""
        return sum(int(np.prod(shape)) for shape in self.parameter_shapes().values())

    # ---- the state protocol (qdaed.models.state) ------------------------------------------
    def _state_arrays(self):
        return self.params

    def _state_name(self):
        return (f"this StudentLSTM ({self.num_layers} layer(s), hidden size "
                f"{self.hidden_size})")

    def _split(self, params):
        lstm_p = {n[len(_LSTM):]: v for n, v in params.items() if n.startswith(_LSTM)}
        fc_p = {n[len(_FC):]: v for n, v in params.items() if n.startswith(_FC)}
        return lstm_p, fc_p

    def forward(self, x, train=False):
        """Logits z (B, C) for x (B, T, input_size) of the model's dtype; returns (z, cache).

        The student has no dropout or batch norm, so ``train`` does not change the
        arithmetic (the logits are the same to the bit); it says whether a backward pass will
        follow. With train=False the cache is None and the LSTM runs through
        :func:`qdaed.nn.lstm.infer`, which keeps no per-step activations. With
        train=True the buffers come from the model's :class:`qdaed.nn.lstm.Workspace` and
        are reused by the next training forward: a cache is valid until then (backward
        raises InputError for an older one).
        """
        x = check_array("x", x, shape=(None, None, self.input_size), dtype=self.dtype)
        lstm_p, fc_p = self._split(self.params)
        if train:
            if self._workspace is None:
                self._workspace = lstm.Workspace()
            (y, _), lstm_cache = lstm.forward(lstm_p, x, workspace=self._workspace)
        else:
            y, _ = lstm.infer(lstm_p, x)  # no cache: a few steps' buffers, not T's
        p, pool_cache = temporal_pool.forward(None, y, self.pooling)
        z, fc_cache = linear.forward(fc_p, p)
        if not train:
            return z, None
        return z, (lstm_cache, pool_cache, fc_cache, self.params)

    def backward(self, cache, dz, input_grad=False):
        """Gradients of every parameter, {state_dict name: array}, from dz = ∂L/∂z (B, C).

        Chain rule through the three stages: dp = dz W_fc (linear), dy = pool backward,
        then backpropagation through time (``qdaed.nn.lstm.backward``). The gradients are
        those of the parameters the forward pass used (held in the cache).
        With input_grad=True, returns (grads, dx) with dx = ∂L/∂x (B, T, input_size).
        """
        if cache is None:
            raise InputError("cache: None; call forward(x, train=True) to keep what backward needs")
        lstm_cache, pool_cache, fc_cache, params = cache
        dz = check_array("dz", dz, shape=(fc_cache[0].shape[0], self.num_classes),
                         dtype=self.dtype, finite=False)
        lstm_p, fc_p = self._split(params)
        dp, fc_grads = linear.backward(fc_p, fc_cache, dz)
        dy, _ = temporal_pool.backward(None, pool_cache, dp)
        (dx, _), lstm_grads = lstm.backward(lstm_p, lstm_cache, dy, input_grad=input_grad)
        grads = {_LSTM + n: g for n, g in lstm_grads.items()}
        grads.update({_FC + n: g for n, g in fc_grads.items()})
        return (grads, dx) if input_grad else grads
