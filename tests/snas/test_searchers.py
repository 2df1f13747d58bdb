"""Contract tests for every registered searcher, plus per-searcher behaviour.

Searchers are driven directly (suggest / on_trial_complete / save / restore): no Ray
instance is started.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from ray.tune.search import ConcurrencyLimiter

from snas.core.budget import CostModel, DensityBudget
from snas.core.errors import ConfigError, SearchError
from snas.searchers import (
    SEARCHERS,
    DensitySearcher,
    DensitySpace,
    is_baseline,
    is_warm_start,
    make_searcher,
)

NAMES = tuple(f"d_{i:02d}" for i in range(3))
SPACE = DensitySpace(NAMES, 0.1, 1.0)
LEARNERS = ("bayesopt", "optuna")  # searchers whose suggestions depend on results
MAX_T = 10
# Warm starts: one inside the space, one to clip into it, one uniform.
WARM = ({"d_00": 0.9, "d_01": 0.5, "d_02": 0.3},
        {"d_00": 1.5, "d_01": 0.05, "d_02": 0.6},
        {"d_00": 0.4, "d_01": 0.4, "d_02": 0.4})


def build(name, space=SPACE, **kwargs):
    kwargs = {"metric": "val_accuracy", "mode": "max", "seed": 0, "dense_baseline": False,
              **kwargs}
    return make_searcher(name, space, **kwargs)


def mean_density(config):
    return sum(config[n] for n in NAMES) / len(NAMES)


def drive(searcher, n, metric=mean_density, start=0, iteration=MAX_T):
    """Suggest and complete ``n`` trials one after another; return the configs."""
    configs = []
    for i in range(start, start + n):
        config = searcher.suggest(f"t{i}")
        configs.append(config)
        searcher.on_trial_complete(f"t{i}", {"val_accuracy": metric(config),
                                              "training_iteration": iteration})
    return configs


# Sequential trials after which each learner's next suggestion is model-based and already
# shaped by the results (bayesopt: 5 random steps, and its GP needs a few more points before
# its fitted length scales stop flattening the posterior; optuna TPE: 10 startup trials).
WARMUP = {"random": 6, "bayesopt": 7, "optuna": 11}


@pytest.fixture(params=sorted(SEARCHERS))
def name(request):
    return request.param


class TestContract:
    def test_suggestions_have_the_space_keys_within_bounds(self, name):
        searcher = build(name)
        assert isinstance(searcher, DensitySearcher)
        searcher.set_search_properties("val_accuracy", "max", {})
        for config in drive(searcher, WARMUP[name] + 1):
            assert set(config) == set(NAMES)
            assert all(isinstance(v, float) and 0.1 <= v <= 1.0 for v in config.values())

    def test_uniform_space_and_narrow_bounds(self, name):
        space = DensitySpace(("density",), 0.2, 0.4)
        searcher = build(name, space=space)
        for i in range(WARMUP[name] + 1):
            config = searcher.suggest(f"t{i}")
            assert set(config) == {"density"} and 0.2 <= config["density"] <= 0.4
            searcher.on_trial_complete(f"t{i}", {"val_accuracy": config["density"]})

    def test_deterministic_for_a_seed(self, name):
        n = WARMUP[name] + 1  # past the warm-up, so learners' model-based phase is covered
        first = drive(build(name), n)
        assert drive(build(name), n) == first
        assert drive(build(name, seed=1), n) != first

    def test_dense_baseline_is_first_and_flagged(self, name):
        searcher = build(name, dense_baseline=True)
        assert searcher.baseline_trial_id is None
        assert searcher.suggest("base") == {n: 1.0 for n in NAMES}
        assert searcher.baseline_trial_id == "base"
        assert searcher.is_baseline("base") and is_baseline(searcher, "base")
        second = searcher.suggest("next")
        assert not searcher.is_baseline("next") and second != {n: 1.0 for n in NAMES}
        assert not build(name).is_baseline("t0")

    def test_baseline_does_not_shift_the_search(self, name):
        # The baseline consumes no randomness: the next suggestions are the same as without.
        with_base = build(name, dense_baseline=True)
        with_base.suggest("base")
        without = build(name)
        assert [with_base.suggest(f"t{i}") for i in range(3)] == \
               [without.suggest(f"t{i}") for i in range(3)]

    def test_baseline_flag_seen_through_concurrency_limiter(self, name):
        searcher = build(name, dense_baseline=True, max_concurrent=2)
        assert isinstance(searcher, ConcurrencyLimiter)
        assert searcher.suggest("a") == {n: 1.0 for n in NAMES}
        assert searcher.suggest("b") is not None
        assert searcher.suggest("c") is None  # limit reached
        assert is_baseline(searcher, "a") and not is_baseline(searcher, "b")
        searcher.on_trial_complete("a", {"val_accuracy": 0.9, "training_iteration": MAX_T})
        assert searcher.suggest("c") is not None

    def test_baseline_result_is_learned_only_inside_the_space(self, name):
        inside = build(name, dense_baseline=True)
        inside.suggest("base")
        inside.on_trial_complete("base", {"val_accuracy": 0.9})
        assert [t for t, _, _ in inside.observations] == ["base"]

        outside = build(name, space=DensitySpace(NAMES, 0.1, 0.5), dense_baseline=True)
        assert outside.suggest("base") == {n: 1.0 for n in NAMES}  # exempt from bounds
        outside.on_trial_complete("base", {"val_accuracy": 0.9})
        assert outside.observations == ()
        for config in drive(outside, WARMUP[name] + 1):
            assert all(0.1 <= v <= 0.5 for v in config.values())

    def test_learning_depends_on_results_only_for_learners(self, name):
        n = WARMUP[name]
        up, down = build(name), build(name)
        drive(up, n, metric=mean_density)
        drive(down, n, metric=lambda c: -mean_density(c))
        assert (up.suggest("next") != down.suggest("next")) == (name in LEARNERS)

    def test_save_restore_continues_the_same_sequence(self, name, tmp_path):
        n = WARMUP[name]
        original = build(name, dense_baseline=True)
        before = drive(original, n)
        pending = original.suggest("pending")  # a trial still running at save time
        path = str(tmp_path / "searcher.pkl")
        original.save(path)

        restored = build(name, dense_baseline=True)
        restored.restore(path)
        assert restored.baseline_trial_id == "t0"  # no second baseline after a resume
        assert restored.observations == original.observations
        assert restored.suggest("pending") == pending  # same config for a re-run trial
        for searcher in (original, restored):
            searcher.on_trial_complete("pending", {"val_accuracy": mean_density(pending)})
        after = drive(original, 3, start=n)
        assert drive(restored, 3, start=n) == after
        assert len(restored.observations) == n + 1 + 3
        assert not any(config in before for config in after)

    def test_save_restore_through_tune_dir_and_limiter(self, name, tmp_path):
        original = build(name, max_concurrent=2)
        drive(original, 3)
        original.save_to_dir(str(tmp_path))  # what Tune calls on the base searcher
        restored = build(name, max_concurrent=2)
        restored.restore_from_dir(str(tmp_path))
        assert restored.searcher.observations == original.searcher.observations
        assert restored.suggest("t3") == original.suggest("t3")

    def test_restore_refuses_another_search(self, name, tmp_path):
        path = str(tmp_path / "searcher.pkl")
        drive(build(name), 2)
        build(name).save(path)
        other = build(name, space=DensitySpace(NAMES, 0.2, 1.0))
        with pytest.raises(SearchError, match="cannot resume: the checkpoint's searcher space"):
            other.restore(path)
        with pytest.raises(SearchError, match="metric"):
            build(name, metric="loss").restore(path)
        missing = str(tmp_path / "missing.pkl")
        with pytest.raises(SearchError, match="cannot read searcher checkpoint"):
            build(name).restore(missing)

    def test_failed_and_empty_completions_learn_nothing(self, name):
        searcher = build(name)
        searcher.suggest("err")
        searcher.on_trial_complete("err", result=None, error=True)
        searcher.suggest("err2")
        searcher.on_trial_complete("err2", {"val_accuracy": 0.5}, error=True)
        searcher.suggest("none")
        searcher.on_trial_complete("none")  # removed before it reported
        searcher.suggest("nan")
        searcher.on_trial_complete("nan", {"val_accuracy": math.nan})
        searcher.suggest("nometric")
        searcher.on_trial_complete("nometric", {"loss": 0.3})
        searcher.on_trial_complete("never-suggested", {"val_accuracy": 0.5})
        assert searcher.observations == ()
        drive(searcher, WARMUP[name] + 1)  # still works, also in the model-based phase
        searcher.on_trial_complete("t0", {"val_accuracy": 0.1})  # duplicate: ignored
        assert len(searcher.observations) == WARMUP[name] + 1

    def test_mode_min_learns_the_negated_metric(self, name):
        searcher = build(name, mode="min")
        configs = drive(searcher, 2)
        assert [s for _, _, s in searcher.observations] == [-mean_density(c) for c in configs]

    def test_asha_stopped_trials_are_learned_by_default(self, name):
        searcher = build(name)
        config = searcher.suggest("stopped")
        searcher.on_trial_complete("stopped", {"val_accuracy": 0.3, "training_iteration": 1})
        assert searcher.observations == (("stopped", config, 0.3),)

    def test_asha_stopped_trials_ignored_when_asked(self, name):
        searcher = build(name, learn_from_stopped=False, max_t=MAX_T)
        searcher.suggest("stopped")
        searcher.on_trial_complete("stopped", {"val_accuracy": 0.3, "training_iteration": 3})
        searcher.suggest("no-iteration")
        searcher.on_trial_complete("no-iteration", {"val_accuracy": 0.3})
        full = searcher.suggest("full")
        searcher.on_trial_complete("full", {"val_accuracy": 0.8, "training_iteration": MAX_T})
        assert searcher.observations == (("full", full, 0.8),)

    def test_learn_from_stopped_false_needs_max_t(self, name):
        with pytest.raises(ConfigError, match="max_t .* is required when learn_from_stopped"):
            build(name, learn_from_stopped=False)

    def test_conflicting_tune_metric_is_an_error(self, name):
        searcher = build(name)
        assert searcher.set_search_properties(None, None, {}) is False
        with pytest.raises(ConfigError, match="metric is 'val_accuracy' but Tune was given"):
            searcher.set_search_properties("loss", "max", {})

    @pytest.mark.parametrize("kwargs, message", [
        ({"mode": "up"}, "mode must be 'max' or 'min', got 'up'"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"metric": ""}, "metric must be a non-empty string, got ''"),
        ({"max_concurrent": 0}, "max_concurrent must be an integer >= 1 or None, got 0"),
        ({"max_t": 0}, "max_t must be an integer >= 1 or None, got 0"),
    ])
    def test_constructor_validation(self, name, kwargs, message):
        with pytest.raises(ConfigError) as info:
            build(name, **kwargs)
        assert str(info.value) == message

    def test_warm_starts_follow_the_baseline_in_order(self, name):
        searcher = build(name, dense_baseline=True, warm_start=WARM)
        assert searcher.suggest("base") == {n: 1.0 for n in NAMES}
        configs = [searcher.suggest(f"w{i}") for i in range(len(WARM))]
        # Clipped to [low, high] like any suggestion.
        assert configs == [{n: min(1.0, max(0.1, w[n])) for n in NAMES} for w in WARM]
        assert searcher.warm_start_trial_ids == ("w0", "w1", "w2")
        assert searcher.is_warm_start("w1") and is_warm_start(searcher, "w1")
        assert not searcher.is_warm_start("base") and not searcher.is_baseline("w0")
        # They draw no random numbers: the searcher's own suggestions follow unchanged.
        after = searcher.suggest("next")
        assert not searcher.is_warm_start("next")
        assert after == build(name).suggest("t0")
        # Without a baseline they come first; their results are learned like any trial's.
        first = build(name, warm_start=WARM)
        assert first.suggest("a") == configs[0] and first.warm_start_trial_ids == ("a",)
        first.on_trial_complete("a", {"val_accuracy": 0.7, "training_iteration": MAX_T})
        assert first.observations == (("a", configs[0], 0.7),)

    def test_warm_starts_are_projected_onto_the_budget(self, name):
        budget = DensityBudget(CostModel((100, 200, 300), (1, 1, 1), "weights"), 0.35)
        searcher = build(name, budget=budget, warm_start=WARM)
        configs = []
        for i, warm in enumerate(WARM):
            configs.append(searcher.suggest(f"w{i}"))
            vector = [configs[-1][n] for n in NAMES]
            clipped = [min(1.0, max(0.1, warm[n])) for n in NAMES]
            assert not budget.allows(clipped)  # each warm start is over the budget
            assert vector == budget.project(clipped, 0.1, 1.0) and budget.allows(vector)
            searcher.on_trial_complete(f"w{i}", {"val_accuracy": 0.5})
        # What trained is what is learned.
        assert [p for _, p, _ in searcher.observations] == configs

    def test_save_restore_mid_warm_start(self, name, tmp_path):
        original = build(name, dense_baseline=True, warm_start=WARM)
        drive(original, 2)  # the baseline and the first warm start
        pending = original.suggest("pending")  # the second warm start, still running
        path = str(tmp_path / "searcher.pkl")
        original.save(path)

        restored = build(name, dense_baseline=True, warm_start=WARM)
        restored.restore(path)
        assert restored.warm_start_trial_ids == ("t1", "pending")
        assert restored.suggest("pending") == pending
        for searcher in (original, restored):
            searcher.on_trial_complete("pending", {"val_accuracy": mean_density(pending)})
        after = drive(original, 3, start=2)
        assert drive(restored, 3, start=2) == after
        # The third warm start comes next, once: no warm start is handed out twice.
        assert after[0] == WARM[2]
        assert restored.warm_start_trial_ids == ("t1", "pending", "t2")
        assert WARM[0] not in after[1:] and WARM[1] not in after[1:]
        assert restored.observations == original.observations

        other = build(name, dense_baseline=True, warm_start=WARM[:1])
        with pytest.raises(SearchError, match="checkpoint's searcher warm_start"):
            other.restore(path)

    def test_val_size_is_accepted(self, name):
        searcher = build(name, val_size=500)
        assert searcher.val_size == 500
        drive(searcher, 2)
        with pytest.raises(ConfigError, match="val_size must be an integer >= 1 or None"):
            build(name, val_size=0)


def test_registry_matches_config_names():
    SEARCHER_NAMES = [name for name in SEARCHERS if SEARCHERS.options(name) is not None]
    assert sorted(SEARCHERS) == sorted(SEARCHER_NAMES)


def test_unknown_searcher_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        build("grid")
    assert str(info.value) == "unknown searcher 'grid'; choose one of bayesopt, optuna, random"


@pytest.mark.parametrize("kwargs, message", [
    ({"names": ()}, "names must be a non-empty tuple of unique non-empty strings, got ()"),
    ({"names": ("a", "a")}, "names must be a non-empty tuple of unique non-empty strings"),
    ({"low": 0.0}, "low must be a number in (0, 1], got 0.0"),
    ({"high": 1.5}, "high must be a number in [low, 1] = [0.1, 1], got 1.5"),
    ({"high": 0.05}, "high must be a number in [low, 1] = [0.1, 1], got 0.05"),
])
def test_density_space_validation(kwargs, message):
    with pytest.raises(ConfigError) as info:
        DensitySpace(**{"names": NAMES, "low": 0.1, "high": 1.0, **kwargs})
    assert str(info.value).startswith(message)


def test_bayesopt_kappa_validated():
    with pytest.raises(ConfigError, match=r"kappa must be a finite number >= 0.0, got -1"):
        build("bayesopt", kappa=-1)


def test_bayesopt_exploits_what_it_learned():
    # Low kappa = exploitation: after learning "denser is better" it proposes dense vectors.
    searcher = build("bayesopt", kappa=0.1)
    configs = drive(searcher, WARMUP["bayesopt"])
    learned = searcher.suggest("next")
    assert mean_density(learned) > max(mean_density(c) for c in configs)

    searcher = build("bayesopt", kappa=0.1, mode="min")
    configs = drive(searcher, WARMUP["bayesopt"])
    assert mean_density(searcher.suggest("next")) < min(mean_density(c) for c in configs)


def test_bayesopt_spreads_concurrent_suggestions():
    # Pending trials are registered as constant liars: no identical concurrent suggestions.
    searcher = build("bayesopt", kappa=0.1)
    drive(searcher, WARMUP["bayesopt"])
    concurrent = [searcher.suggest(f"c{i}") for i in range(3)]
    assert len({tuple(c.values()) for c in concurrent}) == 3


def test_optuna_samplers():
    from snas.searchers._optuna import OPTUNA_SAMPLERS

    assert sorted(OPTUNA_SAMPLERS) == ["nsga2", "qmc", "random", "tpe"]
    for sampler in OPTUNA_SAMPLERS:
        first = drive(build("optuna", sampler=sampler), 3)
        assert drive(build("optuna", sampler=sampler), 3) == first
    with pytest.raises(ConfigError) as info:
        build("optuna", sampler="cmaes")
    assert str(info.value) == ("sampler must be one of nsga2, qmc, random, tpe, got 'cmaes' "
                               "(cmaes needs the cmaes package)")


def test_optuna_tells_ignored_trials_as_failed():
    import optuna

    searcher = build("optuna", learn_from_stopped=False, max_t=MAX_T)
    searcher.suggest("stopped")
    searcher.on_trial_complete("stopped", {"val_accuracy": 0.3, "training_iteration": 1})
    searcher.suggest("error")
    searcher.on_trial_complete("error", error=True)
    searcher.suggest("full")
    searcher.on_trial_complete("full", {"val_accuracy": 0.8, "training_iteration": MAX_T})
    study = searcher.optuna_search_._ot_study
    states = [t.state for t in study.get_trials(deepcopy=False)]
    fail, complete = optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE
    assert states == [fail, fail, complete]


@pytest.mark.parametrize("warm_start, message", [
    ([{"d_00": 0.5, "d_01": 0.5}], "warm_start[0] must have exactly the names d_00, d_01, "
                                   "d_02, got d_00, d_01"),
    ([WARM[0], {**WARM[0], "d_09": 0.5}], "warm_start[1] must have exactly the names d_00, "
                                          "d_01, d_02, got d_00, d_01, d_02, d_09"),
    ([{**WARM[0], "d_01": math.nan}], "warm_start[0]['d_01'] must be a finite number, got nan"),
    ([{**WARM[0], "d_02": "0.5"}], "warm_start[0]['d_02'] must be a finite number, got '0.5'"),
    ([{**WARM[0], "d_00": True}], "warm_start[0]['d_00'] must be a finite number, got True"),
    ([[0.5, 0.5, 0.5]], "warm_start[0] must be a mapping of name to density, "
                        "got [0.5, 0.5, 0.5]"),
    (WARM[0], "warm_start must be a sequence of density configs, got {"),
])
def test_bad_warm_start_is_a_one_line_error(warm_start, message):
    with pytest.raises(ConfigError) as info:
        build("random", warm_start=warm_start)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize("multi_objective", [False, True])
def test_optuna_study_holds_warm_starts_with_their_scores(multi_objective):
    import optuna

    kwargs = ({"multi_objective": True, "cost_model": CostModel((100, 200, 300), (1, 1, 1),
                                                                  "weights")}
              if multi_objective else {})
    searcher = build("optuna", dense_baseline=True, warm_start=WARM, **kwargs)
    configs = [searcher.suggest(f"t{i}") for i in range(1 + len(WARM))]
    study = searcher.optuna_search_._ot_study
    running = study.get_trials(deepcopy=False)
    # Each warm start is a trial of the study while it trains (the baseline is added later).
    assert [t.params for t in running] == configs[1:]
    assert all(t.state == optuna.trial.TrialState.RUNNING for t in running)
    scores = [0.9, 0.6, 0.5, 0.4]
    for i, score in enumerate(scores):
        searcher.on_trial_complete(f"t{i}", {"val_accuracy": score, "training_iteration": 1})
    trials = {tuple(t.params.values()): t for t in study.get_trials(deepcopy=False)}
    assert len(trials) == 1 + len(WARM)
    for config, score in zip(configs, scores, strict=True):
        trial = trials[tuple(config.values())]
        assert trial.state == optuna.trial.TrialState.COMPLETE
        expected = [score, searcher.cost(config)] if multi_objective else [score]
        assert trial.values == pytest.approx(expected)
    drive(searcher, 2, start=len(scores))  # the sampler goes on from them


def test_optuna_failed_warm_start_is_told_failed():
    import optuna

    searcher = build("optuna", warm_start=WARM[:1])
    searcher.suggest("w")
    searcher.on_trial_complete("w", error=True)
    (trial,) = searcher.optuna_search_._ot_study.get_trials(deepcopy=False)
    assert trial.state == optuna.trial.TrialState.FAIL and searcher.observations == ()


def bayesopt(**kwargs):
    """A BayesOptSearcher with every GP-phase knob (``random_steps`` is no catalog option)."""
    from snas.searchers._bayesopt import BayesOptSearcher

    kwargs = {"metric": "val_accuracy", "mode": "max", "seed": 0, "dense_baseline": False,
              "random_steps": 0, **kwargs}
    return BayesOptSearcher(SPACE, **kwargs)


class _Recorder:
    """Records every ``BayesianOptimization`` the bayesopt searcher builds."""

    def __init__(self, monkeypatch):
        import snas.searchers._bayesopt as module

        self.built = []
        recorder, original = self, module.BayesianOptimization

        class Recording(original):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                recorder.built.append(self)

        monkeypatch.setattr(module, "BayesianOptimization", Recording)


def test_bayesopt_learns_from_warm_starts(monkeypatch):
    recorder = _Recorder(monkeypatch)
    searcher = bayesopt(warm_start=WARM)
    configs = drive(searcher, len(WARM))
    assert [(t, p) for t, p, _ in searcher.observations] == \
           [(f"t{i}", c) for i, c in enumerate(configs)]
    searcher.suggest("next")  # model-based at once: random_steps=0
    (optimizer,) = recorder.built
    registered = {tuple(row) for row in optimizer.space.params.tolist()}
    assert registered == {tuple(c[n] for n in NAMES) for c in configs}


def test_binomial_alpha():
    from snas.searchers._bayesopt import binomial_alpha

    # Targets 0.9 (mean of two) and 0.5: var(targets) = 0.04.
    alpha = binomial_alpha([[0.8, 1.0], [0.5]], 100)
    assert alpha == pytest.approx([0.09 / 200 / 0.04, 0.25 / 100 / 0.04])
    # mode='min': the metric is -score (an error rate); the variance is the same.
    assert binomial_alpha([[-0.8, -1.0], [-0.5]], 100, sign=-1.0) == pytest.approx(alpha)
    # All targets equal: sklearn does not rescale; p in {0, 1}: bayes_opt's jitter.
    assert binomial_alpha([[0.5], [0.5]], 100) == pytest.approx([0.0025, 0.0025])
    assert binomial_alpha([[1.0], [0.0]], 100) == pytest.approx([1e-6, 1e-6])
    # Not an accuracy, or no val_size: keep bayes_opt's default.
    assert binomial_alpha([[0.5], [2.0]], 100) is None
    assert binomial_alpha([[0.5], [0.6]], None) is None


def test_bayesopt_gp_models_the_binomial_noise(monkeypatch):
    from snas.searchers._bayesopt import binomial_alpha

    recorder = _Recorder(monkeypatch)
    # The same vector observed twice with different scores, then two more points.
    point = {n: 0.5 for n in NAMES}
    searcher = bayesopt(val_size=200, warm_start=[point, point, WARM[0], WARM[2]])
    scores = iter([0.61, 0.69, 0.8, 0.55])
    drive(searcher, 4, metric=lambda config: next(scores))
    config = searcher.suggest("next")
    assert SPACE.contains(config)
    (optimizer,) = recorder.built
    expected = binomial_alpha([[0.61, 0.69], [0.8], [0.55]], 200)
    assert optimizer._gp.alpha == pytest.approx(expected)
    assert searcher.gp_alpha_ == pytest.approx(expected)

    # Without val_size, or for a metric that is no accuracy, the GP keeps bayes_opt's alpha.
    for kwargs, metric in (({}, lambda c: 0.5), ({"val_size": 200}, lambda c: 3.0)):
        recorder.built.clear()
        searcher = bayesopt(warm_start=[point, WARM[0]], **kwargs)
        drive(searcher, 2, metric=metric)
        searcher.suggest("next")
        assert recorder.built[0]._gp.alpha == 1e-6 and searcher.gp_alpha_ is None


def test_searchers_do_not_import_torch():
    code = ("import sys\n"
            "from snas.searchers import SEARCHERS, DensitySpace, make_searcher\n"
            "for name in SEARCHERS:\n"
            "    s = make_searcher(name, DensitySpace(('d',), 0.1, 1.0), metric='m', mode='max',"
            " seed=0)\n"
            "    s.suggest('a'); s.on_trial_complete('a', {'m': 1.0})\n"
            "    s.suggest('b')\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
