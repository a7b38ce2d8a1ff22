"""Multi-layer LSTM, PyTorch's ``nn.LSTM(batch_first=True)`` layout and gate order (docs/method/lstm.md).

Parameters of layer l (I_0 = input size, I_l = H above):

    weight_ih_l{l} (4H, I_l),  weight_hh_l{l} (4H, H),  bias_ih_l{l} (4H),  bias_hh_l{l} (4H)

with the 4H axis stacked [i | f | g | o]. Per layer and time step:

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh                      (4H)
    i = σ(a^i),  f = σ(a^f),  g = tanh(a^g),  o = σ(a^o)
    c_t = f ⊙ c_{t-1} + i ⊙ g,     h_t = o ⊙ tanh(c_t)

and layer l's sequence h_1..h_T is layer l+1's input x_1..x_T.

Where the work goes: the input projection X W_ihᵀ is one GEMM per chunk of steps (as many
as make ~4 MiB of gates), run just before that chunk's recurrence so that the cell loop
finds it in the cache; each step then does one small GEMM W_hh h_{t-1}ᵀ (BLAS) and one fused
Numba loop (``qdaed.kernels.lstm``). Backward mirrors this: one small GEMM W_hhᵀ da_tᵀ per step
in the reverse loop, then dW_ih, dW_hh and the layer's input gradient as single GEMMs over
all steps. With ``STEP_LOOP = "numba"`` the loop over a chunk's steps runs in one compiled
call instead (``lstm_forward_steps`` / ``lstm_backward_steps``: the same GEMM through Numba's
``np.dot``, equal to the bit). Every product of the Python loop is an ``np.matmul`` call (none
is written ``@``), so that bench/bench_student_parts.py can time each one where it runs. Internal buffers are time-major, (T, B, ·), so each step's
slice is contiguous and
the all-steps GEMMs see plain 2-D matrices; the h and c buffers hold T+1 rows with the initial
state in row 0, which makes dW_hh = Σ_t da_tᵀ h_{t-1} one GEMM including the h0 term.

About 440 lines, on purpose: forward, backward, the cache-free inference and the workspace
share the buffers' layout and the chunking of time; kept together, a change to one is seen
beside the others.
"""

from __future__ import annotations

import os

import numpy as np

from qdaed.errors import InputError
from qdaed.kernels.lstm import (lstm_backward_steps, lstm_cell_backward, lstm_cell_forward,
                                lstm_forward_steps)
from qdaed.validate import check_array, check_int, check_same_dtype

_NAMES = ("weight_ih_l{}", "weight_hh_l{}", "bias_ih_l{}", "bias_hh_l{}")

# Where the loop over time runs. "python" (the default): a Python loop calling np.matmul and
# the cell kernel per step — the documented form of the arithmetic. "numba": one compiled call
# per layer and chunk (``qdaed.kernels.lstm.lstm_forward_steps`` / ``lstm_backward_steps``), the
# same GEMMs (Numba's np.dot calls SciPy's BLAS) and cell kernels per step, equal to the bit
# (tested). It wins only where BLAS runs one thread: about 4% of a demo student's training at
# one thread, while with two threads the two OpenBLAS thread pools (NumPy's and SciPy's) spin
# against each other on the same cores and the step took 1.9x (training, H = 512 x 2) to 3x
# (inference) as long (docs/results/performance.md). The pipeline's seed workers with one
# thread each use it (qdaed.pipeline.threads.spawn_environment). Chosen by the environment
# variable QDAED_LSTM_STEPS when qdaed is imported.
STEP_LOOPS = ("python", "numba")
STEP_LOOP = os.environ.get("QDAED_LSTM_STEPS", "python")
if STEP_LOOP not in STEP_LOOPS:
    raise InputError(f"QDAED_LSTM_STEPS: expected one of {', '.join(STEP_LOOPS)}, "
                      f"got {STEP_LOOP!r}")


def parameter_shapes(input_size, hidden_size, num_layers):
    """{name: shape} of an LSTM's parameters, in PyTorch's state_dict order."""
    shapes = {}
    for layer in range(num_layers):
        i_l = input_size if layer == 0 else hidden_size
        shapes[f"weight_ih_l{layer}"] = (4 * hidden_size, i_l)
        shapes[f"weight_hh_l{layer}"] = (4 * hidden_size, hidden_size)
        shapes[f"bias_ih_l{layer}"] = (4 * hidden_size,)
        shapes[f"bias_hh_l{layer}"] = (4 * hidden_size,)
    return shapes


def _layers(params):
    """Validate ``params`` and return (num_layers, input_size, hidden_size, dtype).

    The layer count is the number of consecutive ``weight_ih_l{l}`` keys from l = 0; every
    layer needs all four tensors, and no key outside those layers is accepted.
    """
    if not isinstance(params, dict):
        raise InputError(f"params: expected a dict of arrays, got {type(params).__name__}")
    if "weight_ih_l0" not in params or "weight_hh_l0" not in params:
        raise InputError("params: expected LSTM parameters 'weight_ih_l0', 'weight_hh_l0', ...; "
                         f"got keys {sorted(params)}")
    w_hh = check_array("weight_hh_l0", params["weight_hh_l0"], ndim=2)
    hidden = w_hh.shape[1]
    w_ih = check_array("weight_ih_l0", params["weight_ih_l0"], ndim=2)
    num_layers = 0
    while f"weight_ih_l{num_layers}" in params:
        num_layers += 1
    shapes = parameter_shapes(w_ih.shape[1], hidden, num_layers)
    unknown = sorted(set(params) - set(shapes))
    if unknown:
        raise InputError(f"params: unexpected keys {unknown} for a {num_layers}-layer LSTM")
    for name, shape in shapes.items():
        if name not in params:
            raise InputError(f"params: missing '{name}' (expected shape {shape})")
        check_array(name, params[name], shape=shape)
    dtype = check_same_dtype(**{name: params[name] for name in shapes})
    return num_layers, w_ih.shape[1], hidden, dtype


class Workspace:
    """Buffers that :func:`forward` and :func:`backward` reuse from one call to the next.

    One training step at the paper's shapes needs about 0.5 GB of activations (gates, h and
    c for every step and layer) and as much again for the gradients through them. Fresh
    arrays of that size are page-faulted in on every step; with transparent huge pages the
    kernel may also compact memory first, and one StudentLSTM step (B=32, T=1000, H=256,
    two layers) measured anywhere from 1.25 to 2.2 s for that reason alone. A workspace
    keeps the buffers, so a training loop touches fresh memory only on its first step.

    The price is a lifetime rule: a cache made with a workspace holds views of its buffers
    and is valid only until the next :func:`forward` with the same workspace (``y`` from
    that forward changes too). :func:`backward` checks this and raises InputError for a
    stale cache rather than return wrong gradients.
    """

    def __init__(self):
        self._buffers = {}
        self.generation = 0

    def buffer(self, key, shape, dtype):
        """An uninitialised array of ``shape`` and ``dtype``, the same memory each time.

        Buffers grow to the largest size asked for and are reshaped views below that, so
        a smaller last batch reuses them too.
        """
        size = int(np.prod(shape))
        buf = self._buffers.get(key)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = np.empty(size, dtype)
            self._buffers[key] = buf
        return buf[:size].reshape(shape)


def _buffer(workspace, key, shape, dtype):
    """A workspace buffer, or a fresh array without a workspace."""
    if workspace is None:
        return np.empty(shape, dtype)
    return workspace.buffer(key, shape, dtype)


def _initial_state(name, s, num_layers, batch, hidden, dtype):
    """A caller's (L, B, H) initial or upstream state, or zeros when None."""
    if s is None:
        return np.zeros((num_layers, batch, hidden), dtype)
    return check_array(name, s, shape=(num_layers, batch, hidden), dtype=dtype)


# 4 MiB: the chunk's gates stay in the caches (L2 + L3) between the GEMM and the cell loop. At
# the paper preset's student (H = 512 × 2, B = 32, T = 1000; median of 4 forward(x) calls on
# the reference machine, an ad-hoc script) inference took 0.93 / 0.86 / 0.84 / 0.88 / 2.18 s with 2 / 4 / 8 /
# 16 / unbounded MiB (unbounded: one chunk of T steps, the gates of every step written, then
# read back from memory); training steps did not differ beyond the noise.
CHUNK_BYTES = 4 << 20


def _chunk_steps(batch, hidden, dtype):
    """Time steps per chunk: as many as keep a chunk's gates (B, 4H per step) near 4 MiB,
    so that the cell loop reads them from the caches right after the GEMM wrote them."""
    return max(1, CHUNK_BYTES // (batch * 4 * hidden * np.dtype(dtype).itemsize))


def _layer_weights(params, layer):
    """(W_ih, W_hh, b_ih + b_hh) of one layer: the bias enters every step as one sum."""
    return (params[f"weight_ih_l{layer}"], np.ascontiguousarray(params[f"weight_hh_l{layer}"]),
            params[f"bias_ih_l{layer}"] + params[f"bias_hh_l{layer}"])


def _step_scratch(batch, hidden, dtype):
    """One step's scratch for :func:`_layer_steps`, reused across steps and layers: the
    pre-activation a (B, 4H), the recurrent product W_hh h_{t-1}ᵀ (4H, B, transposed: see
    the kernel) and h_{t-1}ᵀ (H, B)."""
    return (np.empty((batch, 4 * hidden), dtype), np.empty((4 * hidden, batch), dtype),
            np.empty((hidden, batch), dtype))


def _layer_steps(w_ih, w_hh, bias, inp, gates, hs, cs, scratch):
    """One layer over one chunk of n steps, in place: the only loop over time.

    inp (n, B, I) the layer's input x_t;  gates (n, B, 4H) out: the gate activations (the
    input projection x_t W_ihᵀ is written there first, by one GEMM for the chunk);
    hs, cs (n+1, B, H): row 0 holds the state before the chunk (h0, c0 or the previous
    chunk's last), row t+1 receives h_t, c_t.  scratch: :func:`_step_scratch`'s.
    Forward (training) and :class:`Inference` both call this with the same chunk lengths,
    so their GEMMs, and hence their results, are identical to the bit.
    """
    n, batch, _ = inp.shape
    a, a_hh, h_t = scratch
    np.matmul(inp.reshape(n * batch, -1), w_ih.T, out=gates.reshape(n * batch, -1))
    h_t[...] = hs[0].T
    if STEP_LOOP == "numba":
        lstm_forward_steps(w_hh, bias, gates, hs, cs, a, a_hh, h_t)
        return
    for t in range(n):
        np.matmul(w_hh, h_t, out=a_hh)
        lstm_cell_forward(gates[t], a_hh, bias, a, cs[t], cs[t + 1], hs[t + 1], h_t)


def forward(params, x, h0=None, c0=None, workspace=None):
    """LSTM over a batch-first sequence: ((y, (h_n, c_n)), cache).

    Per layer l and step t (gates stacked [i | f | g | o] on the 4H axis)::

        a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh                      (B, 4H)
        i = σ(a^i),  f = σ(a^f),  g = tanh(a^g),  o = σ(a^o)
        c_t = f ⊙ c_{t-1} + i ⊙ g,     h_t = o ⊙ tanh(c_t)

    Parameters
    ----------
    params : dict of ndarray
        ``weight_ih_l{l}`` (4H, I_l), ``weight_hh_l{l}`` (4H, H), ``bias_ih_l{l}`` (4H),
        ``bias_hh_l{l}`` (4H) for l = 0..L−1, one float dtype.
    x : ndarray
        (B, T, I) input sequence, same dtype as the parameters.
    h0, c0 : ndarray or None
        (L, B, H) initial hidden and cell state per layer; None means zeros.
    workspace : Workspace or None
        A :class:`Workspace` to take the cache's buffers from instead of allocating them
        (then the cache and y are valid until the workspace's next forward).

    Returns
    -------
    (y, (h_n, c_n)) : tuple
        y (B, T, H), the top layer's h_1..h_T: a read-only batch-first *view* of the
        time-major buffer (so not C-contiguous; ``np.ascontiguousarray`` it if that
        matters); h_n, c_n (L, B, H), every layer's state after the last step, as PyTorch
        returns them.
    cache : tuple
        Per layer, the input sequence, the gate activations and the h, c sequences
        (time-major), for :func:`backward`.
    """
    num_layers, input_size, hidden, dtype = _layers(params)
    x = check_array("x", x, shape=(None, None, input_size), dtype=dtype)
    batch, steps, _ = x.shape
    h0 = _initial_state("h0", h0, num_layers, batch, hidden, dtype)
    c0 = _initial_state("c0", c0, num_layers, batch, hidden, dtype)

    if workspace is not None:
        workspace.generation += 1
    inp = _buffer(workspace, "x", (steps, batch, input_size), dtype)
    np.copyto(inp, x.transpose(1, 0, 2))  # (T, B, I): time-major
    scratch = _step_scratch(batch, hidden, dtype)
    chunk = _chunk_steps(batch, hidden, dtype)
    layers = []
    for layer in range(num_layers):
        w_ih, w_hh, bias = _layer_weights(params, layer)
        gates = _buffer(workspace, ("gates", layer), (steps, batch, 4 * hidden), dtype)
        hs = _buffer(workspace, ("h", layer), (steps + 1, batch, hidden), dtype)
        cs = _buffer(workspace, ("c", layer), (steps + 1, batch, hidden), dtype)
        hs[0], cs[0] = h0[layer], c0[layer]
        for t0 in range(0, steps, chunk):
            t1 = min(steps, t0 + chunk)
            _layer_steps(w_ih, w_hh, bias, inp[t0:t1], gates[t0:t1], hs[t0:t1 + 1],
                         cs[t0:t1 + 1], scratch)
        layers.append((inp, gates, hs, cs))
        inp = hs[1:]
    y = inp.transpose(1, 0, 2)
    y.flags.writeable = False  # a view of the cache: writing into it would corrupt backward
    h_n = np.stack([hs[-1] for _, _, hs, _ in layers])
    c_n = np.stack([cs[-1] for _, _, _, cs in layers])
    generation = None if workspace is None else workspace.generation
    cache = (layers, (num_layers, batch, steps, input_size, hidden, dtype),
             (workspace, generation))
    return (y, (h_n, c_n)), cache


class Inference:
    """The LSTM run forward without a cache: state carried from call to call, bounded memory.

    ``Inference(params, batch, h0=None, c0=None)`` checks the parameters once (dtype, shapes,
    finite values) and allocates a few time steps' buffers; ``run(x)`` then advances every
    sequence of the batch over the block x (B, T, I) and returns the top layer's h_1..h_T
    (B, T, H), with the state after the block in ``h``, ``c`` (L, B, H) for the next call.
    The arithmetic is :func:`forward`'s, step for step and GEMM for GEMM, but time runs in
    chunks of at most ``chunk`` steps through every layer before the next chunk starts, so
    nothing of size T is kept except y itself: at the paper's student (B = 32, T = 1000,
    H = 512 × 2) forward keeps ~0.8 GB of activations for a backward pass that inference
    never runs. A stream (``qdaed.streaming``) calls run() once per block, so the weights are
    not re-checked per 10 ms frame.

    chunk: steps per chunk; by default forward's (a chunk's gates near ``CHUNK_BYTES``),
    which makes y equal to forward's bit for bit (tested); another length changes only the
    GEMMs' blocking, so y agrees to float rounding.
    """

    def __init__(self, params, batch, h0=None, c0=None, chunk=None):
        num_layers, input_size, hidden, dtype = _layers(params)
        self.batch = batch = check_int("batch", batch, lo=1)
        self.num_layers, self.input_size, self.hidden, self.dtype = (num_layers, input_size,
                                                                      hidden, dtype)
        self.chunk = check_int("chunk", _chunk_steps(batch, hidden, dtype) if chunk is None
                               else chunk, lo=1)
        self._weights = [_layer_weights(params, layer) for layer in range(num_layers)]
        # hs, cs: per layer, row 0 the carried state, rows 1..n a chunk's h_t, c_t; the
        # chunk buffers grow to min(chunk, the longest block run), so a stream of short
        # blocks keeps only a few steps' worth.
        self._rows = 0
        self._hs = np.empty((num_layers, 1, batch, hidden), dtype)
        self._cs = np.empty((num_layers, 1, batch, hidden), dtype)
        self._hs[:, 0] = _initial_state("h0", h0, num_layers, batch, hidden, dtype)
        self._cs[:, 0] = _initial_state("c0", c0, num_layers, batch, hidden, dtype)
        self._scratch = _step_scratch(batch, hidden, dtype)

    def _grow(self, n):
        """Chunk buffers for n steps (the carried state kept in row 0)."""
        if n <= self._rows:
            return
        shape = (self.num_layers, n + 1, self.batch, self.hidden)
        hs, cs = np.empty(shape, self.dtype), np.empty(shape, self.dtype)
        hs[:, 0], cs[:, 0] = self._hs[:, 0], self._cs[:, 0]
        self._hs, self._cs, self._rows = hs, cs, n
        self._x = np.empty((n, self.batch, self.input_size), self.dtype)
        self._gates = np.empty((n, self.batch, 4 * self.hidden), self.dtype)

    @property
    def h(self):
        """(L, B, H) every layer's h after the last step run (h0 before any), a copy."""
        return self._hs[:, 0].copy()

    @property
    def c(self):
        """(L, B, H) every layer's c after the last step run (c0 before any), a copy."""
        return self._cs[:, 0].copy()

    def run(self, x):
        """y (B, T, H) for the block x (B, T, I) (T ≥ 1), continuing from the carried state."""
        x = check_array("x", x, shape=(self.batch, None, self.input_size), dtype=self.dtype)
        batch, steps, _ = x.shape
        y = np.empty((batch, steps, self.hidden), self.dtype)
        self._grow(min(self.chunk, steps))
        for t0 in range(0, steps, self.chunk):
            n = min(self.chunk, steps - t0)
            inp = self._x[:n]
            np.copyto(inp, x[:, t0:t0 + n].transpose(1, 0, 2))  # (n, B, I): time-major
            for layer, (w_ih, w_hh, bias) in enumerate(self._weights):
                hs = self._hs[layer]
                _layer_steps(w_ih, w_hh, bias, inp, self._gates[:n], hs[:n + 1],
                             self._cs[layer, :n + 1], self._scratch)
                inp = hs[1:n + 1]
            np.copyto(y[:, t0:t0 + n], inp.transpose(1, 0, 2))
            self._hs[:, 0] = self._hs[:, n]  # the chunk's last state carries to the next
            self._cs[:, 0] = self._cs[:, n]
        return y


def infer(params, x, h0=None, c0=None):
    """:func:`forward` without the cache: (y, (h_n, c_n)) with y (B, T, H) C-contiguous.

    Same parameters and results (to float rounding) as forward; the memory is y plus a few
    steps' buffers instead of every step's activations (:class:`Inference`).
    """
    x = check_array("x", x, ndim=3)
    run = Inference(params, x.shape[0], h0, c0)
    y = run.run(x)
    return y, (run.h, run.c)


def backward(params, cache, dy, dh_n=None, dc_n=None, input_grad=True):
    """Backpropagation through time: ((dx, (dh0, dc0)), grads).

    Per layer, from the top, carrying dh_next = da_{t+1} W_hh and dc from t = T−1 down to 0
    (each step's equations are in ``qdaed.kernels.lstm.lstm_cell_backward``); then::

        dW_ih = Σ_t da_tᵀ x_t,   dW_hh = Σ_t da_tᵀ h_{t-1},   db_ih = db_hh = Σ_t Σ_b da_t,
        ∂L/∂x_t = da_t W_ih      (the layer below's dy, or dx for layer 0),
        ∂L/∂h_0 = da_0 W_hh,     ∂L/∂c_0 = dc carried past t = 0.

    Parameters
    ----------
    params : dict of ndarray
        The parameters :func:`forward` ran with.
    cache : tuple
        The cache :func:`forward` returned. A cache made with a :class:`Workspace` must be
        the workspace's latest (InputError if not).
    dy : ndarray or None
        (B, T, H) ∂L/∂y, or None when the loss reaches the LSTM only through h_n, c_n.
    dh_n, dc_n : ndarray or None
        (L, B, H) ∂L/∂h_n, ∂L/∂c_n, or None for zeros.
    input_grad : bool
        False skips dx (returned as None), which saves one GEMM when x is data.

    Returns
    -------
    (dx, (dh0, dc0)) : tuple
        dx (B, T, I) or None; dh0, dc0 (L, B, H).
    grads : dict of ndarray
        ∂L/∂θ for every parameter, under the parameter names.
    """
    layers, (num_layers, batch, steps, input_size, hidden, dtype), (workspace, gen) = cache
    if workspace is not None and workspace.generation != gen:
        raise InputError("cache: stale; its workspace has been used by a later forward pass, "
                         "which overwrote the activations this cache points to")
    d_out = _buffer(workspace, "d_out", (steps, batch, hidden), dtype)  # (T, B, H)
    if dy is None:
        d_out[...] = 0
    else:
        dy = check_array("dy", dy, shape=(batch, steps, hidden), dtype=dtype, finite=False)
        np.copyto(d_out, dy.transpose(1, 0, 2))
    dh_n = _initial_state("dh_n", dh_n, num_layers, batch, hidden, dtype)
    dc_n = _initial_state("dc_n", dc_n, num_layers, batch, hidden, dtype)

    grads = {}
    dh0 = np.empty((num_layers, batch, hidden), dtype)
    dc0 = np.empty((num_layers, batch, hidden), dtype)
    dx = None
    dh = np.empty((batch, hidden), dtype)  # one step's scratch, reused
    da_t = np.empty((4 * hidden, batch), dtype)  # da_tᵀ, the recurrent product's operand
    for layer in reversed(range(num_layers)):
        inp, gates, hs, cs = layers[layer]
        w_ih = params[f"weight_ih_l{layer}"]
        w_hh = params[f"weight_hh_l{layer}"]
        da = _buffer(workspace, "da", gates.shape, dtype)  # layers run one after another
        dbias = np.zeros(4 * hidden, np.float64)
        w_hh_t = np.ascontiguousarray(w_hh.T)  # (H, 4H): the per-step product's operand
        dh_next_t = dh_n[layer].T.copy()  # (H, B), see the kernel; a copy: written below
        dc = dc_n[layer].copy()
        if STEP_LOOP == "numba":
            lstm_backward_steps(w_hh_t, gates, cs, d_out, dh_next_t, dc, dh, da, da_t, dbias)
        else:
            for t in range(steps - 1, -1, -1):
                lstm_cell_backward(gates[t], cs[t], cs[t + 1], d_out[t], dh_next_t, dc, dh,
                                   da[t], da_t, dbias)
                np.matmul(w_hh_t, da_t, out=dh_next_t)
        dh0[layer], dc0[layer] = dh_next_t.T, dc

        da2 = da.reshape(steps * batch, 4 * hidden)
        grads[f"weight_ih_l{layer}"] = np.matmul(da2.T, inp.reshape(steps * batch, -1))
        grads[f"weight_hh_l{layer}"] = np.matmul(da2.T, hs[:-1].reshape(steps * batch, hidden))
        grads[f"bias_ih_l{layer}"] = dbias.astype(dtype)
        grads[f"bias_hh_l{layer}"] = dbias.astype(dtype)
        if layer > 0:  # this layer's loop is done with d_out: overwrite it with the next one's
            np.matmul(da2, w_ih, out=d_out.reshape(steps * batch, hidden))
        elif input_grad:
            dx = np.matmul(da2, w_ih).reshape(steps, batch, input_size).transpose(1, 0, 2)
            dx = np.ascontiguousarray(dx)
    grads = {name: grads[name] for name in parameter_shapes(input_size, hidden, num_layers)}
    return (dx, (dh0, dc0)), grads
