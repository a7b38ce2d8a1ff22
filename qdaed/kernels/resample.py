"""Polyphase FIR resampling of a block of a stream (``qdaed.streaming.StreamingResampler``).

With up/down the reduced rate ratio and h the centred low-pass filter of length 2·half + 1
(scipy's ``resample_poly`` design, already scaled by up), output sample m of the whole signal is

    y[m] = Σ_j x[j] · h[m·down + half − j·up],    0 ≤ m·down + half − j·up ≤ 2·half,

with x[j] = 0 outside the signal (scipy's ``padtype="constant"``). That is exactly
``resample_poly``'s upsample-filter-downsample with its output shift, written per output
sample, so any block of outputs can be computed from the input samples it touches.
"""

from qdaed.kernels import kernel


@kernel
def polyphase_block(x, x0, n_total, h, up, down, half, m0, out):
    """out[k] = y[m0 + k] (module docstring) for k = 0..len(out)−1.

    x:  the input samples x[x0], …, x[x0 + len(x) − 1] held in memory (float64); every
        sample with 0 ≤ j < n_total that an output needs must be among them.
    n_total: the signal's length if known (samples at j ≥ n_total are zeros), else a value
        larger than any index used.
    Terms are added in increasing j, in float64.
    """
    n = x.shape[0]
    for k in range(out.shape[0]):
        m = m0 + k
        centre = m * down + half
        j_hi = centre // up                              # largest j with index ≥ 0
        j_lo = -((2 * half - centre) // up)              # ceil((centre − 2·half) / up)
        if j_lo < 0:
            j_lo = 0
        if j_lo < x0:
            j_lo = x0
        if j_hi > n_total - 1:
            j_hi = n_total - 1
        if j_hi > x0 + n - 1:
            j_hi = x0 + n - 1
        acc = 0.0
        for j in range(j_lo, j_hi + 1):
            acc += x[j - x0] * h[centre - j * up]
        out[k] = acc
