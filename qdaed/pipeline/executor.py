"""Sweeps on an executor: seeds and ablation cells run as independent jobs.

A job is ``fn(*args)`` with ``fn`` a module-level function (worker processes import it by
name) and ``args`` picklable. :func:`run_jobs` runs a list of them and returns the results in
input order, whichever finished first. Three executors, chosen by :class:`ExecutorSpec`:

    jobs == 1, no scheduler   in this process, one job after the other (the reference path)
    jobs > 1 (0 = all cores)  a local process pool, ``spawn`` start method: forking a process
                              whose Numba/OpenBLAS threads are running is unsafe
    dask_scheduler            a Dask distributed cluster (``pip install 'qdaed[cluster]'``);
                              ``distributed`` is imported only here, never a requirement

Each job first pins its Numba and BLAS threads (:func:`qdaed.pipeline.threads.pin_threads`,
through threadpoolctl) to ``threads_per_job``,
by default the worker's share of the cores: in-process every usable core; a pool
``cores // jobs``; a Dask cluster the smallest share of any worker (its host's cores // the
worker processes on that host). The count is resolved once per sweep (:attr:`JobRunner.threads`)
and is the same for every job, because it changes results: OpenBLAS's float32 matrix products
differ in the last bits between 1 and 2 threads (OpenBLAS 0.3.31, Haswell kernels; qdaed's own
Numba kernels split work by channel and do not). The same job with the same thread count gives
the same bytes on every executor; to compare runs made on different executors, fix
``threads_per_job`` and record it. They must also use the same versions of qdaed, NumPy, Numba
and SciPy (checked on a Dask cluster) and the same BLAS build and CPU type.

An exception raised by a job propagates as itself (a ``QdaedError`` keeps its type and
message; a process pool chains the worker's traceback as ``__cause__``); the jobs not yet
finished are cancelled and the pool's worker processes are terminated at once, so a failing
seed does not wait for the others to finish training. Dask cannot stop a task that is already
running: its result is dropped when it ends.

Jobs that can start before the others are known (a pipeline's student chains, while the
teacher the distilled chains need trains in this process) go through :meth:`JobRunner.start`,
which returns a :class:`Sweep`; its ``finish`` adds the rest and returns every result.

Errors of the user (bad spec, unreachable scheduler, ``distributed`` missing, a function that
cannot be sent to a worker) are ``qdaed.errors.InputError``. To have such errors before
anything is written, enter a :class:`JobRunner` first and create the run directory inside it:

    with JobRunner(spec) as runner:       # connects to the scheduler, or raises InputError
        ...write config.json...
        results = runner.run(train_seed, [(cfg, seed) for seed in seeds], progress=report)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import multiprocessing
import os
import pickle
import queue
import sys
import threading
import time
from concurrent import futures as cf
from dataclasses import dataclass

import numba
import numpy
import scipy

from qdaed._version import __version__
from qdaed.errors import InputError
from qdaed.pipeline.threads import (available_cores, pin_threads, spawn_environment,
                                    threads_restored)
from qdaed.validate import check_float, check_int

# Arrays at least this large are sent to a Dask cluster once (``scatter``), not in every task.
_SCATTER_BYTES = 1 << 20

# A Dask worker runs one qdaed job at a time whatever its --nthreads: Numba's workqueue
# threading layer (qdaed's choice) must not be entered by two threads at once.
_WORKER_LOCK = threading.Lock()


@dataclass(frozen=True)
class ExecutorSpec:
    """Where and how the jobs of a sweep run.

    jobs:            1 = in this process, one after the other (default); N > 1 = a local pool
                     of N worker processes; 0 = one worker per usable core.
    dask_scheduler:  address of a Dask scheduler (``tcp://host:8786``; ``host:8786`` means
                     tcp); the cluster's workers then set the parallelism, so jobs must stay 1.
    threads_per_job: Numba and BLAS threads of each job; None = the worker's share of the
                     cores (see the module docstring), at least 1. Results depend on it.
    connect_timeout: seconds to reach the scheduler and to see one of its workers.
    """

    jobs: int = 1
    dask_scheduler: str | None = None
    threads_per_job: int | None = None
    connect_timeout: float = 10.0

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "jobs", check_int("--jobs", self.jobs, lo=0))
        if self.threads_per_job is not None:
            set_(self, "threads_per_job", check_int("--threads-per-job", self.threads_per_job,
                                                    lo=1))
        set_(self, "connect_timeout", check_float("--connect-timeout", self.connect_timeout,
                                                  lo=0, lo_open=True))
        if self.dask_scheduler is not None:
            address = self.dask_scheduler
            if not isinstance(address, str) or not address.strip() or any(
                    c.isspace() for c in address.strip()):
                raise InputError(f"--dask-scheduler: expected an address such as "
                                 f"tcp://host:8786, got {address!r}")
            address = address.strip()
            set_(self, "dask_scheduler", address if "://" in address else f"tcp://{address}")
            if self.jobs != 1:
                raise InputError(f"--jobs: cannot be combined with --dask-scheduler (the "
                                 f"cluster's workers set the parallelism), got {self.jobs}")

    @property
    def workers(self):
        """Worker processes of the local pool (1 = in-process); 0 resolved to the cores."""
        return self.jobs or available_cores()

    def local_threads(self):
        """Threads per job on this machine: threads_per_job, or cores // workers (>= 1)."""
        if self.threads_per_job is not None:
            return self.threads_per_job
        return max(1, available_cores() // self.workers)


# Python 3.10's asyncio and concurrent.futures timeouts are not the built-in TimeoutError.
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError, cf.TimeoutError)


def _call(fn, threads, args):
    """Worker side of every job: pin the threads, then run it."""
    pin_threads(threads)
    return fn(*args)


def _call_on_dask_worker(fn, threads, *args):
    with _WORKER_LOCK:
        return _call(fn, threads, args)


def _versions():
    """What must match between the client and the workers for identical results."""
    return {"python": "%d.%d" % sys.version_info[:2], "qdaed": __version__,
            "numpy": numpy.__version__, "numba": numba.__version__, "scipy": scipy.__version__}


def _worker_info():
    return {"versions": _versions(), "cores": available_cores()}


# --- running ----------------------------------------------------------------------------------

def _check_jobs(fn, jobs_args):
    name = getattr(fn, "__qualname__", repr(fn))
    if not callable(fn):
        raise InputError(f"fn: expected a module-level function, got {type(fn).__name__}")
    if "<lambda>" in name or "<locals>" in name:
        raise InputError(f"fn: expected a module-level function (workers import it by name), "
                         f"got {name}")
    try:
        pickle.dumps(fn)
    except Exception as e:  # noqa: BLE001  -- any pickling failure means the same thing
        raise InputError(f"fn: cannot be sent to a worker process ({e})") from None
    checked = []
    for i, args in enumerate(jobs_args):
        if not isinstance(args, (tuple, list)):
            raise InputError(f"jobs_args[{i}]: expected a tuple of arguments, "
                             f"got {type(args).__name__}")
        checked.append(tuple(args))
    return checked


def _collect(futures, as_completed, progress):
    """Results in input order, progress(done, total) as each job finishes; the first
    exception of a job is raised at once."""
    index = {id(f): i for i, f in enumerate(futures)}
    results = [None] * len(futures)
    for done, f in enumerate(as_completed(futures), 1):
        results[index[id(f)]] = f.result()
        if progress is not None:
            progress(done, len(futures))
    return results


def _terminate_pool(pool, futures):
    for f in futures:
        f.cancel()
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(10)


def _connect_error(address, timeout, e):
    lines = str(e).strip().splitlines()
    why = f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__
    if isinstance(e, _TIMEOUTS):
        return f"--dask-scheduler: cannot reach {address} within {timeout:g} s (no answer)"
    if isinstance(e, OSError):
        return f"--dask-scheduler: cannot reach {address} within {timeout:g} s ({why})"
    if isinstance(e, ValueError):
        return f"--dask-scheduler: not a valid scheduler address: {address} ({why})"
    return f"--dask-scheduler: {address} does not answer as a Dask scheduler ({why})"


def _probe(address, timeout):
    """Open and close one connection to the scheduler, handshake included, within timeout.

    ``distributed.Client(timeout=...)`` bounds the TCP connect but not the handshake that
    follows it: a port that accepts and never answers (a stalled scheduler, a firewall proxy)
    kept it waiting for minutes. Runs in its own thread and event loop, so it works whether or
    not the caller's thread has an event loop running."""
    from distributed.comm import connect  # here: Dask is an optional extra ('cluster')

    async def probe():
        comm = await asyncio.wait_for(connect(address, timeout=timeout), timeout)
        await comm.close()

    with cf.ThreadPoolExecutor(1, thread_name_prefix="qdaed-dask-probe") as pool:
        pool.submit(asyncio.run, probe()).result()


def _import_distributed():
    try:
        import distributed  # here: Dask is an optional extra ('cluster')
    except ImportError:
        raise InputError("--dask-scheduler: the Dask distributed package is not installed; "
                         "pip install 'qdaed[cluster]'") from None
    return distributed


class JobRunner:
    """Runs jobs on the executor of an :class:`ExecutorSpec`; a context manager.

    Entering connects to the Dask scheduler (if any) and waits for one of its workers, raising
    ``InputError`` after about ``connect_timeout`` seconds; a process pool is started by each
    :meth:`run` and stopped when it returns."""

    def __init__(self, spec=None):
        if spec is None:
            spec = ExecutorSpec()
        if not isinstance(spec, ExecutorSpec):
            raise InputError(f"spec: expected an ExecutorSpec, got {type(spec).__name__}")
        self.spec = spec
        self._client = None
        self._dask_threads = None

    @property
    def threads(self):
        """Numba and BLAS threads of every job of the next :meth:`run` (on a Dask cluster:
        known once entered, from the workers connected then)."""
        if self.spec.dask_scheduler is None:
            return self.spec.local_threads()
        return self._dask_threads

    def __enter__(self):
        if self.spec.dask_scheduler is not None and self._client is None:
            self._client = self._connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                client.close(timeout=self.spec.connect_timeout)

    def run(self, fn, jobs_args, progress=None):
        """[fn(*args) for args in jobs_args], computed on the executor; see the module."""
        jobs_args = _check_jobs(fn, jobs_args)
        if not jobs_args:
            return []
        if self.spec.dask_scheduler is not None:
            if self._client is not None:
                return self._run_dask(fn, jobs_args, progress)
            with self:                           # not entered: connect for this run only
                return self._run_dask(fn, jobs_args, progress)
        if self.spec.workers == 1:
            return self._run_here(fn, jobs_args, progress)
        return self._run_pool(fn, jobs_args, progress)

    def start(self, fn, jobs_args):
        """Start ``jobs_args`` now, while this process goes on with work of its own (the
        teacher the later jobs need); returns a :class:`Sweep`, whose :meth:`Sweep.finish`
        adds the later jobs and returns every result, these first. Use it as a context
        manager, so that an exception in between stops the early jobs.

        On a local pool of N workers the early jobs run on N − 1 of them at a time (at least
        one): this process's own work takes the share of the last one, so it should run with
        :attr:`threads` threads too (:func:`~qdaed.pipeline.threads.pin_threads`). From
        :meth:`Sweep.finish` on every worker takes jobs. In-process and on a Dask cluster the
        early jobs wait for :meth:`Sweep.finish` and run first. A job's results are the same
        bytes whichever way it runs (the same threads per job)."""
        jobs_args = _check_jobs(fn, jobs_args)
        if self.spec.dask_scheduler is None and self.spec.workers > 1:
            return _PoolSweep(fn, jobs_args, self.spec.workers, self.spec.local_threads())
        return Sweep(self, fn, jobs_args)

    def _run_here(self, fn, jobs_args, progress):
        threads = self.spec.local_threads()
        results = []
        with threads_restored():
            for args in jobs_args:
                results.append(_call(fn, threads, args))
                if progress is not None:
                    progress(len(results), len(jobs_args))
        return results

    def _run_pool(self, fn, jobs_args, progress):
        # One pool mechanism for both: a sweep with no early jobs.
        with _PoolSweep(fn, [], min(self.spec.workers, len(jobs_args)),
                        self.spec.local_threads()) as sweep:
            return sweep._finish(jobs_args, progress)   # jobs_args checked by run()

    def _connect(self):
        distributed = _import_distributed()
        address, timeout = self.spec.dask_scheduler, self.spec.connect_timeout
        start = time.monotonic()
        try:
            _probe(address, timeout)
            left = max(1.0, timeout - (time.monotonic() - start))
            client = distributed.Client(address, timeout=left, set_as_default=False)
        except Exception as e:  # noqa: BLE001  -- refused, timed out, or not a Dask scheduler
            raise InputError(_connect_error(address, timeout, e)) from None
        try:
            left = max(1.0, timeout - (time.monotonic() - start))
            try:
                client.wait_for_workers(1, timeout=left)
            except (OSError, *_TIMEOUTS) as e:
                raise InputError(f"--dask-scheduler: no worker joined {address} within "
                                 f"{timeout:g} s ({type(e).__name__})") from None
            self._dask_threads = self._inspect_workers(client)
        except BaseException:
            client.close()
            raise
        return client

    def _inspect_workers(self, client):
        """Check the workers' versions; return the threads per job (the spec's, or the
        smallest share of the cores of any worker)."""
        from distributed.comm import get_address_host  # here: optional extra ('cluster')
        info = client.run(_worker_info)
        if not info:
            raise InputError(f"--dask-scheduler: {self.spec.dask_scheduler} has no workers")
        mine = _versions()
        for worker, theirs in sorted(info.items()):
            theirs = theirs["versions"]
            if theirs != mine:
                diff = ", ".join(f"{k} {theirs.get(k)} (here {v})" for k, v in mine.items()
                                 if theirs.get(k) != v)
                raise InputError(f"--dask-scheduler: worker {worker} runs {diff}; the workers "
                                 f"need the same versions for identical results")
        if self.spec.threads_per_job is not None:
            return self.spec.threads_per_job
        per_host = collections.Counter(get_address_host(w) for w in info)
        return min(max(1, i["cores"] // per_host[get_address_host(w)]) for w, i in info.items())

    def _run_dask(self, fn, jobs_args, progress):
        distributed = _import_distributed()
        client = self._client
        self._dask_threads = threads = self._inspect_workers(client)
        futures = []
        try:
            scattered = {}   # id(array) -> future: an array shared by every job is sent once

            def remote(a):
                if getattr(a, "nbytes", 0) >= _SCATTER_BYTES and hasattr(a, "__array__"):
                    if id(a) not in scattered:
                        scattered[id(a)] = (client.scatter(a, hash=False, broadcast=True), a)
                    return scattered[id(a)][0]
                return a

            for args in jobs_args:
                futures.append(client.submit(_call_on_dask_worker, fn, threads,
                                             *map(remote, args), pure=False))
            return _collect(futures, lambda fs: distributed.as_completed(fs, loop=client.loop),
                            progress)
        except BaseException:
            with contextlib.suppress(Exception):
                client.cancel(futures, force=True)
            raise


class Sweep:
    """Jobs of one function, some started before the others are known (:meth:`JobRunner.start`).

    This base form runs nothing early: :meth:`finish` runs the early jobs and then the later
    ones on the runner's executor (in-process or Dask)."""

    def __init__(self, runner, fn, early):
        self._runner, self._fn, self._early = runner, fn, early

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Stop whatever still runs (nothing here)."""

    def finish(self, jobs_args, progress=None):
        """[fn(*a) for a in early + jobs_args], the early jobs first; ``progress(done, total)``
        as each finishes (here, in this process)."""
        return self._runner.run(self._fn, [*self._early, *_check_jobs(self._fn, jobs_args)],
                                progress)


def _noop():
    return None


class _PoolSweep(Sweep):
    """A local pool whose jobs are handed out by a feeder thread of this process, at most
    ``limit`` at a time: N − 1 of its N workers until :meth:`finish`, then all. Every worker
    is spawned at once, inside :func:`~qdaed.pipeline.threads.spawn_environment`, so the
    thread variables they start with are the sweep's."""

    def __init__(self, fn, early, workers, threads):
        self._fn, self._threads, self._workers = fn, threads, workers
        self._cv = threading.Condition()
        self._pending = collections.deque(enumerate(early))
        self._total, self._limit, self._running = len(early), max(1, workers - 1), 0
        self._stopped = self._failed = False
        self._error = None
        self._futures = {}                  # future -> job index
        self._finished = queue.Queue()      # futures, as they finish
        with spawn_environment(threads):
            self._pool = cf.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"))
            for f in [self._pool.submit(_noop) for _ in range(workers)]:  # one spawn each
                f.result()
        self._feeder = threading.Thread(target=self._feed, name="qdaed-sweep-feeder",
                                        daemon=True)
        self._feeder.start()

    def _feed(self):
        try:
            with self._cv:
                while True:
                    while not (self._stopped or self._failed) and not (
                            self._pending and self._running < self._limit):
                        self._cv.wait()
                    if self._stopped or self._failed:    # a failed job: start nothing more
                        return
                    i, args = self._pending.popleft()
                    self._running += 1
                    f = self._pool.submit(_call, self._fn, self._threads, args)
                    self._futures[f] = i
                    f.add_done_callback(self._done)
        except BaseException as e:   # noqa: BLE001  -- a broken pool: finish raises it
            self._error, self._failed = e, True
            self._finished.put(None)

    def _done(self, future):
        with self._cv:
            self._running -= 1
            if future.cancelled() or future.exception() is not None:
                self._failed = True
            self._cv.notify_all()
        self._finished.put(future)

    def finish(self, jobs_args, progress=None):
        return self._finish(_check_jobs(self._fn, jobs_args), progress)

    def _finish(self, jobs_args, progress):
        with self._cv:
            self._pending.extend((self._total + i, a) for i, a in enumerate(jobs_args))
            self._total += len(jobs_args)
            self._limit = self._workers
            self._cv.notify_all()
        results = [None] * self._total
        try:
            for done in range(1, self._total + 1):
                f = self._finished.get()
                if f is None:                    # the feeder could not submit
                    raise self._error
                with self._cv:
                    i = self._futures[f]
                results[i] = f.result()
                if progress is not None:
                    progress(done, self._total)
        except BaseException:
            self.close()
            raise
        self._stop(wait=True)
        return results

    def _stop(self, wait):
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        self._feeder.join()
        if wait:
            self._pool.shutdown(wait=True)
        else:
            _terminate_pool(self._pool, list(self._futures))

    def close(self):
        """Cancel the jobs not started and terminate the workers at once (an error, or the
        work in between failed)."""
        if not self._stopped:
            self._stop(wait=False)


def run_jobs(fn, jobs_args, spec=None, progress=None):
    """``[fn(*args) for args in jobs_args]`` on the executor of ``spec`` (an
    :class:`ExecutorSpec`; None = in-process), in input order. ``progress(done, total)`` is
    called in this process as each job finishes."""
    with JobRunner(spec) as runner:
        return runner.run(fn, jobs_args, progress)


__all__ = ["ExecutorSpec", "JobRunner", "Sweep", "run_jobs"]
