"""Golden vectors: qdaed's inputs and outputs for every op, loss, the quantizer, LFBE, the
networks, an Adam step, a quantized-distillation step and a detector, written so that another
implementation (PyTorch, TF Lite, C on a DSP) can be checked against them.

    qdaed.vectors.format     the files: manifest.json, <case>/case.json, <tensor>.npy
    qdaed.vectors.tolerance  the tolerance classes and their reasons
    qdaed.vectors.cases      the cases, one module per family, built from qdaed's public ops
    qdaed.vectors.export     ``qdaed vectors export``
    qdaed.vectors.check      ``qdaed vectors check``
"""

from qdaed.vectors.format import FORMAT_NAME, FORMAT_VERSION, VectorsError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "VectorsError"]
