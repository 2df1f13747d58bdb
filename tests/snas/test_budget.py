"""Budgets (snas.core.budget), budgeted and multi-objective searchers, Pareto fronts.

Unit tests drive the cost model and the searchers directly; the two integration tests run
real searches on one shared Ray.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from snas.cli import main
from snas.core.budget import CostModel, DensityBudget
from snas.core.errors import ConfigError
from snas.results import pareto_front
from snas.searchers import SEARCHERS, DensitySpace, make_searcher
from snas.store import ResultsStore

ROOT = Path(__file__).resolve().parents[2]
DIGITS = str(ROOT / "search_spaces" / "mlp_digits.yaml")
# The digits MLP of width 32 (64 -> 32 x4 -> 10): five layers, the middle three equal.
NUMEL = (64 * 32, 32 * 32, 32 * 32, 32 * 32, 32 * 10)
NAMES = tuple(f"d_{i:02d}" for i in range(len(NUMEL)))


def weights_model() -> CostModel:
    return CostModel(NUMEL, (1,) * len(NUMEL), "weights")


# ---------------------------------------------------------------------------------------
# Cost model


@pytest.mark.parametrize("kernel", ["random", "dnw", "edge_popup", "set"])
def test_cost_model_predicts_what_a_trained_network_keeps(kernel):
    import torch

    from snas.core.config import load_space
    from trainables.kernels import make_kernel
    from trainables.models import build_model, maskable_layers

    space = load_space(DIGITS, ["model.width=32", f"kernel.name={kernel}"])
    rng = random.Random(kernel)
    model_cost = weights_model()
    for _ in range(5):
        density = [rng.choice([rng.uniform(0.001, 1.0), 0.5, 1.0, 1e-4]) for _ in NUMEL]
        model = build_model(space.model, make_kernel(space.kernel), (1, 8, 8), 10, density,
                            torch.Generator().manual_seed(0))
        active = sum(layer.active_weights for _, layer in maskable_layers(model))
        assert active == model_cost.cost(density)


def test_cost_counts_exact_kept_weights_and_flops():
    model = CostModel((10, 100, 7), (1, 16, 1), "flops")
    # 0.25*10 = 2.5 rounds to 2 (ties to even), 0.5*100 = 50, 0.01*7 -> at least 1.
    assert model.cost([0.25, 0.5, 0.01]) == 2 * 1 + 50 * 16 + 1 * 1
    assert model.dense_cost == 10 + 1600 + 7
    assert CostModel((10, 100, 7), (1, 16, 1), "weights").cost([0.25, 0.5, 0.01]) == 53
    assert model.cost(0.5) == model.cost([0.5, 0.5, 0.5])  # a scalar is a uniform vector
    with pytest.raises(ConfigError, match="budget.resource must be one of weights, flops"):
        CostModel((1,), (1,), "params")


def test_output_positions_of_a_conv_model():
    import torch

    from snas.core.config import load_space
    from trainables.kernels import make_kernel
    from trainables.models import build_model, layer_specs, output_positions

    space = load_space(ROOT / "search_spaces" / "cnn_mnist5k.yaml")
    model = build_model(space.model, make_kernel(space.kernel), (1, 28, 28), 10, 1.0,
                        torch.Generator().manual_seed(0))
    positions = output_positions(model, (1, 28, 28))
    specs = layer_specs(model)
    assert len(positions) == len(specs)
    for spec, p in zip(specs, positions, strict=True):
        if len(spec.shape) == 2:
            assert p == 1  # Linear
        else:
            assert p > 1 and int(p ** 0.5) ** 2 == p  # square feature maps of a conv
    assert positions[0] == 28 * 28 or positions[0] == 14 * 14


# ---------------------------------------------------------------------------------------
# Projection


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.6])
def test_projection_fits_the_budget_and_is_the_nearest_point(fraction):
    budget = DensityBudget(weights_model(), fraction)
    rng = np.random.default_rng(1)
    dense = budget.model.dense_cost
    w = np.array(NUMEL) / dense
    for _ in range(20):
        x = rng.uniform(0.05, 1.0, len(NUMEL))
        p = np.array(budget.project(x.tolist(), 0.05, 1.0))
        assert budget.allows(p.tolist())
        assert np.all(p >= 0.05) and np.all(p <= 1.0)
        if budget.allows(x.tolist()):
            np.testing.assert_allclose(p, x)
            continue
        # The nearest point of the (continuous) half-space within the box: scipy agrees to
        # within the rounding of weight counts.
        ref = minimize(lambda y: ((y - x) ** 2).sum(), x0=np.full(len(x), 0.05),
                       jac=lambda y: 2 * (y - x), bounds=[(0.05, 1.0)] * len(x),
                       constraints=[{"type": "ineq", "fun": lambda y: fraction - w @ y,
                                     "jac": lambda y: -w}], method="SLSQP")
        np.testing.assert_allclose(p, ref.x, atol=2e-3)
        # And it spends the budget: one more weight anywhere would not fit (up to rounding).
        assert budget.model.fraction(p.tolist()) > fraction - 2 * len(NUMEL) / dense


def test_projection_of_a_uniform_density():
    budget = DensityBudget(weights_model(), 0.25)
    (d,) = budget.project([0.9], 0.05, 1.0)
    assert budget.allows(d)
    assert d == pytest.approx(0.25, abs=1e-3)


def test_infeasible_budget_is_a_config_error():
    budget = DensityBudget(weights_model(), 0.01)
    with pytest.raises(ConfigError, match=r"budget.max_fraction=0.01 is below the cheapest "
                       r"network the density range allows .*density.low=0.05"):
        budget.check_feasible(0.05)
    with pytest.raises(ConfigError, match=r"budget.max_fraction must be a number in \(0, 1\]"):
        DensityBudget(weights_model(), 1.5)


# ---------------------------------------------------------------------------------------
# Searchers


@pytest.mark.parametrize("name", sorted(SEARCHERS))
def test_every_searcher_keeps_every_suggestion_within_the_budget(name):
    budget = DensityBudget(weights_model(), 0.2)
    searcher = make_searcher(name, DensitySpace(NAMES, 0.05, 1.0), metric="val_accuracy",
                             mode="max", seed=0, dense_baseline=False, budget=budget)
    for i in range(14):
        config = searcher.suggest(f"t{i}")
        vector = [config[n] for n in NAMES]
        assert budget.allows(vector), (i, vector)
        # The learner is told about the vector that trains (the projected one).
        searcher.on_trial_complete(f"t{i}", {"val_accuracy": sum(vector),
                                             "training_iteration": 1})
    inner = getattr(searcher, "searcher", searcher)
    for _, params, _ in inner.observations:
        assert budget.allows([params[n] for n in NAMES])


def test_dense_baseline_over_the_budget_is_refused():
    with pytest.raises(ConfigError, match="the dense baseline is over the budget"):
        make_searcher("random", DensitySpace(NAMES, 0.05, 1.0), metric="val_accuracy",
                      mode="max", seed=0, dense_baseline=True,
                      budget=DensityBudget(weights_model(), 0.5))


def test_multi_objective_optuna_learns_both_objectives():
    searcher = make_searcher("optuna", DensitySpace(NAMES, 0.05, 1.0), metric="val_accuracy",
                             mode="max", seed=0, dense_baseline=False, sampler="nsga2",
                             cost_model=weights_model(), multi_objective=True)
    for i in range(12):
        config = searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"val_accuracy": config["d_00"],
                                             "training_iteration": 1})
    study = searcher.optuna_search_._ot_study
    assert len(study.directions) == 2
    values = [t.values for t in study.trials]
    costs = [v[1] for v in values]
    assert all(0 < c <= 1 for c in costs)
    # The study's own Pareto front is non-dominated in (max accuracy, min cost).
    for a in study.best_trials:
        assert not any(b.values[0] >= a.values[0] and b.values[1] <= a.values[1]
                       and b.values != a.values for b in study.trials)


def test_multi_objective_needs_a_searcher_that_has_it():
    with pytest.raises(ConfigError, match="does not support multi_objective"):
        make_searcher("bayesopt", DensitySpace(NAMES, 0.05, 1.0), metric="val_accuracy",
                      mode="max", seed=0, cost_model=weights_model(), multi_objective=True)
    with pytest.raises(ConfigError, match="search.multi_objective needs search.searcher one "
                       "of optuna, random, got 'bayesopt'"):
        main_config(["search.searcher=bayesopt", "search.multi_objective=true"])


def main_config(overrides):
    from snas.core.config import load_space

    return load_space(DIGITS, overrides)


# ---------------------------------------------------------------------------------------
# Pareto front


def _dominates(a, b):
    return (a["val_accuracy"] >= b["val_accuracy"] and a["active_weights"] <= b["active_weights"]
            and (a["val_accuracy"], a["active_weights"]) != (b["val_accuracy"],
                                                             b["active_weights"]))


def test_pareto_front_equals_brute_force():
    rng = random.Random(3)
    for _ in range(50):
        trials = [{"trial_id": str(i), "status": rng.choice(["terminated"] * 4 + ["stopped"]),
                   "val_accuracy": rng.choice([0.5, 0.6, 0.7, 0.8, None]),
                   "active_weights": rng.randint(1, 8)} for i in range(12)]
        front = pareto_front(trials)
        full = [t for t in trials if t["status"] == "terminated" and t["val_accuracy"] is not None]
        expected = {(t["val_accuracy"], t["active_weights"]) for t in full
                    if not any(_dominates(o, t) for o in full)}
        assert {(t["val_accuracy"], t["active_weights"]) for t in front} == expected
        assert len(front) == len(expected)  # duplicates kept once
        costs = [t["active_weights"] for t in front]
        assert costs == sorted(costs)
        for a, b in itertools.combinations(front, 2):
            assert not _dominates(a, b) and not _dominates(b, a)


# ---------------------------------------------------------------------------------------
# Real searches


def _search(tmp_path, name, *extra):
    url = f"sqlite:///{tmp_path}/r.db"
    code = main(["search", DIGITS, "--name", name, "--store", url, "--storage-path",
                 str(tmp_path / "exp"), "--quiet", "--set", "model.width=32",
                 "--set", "training.epochs=2", "--set", "scheduler.grace_period=1", *extra])
    assert code == 0
    return ResultsStore(url)


def test_budgeted_search_never_trains_over_its_budget(ray_address, tmp_path, capsys):
    store = _search(tmp_path, "budget", "--num-samples", "6", "--searcher", "optuna",
                    "--set", "budget.max_fraction=0.15")
    out = capsys.readouterr().out
    assert "budget 0.15 of the dense network's weights" in out
    assert "dense baseline not trained: it is over the budget" in out
    trials = store.trials("budget")
    assert len(trials) == 6
    for t in trials:
        assert t["active_weights"] <= 0.15 * t["total_weights"], t
        assert not t["is_baseline"]
    # Every epoch record too (the mask never grows past the budget while training).
    epochs = store.epochs_frame("budget")
    assert (epochs["active_weights"] <= 0.15 * epochs["total_weights"]).all()
    assert store.get_search("budget")["params"]["budget"] == {"resource": "weights",
                                                              "max_fraction": 0.15}


def test_impossible_budget_fails_before_anything_is_stored(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/r.db"
    code = main(["search", DIGITS, "--name", "nope", "--store", url, "--storage-path",
                 str(tmp_path / "exp"), "--set", "budget.max_fraction=0.01"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "budget.max_fraction=0.01 is below the cheapest" in err
    assert ResultsStore(url).get_search("nope") is None


def test_multi_objective_search_stores_and_exports_a_non_dominated_front(
        ray_address, tmp_path, capsys):
    store = _search(tmp_path, "pareto", "--num-samples", "7", "--searcher", "optuna",
                    "--set", "search.multi_objective=true", "--set", "search.sampler=random",
                    "--set", "scheduler.name=fifo")
    out = capsys.readouterr().out
    assert "Pareto front (" in out
    stored = store.get_search("pareto")["params"]["pareto_front"]
    trials = {t["trial_id"]: t for t in store.trials("pareto")}
    front = [trials[i] for i in stored]
    assert front
    finished = [t for t in trials.values() if t["status"] == "terminated"]
    for t in front:
        assert not any(_dominates(o, t) for o in finished)
    for t in finished:  # every finished trial is on the front or dominated by a member
        assert t["trial_id"] in stored or any(
            _dominates(f, t) or (f["val_accuracy"], f["active_weights"])
            == (t["val_accuracy"], t["active_weights"]) for f in front)
    out_file = tmp_path / "front.json"
    assert main(["export", "pareto", "--pareto", "--out", str(out_file), "--store",
                 store.url]) == 0
    doc = json.loads(out_file.read_text())
    assert [t["trial_id"] for t in doc["trials"]] == stored
    assert doc["pareto"]["objectives"] == {"val_accuracy": "max", "active_weights": "min"}
    capsys.readouterr()
    assert main(["show", "pareto", "--store", store.url]) == 0
    shown = capsys.readouterr().out
    assert f"Pareto front ({len(stored)} trials" in shown
    assert all(trial_id in shown.split("Pareto front")[1] for trial_id in stored)


@pytest.mark.parametrize("override, message", [
    ("budget.max_fraction=0", "budget.max_fraction must be a number in (0.0, 1.0], got 0"),
    ("budget.max_fraction=1.2", "budget.max_fraction must be a number in (0.0, 1.0], got 1.2"),
    ("budget.resource=params", "budget.resource must be one of 'weights', 'flops', got "
                               "'params'"),
    ("search.sampler=cmaes", "search.sampler must be one of 'tpe', 'random', 'qmc', 'nsga2', "
                             "got 'cmaes'"),
])
def test_bad_budget_settings_are_one_line_errors(tmp_path, capsys, override, message):
    url = f"sqlite:///{tmp_path}/r.db"
    code = main(["search", DIGITS, "--name", "bad", "--store", url, "--storage-path",
                 str(tmp_path / "exp"), "--set", override])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "exp").exists()


def test_pareto_export_without_finished_trials_is_a_one_line_error(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/r.db"
    store = ResultsStore(url)
    store.create_search("young", "", {}, "optuna", 4, str(tmp_path), {"layers": []})
    store.upsert_trial("young", "t1", density=[0.5], status="running")
    before = store.trials("young")
    out = tmp_path / "front.json"
    code = main(["export", "young", "--pareto", "--out", str(out), "--store", url])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "has no Pareto front yet: no trial has trained every epoch" in err
    assert not out.exists() and store.trials("young") == before
