"""qdaed: quantized distillation for acoustic event detection.

A from-scratch, auditable NumPy/Numba implementation of Shi et al., "Compression of Acoustic
Event Detection Models With Quantized Distillation" (Interspeech 2019, arXiv 1907.00873).
Every forward and backward pass is hand-written; see ``qdaed.nn`` for the op pairs and
``qdaed.models`` for the LSTM student and the ResNet teacher.

Python API: ``det = qdaed.load(path)`` gives a :class:`qdaed.detector.Detector` with
``predict(waveform, sample_rate)``, ``window_scores``, ``frame_scores``, ``events`` and
``Detector.from_state_dict`` for weights from elsewhere (``qdaed.streaming``).

This module only re-exports; nothing inside the package imports it (the version is
:mod:`qdaed._version`). The package layers and the rule that imports only run downward:
docs/design/architecture.md.
"""

from qdaed._version import __version__
from qdaed.errors import QdaedError

_LAZY = {"load": "load", "Detector": "Detector"}   # names of qdaed.detector


def __getattr__(name):
    """``qdaed.load`` and ``qdaed.Detector``, from :mod:`qdaed.detector` on first use:
    ``python -m qdaed --help`` imports this package first, and must not load NumPy or Numba
    (tests/test_cli.py)."""
    if name in _LAZY:
        from qdaed import detector   # here: NumPy/Numba/SciPy would burden `qdaed --help`

        return getattr(detector, _LAZY[name])
    raise AttributeError(f"module 'qdaed' has no attribute {name!r}")


__all__ = ["Detector", "QdaedError", "__version__", "load"]
