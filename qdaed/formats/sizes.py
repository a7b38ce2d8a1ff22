"""The one size sum: bytes a device must store for a model (docs/method/size.md).

Every float tensor needed for inference at 4 bytes per value, each k-bit tensor at
ceil(n·k/8) bytes of packed codes plus 8 bytes (float32 α, β) per group
(:func:`qdaed.nn.quant.tensor_bytes`). A model file's data section is exactly this sum (plus
the integer student's tensors when it holds one): :class:`qdaed.detector.Detector` sums its
arrays, the document check (:mod:`qdaed.formats.header`) sums the shapes a document implies,
both here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from qdaed.errors import InputError
from qdaed.nn.quant import tensor_bytes


def shape_bytes(float_sizes: Iterable[int], quantized_sizes: Iterable[tuple[int, int, int]] = ()
                ) -> int:
    """Bytes of float32 tensors of ``float_sizes`` values each and of k-bit tensors given as
    (values, bits, groups)."""
    total = sum(tensor_bytes(n) for n in float_sizes)
    total += sum(tensor_bytes(n, bits, groups) for n, bits, groups in quantized_sizes)
    return int(total)


def accounted_bytes(tensors: dict[str, np.ndarray], quantized: dict[str, Any]) -> int:
    """Bytes a device must store (docs/method/size.md) for these float and quantized tensors.

    The sum of :func:`qdaed.nn.quant.tensor_bytes` over the tensors (``shape_bytes``):
    float32 at 4 bytes per value, k-bit at ceil(n·k/8) + 8 per group. This is also the size of
    a model file's data section.

    Parameters
    ----------
    tensors : dict of ndarray
        The float tensors (stored as float32).
    quantized : dict of QuantizedTensor
        The k-bit tensors.

    Returns
    -------
    int
        The accounted bytes.
    """
    for name, a in tensors.items():
        if not isinstance(a, np.ndarray):
            raise InputError(f"tensors[{name!r}]: expected a numpy array")
    return shape_bytes((a.size for a in tensors.values()),
                       ((q.codes.size, q.bits, q.groups) for q in quantized.values()))


__all__ = ["accounted_bytes", "shape_bytes"]
