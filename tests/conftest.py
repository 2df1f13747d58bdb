"""Shared fixtures: one Ray instance for the whole test run (ray.init costs ~10 s here)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory):
    """Start one local Ray for the session; yields its address for subprocess drivers."""
    import ray

    os.environ["SNAS_HOME"] = str(tmp_path_factory.mktemp("snas_home"))
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
