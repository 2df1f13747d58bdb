"""The Ray Tune trainable: one Tune iteration = one training epoch of a :class:`Trial`.

Wire format (Ray's ``config`` dict, converted here and nowhere else):

- ``space``: a search-space file as plain data (:meth:`SpaceConfig.to_dict`);
- density keys from the searcher: ``d_00``, ``d_01``, ... (one per maskable layer, in
  model order) or ``density`` (one scalar for every layer).

Every result carries the epoch's metrics (:mod:`snas.core.metrics`) plus ``density`` (the vector
trained) and ``node_id`` (the Ray node that trained it). The final epoch adds
``test_accuracy``/``test_loss``. Checkpoints (every epoch, see the controller) hold the whole
:meth:`Trial.state_dict`: model with masks and scores, optimizer, schedule, RNG states and
history, so ASHA pauses, retries and ``snas resume`` continue exactly where the trial was.

The class implements ``reset_config`` so Tune can reuse the actor between trials
(``reuse_actors=True``): starting an actor costs ~2 s here, more than a small MLP trial's
epoch. The dataset is cached per process and shared by every trial the actor runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import ray
import torch
from ray import tune

from snas.core import faults
from snas.core import metrics as M
from snas.core.config import DatasetConfig, SpaceConfig
from trainables.data import DeviceDataset, load_dataset
from trainables.models import output_positions
from trainables.training import Trial, resolve_device

CHECKPOINT_FILE = "trial.pt"
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


@lru_cache(maxsize=4)
def _cached_dataset(dataset: DatasetConfig, device: str) -> DeviceDataset:
    return load_dataset(dataset, device)


class SnasTrainable(tune.Trainable):
    """Trains one density vector; see the module docstring for the config format."""

    def setup(self, config: dict[str, Any]) -> None:
        self._build(config)

    def _build(self, config: Mapping[str, Any]) -> None:
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        space = SpaceConfig.from_dict(config["space"])
        device = resolve_device(space.training.device)
        data = _cached_dataset(space.dataset, str(device))
        self.trial = Trial(space, density_from_config(config), device=device, data=data)
        self._positions = output_positions(self.trial.model, data.input_shape)

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
            result[M.TEST_LOSS], result[M.TEST_ACCURACY] = self.trial.evaluate("test")
            result["done"] = True
        return result

    def _flops(self) -> dict[str, int]:
        """Multiply-accumulates per example of the maskable layers, active and dense."""
        layers = self.trial.layers
        return {M.ACTIVE_FLOPS: sum(layer.active_weights * p
                                    for layer, p in zip(layers, self._positions, strict=True)),
                M.TOTAL_FLOPS: sum(layer.weight.numel() * p
                                   for layer, p in zip(layers, self._positions, strict=True))}

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        path = os.path.join(checkpoint_dir, CHECKPOINT_FILE)
        tmp = path + ".tmp"
        torch.save(self.trial.state_dict(), tmp)
        faults.point("checkpoint_write")
        os.replace(tmp, path)  # a kill during the write never leaves a torn checkpoint

    def load_checkpoint(self, checkpoint: str | dict) -> None:
        directory = checkpoint if isinstance(checkpoint, str) else checkpoint["path"]
        state = torch.load(os.path.join(directory, CHECKPOINT_FILE), map_location=self.trial.device,
                           weights_only=False)
        self.trial.load_state_dict(state)

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        self._build(new_config)
        self.config = new_config
        return True


def masks_from_checkpoint(directory: str) -> tuple[list[str], list[Any]]:
    """Layer names and boolean mask arrays (numpy) of a trial checkpoint, in model order."""
    state = torch.load(os.path.join(directory, CHECKPOINT_FILE), map_location="cpu",
                       weights_only=False)
    model = state["model"]
    names = [key[: -len(".mask")] for key in model if key.endswith(".mask")]
    return names, [model[f"{name}.mask"].numpy().astype(bool) for name in names]
