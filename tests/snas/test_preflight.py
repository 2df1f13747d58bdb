"""Per-trial resources no node of the Ray cluster has fail at once, in one line, before
anything is stored (Tune would keep such trials pending forever)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from snas.cli import main
from snas.core.errors import ConfigError
from snas.runner import check_cluster_resources
from snas.store import ResultsStore

SPACE = str(Path(__file__).resolve().parents[2] / "search_spaces" / "mlp_digits.yaml")


@pytest.mark.parametrize("setting, words", [
    ("resources.gpus_per_trial=1", "resources.gpus_per_trial=1 but no node of the Ray "
                                   "cluster has 1 GPU (largest: 0 GPUs, 2 CPUs)"),
    ("resources.cpus_per_trial=64", "resources.cpus_per_trial=64 but no node of the Ray "
                                    "cluster has 64 CPUs (largest: 0 GPUs, 2 CPUs)"),
])
def test_search_with_resources_no_node_has_fails_before_storing(ray_address, tmp_path, capsys,
                                                                setting, words):
    url = f"sqlite:///{tmp_path}/r.db"
    started = time.monotonic()
    code = main(["search", SPACE, "--name", "x", "--store", url, "--storage-path",
                 str(tmp_path / "exp"), "--set", setting, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and words in err, err
    assert time.monotonic() - started < 120
    assert ResultsStore(url).get_search("x") is None
    assert not (tmp_path / "exp" / "x").exists()


def test_resources_that_fit_pass(ray_address):
    check_cluster_resources(2, 0)
    check_cluster_resources(0.5, 0)
    with pytest.raises(ConfigError, match=r"cpus_per_trial=2\.5 .* has 2\.5 CPUs"):
        check_cluster_resources(2.5, 0)


def test_on_a_cluster_a_shortfall_is_a_warning_an_autoscaler_may_fix(ray_address, capsys):
    from snas import runner

    runner.resources_preflight({"cpu": 1, "gpu": 1}, address="auto")()  # no raise
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "snas: warning: resources.gpus_per_trial=1" in err
    with pytest.raises(ConfigError, match="no node of the Ray cluster has 1 GPU"):
        runner.resources_preflight({"cpu": 1, "gpu": 1})()
