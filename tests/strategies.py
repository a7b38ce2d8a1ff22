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
