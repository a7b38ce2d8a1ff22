"""The k-bit uniform quantizer of docs/method/quantization.md and its straight-through gradient.

Min–max (asymmetric, the default; Polino et al. 2018), for each group of values v:

    β = min(v),   α = max(v) − min(v),   s = 2^k − 1,   k ∈ 1..16
    codes = round((v − β) / α · s) ∈ [0, s]
    Q(v)  = β + α · codes / s                     (α = 0: codes = 0 and Q(v) = β)

so |Q(v) − v| ≤ α / (2s) for every element. Groups: the whole tensor (``group="tensor"``),
each slice along the first axis (``group="row"``, PyTorch's output rows/channels; on a 1-D
tensor every element is its own group), or buckets of d consecutive values of the flattened
(C-order) tensor (``group=d``; the last bucket may be short).

Rounding: ``"nearest"`` rounds half to even (``np.rint``, as PyTorch's fake quantization);
``"stochastic"`` takes floor(x + u), u ~ U[0, 1) drawn from the ``rng`` passed in, so that
E[Q(v)] = v (unbiased).

Stored parameters. A quantized model stores, per group, α and β as float32 (docs/method/size.md), and
qdaed quantizes with exactly the stored values, so that a tensor restored from its bytes
dequantizes bit for bit as the one in memory. To keep the bound |Q(v) − v| ≤ α/(2s) with
float32 parameters (and float64 inputs), β is min(v) rounded down to float32 and α is
max(v) − β rounded up to float32: the grid [β, β + α] always covers the group. For a float32
tensor β = min(v) exactly; α = 0 exactly when the group is constant (and, for float64 input,
float32-representable), and then Q(v) = v exactly. Codes are formed as (v − β)·s/α (the product
before the division, so values on a dyadic grid give exact half-way points), rounded, clipped
to [0, s] against float rounding; Q is evaluated in float64 from the float32 α, β and rounded
once to the requested dtype.

Symmetric variant (``symmetric=True``, k ≥ 2): signed integers q ∈ [−m, m], m = 2^(k−1) − 1,
with step Δ ≥ max|v| / m and Q(v) = Δ·q, q = round(v / Δ): zero is exactly representable and
the grid is symmetric (TF's "narrow range"; code 2^k − 1 is never used). The codes are the
unsigned offsets codes = q + m ∈ [0, 2^k − 2], and the parameters map onto the asymmetric form

    α = Δ·s,   β = −Δ·m,   so that   β + α·codes/s = Δ·(codes − m) = Δ·q,

one dequantization formula for both variants. Δ is max|v|/m rounded up to 24 − k significant
bits (a relative increase below 2^(k−23): 2^-19 at k = 4), which makes α and β exact in float32
and the float64 evaluation of β + α·codes/s exactly Δ·q, so zero dequantizes to exactly 0.0.
Rounding is applied to q (half to even on the signed value, as PyTorch with zero point 0).
k = 1 is refused: a symmetric grid with zero and one bit has no room for any other value.
The grid covers every value, so there is no clipping range and the STE is the identity here too.

Idempotence, Q(Q(v)) = Q(v), with rounding to nearest. Re-quantizing a dequantized tensor
re-derives the same (β, α) when the group's extremes sit on codes 0 and s, which holds unless
the group's range is below the float32 resolution of its values. Then the codes are equal and,
dequantized in float64, the values are bit for bit equal; dequantized in float32 each grid point
is rounded to float32, the re-derived α may move by an ulp, and the values agree to float32
rounding. Symmetric: exact (codes and values, either dtype) for k ≤ 11, where max|v| always
lands on ±m (given max|v|/m ≥ 2^-126, where Δ is not clamped). For k ≥ 12 the (24 − k)-bit step
can leave max|v| below level m, the re-derived step is then one notch finer, and Q(Q(v)) is
only within Δ/2 of Q(v).

Gradient (``ste_backward``): Q is piecewise constant, so its true derivative is zero almost
everywhere; training uses the straight-through estimator ∂L/∂w := ∂L/∂Q(w) (identity).
PyTorch's ``fake_quantize_*`` backward is clipped instead, dy·[q_min ≤ round(w/scale) + zp ≤
q_max]: it zeroes the gradient of values outside its fixed range. qdaed's grid is computed from
the tensor itself and covers every value, so the mask would be all ones and the two agree; they
differ when torch's range does not cover the tensor (observer statistics from other batches,
fixed qparams, or a zero point whose rounding shifts the range past min or max).

Bytes (docs/method/size.md): :func:`tensor_bytes` is the one place the size of a stored tensor is
defined — a float32 tensor at 4 bytes per value, a k-bit one at ceil(n·k/8) packed code bytes
+ 8 bytes (α, β as float32) per group, for every k in 1..16 (see ``qdaed.kernels.quant`` for
the bit order of ``packed()``). ``QuantizedTensor.nbytes``, the model file (whose tensor data
are exactly these bytes) and every report (``Detector.accounted_bytes``) use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qdaed.errors import InputError
from qdaed.kernels import quant as _k
from qdaed.validate import check_array, check_choice, check_int

ROUNDINGS = ("nearest", "stochastic")
GROUPS = ("tensor", "row")  # or a bucket size d >= 1
MAX_BITS = 16
# α, β are stored as float32; beyond this magnitude α = max − min could overflow float32.
MAX_ABS = 1e38


def tensor_bytes(n, bits=None, groups=0):
    """Bytes a device stores for one tensor of ``n`` values (docs/method/size.md).

    ::

        float32 (bits None):   4·n
        k-bit (bits = k):      ceil(n·k/8) packed code bytes + 8·groups (float32 α, β per group)

    Parameters
    ----------
    n : int
        Number of values.
    bits : int or None
        k for a quantized tensor, None for float32.
    groups : int
        Number of (α, β) pairs of a quantized tensor.

    Returns
    -------
    int
        The bytes.
    """
    n, groups = int(n), int(groups)
    if bits is None:
        return 4 * n
    return -(-n * int(bits) // 8) + 8 * groups


def code_dtype(bits):
    """The smallest unsigned integer type that holds codes 0 .. 2^bits − 1."""
    return np.dtype(np.uint8) if bits <= 8 else np.dtype(np.uint16)


def _check_group(group):
    if isinstance(group, str):
        return check_choice("group", group, GROUPS)
    if isinstance(group, (int, np.integer)) and not isinstance(group, bool):
        return check_int("group", group, lo=1)
    raise InputError(f"group: expected 'tensor', 'row' or a bucket size (int >= 1), "
                     f"got {group!r}")


def _bucket_size(group, shape):
    """d such that group g holds flat values g·d .. min((g+1)·d, n) − 1."""
    n = int(np.prod(shape))
    if group == "tensor":
        return n
    if group == "row":
        return n // shape[0]
    return group


def num_groups(shape, group):
    """G, the number of (α, β) pairs of a tensor of ``shape`` quantized with ``group``."""
    group = _check_group(group)
    shape = tuple(shape)
    if not shape:
        raise InputError("shape: expected at least one dimension")
    return -(-int(np.prod(shape)) // _bucket_size(group, shape))


def _round_down_f32(x):
    """Largest float32 ≤ x, element-wise, as float64."""
    f = x.astype(np.float32)
    f = np.where(f.astype(np.float64) > x, np.nextafter(f, np.float32(-np.inf)), f)
    return f.astype(np.float64)


def _round_up_f32(x):
    """Smallest float32 ≥ x, element-wise, as float64."""
    f = x.astype(np.float32)
    f = np.where(f.astype(np.float64) < x, np.nextafter(f, np.float32(np.inf)), f)
    return f.astype(np.float64)


def _symmetric_step(max_abs, bits):
    """Δ = max|v| / m rounded up to 24 − k significant bits (and at least 2^-126, the smallest
    normal float32, so α = Δ·s and β = −Δ·m are exact float32 numbers); Δ = 0 where max|v| = 0.
    """
    m = 2 ** (bits - 1) - 1
    mant, expo = np.frexp(max_abs / m)
    p = 24 - bits
    step = np.ldexp(np.ceil(np.ldexp(mant, p)), expo - p)
    return np.where(max_abs > 0.0, np.maximum(step, 2.0 ** -126), 0.0)


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    """A k-bit quantized tensor: Q = β_g + α_g · codes / s per group g, s = 2^k − 1.

    codes: integer codes, the tensor's shape, uint8 for k ≤ 8 and uint16 above.
    alpha, beta: float32 arrays of length ``groups`` (group order: flat C order).
    bits: k.  group: "tensor", "row" or a bucket size d.  symmetric: the variant used
    (codes ≤ 2^k − 2 and code 2^(k−1) − 1 is zero).  dtype: default dtype of ``dequantize``.
    rounding: how the codes were rounded ("nearest" or "stochastic"); a record for model files
    (dequantization does not depend on it).
    """

    codes: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    bits: int
    group: object
    symmetric: bool = False
    dtype: np.dtype = np.dtype(np.float32)
    rounding: str = "nearest"

    def __post_init__(self):
        bits = check_int("bits", self.bits, lo=1, hi=MAX_BITS)
        group = _check_group(self.group)
        if not isinstance(self.codes, np.ndarray) or self.codes.dtype != code_dtype(bits):
            raise InputError(f"codes: expected a {code_dtype(bits)} array for {bits}-bit codes")
        if self.codes.ndim == 0 or self.codes.size == 0:
            raise InputError(f"codes: expected a non-empty array, got shape {self.codes.shape}")
        ng = self.groups
        check_array("alpha", self.alpha, shape=(ng,), dtype=np.float32)
        check_array("beta", self.beta, shape=(ng,), dtype=np.float32)
        if (self.alpha < 0).any():
            raise InputError("alpha: expected non-negative ranges")
        top = self.levels - 1 if self.symmetric else self.levels
        if self.symmetric and bits == 1:
            raise InputError("bits: the symmetric quantizer needs bits >= 2")
        if int(self.codes.max()) > top:
            raise InputError(f"codes: expected codes in [0, {top}], got {int(self.codes.max())}")
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "rounding", check_choice("rounding", self.rounding, ROUNDINGS))
        object.__setattr__(self, "dtype", np.dtype(check_choice(
            "dtype", np.dtype(self.dtype), (np.dtype(np.float32), np.dtype(np.float64)))))

    @property
    def shape(self):
        return self.codes.shape

    @property
    def levels(self):
        """s = 2^k − 1, the largest code."""
        return 2 ** self.bits - 1

    @property
    def bucket(self):
        """d: group g holds the flat values g·d .. min((g+1)·d, n) − 1."""
        return _bucket_size(self.group, self.shape)

    @property
    def groups(self):
        """G = ceil(n / d), the number of (α, β) pairs."""
        return num_groups(self.shape, self.group)

    @property
    def nbytes(self):
        """Bytes a device stores (:func:`tensor_bytes`): ceil(n·k/8) packed codes + 8 (float32
        α, β) per group."""
        return tensor_bytes(self.codes.size, self.bits, self.groups)

    def dequantize(self, dtype=None):
        """Q = β_g + α_g · codes / s, computed in float64, returned as ``dtype``
        (float32 or float64; default: the dtype of the tensor that was quantized)."""
        dt = self.dtype if dtype is None else np.dtype(check_choice(
            "dtype", np.dtype(dtype), (np.dtype(np.float32), np.dtype(np.float64))))
        out = np.empty(self.shape, dt)
        _k.dequantize_codes(self.codes.reshape(-1), self.bucket,
                            self.alpha.astype(np.float64), self.beta.astype(np.float64),
                            float(self.levels), out.reshape(-1))
        return out

    def packed(self):
        """The codes as a little-endian bit stream, ceil(n·k/8) uint8 (bit order in
        ``qdaed.kernels.quant``)."""
        out = np.zeros(-(-self.codes.size * self.bits // 8), np.uint8)
        _k.pack_codes(self.codes.reshape(-1), self.bits, out)
        return out

    @classmethod
    def from_packed(cls, packed, shape, bits, group, alpha, beta, symmetric=False,
                    dtype=np.float32, rounding="nearest"):
        """Rebuild a QuantizedTensor from ``packed()`` bytes and its stored α, β.

        Refuses (InputError) a byte count other than ceil(n·k/8), non-zero padding bits,
        codes out of range, and α, β that are not finite float32 arrays of length G.
        """
        bits = check_int("bits", bits, lo=1, hi=MAX_BITS)
        shape = tuple(check_int("shape", s, lo=1) for s in shape)
        if not shape:
            raise InputError("shape: expected at least one dimension")
        n = int(np.prod(shape))
        want = -(-n * bits // 8)
        if (not isinstance(packed, np.ndarray) or packed.dtype != np.uint8
                or packed.shape != (want,)):
            raise InputError(f"packed: expected {want} uint8 bytes for {n} {bits}-bit codes, "
                             f"got {getattr(packed, 'shape', type(packed).__name__)} "
                             f"{getattr(packed, 'dtype', '')}")
        used = n * bits - 8 * (want - 1)  # stream bits in the last byte, 1..8
        if int(packed[-1]) >> used:
            raise InputError("packed: padding bits after the last code are not zero")
        codes = np.empty(shape, code_dtype(bits))
        _k.unpack_codes(np.ascontiguousarray(packed), bits, codes.reshape(-1))
        return cls(codes, alpha, beta, bits, group, bool(symmetric), np.dtype(dtype), rounding)


def quantize(w, bits, group="tensor", rounding="nearest", symmetric=False, rng=None):
    """Q_k(w): quantize ``w`` (any shape, float32/float64) to ``bits``-bit codes.

    Min–max (the default; Polino et al. 2018), for each group of values v::

        β = min(v),   α = max(v) − min(v),   s = 2^k − 1
        codes = round((v − β) / α · s) ∈ [0, s]
        Q(v)  = β + α · codes / s                     (α = 0: codes = 0 and Q(v) = β)

    with α, β stored as float32 (β rounded down, α up, so the grid covers the group). The
    float32 treatment and the symmetric variant are in the module docstring.

    Parameters
    ----------
    w : ndarray
        The tensor, float32/float64, at least one dimension.
    bits : int
        k ∈ 1..16.
    group : {"tensor", "row"} or int
        One (α, β) for the whole tensor, one per slice along the first axis, or one per
        bucket of d consecutive values of the flattened tensor.
    rounding : {"nearest", "stochastic"}
        Half to even (``np.rint``), or floor(x + u), u ~ U[0, 1) from ``rng`` (unbiased).
    symmetric : bool
        The signed variant with zero exactly representable (bits ≥ 2).
    rng : numpy.random.Generator, optional
        Required for stochastic rounding.

    Returns
    -------
    QuantizedTensor
        Codes of w's shape, α and β per group; ``dequantize()`` gives Q(w).
    """
    if isinstance(w, np.ndarray) and w.ndim == 0:  # before check_array, which makes it 1-D
        raise InputError("w: expected an array with at least one dimension, got a scalar")
    w = check_array("w", w)
    bits = check_int("bits", bits, lo=1, hi=MAX_BITS)
    group = _check_group(group)
    rounding = check_choice("rounding", rounding, ROUNDINGS)
    if not isinstance(symmetric, (bool, np.bool_)):
        raise InputError(f"symmetric: expected True or False, got {symmetric!r}")
    if symmetric and bits == 1:
        raise InputError("bits: the symmetric quantizer needs bits >= 2 (a 1-bit grid "
                         "holding zero has no other value); use symmetric=False for 1 bit")
    if rounding == "stochastic" and not isinstance(rng, np.random.Generator):
        raise InputError(f"rng: stochastic rounding needs a numpy.random.Generator, "
                         f"got {type(rng).__name__}")
    if np.abs(w).max() > MAX_ABS:
        raise InputError(f"w: values must lie within ±{MAX_ABS:g} (α and β are float32)")

    v = w.reshape(-1)
    d = _bucket_size(group, w.shape)
    ng = -(-v.size // d)
    s = 2 ** bits - 1
    if symmetric:
        max_abs = np.empty(ng)
        _k.bucket_max_abs(v, d, max_abs)
        m = 2 ** (bits - 1) - 1
        step = _symmetric_step(max_abs, bits)
        alpha, beta = step * s, 0.0 - step * m  # 0.0 − … keeps β = +0.0 where Δ = 0
        shift, offset, top = np.zeros(ng), float(m), float(2 * m)
    else:
        lo, hi = np.empty(ng), np.empty(ng)
        _k.bucket_min_max(v, d, lo, hi)
        beta = _round_down_f32(lo)
        alpha = _round_up_f32(hi - beta)
        shift, offset, top = beta, 0.0, float(s)

    codes = np.empty(w.shape, code_dtype(bits))
    if rounding == "nearest":
        _k.codes_nearest(v, d, shift, alpha, float(s), offset, top, codes.reshape(-1))
    else:
        u = rng.random(v.size)
        _k.codes_stochastic(v, d, shift, alpha, float(s), offset, top, u, codes.reshape(-1))
    return QuantizedTensor(codes, alpha.astype(np.float32), beta.astype(np.float32), bits,
                           group, bool(symmetric), w.dtype, rounding)


def ste_backward(dq, qt):
    """Straight-through estimator: ∂L/∂w := ∂L/∂Q(w), i.e. dw = dq (a copy).

    The identity is not the derivative of Q (zero almost everywhere); it is the estimator of
    docs/method/quantization.md. No mask is applied because qdaed's grid covers every value of
    the tensor (the module docstring contrasts PyTorch's clipped fake-quantization backward).

    Parameters
    ----------
    dq : ndarray
        Gradient with respect to the dequantized tensor Q(w), shape ``qt.shape``.
    qt : QuantizedTensor
        The quantized tensor the forward pass used.

    Returns
    -------
    ndarray
        dw, the gradient applied to the full-precision w.
    """
    if not isinstance(qt, QuantizedTensor):
        raise InputError(f"qt: expected a QuantizedTensor, got {type(qt).__name__}")
    return check_array("dq", dq, shape=qt.shape, finite=False).copy()
