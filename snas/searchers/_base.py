"""The search space of a density search and the tiny base every searcher shares.

:class:`DensitySpace` describes what is searched: one config key per maskable layer (or one
key for a uniform search), each a density in ``[low, high]``.

:class:`DensitySearcher` is a Ray Tune ``Searcher`` that owns everything the searchers must
do the same way, so that the policies in :mod:`snas.searchers` hold for all of them:

- the dense baseline (first suggestion, all densities 1.0) and how it is flagged;
- warm starts (given density vectors, handed out right after the baseline) and their flags;
- which completed trials a learner hears about (failed, early-stopped, no metric);
- turning ``mode`` into a score that is always maximised;
- bookkeeping of pending trials and save/restore.

A subclass implements two methods: :meth:`DensitySearcher._suggest` (the next point) and
:meth:`DensitySearcher._observe` (a trial is over; learn from its score, or from nothing);
a learner that must hear of a warm start when it is handed out (Optuna) also overrides
:meth:`DensitySearcher._start_warm`.
Learned state lives in attributes whose names end in ``_`` (scikit-learn style); save and
restore persist exactly those.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ray.tune.search import Searcher

from snas.core.budget import CostModel, DensityBudget
from snas.core.errors import ConfigError, SearchError

_STATE_FORMAT = 1


@dataclass(frozen=True)
class DensitySpace:
    """One density in ``[low, high]`` per name; the names are the trial config keys.

    The controller names per-layer entries ``d_00, d_01, ...``; a uniform search uses the
    single name ``density``. ``0 < low <= high <= 1``.
    """

    names: tuple[str, ...]
    low: float
    high: float

    def __post_init__(self) -> None:
        names = self.names
        if (isinstance(names, str) or not isinstance(names, (tuple, list)) or not names
                or not all(isinstance(n, str) and n for n in names)
                or len(set(names)) != len(names)):
            raise ConfigError(f"names must be a non-empty tuple of unique non-empty strings, "
                              f"got {names!r}")
        object.__setattr__(self, "names", tuple(names))
        low = _real(self.low)
        if low is None or not 0.0 < low <= 1.0:
            raise ConfigError(f"low must be a number in (0, 1], got {self.low!r}")
        high = _real(self.high)
        if high is None or not low <= high <= 1.0:
            raise ConfigError(f"high must be a number in [low, 1] = [{low}, 1], "
                              f"got {self.high!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def includes_dense(self) -> bool:
        """Whether the all-ones vector (the dense baseline) lies inside the space."""
        return self.high >= 1.0

    def dense(self) -> dict[str, float]:
        """The dense baseline: every density 1.0."""
        return {name: 1.0 for name in self.names}

    def contains(self, config: Mapping[str, Any]) -> bool:
        """Whether ``config`` has exactly this space's keys, each within ``[low, high]``."""
        return (set(config) == set(self.names)
                and all(self.low <= float(config[n]) <= self.high for n in self.names))


def _real(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def check_int(name: str, value: Any, low: int, *, allow_none: bool = False) -> int | None:
    """``value`` as an int ``>= low`` (or None when allowed), else a ConfigError naming it."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        extra = " or None" if allow_none else ""
        raise ConfigError(f"{name} must be an integer >= {low}{extra}, got {value!r}")
    return int(value)


def check_warm_start(space: DensitySpace, warm_start: Any) -> tuple[dict[str, float], ...]:
    """``warm_start`` as a tuple of ``{name: density}`` in the space's name order, else a
    one-line ConfigError naming the bad entry (``warm_start[i]``).

    Values are only required to be finite numbers: like any suggestion, each is clipped to
    ``[low, high]`` (and projected onto a budget) when it is handed out.
    """
    if isinstance(warm_start, (str, bytes, Mapping)) or not isinstance(warm_start, Sequence):
        raise ConfigError(f"warm_start must be a sequence of density configs, "
                          f"got {warm_start!r}")
    configs = []
    for i, entry in enumerate(warm_start):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"warm_start[{i}] must be a mapping of name to density, "
                              f"got {entry!r}")
        if set(entry) != set(space.names):
            given = ", ".join(map(str, entry)) or "none"
            raise ConfigError(f"warm_start[{i}] must have exactly the names "
                              f"{', '.join(space.names)}, got {given}")
        for n in space.names:
            if _real(entry[n]) is None:
                raise ConfigError(f"warm_start[{i}][{n!r}] must be a finite number, "
                                  f"got {entry[n]!r}")
        configs.append({n: float(entry[n]) for n in space.names})
    return tuple(configs)


def check_float(name: str, value: Any, low: float) -> float:
    """``value`` as a finite float ``>= low``, else a ConfigError naming it."""
    real = _real(value)
    if real is None or real < low:
        raise ConfigError(f"{name} must be a finite number >= {low}, got {value!r}")
    return real


class DensitySearcher(Searcher):
    """Base of every snas searcher: baseline, result policy, mode, save/restore.

    Args:
        space: what to search.
        metric: the result key to learn from, e.g. ``val_accuracy``.
        mode: ``"max"`` or ``"min"``; learners always maximise ``score`` = +/- metric.
        seed: seeds every random choice; a searcher is deterministic for a seed and a
            sequence of calls.
        dense_baseline: make the first suggestion the dense network (all 1.0).
        learn_from_stopped: whether a trial that ended before ``max_t`` iterations (an
            ASHA early stop) is learned from, with its last (low-fidelity) metric.
        max_t: the iteration count of a full trial; required when ``learn_from_stopped``
            is False.
        budget: a :class:`~snas.core.budget.DensityBudget`: every suggestion over it is
            projected onto it (:meth:`~snas.core.budget.DensityBudget.project`) before it is
            handed out, so the trial config, the store and the learner all see the vector
            that trains. The dense baseline must then fit the budget.
        cost_model: a :class:`~snas.core.budget.CostModel`, required with ``multi_objective``.
        multi_objective: also minimise the cost (``cost_model.fraction`` of the vector).
            Only searchers with ``MULTI_OBJECTIVE = True`` take it.
        warm_start: density configs (exactly the space's names) to evaluate first, right
            after the dense baseline, in order. Each is clipped to ``[low, high]`` and
            projected onto the budget like any suggestion, and learned from like any trial.
        val_size: the number of validation examples the metric is measured on, or None
            (unknown). Searchers that model observation noise (BayesOpt) use it.
    """

    #: Whether the searcher can minimise the cost as a second objective (the catalog's
    #: ``multi_objective`` entry says the same; a contract test checks they agree).
    MULTI_OBJECTIVE: ClassVar[bool] = False

    def __init__(self, space: DensitySpace, *, metric: str, mode: str, seed: int,
                 dense_baseline: bool = True, learn_from_stopped: bool = True,
                 max_t: int | None = None, budget: DensityBudget | None = None,
                 cost_model: CostModel | None = None, multi_objective: bool = False,
                 warm_start: Sequence[Mapping[str, float]] = (),
                 val_size: int | None = None) -> None:
        if not isinstance(space, DensitySpace):
            raise ConfigError(f"space must be a DensitySpace, got {space!r}")
        if not isinstance(metric, str) or not metric:
            raise ConfigError(f"metric must be a non-empty string, got {metric!r}")
        if mode not in ("max", "min"):
            raise ConfigError(f"mode must be 'max' or 'min', got {mode!r}")
        if not isinstance(dense_baseline, bool):
            raise ConfigError(f"dense_baseline must be true or false, got {dense_baseline!r}")
        if not isinstance(learn_from_stopped, bool):
            raise ConfigError(f"learn_from_stopped must be true or false, "
                              f"got {learn_from_stopped!r}")
        self.seed = check_int("seed", seed, 0)
        self.max_t = check_int("max_t", max_t, 1, allow_none=True)
        self.val_size = check_int("val_size", val_size, 1, allow_none=True)
        self.warm_start = check_warm_start(space, warm_start)
        if not learn_from_stopped and self.max_t is None:
            raise ConfigError("max_t (the iterations of a full trial) is required when "
                              "learn_from_stopped is false, got None")
        if budget is not None:
            if not isinstance(budget, DensityBudget):
                raise ConfigError(f"budget must be a DensityBudget or None, got {budget!r}")
            budget.check_feasible(space.low)
            if dense_baseline and not budget.allows(1.0):
                raise ConfigError(f"the dense baseline is over the budget (max_fraction "
                                  f"{budget.max_fraction:g}); set dense_baseline=False")
        if multi_objective:
            if not self.MULTI_OBJECTIVE:
                raise ConfigError(f"{type(self).__name__} does not support multi_objective")
            if not isinstance(cost_model, CostModel):
                raise ConfigError(f"multi_objective needs a CostModel, got {cost_model!r}")
        super().__init__(metric=metric, mode=mode)
        self.space = space
        self.budget = budget
        self.cost_model = cost_model if cost_model is not None else (
            budget.model if budget is not None else None)
        self.multi_objective = bool(multi_objective)
        self.dense_baseline = dense_baseline
        self.learn_from_stopped = learn_from_stopped
        # Learned state (persisted by save/restore).
        self.baseline_trial_id_: str | None = None
        self.warm_start_trial_ids_: list[str] = []  # in warm_start order
        self.pending_: dict[str, dict[str, float]] = {}
        self.observations_: list[tuple[str, dict[str, float], float]] = []

    # ----------------------------------------------------------------------------------
    # What a subclass implements

    def _suggest(self, trial_id: str) -> Mapping[str, float]:
        """The next point to evaluate (every name of the space, within its bounds)."""
        raise NotImplementedError

    def _observe(self, trial_id: str, params: dict[str, float], score: float | None) -> None:
        """Trial ``trial_id`` is over. ``score`` (higher is better) is what to learn, or
        None: learn nothing (failed or ignored). Called once for every suggested trial,
        the baseline included (its ``trial_id`` never came from ``_suggest``)."""
        raise NotImplementedError

    def _start_warm(self, trial_id: str, params: dict[str, float]) -> None:
        """Warm start ``params`` (clipped and projected: what trains) is handed out to
        ``trial_id`` instead of a ``_suggest``. Nothing by default: the completion reaches
        ``_observe`` like any trial's."""

    # ----------------------------------------------------------------------------------
    # Tune Searcher interface

    def set_search_properties(self, metric: str | None, mode: str | None,
                              config: dict, **spec: Any) -> bool:
        """Check Tune's metric/mode agree; the space is fixed, so this returns False."""
        for key, given, own in (("metric", metric, self._metric), ("mode", mode, self._mode)):
            if given is not None and given != own:
                raise ConfigError(f"the searcher's {key} is {own!r} but Tune was given "
                                  f"{key}={given!r}")
        return False

    def suggest(self, trial_id: str) -> dict[str, float] | None:
        self._touch()
        if trial_id in self.pending_:
            return dict(self.pending_[trial_id])
        if self.dense_baseline and self.baseline_trial_id_ is None:
            self.baseline_trial_id_ = trial_id
            params = self.space.dense()
        elif len(self.warm_start_trial_ids_) < len(self.warm_start):
            params = self._feasible(self.warm_start[len(self.warm_start_trial_ids_)])
            self.warm_start_trial_ids_.append(trial_id)
            self._start_warm(trial_id, dict(params))
        else:
            params = self._feasible(self._suggest(trial_id))
        self.pending_[trial_id] = params
        return dict(params)

    def _feasible(self, point: Mapping[str, float]) -> dict[str, float]:
        """``point`` clipped to ``[low, high]`` and projected onto the budget."""
        lo, hi = self.space.low, self.space.high
        # Clip: acquisition optimisers can land a rounding error outside the bounds.
        params = {n: min(hi, max(lo, float(point[n]))) for n in self.space.names}
        if self.budget is not None:
            names = self.space.names
            values = self.budget.project([params[n] for n in names], lo, hi)
            params = dict(zip(names, values, strict=True))
        return params

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Intermediate results are not used: learners hear only the completion."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        self._touch()
        params = self.pending_.pop(trial_id, None)
        if params is None:  # unknown or already completed: nothing to learn
            return
        score = None if error else self._score(result)
        if trial_id == self.baseline_trial_id_ and not self.space.includes_dense:
            score = None  # outside the learners' domain
        if score is not None:
            self.observations_.append((trial_id, dict(params), score))
        self._observe(trial_id, dict(params), score)

    def _score(self, result: Mapping[str, Any] | None) -> float | None:
        """The score to learn from ``result``, or None when the policy says learn nothing."""
        if not result:
            return None
        value = _real(result.get(self._metric))
        if value is None:  # metric missing, not a number, NaN or inf
            return None
        if not self.learn_from_stopped:
            iteration = result.get("training_iteration")
            if not isinstance(iteration, numbers.Real) or iteration < self.max_t:
                return None
        return value if self._mode == "max" else -value

    # ----------------------------------------------------------------------------------
    # Baseline and observations

    @property
    def baseline_trial_id(self) -> str | None:
        """The trial id that received the dense baseline, or None (not yet / disabled)."""
        return self.baseline_trial_id_

    def is_baseline(self, trial_id: str) -> bool:
        """Whether ``trial_id`` is the dense-baseline trial."""
        return trial_id is not None and trial_id == self.baseline_trial_id_

    @property
    def warm_start_trial_ids(self) -> tuple[str, ...]:
        """The trial ids that received the warm starts so far, in ``warm_start`` order."""
        return tuple(self.warm_start_trial_ids_)

    def is_warm_start(self, trial_id: str) -> bool:
        """Whether ``trial_id`` received one of the ``warm_start`` configs."""
        return trial_id in self.warm_start_trial_ids_

    @property
    def observations(self) -> tuple[tuple[str, dict[str, float], float], ...]:
        """``(trial_id, config, score)`` of every trial the learner learned from, in order;
        ``score`` is the metric, negated for ``mode='min'``."""
        return tuple((t, dict(p), s) for t, p, s in self.observations_)

    # ----------------------------------------------------------------------------------
    # Save / restore

    def cost(self, params: Mapping[str, float]) -> float:
        """The cost of a suggested config as a fraction of the dense network's."""
        if self.cost_model is None:
            raise SearchError("this searcher has no cost model")
        return self.cost_model.fraction([float(params[n]) for n in self.space.names])

    def get_state(self) -> dict:
        return self._state(copy.deepcopy)

    def _state(self, copy_learned: Callable[[dict], dict]) -> dict:
        """The state :meth:`set_state` takes, its learned part passed through
        ``copy_learned`` (a deep copy for callers, none for pickling); subclasses add keys."""
        return {
            "format": _STATE_FORMAT,
            "searcher": type(self).__name__,
            "space": (self.space.names, self.space.low, self.space.high),
            "metric": self._metric,
            "mode": self._mode,
            "budget": self.budget,
            "multi_objective": self.multi_objective,
            "warm_start": self.warm_start,
            "learned": copy_learned({k: v for k, v in vars(self).items() if k.endswith("_")}),
        }

    def set_state(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise SearchError("searcher checkpoint has an unknown format")
        own = self.get_state()
        # Checkpoints written before warm starts existed had none.
        state = {"warm_start": (), **state}
        for key in sorted(own.keys() - {"format", "learned"}):
            if state.get(key) != own[key]:
                raise SearchError(f"cannot resume: the checkpoint's searcher {key} is "
                                  f"{state.get(key)!r}, this search has {own[key]!r}")
        vars(self).update(state["learned"])
        self._touch()

    # Tune saves the searcher with every experiment-state save (after every loop step that
    # changed the experiment, snas.ray_session), but the state changes only when a trial is
    # suggested or completes (or is restored): an unchanged state is not pickled again, the
    # file of the last save is still current. ``_version`` counts the changes.
    def _touch(self) -> None:
        self._version = getattr(self, "_version", 0) + 1

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        target = os.path.join(checkpoint_dir, self.CKPT_FILE_TMPL.format(session_str))
        stamp = (target, getattr(self, "_version", 0))
        if getattr(self, "_saved_stamp", None) == stamp and os.path.exists(target):
            return
        super().save_to_dir(checkpoint_dir, session_str)
        self._saved_stamp = stamp

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:  # pickling snapshots it: no deep copy first
            pickle.dump(self._state(lambda learned: learned), f)

    def restore(self, checkpoint_path: str) -> None:
        try:
            with open(checkpoint_path, "rb") as f:
                state = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            raise SearchError(f"cannot read searcher checkpoint {checkpoint_path!r}: "
                              f"{exc}") from None
        self.set_state(state)


def is_baseline(searcher: Searcher, trial_id: str) -> bool:
    """Whether ``trial_id`` got the dense baseline from ``searcher`` or the DensitySearcher
    it wraps (e.g. inside a ``ConcurrencyLimiter``)."""
    while not isinstance(searcher, DensitySearcher) and hasattr(searcher, "searcher"):
        searcher = searcher.searcher
    return isinstance(searcher, DensitySearcher) and searcher.is_baseline(trial_id)


def is_warm_start(searcher: Searcher, trial_id: str) -> bool:
    """Whether ``trial_id`` got a warm start from ``searcher`` or the DensitySearcher it
    wraps (e.g. inside a ``ConcurrencyLimiter``)."""
    while not isinstance(searcher, DensitySearcher) and hasattr(searcher, "searcher"):
        searcher = searcher.searcher
    return isinstance(searcher, DensitySearcher) and searcher.is_warm_start(trial_id)
