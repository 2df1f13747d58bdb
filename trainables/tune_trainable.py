"""The Ray Tune trainable: one Tune iteration = one training epoch of a :class:`Trial`.

Wire format (Ray's ``config`` dict, converted here and nowhere else):

- ``space``: a search-space file as plain data (:meth:`SpaceConfig.to_dict`), in the config
  where trials differ in it (``snas confirm``), else bound once for every trial as the
  ``space`` parameter of ``setup`` (``tune.with_parameters``, what a search does);
- density keys from the searcher: ``d_00``, ``d_01``, ... (one per maskable layer, in
  model order) or ``density`` (one scalar for every layer).

Every result carries the epoch's metrics (:mod:`snas.core.metrics`) plus ``density`` (the vector
trained) and ``node_id`` (the Ray node that trained it). The final epoch adds
``test_accuracy``/``test_loss``. Checkpoints (files in :mod:`trainables.checkpoint`) hold
the whole :meth:`Trial.state_dict`: model with masks and scores, optimizer, schedule, RNG
states and history, so retries and ``snas resume`` continue exactly where the checkpoint
was. The trainable asks for them itself (``should_checkpoint`` in a result; Tune saves
one only when asked and after the last epoch, :func:`snas.runner.checkpoint_config`):
after every epoch where the trial may end (:func:`ending_epochs`: the last one, ASHA's
rungs) and after any other epoch that ends ``resources.checkpoint_every_s`` (default
30 s) or more after the trial's last checkpoint (or its start). A trial that is restarted
(its node died, the driver was killed) so repeats at most about that much training; a
checkpoint after every epoch cost a small trial more than the epochs it could save (a
checkpoint write in the trial, its registration, store write and experiment-state save in
the driver). A checkpoint after an ending epoch also holds the trial's wiring record,
computed here from the model in memory, so the driver only stores it; an MLP whose masks
did not change since its last record (a fixed-mask kernel) reuses that record.

The class implements ``reset_config`` so Tune can reuse the actor between trials
(``reuse_actors=True``): starting an actor costs ~2 s here, more than a small MLP trial's
epoch. The dataset is cached per process and shared by every trial the actor runs.

Where a trial's time goes: every result also carries ``time_setup_s`` (building the trial:
config, model, optimizer; the cached dataset is free after the first trial of an actor),
``time_eval_s`` (its test evaluation, final epoch only), the cumulative
``time_checkpoint_s`` of the checkpoints written before it, and the cumulative
``time_wiring_s`` of the wiring records built up to and including its epoch (a record is
built before the result of its epoch is returned, so the last one is counted too;
``benchmarks/search.py`` adds these up).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import ray
import torch
from ray import tune

from snas.core import metrics as M
from snas.core.config import DatasetConfig, SpaceConfig
from trainables import checkpoint
from trainables.checkpoint import CHECKPOINT_FILE  # noqa: F401 - re-exported for callers
from trainables.checkpoint import read_masks as masks_from_checkpoint  # noqa: F401 - same
from trainables.data import DeviceDataset, load_dataset
from trainables.models import output_positions
from trainables.training import Trial, resolve_device
from trainables.wiring_record import record_masks, trial_wiring_record

DENSITY_KEY = "density"


def density_key(index: int) -> str:
    """Config key of the i-th maskable layer's density."""
    return f"d_{index:02d}"


def density_from_config(config: Mapping[str, Any]) -> float | list[float]:
    """The density (scalar or vector) a trial's config asks for."""
    if DENSITY_KEY in config:
        return float(config[DENSITY_KEY])
    keys = sorted(k for k in config if k.startswith("d_") and k[2:].isdigit())
    if not keys:
        return 1.0
    return [float(config[k]) for k in keys]


def ending_epochs(space: SpaceConfig) -> frozenset[int]:
    """The epochs after which the controller's scheduler may end a trial: the last one and,
    under ASHA, its rungs.

    Ray's ASHA (``ray.tune.schedulers.async_hyperband._Bracket``, one bracket, as the
    controller builds it: ``max_t`` = epochs, grace = ``min(grace_period, epochs)``) has
    rungs at ``grace * rf**k`` for ``k < int(log(max_t / grace) / log(rf) + 1)`` and judges
    a trial at a rung on its first result with ``training_iteration >= rung``: one result
    per epoch, so after epoch ``ceil(rung)``. Computed as Ray does (numpy logs, Python
    powers), so float rounding lands on the same epochs.
    """
    epochs = space.training.epochs
    name = space.scheduler.name
    if name == "fifo":
        return frozenset({epochs})
    if name != "asha":
        raise ValueError(f"scheduler.name must be 'asha' or 'fifo', got {name!r}")
    grace = min(space.scheduler.grace_period, epochs)
    rf = space.scheduler.reduction_factor
    rungs = int(np.log(epochs / grace) / np.log(rf) + 1)
    return frozenset({epochs} | {min(epochs, math.ceil(grace * rf**k)) for k in range(rungs)})


@lru_cache(maxsize=4)
def _cached_dataset(dataset: DatasetConfig, device: str) -> DeviceDataset:
    return load_dataset(dataset, device)


class SnasTrainable(tune.Trainable):
    """Trains one density vector; see the module docstring for the config format."""

    #: Build an ending epoch's wiring record in :meth:`step`, so that its time is in the
    #: epoch's result; False: only in :meth:`save_checkpoint` (runs that may keep no
    #: checkpoints, and so want no record).
    wiring_record_in_step = True
    #: This trainable asks for its checkpoints (``should_checkpoint``); the runner then has
    #: Tune save only those and the last, and binds ``checkpoints=False`` for a run that
    #: keeps none (:func:`snas.runner.checkpoint_params`).
    checkpoints_on_request = True

    def setup(self, config: dict[str, Any], space: Mapping[str, Any] | None = None,
              checkpoints: bool = True) -> None:
        """``checkpoints``: False asks for no checkpoint at all (a run that keeps none)."""
        self._space = space
        self._checkpoints = checkpoints
        self._build(config)

    def _build(self, config: Mapping[str, Any]) -> None:
        began = time.perf_counter()
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        space = SpaceConfig.from_dict(config.get("space") or self._space)
        device = resolve_device(space.training.device)
        data = _cached_dataset(space.dataset, str(device))
        self.trial = Trial(space, density_from_config(config), device=device, data=data)
        self._positions = output_positions(self.trial.model, data.input_shape)
        self._ending_epochs = ending_epochs(space)
        self._wiring: tuple[int, Any] = (-1, None)  # (epoch, record) for save_checkpoint
        self._wiring_masks: list[Any] | None = None  # what self._wiring's record was built of
        self._timing = {"time_setup_s": time.perf_counter() - began, "time_checkpoint_s": 0.0,
                        "time_wiring_s": 0.0}
        self._checkpoint_every_s = (space.resources.checkpoint_every_s
                                    if self._checkpoints else None)
        self._last_checkpoint = time.monotonic()  # or the trial's start

    def step(self) -> dict[str, Any]:
        if self.trial.epoch >= self.trial.space.training.epochs and self.trial.history:
            # Restored from the final checkpoint (the driver died between the last epoch
            # and saving its experiment state): report the final epoch again, train no more.
            record = self.trial.history[-1]
        else:
            record = self.trial.run_epoch()
        # The Ray node id tells apart nodes that share an IP (several nodes on one host).
        result = {**record, "density": list(self.trial.density),
                  "node_id": ray.get_runtime_context().get_node_id(), **self._flops()}
        if self.trial.epoch >= self.trial.space.training.epochs:
            began = time.perf_counter()
            result[M.TEST_LOSS], result[M.TEST_ACCURACY] = self.trial.evaluate("test")
            result["time_eval_s"] = time.perf_counter() - began
            result["done"] = True
        if self.wiring_record_in_step and self.trial.epoch in self._ending_epochs:
            self._build_wiring_record()  # for the checkpoint that follows this result
        if self._checkpoint_due() and not result.get("done"):  # Tune saves the last anyway
            result["should_checkpoint"] = True
        return {**result, **self._timing}

    def _checkpoint_due(self) -> bool:
        """Whether the epoch just trained asks for a checkpoint (module docstring)."""
        if self._checkpoint_every_s is None:
            return False
        return (self.trial.epoch in self._ending_epochs
                or time.monotonic() - self._last_checkpoint >= self._checkpoint_every_s)

    def _flops(self) -> dict[str, int]:
        """Multiply-accumulates per example of the maskable layers, active and dense."""
        layers = self.trial.layers
        return {M.ACTIVE_FLOPS: sum(layer.active_weights * p
                                    for layer, p in zip(layers, self._positions, strict=True)),
                M.TOTAL_FLOPS: sum(layer.weight.numel() * p
                                   for layer, p in zip(layers, self._positions, strict=True))}

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        began = time.perf_counter()
        checkpoint.save_state(checkpoint_dir, self.trial.state_dict())
        self._timing["time_checkpoint_s"] += time.perf_counter() - began
        self._last_checkpoint = time.monotonic()
        if self.trial.epoch in self._ending_epochs:
            if self._wiring[0] != self.trial.epoch:  # not built by step() (a direct call)
                self._build_wiring_record()
            if self._wiring[1] is not None:
                checkpoint.write_wiring_record(checkpoint_dir, *self._wiring[1])

    def _build_wiring_record(self) -> None:
        """Build the trial's wiring record (graph, statistics) from the model in memory for
        the checkpoint of this epoch. :meth:`step` does it at an ending epoch, so its time
        is in the result it returns. Where the record depends on the masks alone
        (:func:`~trainables.wiring_record.record_masks`) and they are the masks of the last
        record, that record is reused. A record that fails is None: it must not fail the
        trial (without the file the driver rebuilds it from the checkpoint, and says why
        if it can't)."""
        began = time.perf_counter()
        name = self.trial.space.model.name
        masks = record_masks(self.trial.model, name)
        last = self._wiring_masks
        if (masks is not None and last is not None and self._wiring[1] is not None
                and len(masks) == len(last)
                and all(np.array_equal(a, b) for a, b in zip(masks, last))):
            record = self._wiring[1]
        else:
            try:
                record = trial_wiring_record(self.trial.model, name)
            except Exception:  # noqa: BLE001 - see the docstring
                record = None
        self._wiring, self._wiring_masks = (self.trial.epoch, record), masks
        self._timing["time_wiring_s"] += time.perf_counter() - began

    def load_checkpoint(self, checkpoint_dir: str | dict) -> None:
        directory = checkpoint_dir if isinstance(checkpoint_dir, str) else checkpoint_dir["path"]
        self.trial.load_state_dict(checkpoint.load_state(directory,
                                                         map_location=self.trial.device))

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        self._build(new_config)
        self.config = new_config
        return True
