"""qdaed.pipeline.threads: the environment spawned workers start with."""

import os

import pytest

from qdaed.pipeline.threads import BLAS_ENV, STEPS_ENV, spawn_environment


@pytest.fixture
def clean_env(monkeypatch):
    for var in (*BLAS_ENV, "NUMBA_NUM_THREADS", STEPS_ENV):
        monkeypatch.delenv(var, raising=False)


def test_workers_of_one_thread_get_the_compiled_lstm_loop_and_the_variables_go_after(clean_env):
    with spawn_environment(1):
        assert os.environ[STEPS_ENV] == "numba"
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert STEPS_ENV not in os.environ and "OPENBLAS_NUM_THREADS" not in os.environ


def test_workers_of_several_threads_keep_the_python_loop(clean_env):
    with spawn_environment(2):
        assert STEPS_ENV not in os.environ
        assert os.environ["NUMBA_NUM_THREADS"] == "2"


def test_a_users_choice_of_the_loop_is_kept(clean_env, monkeypatch):
    monkeypatch.setenv(STEPS_ENV, "python")
    with spawn_environment(1):
        assert os.environ[STEPS_ENV] == "python"
    assert os.environ[STEPS_ENV] == "python"
