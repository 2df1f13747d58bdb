"""Random search: every density drawn independently and uniformly from ``[low, high]``."""

from __future__ import annotations

import numpy as np

from snas.searchers._base import DensitySearcher, DensitySpace


class RandomSearcher(DensitySearcher):
    """Seeded uniform sampling (numpy ``Generator``); results never change what it draws.

    The sequence depends only on the seed and the number of suggestions (the baseline
    draws nothing), so a restored searcher continues exactly where the saved one stopped.
    """

    MULTI_OBJECTIVE = True  # it learns nothing, so two objectives change nothing

    def __init__(self, space: DensitySpace, **kwargs) -> None:
        super().__init__(space, **kwargs)
        self.rng_ = np.random.default_rng(self.seed)

    def _suggest(self, trial_id: str) -> dict[str, float]:
        values = self.rng_.uniform(self.space.low, self.space.high, size=len(self.space.names))
        return dict(zip(self.space.names, values.tolist()))

    def _observe(self, trial_id: str, params: dict[str, float], score: float | None) -> None:
        """Random search learns nothing."""
