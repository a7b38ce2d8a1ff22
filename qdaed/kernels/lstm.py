"""Fused element-wise work of one LSTM time step (docs/method/lstm.md), forward and backward.

The matrix products stay in BLAS (``qdaed.nn.lstm``): the input projection of every time step
before the recurrence, the recurrent product ``W_hh h_{t-1}ᵀ`` / ``W_hhᵀ da_tᵀ`` per step, and the
weight gradients after it. What is left per step — gate non-linearities, cell update, and their
derivatives — is one loop each here, over a (B, 4H) slab that stays in the L1/L2 cache.
``lstm_forward_steps`` / ``lstm_backward_steps`` run a chunk's whole loop over time in one call
(the per-step product through Numba's ``np.dot``, which calls BLAS), so that no interpreter
runs between the steps.

Gate order is PyTorch's: the 4H axis holds [i | f | g | o], each H wide.

Why the hand-written exponential (``_expm1_parts``): without Intel SVML, Numba turns
``np.exp``/``np.tanh`` into scalar libm calls, which LLVM cannot vectorise; at the paper's shapes
those calls alone cost more than PyTorch's whole training step. The version here is the textbook
Cody–Waite reduction plus a Taylor polynomial, written with plain arithmetic so that LLVM
vectorises the cell loops. It runs in the data's precision, picked when Numba compiles (an
``isinstance`` test on a scalar is resolved at compile time): float64 with a degree-12 series
(relative error below 4e-16), float32 with a degree-7 series in float32 arithmetic (twice the
SIMD lanes; about 1 ulp). The test suite checks σ and tanh of both against NumPy.

Why every gate is read and written through its own slice (``gi = gates[b, 0:H]`` ...): stores
to one array at offsets j, H+j, 2H+j, 3H+j defeat LLVM's dependence analysis and the loop is
left scalar (about 6x slower); four separate views are four disjoint-checked pointers.

Why the float divisions are ``np.divide``: the ``/`` operator carries Python's
ZeroDivisionError check, a branch that also blocks vectorisation. The denominators here are
1 + e with e ≥ 0, never zero.
"""

import numpy as np

from qdaed.kernels import kernel

_INV_LN2 = 1.4426950408889634  # 1 / ln 2
# ln 2 split so that n * LN2_HI is exact for every n that occurs (Cody & Waite): r keeps full
# precision. float64: 32 leading bits of ln 2; float32: 9 leading bits.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LN2_HI_F32 = 0.693359375
_LN2_LO_F32 = -2.12194440e-4


@kernel
def _expm1_parts_f64(x):
    """(q, s) with e^x = s (1 + q), for float64 x ≤ 0.

    s = 2^n, n = round(x / ln 2), built in the exponent bits; r = x − n ln 2 ∈ [−ln2/2, ln2/2];
    q = e^r − 1 by its Taylor series to r^12/12! in Horner form (truncation < 2e-16 of q).
    x < −708.39 is clamped (e^−708.39 is the smallest normal float64, 2.2e-308: the absolute
    error is at most that).
    """
    x = max(x, -708.39)
    n = np.floor(x * _INV_LN2 + 0.5)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    q = r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
        1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (
            1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600))))))))))))
    s = np.int64((np.int64(n) + 1023) << 52).view(np.float64)
    return q, s


@kernel
def _expm1_parts_f32(x):
    """(q, s) with e^x = s (1 + q), for float32 x ≤ 0, entirely in float32 (16 SIMD lanes).

    As the float64 version with the series to r^7/7! (truncation < 2e-8 of q) and the clamp
    at −87.33 (e^−87.33 ≈ 1.2e-38, the smallest normal float32).
    """
    x = max(x, np.float32(-87.33))
    n = np.floor(x * np.float32(_INV_LN2) + np.float32(0.5))
    r = (x - n * np.float32(_LN2_HI_F32)) - n * np.float32(_LN2_LO_F32)
    q = r * (np.float32(1.0) + r * (np.float32(1.0 / 2) + r * (np.float32(1.0 / 6) + r * (
        np.float32(1.0 / 24) + r * (np.float32(1.0 / 120) + r * (np.float32(1.0 / 720) + r * (
            np.float32(1.0 / 5040))))))))
    s = np.int32((np.int32(n) + 127) << 23).view(np.float32)
    return q, s


@kernel
def _expm1_parts(x):
    """(q, s) with e^x = s (1 + q), x ≤ 0, in x's own precision (chosen when compiling)."""
    if isinstance(x, np.float32):
        return _expm1_parts_f32(x)
    return _expm1_parts_f64(np.float64(x))


@kernel
def _one(x):
    """1 in x's precision: a bare 1.0 literal would promote float32 arithmetic to float64."""
    if isinstance(x, np.float32):
        return np.float32(1.0)
    return 1.0


@kernel
def _exp_nonpositive(x):
    """e^x for x ≤ 0: s (1 + q) = s + s q."""
    q, s = _expm1_parts(x)
    return s + s * q


@kernel
def _sigmoid(x):
    """σ(x) = 1 / (1 + e^−x), through e = e^−|x| ≤ 1 so nothing overflows:
    σ(x) = 1/(1+e) for x ≥ 0 and e/(1+e) for x < 0."""
    one = _one(x)
    e = _exp_nonpositive(-abs(x))
    r = np.divide(one, one + e)
    return r if x >= 0 else e * r


@kernel
def _tanh(x):
    """tanh(x) = sign(x) · (−m)/(2 + m) with m = e^−2|x| − 1 ∈ (−1, 0].

    Computing m = expm1(−2|x|) = (s − 1) + s q directly (rather than e − 1) keeps the
    relative accuracy for small |x|, where tanh(x) ≈ x."""
    one = _one(x)
    q, s = _expm1_parts(-(one + one) * abs(x))
    m = (s - one) + s * q
    t = np.divide(-m, (one + one) + m)
    return t if x >= 0 else -t


@kernel
def lstm_cell_forward(gates, a_hh, bias, a, c_prev, c, h, h_t):
    """One time step of the LSTM cell: gate activations and cell update.

        a  = x_t W_ihᵀ + h_{t-1} W_hhᵀ + b_ih + b_hh                 (B, 4H)
        i = σ(a^i),  f = σ(a^f),  g = tanh(a^g),  o = σ(a^o)
        c_t = f ⊙ c_{t-1} + i ⊙ g,      h_t = o ⊙ tanh(c_t)

    gates:  (B, 4H) in: x_t W_ihᵀ (this step's slice of the input projection);
                    out: the activations [i | f | g | o], kept for the backward pass.
    a_hh:   (4H, B) W_hh h_{t-1}ᵀ: the recurrent product, *transposed* (see below).
    bias:   (4H,)   b_ih + b_hh.
    a:      (B, 4H) scratch: the pre-activation a.
    c_prev: (B, H)  c_{t-1}.      c, h: (B, H) out: c_t, h_t.
    h_t:    (H, B)  out: h_tᵀ, the operand of the next step's recurrent product.

    Why transposed: the recurrent product is on the critical path, and BLAS computes
    W_hh h_{t-1}ᵀ (output 4H × B) about 1.5x faster than h_{t-1} W_hhᵀ (output B × 4H) for
    B = 32, H = 256 (100 against 150 µs on the reference machine: with 4H output rows the
    large operand is split across threads); reading it back transposed costs ~10 µs here.
    h_t uses the stored c_t, the value the backward pass sees. The sum goes through the
    scratch ``a`` because a loop that reads and writes the same array is not vectorised.
    """
    B, H = c.shape
    for b in range(B):
        ab, gb = a[b], gates[b]
        for k in range(4 * H):
            ab[k] = gb[k] + a_hh[k, b] + bias[k]
        gi, gf, gg, go = gb[:H], gb[H:2 * H], gb[2 * H:3 * H], gb[3 * H:]
        cp, cb, hb = c_prev[b], c[b], h[b]
        for j in range(H):
            i = _sigmoid(ab[j])
            f = _sigmoid(ab[H + j])
            g = _tanh(ab[2 * H + j])
            o = _sigmoid(ab[3 * H + j])
            gi[j] = i
            gf[j] = f
            gg[j] = g
            go[j] = o
            cb[j] = f * cp[j] + i * g
            hb[j] = o * _tanh(cb[j])
        for j in range(H):
            h_t[j, b] = hb[j]


@kernel
def lstm_cell_backward(gates, c_prev, c, dy, dh_next_t, dc, dh, da, da_t, dbias):
    """One time step of the LSTM cell backward (the derivative of ``lstm_cell_forward``).

    With dh = ∂L/∂h_t (from the layer's output and from step t+1) and τ = tanh(c_t):

        dh   = dy_t + dh_next
        dc_t = dc_{t+1→t} + dh ⊙ o ⊙ (1 − τ²)        (total gradient reaching c_t)
        da^i = dc_t ⊙ g ⊙ i(1 − i)       da^f = dc_t ⊙ c_{t-1} ⊙ f(1 − f)
        da^g = dc_t ⊙ i ⊙ (1 − g²)       da^o = dh ⊙ τ ⊙ o(1 − o)
        ∂L/∂c_{t-1} = dc_t ⊙ f           dbias += Σ_b da

    gates:     (B, 4H) [i | f | g | o] at step t.   c_prev, c: (B, H) c_{t-1}, c_t.
    dy:        (B, H)  ∂L/∂h_t from the layer output.
    dh_next_t: (H, B)  ∂L/∂h_t through time, *transposed*: W_hhᵀ da_{t+1}ᵀ (or the upstream
                       ∂L/∂h_nᵀ at t = T−1).
    dc:        (B, H)  in: ∂L/∂c_t from step t+1 (or upstream ∂L/∂c_n);  out: ∂L/∂c_{t-1}.
    dh:        (B, H)  scratch: dh above.
    da:        (B, 4H) out: ∂L/∂a_t, the gate pre-activation gradient (kept for the weight
                       gradients).      da_t: (4H, B) out: its transpose.
    dbias:     (4H,)   float64 accumulator of Σ_{t,b} da (the gradient of b_ih and of b_hh).

    Why transposed in and out: the recurrent product that follows, W_hhᵀ da_tᵀ with output
    H × B, runs about 1.7x faster in BLAS than da_t W_hh with output B × H (B = 32: 224
    against 380 µs at H = 512 on the reference machine, the same reason as the forward
    product's orientation); the two transposes here cost ~13 µs of it. They are loops of
    their own, so that the cell loop between them stays contiguous and vectorised.
    """
    B, H = c.shape
    one = _one(c[0, 0])
    for b in range(B):
        dhb, dyb = dh[b], dy[b]
        for j in range(H):
            dhb[j] = dyb[j] + dh_next_t[j, b]
    dbi, dbf, dbg, dbo = dbias[:H], dbias[H:2 * H], dbias[2 * H:3 * H], dbias[3 * H:]
    for b in range(B):
        gi, gf, gg, go = gates[b, :H], gates[b, H:2 * H], gates[b, 2 * H:3 * H], gates[b, 3 * H:]
        di, df, dg, do = da[b, :H], da[b, H:2 * H], da[b, 2 * H:3 * H], da[b, 3 * H:]
        cp, cb, dhb, dcb = c_prev[b], c[b], dh[b], dc[b]
        for j in range(H):
            i, f, g, o = gi[j], gf[j], gg[j], go[j]
            tau = _tanh(cb[j])
            d = dhb[j]
            dct = dcb[j] + d * o * (one - tau * tau)
            vi = dct * g * i * (one - i)
            vf = dct * cp[j] * f * (one - f)
            vg = dct * i * (one - g * g)
            vo = d * tau * o * (one - o)
            di[j] = vi
            df[j] = vf
            dg[j] = vg
            do[j] = vo
            dbi[j] += vi
            dbf[j] += vf
            dbg[j] += vg
            dbo[j] += vo
            dcb[j] = dct * f
    for b in range(B):
        dab = da[b]
        for k in range(4 * H):
            da_t[k, b] = dab[k]


@kernel
def lstm_forward_steps(w_hh, bias, gates, hs, cs, a, a_hh, h_t):
    """The recurrence of one layer over n steps in one call: per step the recurrent product
    ``W_hh h_{t-1}ᵀ`` (BLAS, through Numba's ``np.dot``) and :func:`lstm_cell_forward`.

    w_hh:  (4H, H)   W_hh.              bias: (4H,) b_ih + b_hh.
    gates: (n, B, 4H) in: x_t W_ihᵀ for every step; out: the activations [i | f | g | o].
    hs, cs: (n+1, B, H) row 0 holds h_0, c_0 (the state before the steps), row t+1 receives
            h_t, c_t.
    a:     (B, 4H) scratch.   a_hh: (4H, B) scratch.
    h_t:   (H, B) in: h_0ᵀ; out: h_nᵀ (the recurrent product's operand, carried).

    The arithmetic is the per-step loop's (``qdaed.nn.lstm``, the same GEMM on the same
    operands, then the same cell kernel), so the results are the same to the bit; what goes
    is the interpreter between the steps (docs/results/performance.md has the measurements).
    """
    n = gates.shape[0]
    for t in range(n):
        np.dot(w_hh, h_t, a_hh)
        lstm_cell_forward(gates[t], a_hh, bias, a, cs[t], cs[t + 1], hs[t + 1], h_t)


@kernel
def lstm_backward_steps(w_hh_t, gates, cs, d_out, dh_next_t, dc, dh, da, da_t, dbias):
    """Backpropagation through one layer's n steps in one call, from step n−1 down to 0: per
    step :func:`lstm_cell_backward` and the product ``W_hhᵀ da_tᵀ`` (BLAS, through Numba's
    ``np.dot``), which is ∂L/∂h_{t-1}ᵀ through time.

    w_hh_t: (H, 4H) W_hhᵀ, contiguous.    gates: (n, B, 4H) the activations of every step.
    cs:     (n+1, B, H) c_0 .. c_n.        d_out: (n, B, H) ∂L/∂h_t from the layer's output.
    dh_next_t: (H, B) in: ∂L/∂h_nᵀ from upstream; out: ∂L/∂h_0ᵀ.
    dc:     (B, H) in: ∂L/∂c_n; out: ∂L/∂c_0.      dh: (B, H) scratch.
    da:     (n, B, 4H) out: ∂L/∂a_t for every step.  da_t: (4H, B) scratch.
    dbias:  (4H,) float64 accumulator of Σ_{t,b} da.

    As for :func:`lstm_forward_steps`: the per-step loop's arithmetic, in one call.
    """
    n = gates.shape[0]
    for t in range(n - 1, -1, -1):
        lstm_cell_backward(gates[t], cs[t], cs[t + 1], d_out[t], dh_next_t, dc, dh, da[t],
                           da_t, dbias)
        np.dot(w_hh_t, da_t, dh_next_t)
