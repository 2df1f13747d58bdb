"""Tests of snas confirm: the plan (references at equal cost, seeds), the statistics
(p-values equal scipy's on the stored per-seed accuracies), and a real confirmation that
resumes without re-running finished trials and re-ranks the search."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from scipy import stats

from snas.cli import main
from snas.confirm.plan import ConfirmPlan, make_plan, record_name
from snas.confirm.stats import smallest_p, summarize
from snas.core import metrics as M
from snas.core.budget import cost_model_from_layers
from snas.core.density import kept_count
from snas.core.errors import ConfigError
from snas.store import ResultsStore
from snas.view import SearchView

LAYERS = [{"name": "l0", "shape": [64, 100], "positions": 1},
          {"name": "l1", "shape": [64, 64], "positions": 1},
          {"name": "l2", "shape": [10, 64], "positions": 1}]


def _view(trials, budget=None):
    record = {"name": "s", "status": "finished", "storage_path": "/tmp/none/s",
              "space": {"training": {"seed": 4}, "search": {}},
              "params": {"metric": "val_accuracy", "mode": "max", "layers": LAYERS,
                         "budget": budget or {"resource": "weights", "max_fraction": None}}}
    return SearchView.from_record(record, trials)


def _trial(tid, density, val, baseline=False):
    return {"trial_id": tid, "status": "terminated", "density": density, "val_accuracy": val,
            "is_baseline": baseline, "epochs": 5}


def test_plan_puts_references_at_each_candidates_cost_and_skips_the_baseline():
    view = _view([_trial("base", [1.0, 1.0, 1.0], 0.99, baseline=True),
                  _trial("a", [0.2, 0.5, 0.9], 0.97), _trial("b", [0.6, 0.1, 0.3], 0.96),
                  _trial("c", [0.3, 0.3, 0.3], 0.90)])
    plan = make_plan(view, top=2, seeds=3, references=("uniform", "erk", "dense"))
    labels = [c.label for c in plan.candidates]
    assert labels == ["rank 1", "uniform @ rank 1", "erk @ rank 1", "rank 2",
                      "uniform @ rank 2", "erk @ rank 2", "dense"]
    assert plan.seeds == (5, 6, 7)  # the search's seed 4 is not reused
    model = cost_model_from_layers(LAYERS, "weights")
    for c in plan.candidates:
        if c.reference_of:
            searched = next(s for s in plan.candidates if s.label == c.reference_of)
            want = [kept_count(d, 64 * 100 if i == 0 else 64 * 64 if i == 1 else 640)
                    for i, d in enumerate(searched.density)]
            got = [kept_count(d, n) for d, n in zip(c.density, (6400, 4096, 640))]
            assert sum(want) - len(LAYERS) <= sum(got) <= sum(want)  # one weight per layer
            assert model.cost(list(c.density)) <= model.cost(list(searched.density))
    uniform = plan.candidates[1].density
    assert len(set(uniform)) == 1
    configs = plan.trial_configs()
    assert len(configs) == len(plan.vectors()) * 3 == 21
    assert {c["space"]["training"]["seed"] for c in configs} == {5, 6, 7}
    assert configs[0]["d_00"] == 0.2 and configs[0]["confirm"]["seed"] == 5


def test_plan_from_a_uniform_search_expands_the_scalar_and_round_trips_through_params():
    view = _view([_trial("a", [0.4], 0.97)])
    plan = make_plan(view, top=3, seeds=2, references=("uniform",))
    assert plan.candidates[0].density == (0.4, 0.4, 0.4)
    back = ConfirmPlan.from_params("s", json.loads(json.dumps(plan.params())), view.space)
    assert back.candidates == plan.candidates and back.seeds == plan.seeds


@pytest.mark.parametrize("top, seeds, refs, message", [
    (0, 3, ("uniform",), "--top must be an integer >= 1"),
    (1, 1, ("uniform",), "--seeds must be an integer >= 2"),
    (1, 3, ("gaussian",), "unknown reference allocation 'gaussian'; choose from dense, erk"),
    (1, 3, ("uniform", "uniform"), "--references lists an allocation twice"),
])
def test_bad_options_are_one_line_errors(top, seeds, refs, message):
    view = _view([_trial("a", [0.4, 0.4, 0.4], 0.97)])
    with pytest.raises(ConfigError) as info:
        make_plan(view, top, seeds, refs)
    assert message in str(info.value) and "\n" not in str(info.value)


def _fake_trials(plan, accuracies):
    """Stored-trial rows of a confirmation, ``accuracies[label] = [acc per seed]``."""
    rows = []
    for c in plan.candidates:
        for seed, acc in zip(plan.seeds, accuracies[c.label]):
            rows.append({"trial_id": f"{c.label}-{seed}", "status": "terminated",
                         "config": {"confirm": {"vector": c.key, "seed": seed}},
                         M.TEST_ACCURACY: acc, M.ACTIVE_WEIGHTS: 100})
    return rows


def test_p_values_equal_scipys_on_the_stored_per_seed_accuracies():
    view = _view([_trial("a", [0.2, 0.5, 0.9], 0.97)])
    plan = make_plan(view, top=1, seeds=5, references=("uniform", "dense"))
    accs = {"rank 1": [0.951, 0.948, 0.955, 0.950, 0.957],
            "uniform @ rank 1": [0.940, 0.947, 0.941, 0.951, 0.944],
            "dense": [0.96, 0.95, 0.962, 0.949, 0.958]}
    report = summarize(plan, _fake_trials(plan, accs))
    for comp in report["comparisons"]:
        a = np.array(accs[comp["candidate"]])
        b = np.array(accs[comp["reference"]])
        want = stats.wilcoxon(a - b, alternative="greater").pvalue
        assert comp["p_value"] == pytest.approx(want)
        assert comp["mean_difference"] == pytest.approx(np.mean(a - b))
    rank1 = report["candidates"][0]
    assert rank1["mean"] == pytest.approx(np.mean(accs["rank 1"]))
    assert rank1["sd"] == pytest.approx(np.std(accs["rank 1"], ddof=1))
    lo, hi = stats.t.interval(0.95, 4, loc=np.mean(accs["rank 1"]),
                              scale=stats.sem(accs["rank 1"]))
    assert rank1["ci95"] == pytest.approx([lo, hi])
    # 4 of 5 seeds better than uniform, one worse: p = 2/32 > 0.05
    assert report["verdict"].startswith("no searched vector beats uniform at equal cost")


def test_verdict_names_a_win_and_warns_when_seeds_cannot_reach_the_threshold():
    view = _view([_trial("a", [0.2, 0.5, 0.9], 0.97)])
    plan = make_plan(view, top=1, seeds=5, references=("uniform",))
    accs = {"rank 1": [0.96, 0.95, 0.97, 0.955, 0.965],
            "uniform @ rank 1": [0.94, 0.942, 0.941, 0.943, 0.944]}
    report = summarize(plan, _fake_trials(plan, accs))
    assert report["verdict"].startswith("rank 1 beats uniform by +0.0")
    assert "p = 0.0312" in report["verdict"] and "at equal cost" in report["verdict"]
    plan3 = make_plan(view, top=1, seeds=3, references=("uniform",))
    report = summarize(plan3, _fake_trials(plan3, {k: v[:3] for k, v in accs.items()}))
    assert "cannot go below p = 0.125" in report["verdict"] and smallest_p(3) == 0.125


def test_a_real_confirmation_resumes_without_rerunning_and_reranks_the_search(
        digits_search, tmp_path, capsys):
    url, name, src = digits_search
    # a consistent copy of the shared store (its WAL included), which this test writes to
    with sqlite3.connect(src / "results.db") as source, \
            sqlite3.connect(tmp_path / "results.db") as copy:
        source.backup(copy)
    url = f"sqlite:///{tmp_path}/results.db"
    out = tmp_path / "confirm.json"
    argv = ["confirm", name, "--top", "1", "--seeds", "2", "--references", "uniform,dense",
            "--store", url, "--json-out", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "verdict: no searched vector beats uniform" in printed  # 2 seeds: p >= 0.25
    doc = json.loads(out.read_text())
    assert set(doc) >= {"search", "seeds", "candidates", "comparisons", "verdict"}
    assert [c["label"] for c in doc["candidates"]] == ["rank 1", "uniform @ rank 1", "dense"]
    for c in doc["candidates"]:
        assert set(c) >= {"label", "kind", "reference_of", "density", "active_weights",
                          "test_accuracy", "mean", "sd", "ci95"}
        assert len(c["test_accuracy"]) == 2 and all(0 < a <= 1 for a in c["test_accuracy"])
    searched, uniform = doc["candidates"][0], doc["candidates"][1]
    assert abs(searched["active_weights"] - uniform["active_weights"]) <= 5  # 5 layers
    store = ResultsStore(url)
    confirm = record_name(name)
    trials = store.trials(confirm)
    assert len(trials) == 6 and all(t["status"] == "terminated" for t in trials)
    rows = store.count_rows(confirm)
    # resume an "interrupted" confirmation: Tune restores, nothing re-runs
    store.set_search_status(confirm, "interrupted")
    assert main(argv) == 0
    assert store.count_rows(confirm) == rows
    assert [t["trial_id"] for t in store.trials(confirm)] == [t["trial_id"] for t in trials]
    assert json.loads(out.read_text())["candidates"] == doc["candidates"]
    # the search is now ranked by the confirmed mean, and says so
    capsys.readouterr()
    assert main(["show", name, "--store", url]) == 0
    shown = capsys.readouterr().out
    assert "ranked by confirmed test_accuracy (mean over 2 seeds" in shown
    view = SearchView.load(store, name)
    assert view.ranked[0]["confirmed_test_accuracy"] is not None
    export = view.export_document(2)
    assert export["confirmation"]["verdict"] == doc["verdict"]


def test_global_magnitude_reads_the_dense_baselines_weights(digits_search):
    from snas.confirm.command import _dense_weights

    url, name, _ = digits_search
    view = SearchView.load(ResultsStore(url), name)
    weights = _dense_weights(ResultsStore(url), view, url, None, True, None)
    layers = view.params["layers"]
    assert list(weights) == [layer["name"] for layer in layers]
    assert [list(w.shape) for w in weights.values()] == [layer["shape"] for layer in layers]
    plan = make_plan(view, top=1, seeds=2, references=("global_magnitude",),
                     dense_weights=weights)
    searched, magnitude = plan.candidates
    model = cost_model_from_layers(layers, "weights")
    assert model.cost(list(searched.density)) - len(layers) <= model.cost(
        list(magnitude.density)) <= model.cost(list(searched.density))
