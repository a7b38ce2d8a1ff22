"""qdaed: quantized distillation for acoustic event detection.

A from-scratch, auditable NumPy/Numba implementation of Shi et al., "Compression of Acoustic
Event Detection Models With Quantized Distillation" (Interspeech 2019, arXiv 1907.00873).
Every forward and backward pass is hand-written; see ``qdaed.nn`` for the op pairs and
``qdaed.models`` for the LSTM student and the ResNet teacher.
"""

__version__ = "0.1.0"

from qdaed.errors import QdaedError  # noqa: E402,F401
