"""Loops of the k-bit uniform quantizer (callers: ``qdaed.nn.quant``).

Every tensor is handled flat (C order) and split into buckets of ``d`` consecutive values:
bucket g holds v[g·d : min((g+1)·d, n)], so the last bucket may be short. Per-tensor and
per-row quantization are the buckets d = n and d = n / rows. Per-bucket parameters are float64
arrays of length G = ceil(n / d) (float32 values, widened, for alpha and beta).

Bit packing (``pack_codes`` / ``unpack_codes``), for any k in 1..16: the codes form one
little-endian bit stream. Code i occupies stream bits i·k .. i·k + k − 1, least significant bit
first, and stream bit j is bit (j mod 8) of byte j // 8 (bit 0 = least significant). The last
byte is padded with zero bits. k = 8 is the codes' own bytes; k = 16 is each code as two
little-endian bytes; every k takes exactly ceil(n·k/8) bytes.
"""

import math

import numpy as np

from qdaed.kernels import kernel


@kernel
def bucket_min_max(v, d, lo, hi):
    """lo[g] = min of bucket g of v, hi[g] = its max (float64)."""
    n = v.size
    for g in range(lo.size):
        a = float(v[g * d])
        b = a
        for i in range(g * d + 1, min(g * d + d, n)):
            x = float(v[i])
            if x < a:
                a = x
            elif x > b:
                b = x
        lo[g] = a
        hi[g] = b


@kernel
def bucket_max_abs(v, d, out):
    """out[g] = max |v_i| over bucket g (float64)."""
    n = v.size
    for g in range(out.size):
        m = 0.0
        for i in range(g * d, min(g * d + d, n)):
            x = abs(float(v[i]))
            if x > m:
                m = x
        out[g] = m


@kernel
def codes_nearest(v, d, shift, alpha, s, offset, cmax, codes):
    """codes_i = clip(rint((v_i − shift_g)·s / α_g) + offset, 0, cmax)  for i in bucket g.

    rint rounds half to even; codes_i = 0 where α_g = 0. s = 2^k − 1. The product is formed
    before the division so that values on a dyadic grid give exact half-way points.
    """
    n = v.size
    for i in range(n):
        g = i // d
        a = alpha[g]
        if a == 0.0:
            codes[i] = 0
            continue
        c = np.rint((float(v[i]) - shift[g]) * s / a) + offset
        codes[i] = min(max(c, 0.0), cmax)


@kernel
def codes_stochastic(v, d, shift, alpha, s, offset, cmax, u, codes):
    """codes_i = clip(floor((v_i − shift_g)·s / α_g + u_i) + offset, 0, cmax), u_i ∈ [0, 1).

    E[floor(x + u)] = x for u ~ U[0, 1), so the codes are unbiased wherever the clip is idle.
    codes_i = 0 where α_g = 0.
    """
    n = v.size
    for i in range(n):
        g = i // d
        a = alpha[g]
        if a == 0.0:
            codes[i] = 0
            continue
        c = math.floor((float(v[i]) - shift[g]) * s / a + u[i]) + offset
        codes[i] = min(max(c, 0.0), cmax)


@kernel
def dequantize_codes(codes, d, alpha, beta, s, out):
    """out_i = β_g + α_g · codes_i / s, evaluated in float64, rounded once to out's dtype."""
    for i in range(codes.size):
        g = i // d
        out[i] = beta[g] + alpha[g] * float(codes[i]) / s


@kernel
def pack_codes(codes, k, out):
    """Pack codes (each < 2^k) into out (uint8, ceil(n·k/8) bytes, zeroed padding)."""
    acc = 0      # pending stream bits, least significant first (fewer than 8 + 16 of them)
    nbits = 0
    j = 0
    for i in range(codes.size):
        acc |= np.int64(codes[i]) << nbits
        nbits += k
        while nbits >= 8:
            out[j] = acc & 0xFF
            acc >>= 8
            nbits -= 8
            j += 1
    if nbits > 0:
        out[j] = acc & 0xFF


@kernel
def unpack_codes(packed, k, codes):
    """Inverse of pack_codes: fill codes (n of them) from the bit stream in packed."""
    mask = (np.int64(1) << k) - 1
    acc = 0
    nbits = 0
    j = 0
    for i in range(codes.size):
        while nbits < k:
            acc |= np.int64(packed[j]) << nbits
            nbits += 8
            j += 1
        codes[i] = acc & mask
        acc >>= k
        nbits -= k

