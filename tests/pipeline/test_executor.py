"""qdaed.pipeline.executor: the same bytes in-process, in a process pool and on a Dask cluster;
input order; errors propagate as themselves; an unreachable scheduler fails fast; threads pinned.

Job functions are module-level: pool and Dask workers import this module by name.
"""

import hashlib
import logging
import os
import socket
import sys
import time
import warnings

import numpy as np
import pytest

from qdaed.errors import InputError, QdaedError
from qdaed.pipeline.executor import ExecutorSpec, JobRunner, run_jobs
from qdaed.pipeline.threads import available_cores, pin_threads, thread_counts

CORES = available_cores()

# A scheduler always serves HTTP, on port 8787 unless told: a random port, no dashboard.
NO_DASHBOARD = dict(dashboard_address=":0", scheduler_kwargs={"dashboard": False})


# --- jobs ---------------------------------------------------------------------------------------

def seeded_job(seed, scale=None):
    """BLAS (thread-count sensitive), a parallel Numba kernel and an LSTM step; raw bytes."""
    from qdaed.models import StudentLSTM
    from qdaed.nn import relu
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((300, 257)).astype(np.float32)
    b = rng.standard_normal((257, 200)).astype(np.float32)
    if scale is not None:
        b = b * scale[: b.shape[1]]
    y, _ = relu.forward({}, a @ b)
    model = StudentLSTM(64, 16, 1, 3, seed=seed)
    x = rng.standard_normal((4, 30, 64)).astype(np.float32)
    z, cache = model.forward(x, train=True)
    grads = model.backward(cache, np.ones_like(z))
    return {"relu(gemm)": y.tobytes(), "logits": z.tobytes(),
            "grads": b"".join(grads[k].tobytes() for k in sorted(grads))}


def sleepy_job(i, delay):
    time.sleep(delay)
    return i, os.getpid()


def timed_job(i, delay):
    """(i, pid, start, end): when and where the job ran."""
    start = time.time()
    time.sleep(delay)
    return i, os.getpid(), start, time.time()


def failing_job(i, fail_at, slow):
    if i == fail_at:
        raise InputError(f"job {i}: bad value for --thing")
    time.sleep(slow)
    return i


def threads_seen():
    import numba
    seen = {"counts": thread_counts(), "numba_pool": numba.config.NUMBA_NUM_THREADS,
            "env": os.environ.get("OPENBLAS_NUM_THREADS"), "threadpoolctl": None}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pass
    else:
        seen["threadpoolctl"] = sorted(i["num_threads"] for i in threadpool_info()
                                       if i["user_api"] == "blas")
    return seen


def digest(results):
    return [{k: hashlib.sha256(v).hexdigest() for k, v in r.items()} for r in results]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_pinned(seen, n):
    assert seen["counts"]["numba"] == min(n, seen["numba_pool"])
    assert seen["counts"]["blas"], "no BLAS library found to pin"
    assert set(seen["counts"]["blas"].values()) == {n}, seen
    assert seen["env"] == str(n)
    if seen["threadpoolctl"] is not None:   # an independent reading of the same libraries
        assert set(seen["threadpoolctl"]) == {n}, seen


# --- specs and arguments ------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(jobs=-1), "--jobs"),
    (dict(jobs=1.5), "--jobs"),
    (dict(jobs=True), "--jobs"),
    (dict(threads_per_job=0), "--threads-per-job"),
    (dict(threads_per_job="2"), "--threads-per-job"),
    (dict(connect_timeout=0), "--connect-timeout"),
    (dict(connect_timeout=float("nan")), "--connect-timeout"),
    (dict(dask_scheduler=""), "--dask-scheduler"),
    (dict(dask_scheduler="tcp://a b:1"), "--dask-scheduler"),
    (dict(dask_scheduler=8786), "--dask-scheduler"),
    (dict(dask_scheduler="tcp://h:8786", jobs=2), "cannot be combined"),
])
def test_bad_specs_are_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        ExecutorSpec(**kwargs)


def test_spec_defaults_and_resolution():
    assert ExecutorSpec().workers == 1 and ExecutorSpec().local_threads() == CORES
    assert ExecutorSpec(jobs=0).workers == CORES and ExecutorSpec(jobs=0).local_threads() == 1
    assert ExecutorSpec(jobs=2).local_threads() == max(1, CORES // 2)
    assert ExecutorSpec(jobs=4 * CORES).local_threads() == 1
    assert ExecutorSpec(jobs=2, threads_per_job=3).local_threads() == 3
    assert ExecutorSpec(dask_scheduler=" host:8786 ").dask_scheduler == "tcp://host:8786"
    with pytest.raises(Exception):
        ExecutorSpec().jobs = 2                  # frozen


def test_functions_workers_cannot_import_are_refused():
    def nested():
        pass
    for bad in (lambda: None, nested, 3):
        with pytest.raises(InputError, match="fn:"):
            run_jobs(bad, [()])


def test_arguments_must_be_tuples_and_no_jobs_is_no_results():
    with pytest.raises(InputError, match=r"jobs_args\[1\]"):
        run_jobs(sleepy_job, [(0, 0), 5])
    assert run_jobs(seeded_job, []) == []
    with pytest.raises(InputError, match="spec"):
        run_jobs(seeded_job, [(0,)], spec={"jobs": 2})


def test_missing_distributed_is_a_clear_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)     # makes `import distributed` fail
    with pytest.raises(InputError, match=r"pip install 'qdaed\[cluster\]'"):
        run_jobs(seeded_job, [(0,)], ExecutorSpec(dask_scheduler="tcp://127.0.0.1:1"))


# --- in-process and process pool ----------------------------------------------------------------

@pytest.fixture(scope="module")
def reference():
    """In-process, one thread per job: what every executor must reproduce byte for byte."""
    return run_jobs(seeded_job, [(s,) for s in range(4)], ExecutorSpec(threads_per_job=1))


def test_in_process_runs_in_order_reports_progress_and_restores_threads(reference):
    before = thread_counts()
    calls = []
    out = run_jobs(seeded_job, [(s,) for s in range(4)], ExecutorSpec(threads_per_job=1),
                   progress=lambda done, total: calls.append((done, total)))
    assert out == reference and calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert len({r["logits"] for r in reference}) == 4          # the seeds differ
    assert thread_counts() == before


def test_process_pool_gives_the_reference_bytes_in_input_order(reference):
    calls = []
    spec = ExecutorSpec(jobs=2, threads_per_job=1)
    out = run_jobs(seeded_job, [(s,) for s in range(4)], spec,
                   progress=lambda done, total: calls.append((done, total)))
    assert digest(out) == digest(reference)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_process_pool_keeps_input_order_when_jobs_finish_in_reverse():
    delays = [1.2, 0.8, 0.4, 0.0]
    out = run_jobs(sleepy_job, list(enumerate(delays)), ExecutorSpec(jobs=2))
    assert [i for i, _ in out] == [0, 1, 2, 3]
    assert len({pid for _, pid in out}) == 2 and os.getpid() not in {pid for _, pid in out}


@pytest.mark.parametrize("threads", [1, 2])
def test_process_pool_pins_numba_and_blas_threads(threads):
    for seen in run_jobs(threads_seen, [(), ()], ExecutorSpec(jobs=2, threads_per_job=threads)):
        _check_pinned(seen, threads)
        assert seen["numba_pool"] == threads     # the worker was spawned with the variables


def test_in_process_pins_and_pin_threads_reports():
    seen, = run_jobs(threads_seen, [()], ExecutorSpec(threads_per_job=1))
    _check_pinned(seen, 1)
    before = thread_counts()
    try:
        counts = pin_threads(1)
        assert counts["numba"] == 1 and set(counts["blas"].values()) == {1}
    finally:
        pin_threads(before["numba"])


@pytest.mark.parametrize("jobs", [1, 2])
def test_job_error_propagates_as_itself_and_the_rest_is_cancelled(jobs):
    # In a pool job 0 sleeps 30 s beside the failing job 1; in-process job 2 never starts.
    jobs_args = [(0, 1, 30), (1, 1, 0)] if jobs > 1 else [(0, 1, 0), (1, 1, 0), (2, 1, 30)]
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"^job 1: bad value for --thing$") as info:
        run_jobs(failing_job, jobs_args, ExecutorSpec(jobs=jobs))
    assert isinstance(info.value, QdaedError)
    assert time.perf_counter() - start < 20      # job 0's 30 s sleep was terminated


# --- a sweep started early (JobRunner.start) -----------------------------------------------------

def test_early_jobs_leave_one_worker_to_the_caller_and_run_while_it_works():
    with JobRunner(ExecutorSpec(jobs=2)) as runner:
        with runner.start(timed_job, [(0, 0.4), (1, 0.4)]) as sweep:
            time.sleep(3.0)                       # the caller's own work (the teacher)
            called = time.time()
            out = sweep.finish([(2, 0.6), (3, 0.6)])
    assert [r[0] for r in out] == [0, 1, 2, 3]    # early first, then the later, in order
    early, later = out[:2], out[2:]
    assert all(r[3] < called for r in early)      # done before finish was called
    assert early[1][2] >= early[0][3]             # on 2 workers one at a time: 1 after 0
    assert os.getpid() not in {r[1] for r in out}
    # from finish on, every worker takes jobs: 2 and 3 overlap in time, on two processes
    assert later[0][1] != later[1][1] and max(r[2] for r in later) < min(r[3] for r in later)


def test_early_jobs_on_three_workers_run_two_at_a_time():
    with JobRunner(ExecutorSpec(jobs=3, threads_per_job=1)) as runner:
        with runner.start(timed_job, [(0, 0.8), (1, 0.8), (2, 0.8)]) as sweep:
            time.sleep(4.0)
            out = sweep.finish([])
    starts = sorted(r[2] for r in out)
    ends = sorted(r[3] for r in out)
    assert starts[1] < ends[0] and starts[2] >= ends[0]    # 0 and 1 together, 2 after one


def test_early_jobs_in_process_wait_for_finish_and_give_the_reference_bytes(reference):
    with JobRunner(ExecutorSpec(threads_per_job=1)) as runner:
        with runner.start(timed_job, [(0, 0.0)]) as sweep:
            called = time.time()
            out = sweep.finish([(1, 0.0)])
    assert [r[0] for r in out] == [0, 1] and out[0][2] >= called
    assert {r[1] for r in out} == {os.getpid()}
    with JobRunner(ExecutorSpec(threads_per_job=1)) as runner:
        with runner.start(seeded_job, [(0,), (1,)]) as sweep:
            here = sweep.finish([(2,), (3,)])
    assert here == reference


def test_early_jobs_on_a_pool_give_the_reference_bytes_and_report_progress(reference):
    calls = []
    with JobRunner(ExecutorSpec(jobs=2, threads_per_job=1)) as runner:
        with runner.start(seeded_job, [(0,), (1,)]) as sweep:
            out = sweep.finish([(2,), (3,)], progress=lambda *a: calls.append(a))
    assert digest(out) == digest(reference)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_a_sweep_with_no_early_jobs_is_an_ordinary_run():
    with JobRunner(ExecutorSpec(jobs=2)) as runner:
        with runner.start(timed_job, []) as sweep:
            out = sweep.finish([(0, 0.5), (1, 0.5)])
    assert [r[0] for r in out] == [0, 1] and out[0][1] != out[1][1]   # both workers at once
    assert max(r[2] for r in out) < min(r[3] for r in out)


def test_an_early_job_error_propagates_at_finish_and_nothing_more_starts():
    start = time.perf_counter()
    with JobRunner(ExecutorSpec(jobs=2)) as runner:
        with pytest.raises(InputError, match=r"^job 0: bad value for --thing$"):
            with runner.start(failing_job, [(0, 0, 0), (1, 0, 30)]) as sweep:
                time.sleep(1.0)
                sweep.finish([(2, 0, 30)])
    assert time.perf_counter() - start < 20       # neither 30 s job ran to its end


def test_a_pool_that_cannot_take_jobs_is_an_error_at_finish_not_a_hang():
    import threading
    raised = []

    def finish(sweep):
        try:
            sweep.finish([(0, 0.0)])
        except Exception as e:  # noqa: BLE001  -- what finish raised is the result
            raised.append(e)

    with JobRunner(ExecutorSpec(jobs=2)) as runner:
        sweep = runner.start(timed_job, [])
        sweep._pool.shutdown(wait=True)          # as if the pool had broken
        waiter = threading.Thread(target=finish, args=(sweep,), daemon=True)
        waiter.start()
        waiter.join(30)
    assert not waiter.is_alive(), "finish hung"
    assert len(raised) == 1 and isinstance(raised[0], RuntimeError), raised
    assert "shutdown" in str(raised[0])


def test_an_error_of_the_caller_between_start_and_finish_stops_the_early_jobs():
    start = time.perf_counter()
    with JobRunner(ExecutorSpec(jobs=2)) as runner:
        with pytest.raises(RuntimeError, match="teacher failed"):
            with runner.start(sleepy_job, [(0, 30), (1, 30)]) as sweep:
                time.sleep(0.5)
                workers = list(sweep._pool._processes.values())
                raise RuntimeError("teacher failed")
    assert time.perf_counter() - start < 20
    time.sleep(0.5)
    assert workers and not any(p.is_alive() for p in workers)   # terminated, not left running


def test_start_refuses_what_run_refuses():
    with JobRunner(ExecutorSpec(jobs=2)) as runner:
        with pytest.raises(InputError, match=r"jobs_args\[0\]"):
            runner.start(sleepy_job, [5])
        with pytest.raises(InputError, match="fn:"):
            runner.start(lambda: None, [()])


# --- Dask ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    quiet = {name: logging.getLogger(name).level for name in ("distributed", "tornado")}
    for name in quiet:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  **NO_DASHBOARD, silence_logs=logging.CRITICAL) as c:
        yield c
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)


def test_dask_gives_the_reference_bytes_in_input_order(cluster, reference):
    calls = []
    spec = ExecutorSpec(dask_scheduler=cluster.scheduler_address, threads_per_job=1)
    out = run_jobs(seeded_job, [(s,) for s in range(4)], spec,
                   progress=lambda done, total: calls.append((done, total)))
    assert digest(out) == digest(reference)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    out = run_jobs(sleepy_job, list(enumerate([1.0, 0.6, 0.3, 0.0])), spec)
    assert [i for i, _ in out] == [0, 1, 2, 3]


def test_dask_default_threads_are_the_workers_share_and_are_pinned(cluster):
    with JobRunner(ExecutorSpec(dask_scheduler=cluster.scheduler_address)) as runner:
        assert runner.threads == max(1, CORES // 2)       # two worker processes on this host
        for seen in runner.run(threads_seen, [(), ()]) + runner.run(threads_seen, [()]):
            _check_pinned(seen, runner.threads)          # one connection, two sweeps
    two = ExecutorSpec(dask_scheduler=cluster.scheduler_address, threads_per_job=2)
    for seen in run_jobs(threads_seen, [(), ()], two):   # more than Dask's OPENBLAS_NUM_THREADS=1
        _check_pinned(seen, 2)


def test_dask_sends_a_shared_large_array_once_and_gives_the_same_bytes(cluster):
    scale = np.linspace(0.5, 1.5, 3_000_000).astype(np.float32)     # 12 MB, shared by all
    jobs = [(s, scale) for s in range(3)]
    here = run_jobs(seeded_job, jobs, ExecutorSpec(threads_per_job=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # e.g. Dask's "Large object ... in task graph"
        there = run_jobs(seeded_job, jobs, ExecutorSpec(dask_scheduler=cluster.scheduler_address,
                                                        threads_per_job=1))
    assert digest(there) == digest(here)


def test_dask_job_error_propagates_as_itself(cluster):
    spec = ExecutorSpec(dask_scheduler=cluster.scheduler_address)
    with pytest.raises(InputError, match=r"^job 2: bad value for --thing$"):
        run_jobs(failing_job, [(i, 2, 0) for i in range(4)], spec)


def test_workers_with_other_versions_are_refused(cluster, monkeypatch):
    from qdaed.pipeline import executor
    real = executor._versions()
    monkeypatch.setattr(executor, "_versions", lambda: {**real, "qdaed": "0.0.0-other"})
    with pytest.raises(InputError, match=r"runs qdaed .* \(here 0\.0\.0-other\)"):
        with JobRunner(ExecutorSpec(dask_scheduler=cluster.scheduler_address)):
            pass


def test_a_scheduler_without_workers_is_an_input_error_within_the_timeout(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=0, processes=False, **NO_DASHBOARD,
                                  silence_logs=logging.CRITICAL) as empty:
        start = time.perf_counter()
        with pytest.raises(InputError, match=r"^--dask-scheduler: no worker joined .* 1 s"):
            run_jobs(seeded_job, [(0,)], ExecutorSpec(dask_scheduler=empty.scheduler_address,
                                                       connect_timeout=1))
        assert time.perf_counter() - start < 3 * 1


def test_unreachable_scheduler_is_an_input_error_within_the_timeout(tmp_path):
    pytest.importorskip("distributed")
    silent = socket.socket()                     # accepts connections and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    closed = _free_port()
    try:
        for address, why in [(f"tcp://127.0.0.1:{closed}", "cannot reach"),
                             ("127.0.0.1:%d" % silent.getsockname()[1], "no answer")]:
            start = time.perf_counter()
            with pytest.raises(InputError, match=rf"^--dask-scheduler: .*{why}"):
                with JobRunner(ExecutorSpec(dask_scheduler=address, connect_timeout=1)):
                    (tmp_path / "config.json").write_text("{}")
            assert time.perf_counter() - start < 3 * 1 + 2   # + importing distributed
    finally:
        silent.close()
    assert list(tmp_path.iterdir()) == []        # nothing was written
