"""The store callback of an SC-SDC run: :class:`~snas.controller.StoreCallback`, except
that no trial is the search's dense baseline (every dense network is the baseline of its
own pair only) and the progress lines name the network (level, role, width, seed).

Imports Ray (through the controller): the command imports this module inside ``run``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO

from snas.compare.plan import level_label
from snas.compare.stats import METRIC
from snas.controller import StoreCallback
from snas.core import metrics as M


class CompareCallback(StoreCallback):
    """Mirrors an SC-SDC run into the store; one progress line per network that ends.

    Args:
        store_url: the results store to write to.
        search: the stored run's name.
        epochs: epochs every network trains.
        networks: how many networks (trials) the run trains.
        progress: print a line per network that ends.
        out: where progress lines go (default: stdout).
    """

    def __init__(self, store_url: str, search: str, epochs: int, networks: int, *,
                 progress: bool = True, out: TextIO | None = None) -> None:
        # The base class's own lines (ranking by the metric) do not fit pairs: quiet.
        super().__init__(store_url, search, METRIC, "max", epochs, networks, out=out,
                         quiet=True)
        self.progress = progress
        self._done = 0

    def is_baseline(self, config: Mapping[str, Any]) -> bool:
        return False

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        super().on_trial_complete(iteration, trials, trial, **info)
        result = trial.last_result or {}
        value = result.get(METRIC)
        self._line(trial, f"{METRIC} {value:.4f}" if isinstance(value, float)
                   else f"stopped after {result.get(M.EPOCH, 0)} epochs")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        super().on_trial_error(iteration, trials, trial, **info)
        self._line(trial, "failed (snas show NAME --format json has the error)")

    def _line(self, trial: Any, what: str) -> None:
        from trainables.sc_sdc import ROLE_KEY

        self._done += 1
        if not self.progress:
            return
        role = trial.config.get(ROLE_KEY, {})
        level = f"{level_label(role['factors'])}: " if role.get("factors") else ""
        print(f"[{self._done}/{self.num_samples}] {level}{role.get('role', '?'):<6} width "
              f"{role.get('width', '?'):>5}, seed {role.get('seed', '?')}: {what} "
              f"(trial {trial.trial_id})", file=self._out or sys.stdout, flush=True)


__all__ = ["CompareCallback"]
