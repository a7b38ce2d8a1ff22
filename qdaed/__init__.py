"""qdaed: quantized distillation for acoustic event detection.

A from-scratch, auditable NumPy/Numba implementation of Shi et al., "Compression of Acoustic
Event Detection Models With Quantized Distillation" (Interspeech 2019, arXiv 1907.00873).
Every forward and backward pass is hand-written; see ``qdaed.nn`` for the op pairs and
``qdaed.models`` for the LSTM student and the ResNet teacher.

Python API: ``det = qdaed.load(path)`` gives a :class:`qdaed.detector.Detector` with
``predict(waveform, sample_rate)``, ``window_scores``, ``frame_scores``, ``events`` and
``Detector.from_state_dict`` for weights from elsewhere (``qdaed.streaming``).
"""

__version__ = "0.1.0"

from qdaed.errors import QdaedError  # noqa: E402,F401


def load(path, expect_sha256=None):
    """A :class:`qdaed.detector.Detector` from a model file (``Detector.load``; with
    ``expect_sha256``, the file's SHA-256 must be that digest)."""
    from qdaed.detector import Detector

    return Detector.load(path, expect_sha256=expect_sha256)


def __getattr__(name):
    """``qdaed.Detector`` on first use (so ``import qdaed`` stays light)."""
    if name == "Detector":
        from qdaed.detector import Detector

        return Detector
    raise AttributeError(f"module 'qdaed' has no attribute {name!r}")
