"""``set``: Sparse Evolutionary Training (Mocanu et al.; used by the NNSTD paper).

Starts like ``random`` (exact-count random mask, trained weights). After every training
epoch, per layer: drop the ``zeta`` fraction of active weights with the smallest magnitude
(ties: the lower flat index is dropped first) and regrow the same number at random
positions that were inactive before the drop (falling back to just-dropped positions only
when there are not enough). Regrown weights start at zero. The density never changes.
"""

from __future__ import annotations

import torch

from trainables.kernels._base import MaskedLayer
from trainables.kernels._random import RandomKernel


class SETKernel(RandomKernel):
    name = "set"

    @torch.no_grad()
    def epoch_end(self, layer: MaskedLayer, generator: torch.Generator) -> None:
        zeta = self.options.zeta if self.options is not None else 0.3
        mask = layer.mask.view(-1)
        active = mask.nonzero().squeeze(1)
        n_drop = int(round(zeta * active.numel()))
        inactive_before = (~mask).nonzero().squeeze(1)
        if n_drop == 0 or inactive_before.numel() == 0:
            return
        magnitude = layer.weight.detach().view(-1)[active].abs().cpu()
        order = torch.sort(magnitude, stable=True).indices  # ascending; ties -> lower index
        dropped = active[order[:n_drop].to(active.device)]
        candidates = inactive_before
        if candidates.numel() < n_drop:  # not enough fresh positions: allow re-growing dropped
            candidates = torch.cat([candidates, dropped])
        pick = torch.randperm(candidates.numel(), generator=generator)[:n_drop]
        grown = candidates[pick.to(candidates.device)]
        mask[dropped] = False
        mask[grown] = True
        flat_w = layer.weight.data.view(-1)
        flat_w[dropped] = 0
        flat_w[grown] = 0
        layer.invalidate_cache()
