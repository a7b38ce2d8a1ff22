"""Private Numba kernels: plain loops on contiguous arrays, one job each, no Python objects.

Every kernel is compiled through :func:`kernel`, so the Numba options live in one place:
on-disk cache on (start-up), fastmath off (results reproducible and auditable, docs/design/conventions.md).
Public callers live in ``qdaed.nn`` (and ``qdaed.integer`` for the integer student); they
validate shapes and dtypes before calling in here.
"""

import os

import numba

# Numba's OpenMP threading layer keeps idle threads spinning, which starves OpenBLAS's threads
# between parallel kernels (a ResNet-50 training step measured 25-28 s with it, 3.2-3.7 s with
# the workqueue layer). Use workqueue unless the user chose a layer explicitly.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

_OPTIONS = dict(cache=True, fastmath=False, nogil=True)


def kernel(fn=None, *, parallel=False):
    """``@kernel`` or ``@kernel(parallel=True)``: ``numba.njit`` with qdaed's options."""
    def wrap(f):
        return numba.njit(parallel=parallel, **_OPTIONS)(f)
    return wrap if fn is None else wrap(fn)
