"""Shared fixtures: one Ray instance for the whole test run (ray.init costs ~10 s here)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """Every test gets the process's torch thread count back as it found it: a trainable
    built in-process sets it (``SnasTrainable`` takes ``OMP_NUM_THREADS``, as a Tune actor
    should), and training results depend on it (reduction order), so a later test would
    otherwise train differently depending on which tests ran before it."""
    import sys

    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads if threads is not None else os.cpu_count() or 1)


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


@pytest.fixture(scope="session")
def digits_search(ray_address, tmp_path_factory):
    """One finished real search (random searcher, 8 trials, digits, 6 epochs, ASHA).

    Shared read-only by the tests of the commands that read searches back (analyze,
    topology, report, export). Returns ``(store_url, name, tmp_dir)``; tests must not write
    to this store (copy the database file first when they need to).
    """
    from pathlib import Path

    from snas.cli import main

    root = Path(__file__).resolve().parents[1]
    tmp = tmp_path_factory.mktemp("digits_search")
    url = f"sqlite:///{tmp}/results.db"
    code = main(["search", str(root / "search_spaces" / "mlp_digits.yaml"), "--name", "digits",
                 "--store", url, "--storage-path", str(tmp / "exp"), "--quiet",
                 "--num-samples", "8", "--set", "model.width=32", "--set", "training.epochs=6",
                 "--set", "scheduler.grace_period=2", "--set", "search.seed=3"])
    assert code == 0
    return url, "digits", tmp
