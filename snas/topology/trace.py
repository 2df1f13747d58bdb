"""SET mask traces: how far a trial's mask moved from its initial mask, epoch by epoch.

Trials of kernels that rewire masks between epochs keep their masks per epoch in the
checkpoint (:mod:`trainables.training`); ``snas topology --trace TRIAL`` prints, for every
traced epoch, NNSTD (:mod:`snas.topology.nnstd`) of the mask after that epoch to the mask
of the first traced epoch (epoch 0, the initial mask) and the same mean NED without
matching (:func:`~snas.topology.nnstd.unmatched_distance`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from snas.topology.nnstd import Group, nnstd, unmatched_distance


def trace_distances(masks_per_epoch: Sequence[Sequence[Any]], epochs: Sequence[int],
                    groups: Sequence[Group] | None = None) -> list[dict[str, Any]]:
    """For every traced epoch t: NNSTD(mask at the first traced epoch, mask at t), its
    per-layer distances and the unmatched distance."""
    if not masks_per_epoch:
        return []
    first = masks_per_epoch[0]
    rows = []
    for epoch, masks in zip(epochs, masks_per_epoch, strict=True):
        result = nnstd(first, masks, groups)
        rows.append({"epoch": int(epoch), "nnstd": result.distance,
                     "unmatched": unmatched_distance(first, masks),
                     "layer_distances": list(result.layer_distances)})
    return rows
