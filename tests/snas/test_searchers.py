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

from snas.core.errors import ConfigError, SearchError
from snas.searchers import (
    SEARCHERS,
    DensitySearcher,
    DensitySpace,
    is_baseline,
    make_searcher,
)

NAMES = tuple(f"d_{i:02d}" for i in range(3))
SPACE = DensitySpace(NAMES, 0.1, 1.0)
LEARNERS = ("bayesopt", "optuna")  # searchers whose suggestions depend on results
MAX_T = 10


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
