"""The sizes of the thread pools every benchmark fixes before NumPy, Numba or torch is loaded
(the pools are sized at load time): OpenMP, OpenBLAS, MKL and Numba, all the same."""

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def set_thread_vars(env, threads):
    """Set every pool's size in ``env`` (``os.environ`` or a child's environment) to
    ``threads``; returns ``env``."""
    env.update({var: str(threads) for var in THREAD_VARS})
    return env
