"""snas.view.SearchView: one read of the store per load, and every reader agrees with it
(ranking, the Pareto front by the search's own cost, the export). Small stores, no Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from snas.cli import main
from snas.commands import COMMANDS, command_module
from snas.core.errors import SearchError
from snas.report import load_report_data, write_report
from snas.results import pareto_front
from snas.store import ResultsStore
from snas.view import SearchView

ROOT = Path(__file__).parents[2]

# (trial, val_accuracy, active_weights, active_flops): by weights the front is t1, t2, t3;
# by FLOPs t1 costs more than t2 for a worse accuracy, so it is off the front.
TRIALS = (("t1", 0.50, 10, 200), ("t2", 0.60, 20, 50), ("t3", 0.70, 30, 300),
          ("t4", 0.65, 40, 400))


@pytest.fixture()
def store(tmp_path):
    store = ResultsStore(f"sqlite:///{tmp_path}/r.db")
    for name, resource in (("flops", "flops"), ("weights", "weights")):
        store.create_search(name, "", {"search": {"metric": "val_accuracy", "mode": "max"}},
                            "random", 6, str(tmp_path),
                            {"budget": {"resource": resource, "max_fraction": 0.9},
                             "multi_objective": True,
                             "layers": [{"name": "a", "shape": [4, 4]},
                                        {"name": "b", "shape": [2, 4]}]})
        for trial, acc, weights, flops in TRIALS:
            store.upsert_trial(name, trial, density=[0.5, 0.5], status="terminated")
            store.record_epoch(name, trial, 1, {
                "epoch": 1, "val_accuracy": acc, "active_weights": weights,
                "total_weights": 48, "active_flops": flops, "total_flops": 480})
        store.upsert_trial(name, "stopped", density=[0.1, 0.1], status="stopped")
        store.record_epoch(name, "stopped", 1, {"epoch": 1, "val_accuracy": 0.9,
                                                "active_weights": 1, "active_flops": 1})
        store.upsert_trial(name, "pending", density=[0.2, 0.2])
    yield store
    store.close()


def ids(trials) -> list[str]:
    return [t["trial_id"] for t in trials]


class CountingStore:
    """A store that counts the calls of each of its methods."""

    def __init__(self, store: ResultsStore) -> None:
        self._store = store
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str):
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)

        return counted


def test_load_reads_the_store_once(store):
    counting = CountingStore(store)
    view = SearchView.load(counting, "flops")
    # one read of the search, one look for its confirmation (NAME.confirm; none here)
    assert counting.calls == {"read_search": 1, "get_search": 1}
    # everything derived afterwards comes from the snapshot: the store can go away
    store.delete_search("flops")
    assert ids(view.ranked) == ["t3", "t4", "t2", "t1", "stopped", "pending"]
    assert view.metric == "val_accuracy" and view.mode == "max"
    assert view.cost == "active_flops"
    assert ids(view.pareto_front) == ["t2", "t3"]
    assert ids(view.export_document(pareto=True)["trials"]) == ["t2", "t3"]
    assert counting.calls == {"read_search": 1, "get_search": 1}


def test_ranking_rules(store):
    view = SearchView.load(store, "weights")
    # full-fidelity trials first by the metric, then ASHA-stopped, then unscored
    assert ids(view.ranked) == ["t3", "t4", "t2", "t1", "stopped", "pending"]
    assert ids(view.scored) == ["t3", "t4", "t2", "t1", "stopped"]
    assert view.select_trial()[0]["trial_id"] == "t3"
    assert view.select_trial(rank=2) == (view.scored[1], 2)
    assert view.select_trial(trial_id="pending") == (view.trial("pending"), None)


def test_pareto_front_uses_the_search_cost(store):
    by_flops = SearchView.load(store, "flops")
    by_weights = SearchView.load(store, "weights")
    assert by_weights.cost == "active_weights"
    assert ids(by_weights.pareto_front) == ["t1", "t2", "t3"]
    assert ids(by_flops.pareto_front) == ids(pareto_front(store.trials("flops"),
                                                          cost="active_flops"))


def test_report_front_under_a_flops_budget_equals_export_pareto(store, tmp_path, capsys):
    out = tmp_path / "front.json"
    assert main(["export", "flops", "--pareto", "--out", str(out), "--store", store.url]) == 0
    exported = json.loads(out.read_text())
    assert exported["pareto"]["objectives"] == {"val_accuracy": "max", "active_flops": "min"}
    data = load_report_data(store, "flops")
    assert ids(data.front) == ids(exported["trials"]) == ["t2", "t3"]
    manifest = write_report(store, "flops", tmp_path / "report")
    caption = manifest["figures"]["accuracy"]["caption"]
    assert "against active FLOPs" in caption and "epoch, 2 trial(s)" in caption
    # and a weights search keeps its weights front in both
    assert main(["export", "weights", "--pareto", "--out", str(out), "--store", store.url]) == 0
    assert ids(load_report_data(store, "weights").front) == ids(
        json.loads(out.read_text())["trials"]) == ["t1", "t2", "t3"]


def test_show_prints_the_same_front(store, capsys):
    assert main(["show", "flops", "--store", store.url]) == 0
    printed = capsys.readouterr().out
    front = printed[printed.index("Pareto front"):]
    assert "fewest active_flops" in front
    assert [line.split()[1] for line in front.splitlines()[2:]] == ["t2", "t3"]


@pytest.mark.parametrize("argv", [["show", "nope"], ["export", "nope"], ["report", "nope",
                                  "--out", "never"], ["analyze", "nope"], ["topology", "nope"]])
def test_unknown_search_is_the_store_error(store, argv, capsys):
    with pytest.raises(SearchError) as info:
        SearchView.load(store, "nope")
    assert main([*argv, "--store", store.url]) == 2
    assert capsys.readouterr().err.strip() == f"snas: error: {info.value}"
    assert "no search named 'nope'" in str(info.value)


def test_every_command_follows_the_contract():
    for name in COMMANDS:
        module = command_module(name)
        assert isinstance(module.HELP, str) and module.HELP, name
        assert isinstance(module.DESCRIPTION, str) and module.DESCRIPTION, name
        assert callable(module.add_arguments) and callable(module.run), name


def test_building_the_parser_imports_neither_torch_nor_ray():
    code = ("import sys; from snas.cli import build_parser; build_parser(); "
            "bad = [m for m in ('torch', 'ray', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)
