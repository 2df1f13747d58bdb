"""Optuna samplers through Ray Tune's ``OptunaSearch``.

The space is one ``FloatDistribution(low, high)`` per name. The study always maximises the
base class's ``score`` (the metric, negated for ``mode='min'``). A trial the policy ignores
(failed, no finite metric, or early-stopped with ``learn_from_stopped=False``) is told to
Optuna as FAIL, the one state its samplers skip. The dense baseline is added as a completed
trial when 1.0 lies in the space (with both values in a multi-objective study).

Warm starts are the study's own trials: each (clipped and projected, as it trains) is
enqueued (``study.enqueue_trial``) and asked at once, so the study holds it as RUNNING while
it trains and is told its result like any asked trial (FAIL when ignored), which works for
one- and two-direction studies alike, and a sampler counts it among its startup trials.

Samplers (``sampler=``), each seeded: ``tpe`` (default), ``random``, ``qmc`` (scrambled
Sobol), ``nsga2`` (genetic; made for multi-objective studies).

``multi_objective=True``: the study has two directions, maximise the score and minimise the
cost (the vector's cost as a fraction of the dense network's, :class:`snas.core.budget.CostModel`,
exact from the densities, so even an early-stopped trial's cost is right). Optuna's samplers
(``tpe``, ``nsga2``, ``random``, ``qmc``) all handle two objectives. Optuna's ``cmaes`` needs the ``cmaes`` package and ``gp`` imports torch, which the
searchers must not, so neither is offered.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna
from optuna.distributions import FloatDistribution
from ray.tune.search.optuna import OptunaSearch

from snas.core.errors import ConfigError, SearchError
from snas.searchers._base import DensitySearcher, DensitySpace

_SCORE = "snas_score"
_COST = "snas_cost"


def _qmc(seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)


OPTUNA_SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "qmc": _qmc,
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
}

_UNAVAILABLE = {"cmaes": "needs the cmaes package", "gp": "imports torch"}


def _quiet_optuna() -> None:
    """Optuna logs every study creation and every told trial at INFO; snas prints its own
    progress. Set when a searcher is built or unpickled (``snas resume``), not at import."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


class OptunaSearcher(DensitySearcher):
    """An Optuna sampler over the density vector.

    Args:
        sampler: one of :data:`OPTUNA_SAMPLERS` (``tpe``, ``random``, ``qmc``).
        **kwargs: see :class:`~snas.searchers.DensitySearcher`.
    """

    MULTI_OBJECTIVE = True

    def __init__(self, space: DensitySpace, *, sampler: str = "tpe", **kwargs) -> None:
        if sampler not in OPTUNA_SAMPLERS:
            why = f" ({sampler} {_UNAVAILABLE[sampler]})" if sampler in _UNAVAILABLE else ""
            raise ConfigError(f"sampler must be one of {', '.join(sorted(OPTUNA_SAMPLERS))}, "
                              f"got {sampler!r}{why}")
        self.sampler = sampler
        super().__init__(space, **kwargs)
        _quiet_optuna()
        self.optuna_search_ = OptunaSearch(
            space={n: FloatDistribution(space.low, space.high) for n in space.names},
            metric=[_SCORE, _COST] if self.multi_objective else _SCORE,
            mode=["max", "min"] if self.multi_objective else "max",
            sampler=OPTUNA_SAMPLERS[sampler](self.seed),
        )
        self.asked_: set[str] = set()

    def __setstate__(self, state: dict) -> None:
        _quiet_optuna()  # a restored experiment unpickles the searcher without __init__
        self.__dict__.update(state)

    def _suggest(self, trial_id: str) -> dict[str, float]:
        self.asked_.add(trial_id)
        return self.optuna_search_.suggest(trial_id)

    def _start_warm(self, trial_id: str, params: dict[str, float]) -> None:
        self.optuna_search_._ot_study.enqueue_trial(params)
        asked = self._suggest(trial_id)  # pops the enqueued trial: its params are ``params``
        if asked != params:  # pragma: no cover - Optuna ignores out-of-range fixed params
            raise SearchError(f"Optuna did not take warm start {params!r}, it asked {asked!r}")

    def _observe(self, trial_id: str, params: dict[str, float], score: float | None) -> None:
        if trial_id in self.asked_:
            self.asked_.discard(trial_id)
            if score is None:
                self.optuna_search_.on_trial_complete(trial_id, None, error=True)
            elif self.multi_objective:
                self.optuna_search_.on_trial_complete(
                    trial_id, {_SCORE: score, _COST: self.cost(params)})
            else:
                self.optuna_search_.on_trial_complete(trial_id, {_SCORE: score})
        elif score is not None:
            # The dense baseline, inside the space. (Not Ray's add_evaluated_point: it takes
            # one value, and a multi-objective study needs two.)
            values = [score, self.cost(params)] if self.multi_objective else [score]
            search = self.optuna_search_
            search._ot_study.add_trial(optuna.trial.create_trial(
                params=params, distributions=search._space, values=values))

    def _state(self, copy_learned: Callable[[dict], dict]) -> dict:
        state = super()._state(copy_learned)
        state["sampler"] = self.sampler
        return state
