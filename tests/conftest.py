import os

import pytest

from hypothesis import HealthCheck, settings

# CI: bounded, reproducible, no deadline (Numba compiles on first call).
settings.register_profile(
    "ci", max_examples=15, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", max_examples=300, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny pipeline run shared by the pipeline and command tests (one per session)."""
    from qdaed.pipeline.run import run_pipeline
    from tests.helpers.configs import tiny_config

    out = tmp_path_factory.mktemp("tiny")
    results = run_pipeline(tiny_config(), out, quiet=True)
    return out, results
