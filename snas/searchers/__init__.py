"""Searchers: Ray Tune ``Searcher`` objects that propose density vectors.

``make_searcher(name, space, ...)`` builds one by name from :data:`SEARCHERS` (the
registry in :mod:`snas.core.catalog`, where each searcher's options class lives):

- ``random``: seeded uniform sampling (the thesis baseline algorithm);
- ``bayesopt``: GP + UCB (``kappa``, thesis default 10) on bayesian-optimization 3.x;
- ``optuna``: an Optuna sampler (``sampler``: tpe, random, qmc) via Ray's ``OptunaSearch``.

``suggest(trial_id)`` returns ``{name: density}`` for every name of the
:class:`DensitySpace`, within ``[low, high]``; the config holds nothing else. Every searcher
follows the same policies (implemented once, in :class:`DensitySearcher`):

Dense baseline
    With ``dense_baseline=True`` the first suggestion is every density 1.0 (it may lie
    above ``high``: the baseline is exempt from the bounds). It is one of Tune's
    ``num_samples``. It is flagged by trial id, never inside the config:
    ``searcher.baseline_trial_id`` / ``searcher.is_baseline(trial_id)`` on the searcher, or
    :func:`is_baseline(searcher, trial_id) <is_baseline>`, which also sees through a
    ``ConcurrencyLimiter``. Its result is learned from like any other trial when 1.0 lies in
    ``[low, high]`` (i.e. ``high == 1``); otherwise it is outside the learners' domain and
    is not registered.

Warm starts
    ``warm_start=`` (density configs, each with exactly the space's names and finite
    values, else a :class:`~snas.core.errors.ConfigError` naming ``warm_start[i]``) are
    the next suggestions after the baseline (the first without one), in the given order,
    each one of Tune's ``num_samples``. Each is clipped to ``[low, high]`` and projected
    onto the budget like any suggestion, so what trains is what is learned. They draw no
    random numbers, so the searcher's own suggestions that follow are the ones it would have
    made without them, until results differ (except Optuna's ``qmc``: its Sobol index counts
    every trial of the study).
    Every searcher learns from their results like any trial's: Optuna's study holds them as
    its own trials (enqueued and asked, then told), BayesOpt registers them as observations;
    random search evaluates them and learns nothing, as always. Their trial ids are
    remembered (``searcher.warm_start_trial_ids``, ``searcher.is_warm_start(trial_id)``, or
    :func:`is_warm_start(searcher, trial_id) <is_warm_start>` through a limiter).

What is learned from a completed trial (``on_trial_complete``)
    - ``error=True``, no result, a missing or non-finite metric: nothing. Failed trials
      never crash a searcher and never reach a learner (Optuna is told FAIL).
    - ASHA early stops: Tune reports a stopped trial's last, low-fidelity result, which
      looks like any other completion (``done`` is True for both). With
      ``learn_from_stopped=True`` (default) that last metric is learned as the trial's
      value: it is real, if pessimistic, evidence that the vector is poor. With
      ``learn_from_stopped=False`` (needs ``max_t``, the iterations of a full trial) only
      results with ``training_iteration >= max_t`` are learned; the rest, and results
      without ``training_iteration``, are ignored.
    - Intermediate results (``on_trial_result``) are not used.
    - ``searcher.observations`` lists ``(trial_id, config, score)`` of what was learned,
      ``score`` being the metric, negated for ``mode='min'``: learners always maximise.

Save and restore
    ``save(path)``/``restore(path)`` keep the RNG state, the observations, the pending
    trials, the baseline flag and the warm-start trial ids: a restored searcher continues
    the exact sequence the original would have produced, and hands no warm start out twice.
    Restoring a checkpoint of another searcher, space, metric, mode, sampler or warm-start
    list raises :class:`~snas.core.errors.SearchError`.

Observation noise
    ``val_size=`` (the number of validation examples the metric is measured on) is taken
    by every searcher; BayesOpt uses it to give its GP the binomial noise of an accuracy,
    ``p (1 - p) / val_size``, so that it smooths noisy scores instead of interpolating them
    (see :class:`~snas.searchers._bayesopt.BayesOptSearcher`).

Budgets and two objectives
    ``budget=`` (a :class:`~snas.core.budget.DensityBudget`) caps every suggestion's cost: a
    suggestion over the cap is projected onto it (the nearest vector within the cap, see
    :mod:`snas.core.budget`) before Tune sees it, so no trial trains over the budget, and the
    learner hears the score of the vector that trained. The dense baseline must fit.
    ``multi_objective=True`` (``optuna``, ``random``) also minimises the cost fraction
    given by ``cost_model``: Optuna runs a two-direction study.

``max_concurrent`` wraps the searcher in Ray's ``ConcurrencyLimiter``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ray.tune.search import ConcurrencyLimiter, Searcher

from snas.core.budget import CostModel, DensityBudget
from snas.core.catalog import SEARCHERS
from snas.core.schema import to_dict
from snas.searchers._base import (
    DensitySearcher,
    DensitySpace,
    check_int,
    is_baseline,
    is_warm_start,
)


def make_searcher(name: str, space: DensitySpace, *, metric: str, mode: str, seed: int,
                  options: Any = None, dense_baseline: bool = True,
                  max_concurrent: int | None = None, learn_from_stopped: bool = True,
                  max_t: int | None = None, budget: DensityBudget | None = None,
                  cost_model: CostModel | None = None, multi_objective: bool = False,
                  warm_start: Sequence[Mapping[str, float]] = (),
                  val_size: int | None = None, **option_values: Any) -> Searcher:
    """Build searcher ``name`` (registered in :data:`SEARCHERS`) over ``space``.

    ``options``: the searcher's options dataclass (``space.search.searcher.options``);
    ``option_values`` (e.g. ``kappa=5``) override its fields. Values of options the chosen
    searcher does not take are ignored, so callers may pass a superset. Returns the
    :class:`DensitySearcher`, wrapped in a ``ConcurrencyLimiter`` when ``max_concurrent``
    is given. See the module docstring for the policies.
    """
    cls = SEARCHERS[name]
    max_concurrent = check_int("max_concurrent", max_concurrent, 1, allow_none=True)
    values = {**(to_dict(options) if options is not None else {}), **option_values}
    own = {f.name for f in dataclasses.fields(SEARCHERS.options(name))}
    searcher = cls(space, metric=metric, mode=mode, seed=seed, dense_baseline=dense_baseline,
                   learn_from_stopped=learn_from_stopped, max_t=max_t, budget=budget,
                   cost_model=cost_model, multi_objective=multi_objective,
                   warm_start=warm_start, val_size=val_size,
                   **{key: value for key, value in values.items() if key in own})
    if max_concurrent is not None:
        return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    return searcher


__all__ = ["SEARCHERS", "DensitySearcher", "DensitySpace", "is_baseline", "is_warm_start",
           "make_searcher"]
