"""Bayesian optimisation (GP, UCB acquisition) on the bayesian-optimization 3.x API.

Ray's ``BayesOptSearch`` calls ``bayes_opt.UtilityFunction``, which 3.x removed, so this is
our own small searcher. The thesis setting is the default: UCB with ``kappa = 10`` and a
uniform prior over ``[low, high]`` per density.

How a suggestion is made:

- The first ``random_steps`` suggestions (not counting the dense baseline and the warm
  starts, which the base hands out), and any suggestion made before a single observation
  exists, are uniform random draws. Warm starts are learned like any trial: their results
  are observations, and while they run they are constant liars (below).
- After that, a fresh ``BayesianOptimization`` is built from the observations (the
  history is the state; nothing of the library's is pickled), the GP is fitted and UCB is
  maximised. Trials still running are registered as a "constant liar" with the worst score
  seen so far, so that concurrent suggestions do not pile onto the same point. A point
  observed more than once is registered once, with its mean score.
- With ``val_size`` the GP models the scores' noise instead of interpolating them (see
  :func:`binomial_alpha`).

All randomness (warm-up draws, GP restarts, acquisition search) comes from one seeded
``numpy.random.RandomState``; saving it with the history makes a restored searcher continue
exactly as the original would have.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from bayes_opt import BayesianOptimization, acquisition
from sklearn.exceptions import ConvergenceWarning

from snas.searchers._base import DensitySearcher, DensitySpace, check_float, check_int

#: bayes_opt's own GP noise term (a jitter that keeps the kernel matrix invertible).
_JITTER = 1e-6


def binomial_alpha(scores: Sequence[Sequence[float]], val_size: int | None,
                   sign: float = 1.0) -> np.ndarray | None:
    """The GP noise term (sklearn's ``alpha``, one entry per registered point) for
    accuracies measured on ``val_size`` examples, or None: keep bayes_opt's default.

    ``scores[i]`` are the scores observed at registered point ``i`` (its target is their
    mean); ``sign * score`` is the metric (``sign=-1`` for ``mode='min'``, e.g. an error
    rate). A metric ``p`` measured on ``n = val_size`` examples has binomial variance
    ``p (1 - p) / n``, and the mean of ``k`` of them ``p (1 - p) / (n k)``, with ``p`` their
    mean clipped into ``[0, 1]``. bayes_opt's GP normalises the targets (``normalize_y``), so
    the variance is divided by the targets' variance (sklearn's zero guard: 1 when they are
    all equal). It never drops below bayes_opt's jitter ``1e-6``.

    None (the GP interpolates, as without noise) when ``val_size`` is None or some
    ``|score| > 1``: the metric is then not an accuracy-like fraction.
    """
    if val_size is None or not scores or any(abs(v) > 1.0 for vs in scores for v in vs):
        return None
    targets = np.array([np.mean(vs) for vs in scores], dtype=float)
    p = np.clip(sign * targets, 0.0, 1.0)
    counts = np.array([len(vs) for vs in scores], dtype=float)
    std = float(np.std(targets))
    scale = std * std if std >= 10 * np.finfo(float).eps else 1.0
    return np.maximum(p * (1.0 - p) / (val_size * counts) / scale, _JITTER)


class BayesOptSearcher(DensitySearcher):
    """GP + UCB over the density vector.

    Args:
        kappa: UCB exploration weight, ``>= 0`` (thesis: 10).
        random_steps: uniform random suggestions before the GP is used, ``>= 0``.
        **kwargs: see :class:`~snas.searchers.DensitySearcher`.

    Observation noise: validation accuracy measured on ``n`` images has binomial standard
    error ``sqrt(p (1 - p) / n)``, so two trials of one vector rarely score the same. With
    ``val_size=n`` and every ``|score| <= 1`` (the metric is an accuracy-like fraction; for
    ``mode='min'`` the negated score, e.g. an error rate) the GP's noise term is that
    binomial variance at each registered point's observed score, divided by the number of
    observations averaged into it (:func:`binomial_alpha`): the GP smooths the scores instead
    of interpolating them. Otherwise (``val_size`` None, or a metric outside ``[-1, 1]``)
    the GP keeps bayes_opt's ``alpha = 1e-6`` and interpolates. Pending trials' liar points
    count as one observation of the worst score.
    """

    def __init__(self, space: DensitySpace, *, kappa: float = 10.0, random_steps: int = 5,
                 **kwargs) -> None:
        self.kappa = check_float("kappa", kappa, 0.0)
        self.random_steps = check_int("random_steps", random_steps, 0)
        super().__init__(space, **kwargs)
        self.random_state_ = np.random.RandomState(self.seed)
        self.n_proposed_ = 0
        self.gp_alpha_: np.ndarray | None = None

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
        alpha = binomial_alpha(list(scores.values()), self.val_size,
                               sign=1.0 if self._mode == "max" else -1.0)
        if alpha is not None:
            optimizer.set_gp_params(alpha=alpha)
        self.gp_alpha_ = alpha  # what the last fit used (None: bayes_opt's default)
        with warnings.catch_warnings():
            # Few, noisy points often push the GP's length scales to their bounds.
            warnings.simplefilter("ignore", ConvergenceWarning)
            return {name: float(v) for name, v in optimizer.suggest().items()}

    def _observe(self, trial_id: str, params: dict[str, float], score: float | None) -> None:
        """Nothing to do: the base records ``observations_``, which ``_suggest`` reads."""
