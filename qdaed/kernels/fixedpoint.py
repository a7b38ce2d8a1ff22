"""Scalar fixed-point primitives of the integer student (TFLite Micro's reference arithmetic).

Every value is carried in an int64 but stands for the C type named in each docstring; where
the C code computes in int32 and could wrap, the wrap is reproduced (:func:`wrap_int32`), so
the functions agree with a C port on every input, not only on the ones calibration produces.

Rounding rules (the ones a port most often gets wrong):

    rounding_divide_by_pot(x, e)   x / 2^e rounded to nearest, ties away from zero
    srdhm(a, b)                    a·b / 2^31 rounded to nearest, ties toward +∞
                                   (saturating: srdhm(−2^31, −2^31) = 2^31 − 1)
    multiply_by_quantized_multiplier(x, m, s)
                                   s > 0: srdhm(x·2^s, m)    (x·2^s wraps in int32)
                                   s ≤ 0: rounding_divide_by_pot(srdhm(x, m), −s)
                                   ≈ x · m · 2^(s − 31), rounded twice ("double rounding",
                                   TFLite's default build)

Editing this file: the array kernels of qdaed.kernels.integer compile these functions into
their own on-disk cache, which Numba does not invalidate when only this file changes; delete
qdaed/kernels/__pycache__/integer.* after an edit here.
"""

import numpy as np

from qdaed.kernels import kernel

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

# σ(k/24) · 2^16 rounded, k = 0..255 (TFLite's sigmoid_table_uint16): the 256-entry table the
# int16 sigmoid and tanh interpolate in. These are data, not derived here: the integer kernels
# are defined by this exact table.
SIGMOID_TABLE_UINT16 = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498,
    40149, 40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255,
    46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865,
    52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174,
    56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544, 58800, 59048, 59288,
    59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279, 61441,
    61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886,
    62990, 63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835,
    63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450,
    64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845,
    64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097,
    65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
    65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425,
    65429, 65433, 65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465,
    65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508,
    65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516, 65517, 65517, 65518,
    65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524, 65525,
    65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529,
    65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531,
    65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533,
    65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65535], dtype=np.int64)


@kernel
def wrap_int32(v):
    """v reduced to int32 as two's complement arithmetic does (v mod 2^32 into [−2^31, 2^31))."""
    return ((np.int64(v) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


@kernel
def clamp(v, lo, hi):
    """min(max(v, lo), hi)."""
    return lo if v < lo else (hi if v > hi else v)


@kernel
def srdhm(a, b):
    """Saturating rounding doubling high multiply of two int32: (a·b + 2^30) / 2^31 for a·b ≥ 0,
    (a·b + 1 − 2^30) / 2^31 otherwise, the division truncating toward zero (C), i.e. a·b/2^31
    rounded to nearest with ties toward +∞; the one overflowing case −2^31·−2^31 gives 2^31 − 1."""
    a = np.int64(a)
    b = np.int64(b)
    if a == INT32_MIN and b == INT32_MIN:
        return np.int64(INT32_MAX)
    ab = a * b
    s = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    q = s >> 31 if s >= 0 else -((-s) >> 31)     # C's truncating division by 2^31
    return q


@kernel
def rounding_divide_by_pot(x, exponent):
    """x / 2^exponent (0 ≤ exponent ≤ 31) rounded to nearest, ties away from zero, as gemmlowp
    computes it: (x >> e) + (r > t), r = x & (2^e − 1), t = (2^e − 1) >> 1, plus 1 when x < 0."""
    x = np.int64(x)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@kernel
def multiply_by_quantized_multiplier(x, multiplier, shift):
    """int32 x times the real number multiplier · 2^(shift − 31) (multiplier an int32 in
    [2^30, 2^31) or 0): a left shift by max(shift, 0) in wrapping int32, srdhm with the
    multiplier, then a rounding right shift by max(−shift, 0)."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return rounding_divide_by_pot(srdhm(wrap_int32(np.int64(x) << left), multiplier), right)


@kernel
def _rescaled_input(x, input_multiplier, input_left_shift):
    """The front of TFLite's int16 logistic/tanh: multiplier 0 means 'power-of-two scale':
    use 3·2^shift and no shift. Then (x·multiplier + round) >> shift in int32, round = half of
    2^shift (none for shift 0). The result is in units of 1/(3·4096): the table's step is 1/24."""
    if input_multiplier == 0:
        input_multiplier = 3 << input_left_shift
        input_left_shift = 0
    rnd = (1 << (input_left_shift - 1)) if input_left_shift > 0 else 0
    return wrap_int32(np.int64(x) * input_multiplier + rnd) >> input_left_shift


@kernel
def sigmoid_int16(x, input_multiplier, input_left_shift):
    """TFLite's int16 logistic (reference_integer_ops::Logistic, int16): Q3.12 → Q0.15.

    v = rescaled input (see _rescaled_input), a = |v|, k = a >> 9, u = a & 511;
    r = 0x7FFF·2^10 if k ≥ 255 else T[k]·2^9 + u·(T[k+1] − T[k])   (T: SIGMOID_TABLE_UINT16)
    y = (r + 2^9) >> 10 if v ≥ 0 else (2^25 − r + 2^9 − 1) >> 10
    """
    v = _rescaled_input(x, input_multiplier, input_left_shift)
    a = -v if v < 0 else v
    k = a >> 9
    if k >= 255:
        r = np.int64(0x7FFF) << 10
    else:
        ua = SIGMOID_TABLE_UINT16[k]
        ub = SIGMOID_TABLE_UINT16[k + 1]
        r = (ua << 9) + (a & 0x1FF) * (ub - ua)
    if v >= 0:
        r = r + (1 << 9)
    else:
        r = (1 << 25) - r + (1 << 9) - 1
    return r >> 10


@kernel
def tanh_int16(x, input_multiplier, input_left_shift):
    """TFLite's int16 tanh (reference_integer_ops::Tanh, int16) through tanh(x) = 2σ(2x) − 1:
    the same rescaled input v, a = |v|, k = a >> 8, u = a & 255;
    r = 0xFFFF·2^8 if k ≥ 255 else T[k]·2^8 + u·(T[k+1] − T[k])
    y = (r − 2^23 + 2^7) >> 8 if v ≥ 0 else (−r + 2^23 + 2^7 − 1) >> 8     (arithmetic shift)
    Output Q0.15."""
    v = _rescaled_input(x, input_multiplier, input_left_shift)
    a = -v if v < 0 else v
    k = a >> 8
    if k >= 255:
        r = np.int64(0xFFFF) << 8
    else:
        ua = SIGMOID_TABLE_UINT16[k]
        ub = SIGMOID_TABLE_UINT16[k + 1]
        r = (ua << 8) + (a & 0xFF) * (ub - ua)
    if v >= 0:
        r = r - (1 << 23) + (1 << 7)
    else:
        r = -r + (1 << 23) + (1 << 7) - 1
    return r >> 8


# ---- gemmlowp's fixed-point logistic (the int8 LOGISTIC op) ------------------------------
# Raw int32 values; F_n means n integer bits, 31 − n fractional bits. Additions are int32
# additions (they do not overflow on these paths; wrapped all the same).

@kernel
def _saturating_shift_left(x, exponent):
    """gemmlowp's SaturatingRoundingMultiplyByPOT<exponent > 0>: x·2^exponent, saturated to
    int32 when |x| > 2^(31 − exponent) − 1."""
    threshold = (np.int64(1) << (31 - exponent)) - 1
    if x > threshold:
        return np.int64(INT32_MAX)
    if x < -threshold:
        return np.int64(INT32_MIN)
    return x << exponent


@kernel
def _exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """exp(a) for a ∈ [−1/4, 0) in F0: Taylor series around −1/8 to 4th order."""
    constant_term = 1895147668          # exp(−1/8) in F0
    constant_1_over_3 = 715827883
    x = wrap_int32(a + (1 << 28))       # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(
        wrap_int32(srdhm(wrap_int32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap_int32(constant_term + srdhm(constant_term, wrap_int32(x + poly)))


@kernel
def exp_on_negative_values_f4(a):
    """exp(a) for a ≤ 0 given in F4 (27 fractional bits), result in F0 (gemmlowp)."""
    one_quarter = np.int64(1) << 25
    mask = one_quarter - 1
    a_mod = (a & mask) - one_quarter                 # in [−1/4, 0)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _saturating_shift_left(a_mod, 4))            # Rescale F4 → F0
    remainder = wrap_int32(a_mod - a)
    # exp(−2^e) in F0 for e = −2 .. 3 (F4 has 4 integer bits, so 2^4 is out of range)
    if remainder & (1 << 25):
        result = srdhm(result, 1672461947)
    if remainder & (1 << 26):
        result = srdhm(result, 1302514674)
    if remainder & (1 << 27):
        result = srdhm(result, 790015084)
    if remainder & (1 << 28):
        result = srdhm(result, 290630308)
    if remainder & (1 << 29):
        result = srdhm(result, 39332535)
    if remainder & (1 << 30):
        result = srdhm(result, 720401)
    if a == 0:
        result = np.int64(INT32_MAX)
    return result


@kernel
def _one_over_one_plus_x_for_x_in_0_1(a):
    """1 / (1 + a) for a ∈ (0, 1) in F0: three Newton–Raphson steps on half the denominator."""
    s = a + INT32_MAX
    t = s + (1 if s >= 0 else -1)
    half_denominator = t // 2 if t >= 0 else -((-t) // 2)     # (s ± 1) / 2, C's truncation
    x = wrap_int32(1515870810 + srdhm(half_denominator, -1010580540))    # F2: 48/17 − 32/17·d
    one_f2 = np.int64(1) << 29
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = wrap_int32(one_f2 - half_denominator_times_x)
        x = wrap_int32(x + _saturating_shift_left(srdhm(x, one_minus), 2))
    return _saturating_shift_left(x, 1)              # ExactMulByPot<−1> then Rescale F1 → F0


@kernel
def logistic_f4(a):
    """gemmlowp::logistic for a raw F4 input: σ(a) as a raw F0 int32 (2^31 − 1 ≈ 1)."""
    if a == 0:
        return np.int64(1 << 30)
    abs_a = a if a > 0 else -a
    positive = _one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values_f4(-abs_a))
    if a > 0:
        return positive
    return wrap_int32(INT32_MAX - positive)
