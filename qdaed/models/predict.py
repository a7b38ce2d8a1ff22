"""Evaluation-mode logits of either network for batches of prepared LFBE."""

from __future__ import annotations

import numpy as np


def model_input(model, x):
    """Batch of LFBE (B, T, F) in the layout ``model`` expects: (B, 1, T, F) for a ResNet."""
    return x[:, None] if getattr(model, "input_layout", "BTF") == "BCTF" else x


def predict_logits(model, x, batch_size=64):
    """Evaluation-mode logits (N, C) for inputs (N, T, F), in batches."""
    out = [model.forward(model_input(model, x[i:i + batch_size]), train=False)[0]
           for i in range(0, x.shape[0], batch_size)]
    return np.concatenate(out, axis=0)
