"""The tiny pipeline run shared by the pipeline tests (one run per test session)."""

import pytest

from qdaed.pipeline.run import run_pipeline
from tests.pipeline.test_run import tiny_config


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    results = run_pipeline(tiny_config(), out, quiet=True)
    return out, results
