"""Evaluation-mode logits of either network for batches of prepared LFBE."""

from __future__ import annotations

import numpy as np

from qdaed.errors import ModelFileError, NonFiniteError

OVERFLOW = ("the model gives non-finite logits on finite input: its weights overflow float32 "
            "(a corrupt or crafted model file)")


def model_input(model, x):
    """Batch of LFBE (B, T, F) in the layout ``model`` expects: (B, 1, T, F) for a ResNet."""
    return x[:, None] if getattr(model, "input_layout", "BTF") == "BCTF" else x


def predict_logits(model, x, batch_size=64):
    """Evaluation-mode logits (N, C) for inputs (N, T, F), in batches."""
    out = [model.forward(model_input(model, x[i:i + batch_size]), train=False)[0]
           for i in range(0, x.shape[0], batch_size)]
    return np.concatenate(out, axis=0)


def deployed_logits(model, x, batch_size=64):
    """:func:`predict_logits` for a deployed model (the detector's paths), with the guard of
    :func:`checked_logits` and NumPy's overflow warnings silenced (the guard reports it)."""
    with np.errstate(over="ignore", invalid="ignore"), model_overflow():
        return checked_logits(predict_logits(model, x, batch_size))


class model_overflow:
    """Context: a ``NonFiniteError`` raised inside a deployed model (an intermediate array
    holds NaN or infinity although the input was checked) becomes the ``ModelFileError`` of
    :func:`checked_logits`."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not None and issubclass(kind, NonFiniteError):
            raise ModelFileError(OVERFLOW) from None
        return False


def checked_logits(z):
    """``z`` when every logit is finite, else ``ModelFileError``. A detector checks its inputs
    for NaN and infinity first, so non-finite logits mean the model file's weights overflow
    float32 (values within the loader's per-tensor bounds can still compound over the many
    layers of a ResNet): the file is at fault, not the audio."""
    z = np.asarray(z)
    if not np.isfinite(z).all():
        raise ModelFileError(OVERFLOW)
    return z
