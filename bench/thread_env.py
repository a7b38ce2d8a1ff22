"""The environment every benchmark fixes before NumPy, Numba or torch is loaded (the thread
pools are sized at load time): OpenMP, OpenBLAS, MKL and Numba all get the same number of
threads, and a child process finds qdaed in this checkout."""

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def set_thread_vars(env, threads):
    """Set every pool's size in ``env`` (``os.environ`` or a child's environment) to
    ``threads``; returns ``env``."""
    env.update({var: str(threads) for var in THREAD_VARS})
    return env


def child_env(threads, drop=(), **extra):
    """A benchmark worker's environment: this process's without the variables in ``drop``,
    every pool at ``threads``, ``extra`` set, and the checkout first on ``PYTHONPATH``."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    set_thread_vars(env, threads)
    env.update(extra)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env
