"""The trial checkpoint folder: the one module that knows its files' names and keys.

A Tune checkpoint folder of :class:`~trainables.tune_trainable.SnasTrainable` holds

- ``trial.pt`` (:data:`CHECKPOINT_FILE`): the whole :meth:`Trial.state_dict
  <trainables.training.Trial.state_dict>` (``torch.save``): ``model`` (weights, masks and
  scores), ``optimizer``, ``schedule``, ``batch_gen``/``rewire_gen``/``torch_rng``/
  ``cuda_rng``, ``epoch``, ``history``, ``seconds``, ``density`` (the realised vector),
  ``space`` (the search space as plain data; older checkpoints lack it) and, for kernels
  that rewire, ``mask_trace``;
- ``wiring.json`` (:data:`WIRING_FILE`): the trial's wiring record ``{"graph", "statistics"}``
  (:mod:`trainables.wiring_record`), written by the trainable at the epochs where the trial
  may end, so the driver stores it without rebuilding the model. Absent elsewhere and in
  older checkpoints.

Both are written atomically (a temporary file, then ``os.replace``): a kill mid-write never
leaves a torn file under the real name. The readers take a checkpoint folder or a state
already loaded with :func:`load_state`, so a caller that needs several entries loads once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snas.core import faults
from snas.core.config import SpaceConfig

CHECKPOINT_FILE = "trial.pt"
WIRING_FILE = "wiring.json"
_MASK_SUFFIX = ".mask"

Source = str | os.PathLike | Mapping[str, Any]  # a checkpoint folder or a loaded state


def has_checkpoint(directory: str | os.PathLike | None) -> bool:
    """Whether ``directory`` holds a trial checkpoint file."""
    return bool(directory) and (Path(directory) / CHECKPOINT_FILE).is_file()


def save_state(directory: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Write a :meth:`Trial.state_dict` as the folder's checkpoint file, atomically."""
    path = os.path.join(directory, CHECKPOINT_FILE)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    faults.point("checkpoint_write")
    os.replace(tmp, path)  # a kill during the write never leaves a torn checkpoint


def load_state(directory: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The whole state a checkpoint folder holds (what :meth:`Trial.load_state_dict` takes)."""
    # weights_only=False: the state holds plain-Python history and the space besides tensors
    return torch.load(os.path.join(directory, CHECKPOINT_FILE), map_location=map_location,
                      weights_only=False)


def _state(source: Source) -> Mapping[str, Any]:
    return source if isinstance(source, Mapping) else load_state(source)


def read_space(source: Source) -> SpaceConfig | None:
    """The search space the trial trained; ``None`` for checkpoints written before it was
    saved (Tune's ``params.json`` has it then, see :func:`trainables.wiring_record.trial_space`)."""
    space = _state(source).get("space")
    return SpaceConfig.from_dict(space) if isinstance(space, dict) else None


def read_density(source: Source) -> list[float]:
    """The realised density vector, one entry per maskable layer in model order."""
    return [float(d) for d in _state(source)["density"]]


def read_epoch(source: Source) -> int:
    """How many epochs the trial had trained when the checkpoint was written."""
    return int(_state(source)["epoch"])


def read_history(source: Source) -> list[dict[str, Any]]:
    """The per-epoch metric records so far (:meth:`Trial.run_epoch`'s), oldest first."""
    return list(_state(source)["history"])


def read_model_state(source: Source) -> dict[str, torch.Tensor]:
    """The model's ``state_dict`` (weights, masks and scores)."""
    return _state(source)["model"]


def read_mask_trace(source: Source) -> dict[str, Any] | None:
    """The packed per-epoch mask trace (:func:`trainables.training.unpack_mask_trace`
    unpacks it); ``None`` when the trial's kernel keeps no trace."""
    return _state(source).get("mask_trace") or None


def masks_from_model_state(model_state: Mapping[str, torch.Tensor]
                           ) -> tuple[list[str], list[np.ndarray]]:
    """Layer names and boolean masks (numpy, the weights' shapes) of a model ``state_dict``,
    in model order (the state dict's order, the density vector's)."""
    names = [key[: -len(_MASK_SUFFIX)] for key in model_state if key.endswith(_MASK_SUFFIX)]
    return names, [model_state[name + _MASK_SUFFIX].detach().cpu().numpy().astype(bool)
                   for name in names]


def read_masks(source: Source) -> tuple[list[str], list[np.ndarray]]:
    """Layer names and boolean masks (numpy) of a trial checkpoint, in model order."""
    return masks_from_model_state(read_model_state(source))


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy / torch scalars and arrays
        return value.tolist()
    raise TypeError(f"wiring record value of type {type(value).__name__} is not JSON data")


def write_wiring_record(directory: str | os.PathLike, graph: Mapping[str, Any],
                        statistics: Mapping[str, Any]) -> None:
    """Write a trial's wiring record (graph as node-link JSON, statistics), atomically."""
    text = json.dumps({"graph": graph, "statistics": statistics}, default=_plain)
    path = os.path.join(directory, WIRING_FILE)
    tmp = path + ".tmp"
    Path(tmp).write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_wiring_record(directory: str | os.PathLike
                       ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(graph, statistics)`` written into a checkpoint folder by the trainable; ``None``
    when the folder has none (a checkpoint at an epoch where the trial could not end, or
    one written before records were) or it cannot be read."""
    path = Path(directory) / WIRING_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(record, dict) and isinstance(record.get("graph"), dict)
            and isinstance(record.get("statistics"), dict)):
        return None
    return record["graph"], record["statistics"]


__all__ = ["CHECKPOINT_FILE", "WIRING_FILE", "has_checkpoint", "load_state",
           "masks_from_model_state", "read_density", "read_epoch", "read_history",
           "read_mask_trace", "read_masks", "read_model_state", "read_space",
           "read_wiring_record", "save_state", "write_wiring_record"]
