"""Obvious NumPy references for qdaed's kernels and running computations, for tests only.

Each is the textbook formula written as directly as possible (slow, no cleverness), so that
a test compares the optimised code against something a reader can check by eye.
"""

import numpy as np


def polyphase_resample(x, h, up, down, half, n_out):
    """y[m] = Σ_j x[j] h[m·down + half − j·up] over every j with a valid filter index."""
    y = np.zeros(n_out)
    for m in range(n_out):
        for j in range(x.size):
            k = m * down + half - j * up
            if 0 <= k < h.size:
                y[m] += x[j] * h[k]
    return y


def window_means(frame_values, starts, window):
    """Mean of frame_values (T, C) over each window [s, s + window)."""
    return np.array([frame_values[s:s + window].astype(np.float64).mean(axis=0)
                     for s in starts])


def window_starts(num_frames, window, hop):
    """0, hop, 2·hop, … while the window fits, plus T − W if that is not among them."""
    starts = list(range(0, num_frames - window + 1, hop))
    if starts and starts[-1] != num_frames - window:
        starts.append(num_frames - window)
    return starts
