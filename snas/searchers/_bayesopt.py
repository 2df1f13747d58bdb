"""Bayesian optimisation (GP, UCB acquisition) on the bayesian-optimization 3.x API.

Ray's ``BayesOptSearch`` calls ``bayes_opt.UtilityFunction``, which 3.x removed, so this is
our own small searcher. The thesis setting is the default: UCB with ``kappa = 10`` and a
uniform prior over ``[low, high]`` per density.

How a suggestion is made:

- The first ``random_steps`` suggestions (not counting the dense baseline), and any
  suggestion made before a single observation exists, are uniform random draws.
- After that, a fresh ``BayesianOptimization`` is built from the observations (the
  history is the state; nothing of the library's is pickled), the GP is fitted and UCB is
  maximised. Trials still running are registered as a "constant liar" with the worst score
  seen so far, so that concurrent suggestions do not pile onto the same point. A point
  observed more than once is registered once, with its mean score.

All randomness (warm-up draws, GP restarts, acquisition search) comes from one seeded
``numpy.random.RandomState``; saving it with the history makes a restored searcher continue
exactly as the original would have.
"""

from __future__ import annotations

import warnings

import numpy as np
from bayes_opt import BayesianOptimization, acquisition
from sklearn.exceptions import ConvergenceWarning

from snas.searchers._base import DensitySearcher, DensitySpace, check_float, check_int


class BayesOptSearcher(DensitySearcher):
    """GP + UCB over the density vector.

    Args:
        kappa: UCB exploration weight, ``>= 0`` (thesis: 10).
        random_steps: uniform random suggestions before the GP is used, ``>= 0``.
        **kwargs: see :class:`~snas.searchers.DensitySearcher`.
    """


    def __init__(self, space: DensitySpace, *, kappa: float = 10.0, random_steps: int = 5,
                 **kwargs) -> None:
        self.kappa = check_float("kappa", kappa, 0.0)
        self.random_steps = check_int("random_steps", random_steps, 0)
        super().__init__(space, **kwargs)
        self.random_state_ = np.random.RandomState(self.seed)
        self.n_proposed_ = 0

    def _suggest(self, trial_id: str) -> dict[str, float]:
        self.n_proposed_ += 1
        space = self.space
        if self.n_proposed_ <= self.random_steps or not self.observations_:
            values = self.random_state_.uniform(space.low, space.high, size=len(space.names))
            return dict(zip(space.names, values.tolist()))
        optimizer = BayesianOptimization(
            f=None,
            pbounds={name: (space.low, space.high) for name in space.names},
            acquisition_function=acquisition.UpperConfidenceBound(kappa=self.kappa),
            random_state=self.random_state_,
            verbose=0,
        )
        # A point seen twice (the dense corner is a common one) is registered once with its
        # mean score: duplicate points make bayes_opt print and the GP ill-conditioned.
        scores: dict[tuple[float, ...], list[float]] = {}
        for _, params, score in self.observations_:
            scores.setdefault(tuple(params[n] for n in space.names), []).append(score)
        liar = min(score for _, _, score in self.observations_)
        for params in self.pending_.values():
            key = tuple(params[n] for n in space.names)
            if key not in scores and space.contains(params):
                scores[key] = [liar]
        for key, values in scores.items():
            optimizer.register(params=dict(zip(space.names, key)), target=float(np.mean(values)))
        with warnings.catch_warnings():
            # Few, noisy points often push the GP's length scales to their bounds.
            warnings.simplefilter("ignore", ConvergenceWarning)
            return {name: float(v) for name, v in optimizer.suggest().items()}

    def _observe(self, trial_id: str, params: dict[str, float], score: float | None) -> None:
        """Nothing to do: the base records ``observations_``, which ``_suggest`` reads."""
