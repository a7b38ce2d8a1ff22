"""Hypothesis strategies shared by every test module (one place, so corner cases are shared too)."""

import numpy as np
from hypothesis import strategies as st

# Small sizes with the corner cases drawn on purpose: 1 is always possible.
batch = st.integers(1, 3)
frames = st.integers(1, 5)
hidden = st.integers(1, 4)
features = st.integers(1, 4)
layers = st.integers(1, 3)
classes = st.integers(1, 4)
seeds = st.integers(0, 2**32 - 1)
float_dtypes = st.sampled_from([np.float32, np.float64])


def rng_from(seed):
    """The one way tests turn a drawn seed into a generator."""
    return np.random.default_rng(seed)


# Losses (docs/method/losses.md): temperature T > 0 and weight λ ∈ [0, 1], end points included.
temperatures = st.floats(0.25, 20.0)
lams = st.floats(0.0, 1.0)

# Quantizer (docs/method/quantization.md): every bit width, every grouping (buckets of 1 and buckets longer
# than the tensor included), tensors of 1 to 3 dimensions with sizes from 1.
quant_bits = st.integers(1, 16)
quant_groups = st.one_of(st.sampled_from(["tensor", "row"]), st.integers(1, 9))
quant_shapes = st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple)


# Convolution / pooling (ResNet teacher): kernels 1, 3 and 7 (the stem), strides 1 and 2,
# spatial sizes from 1 so that odd sizes with stride 2 come up; channels from 1.
conv_kernels = st.sampled_from([1, 3, 7])
conv_strides = st.integers(1, 2)
conv_channels = st.integers(1, 3)
spatial = st.integers(1, 9)


@st.composite
def conv_cases(draw):
    """(B, C, O, H, W, k, stride, padding) with a non-empty output."""
    k = draw(conv_kernels)
    pad = draw(st.integers(0, k // 2))
    h = draw(st.integers(max(1, k - 2 * pad), 9))
    w = draw(st.integers(max(1, k - 2 * pad), 9))
    return (draw(batch), draw(conv_channels), draw(conv_channels), h, w, k,
            draw(conv_strides), pad)


# Student (docs/method/lstm.md): every temporal pooling mode.
pool_modes = st.sampled_from(("mean", "last", "max"))
