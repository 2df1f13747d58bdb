"""search.warm_start: reference allocations as the first trials after the dense baseline,
at the budget's cost, learned by the searcher; and the split sizes a search records."""

from __future__ import annotations

from pathlib import Path

import pytest

from snas.cli import main
from snas.controller import warm_start_configs
from snas.core.allocations import reference_allocation
from snas.core.config import load_space
from snas.core.errors import ConfigError
from snas.store import ResultsStore

DIGITS = str(Path(__file__).parents[2] / "search_spaces" / "mlp_digits.yaml")
LAYERS = [{"name": "a", "shape": [32, 64], "positions": 1},
          {"name": "b", "shape": [32, 32], "positions": 1},
          {"name": "c", "shape": [10, 32], "positions": 1}]


def test_warm_starts_are_the_allocations_at_the_budgets_cost():
    space = load_space(DIGITS, ["search.warm_start=[uniform, erk]", "budget.max_fraction=0.3"])
    configs = warm_start_configs(space, LAYERS)
    assert [list(c.values()) for c in configs] == [
        reference_allocation(name, LAYERS, 0.3) for name in ("uniform", "erk")]
    assert list(configs[0]) == ["d_00", "d_01", "d_02"]


def test_without_a_budget_the_warm_start_fraction_sets_the_cost():
    space = load_space(DIGITS, ["search.warm_start=[erk]", "search.warm_start_fraction=0.5"])
    assert list(warm_start_configs(space, LAYERS)[0].values()) == reference_allocation(
        "erk", LAYERS, 0.5)
    with pytest.raises(ConfigError, match="needs a cost to allocate at"):
        load_space(DIGITS, ["search.warm_start=[erk]"])


def test_a_uniform_search_takes_only_the_uniform_warm_start():
    space = load_space(DIGITS, ["search.warm_start=[uniform, erk]", "density.uniform=true",
                                "search.warm_start_fraction=0.5"])
    with pytest.raises(ConfigError, match="density.uniform searches one scalar"):
        warm_start_configs(space, LAYERS)


def test_a_search_trains_its_warm_starts_first_and_records_split_sizes(ray_address, tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    code = main(["search", DIGITS, "--name", "warm", "--store", url, "--storage-path",
                 str(tmp_path / "exp"), "--quiet", "--num-samples", "4", "--searcher", "optuna",
                 "--max-concurrent", "1", "--set", "model.width=16",
                 "--set", "training.epochs=2", "--set", "search.warm_start=[uniform, erk]",
                 "--set", "search.warm_start_fraction=0.4", "--set", "scheduler.name=fifo"])
    assert code == 0
    store = ResultsStore(url)
    record = store.get_search("warm")
    layers = record["params"]["layers"]
    trials = store.trials("warm")  # creation order
    assert trials[0]["is_baseline"]
    for trial, name in zip(trials[1:3], ("uniform", "erk"), strict=True):
        assert trial["density"] == pytest.approx(reference_allocation(name, layers, 0.4))
    assert all(t["status"] == "terminated" for t in trials)
    sizes = record["params"]["split_sizes"]
    assert sizes["train"] + sizes["val"] + sizes["test"] == 1797  # the digits
