"""Thread control of a job: how many threads Numba's parallel kernels and the BLAS use.

The BLAS libraries loaded in the process (OpenBLAS, MKL, BLIS, as NumPy and SciPy bundle
them) are found and set through ``threadpoolctl``; Numba's count is set per calling thread
(capped at ``NUMBA_NUM_THREADS``); the BLAS environment variables are set too, for a library
loaded later and for child processes. The count changes results (OpenBLAS's float32 matrix
products differ in the last bits between 1 and 2 threads), so a sweep fixes it per job
(:mod:`qdaed.pipeline.executor`).
"""

from __future__ import annotations

import contextlib
import os
import threading

import numba
from threadpoolctl import threadpool_info, threadpool_limits

import qdaed.kernels  # noqa: F401  -- its threading-layer choice, before Numba launches
from qdaed.validate import check_int

# Read by OpenBLAS, MKL, BLIS and OpenMP when their library is loaded.
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
STEPS_ENV = "QDAED_LSTM_STEPS"   # qdaed.nn.lstm reads it when imported

_ENV_LOCK = threading.Lock()


def available_cores():
    """The number of CPUs this process may run on (its affinity mask, not the machine's)."""
    if hasattr(os, "process_cpu_count"):          # Python >= 3.13
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def pin_threads(n):
    """Use ``n`` threads in Numba's parallel kernels (in the calling thread: Numba's setting
    is per thread; capped at ``NUMBA_NUM_THREADS``) and in every loaded BLAS (process-wide).
    The BLAS environment variables are set too, for a BLAS loaded later and for child
    processes. Returns :func:`thread_counts`."""
    n = check_int("threads", n, lo=1)
    for var in BLAS_ENV:
        os.environ[var] = str(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    threadpool_limits(limits=n, user_api="blas")
    return thread_counts()


def thread_counts():
    """{"numba": threads of this thread's parallel kernels, "blas": {library file: threads}}."""
    return {"numba": numba.get_num_threads(),
            "blas": {os.path.basename(i["filepath"]): i["num_threads"]
                     for i in threadpool_info() if i["user_api"] == "blas"}}


@contextlib.contextmanager
def threads_restored():
    """Put back this process's thread settings (in-process runs pin the caller's threads)."""
    env = {var: os.environ.get(var) for var in BLAS_ENV}
    numba_threads = numba.get_num_threads()
    blas = threadpool_limits(limits=None, user_api="blas")    # records, changes nothing
    try:
        yield
    finally:
        _restore_env(env)
        numba.set_num_threads(numba_threads)
        blas.restore_original_limits()


@contextlib.contextmanager
def spawn_environment(n):
    """Set the thread variables in os.environ while pool workers are spawned. A spawned worker
    imports NumPy (with the parent's __main__ module) before any initializer runs, so only the
    environment it starts with decides how many threads OpenBLAS and Numba create. Only the
    pool's creation and the submits run inside (milliseconds): meanwhile this process's
    subprocesses would inherit the variables, and its Numba, were it to re-read its
    configuration, would refuse the changed NUMBA_NUM_THREADS.

    Workers of one thread each also run the LSTM's loop over time compiled
    (QDAED_LSTM_STEPS=numba, unless the variable is set: the same results to the bit, faster
    where BLAS runs one thread; ``qdaed.nn.lstm.STEP_LOOP``)."""
    with _ENV_LOCK:
        counts = (*BLAS_ENV, "NUMBA_NUM_THREADS")
        saved = {var: os.environ.get(var) for var in (*counts, STEPS_ENV)}
        os.environ.update({var: str(n) for var in counts})
        if n == 1 and saved[STEPS_ENV] is None:
            os.environ[STEPS_ENV] = "numba"
        try:
            yield
        finally:
            _restore_env(saved)


def _restore_env(saved):
    """Put back environment variables saved as {name: value or None (unset)}."""
    for var, value in saved.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


__all__ = ["BLAS_ENV", "available_cores", "pin_threads", "spawn_environment", "thread_counts",
           "threads_restored"]
