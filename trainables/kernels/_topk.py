"""Exact top-k masks: the kept count, the reference full sort, and a fast incremental path.

Tie rule (everywhere in snas): values are ranked by magnitude, descending; among equal
magnitudes the element with the lower flat index ranks first. This is what a stable
descending sort of the flattened tensor gives, and :func:`reference_topk_mask` is exactly
that sort (the method of the public edge-popup code, which sorts every score tensor on every
forward).

:class:`IncrementalTopK` gives the same mask without sorting the whole tensor. The scores
(edge-popup) and weights (DNW) move little between optimizer steps, so the k-th largest
magnitude stays close to where it was. It keeps the last threshold ``t`` and a band width
``delta``; one pass counts the elements above ``t + delta`` and collects the few inside
``[t - delta, t + delta]``; if the k-th value lies in the band (the usual case) only the band
is sorted. Otherwise the band widens (or, after a few misses, one ``kthvalue`` resets it).
The band width adapts so that about ``band_target`` elements fall inside it.
"""

from __future__ import annotations

import torch
from torch import Tensor


def kept_count(density: float, numel: int) -> int:
    """Number of weights kept in a layer of ``numel`` weights at ``density`` (fraction kept).

    ``max(1, round(density * numel))`` with Python's ``round`` (ties to even), never more
    than ``numel``: a layer always keeps at least one weight.
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density!r}")
    return min(numel, max(1, round(density * numel)))


def reference_topk_mask(magnitude: Tensor, k: int) -> Tensor:
    """Boolean mask of the k largest entries by a full stable sort (the reference method)."""
    flat = magnitude.reshape(-1)
    order = torch.sort(flat, descending=True, stable=True).indices
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[order[:k]] = True
    return mask.view_as(magnitude)


class IncrementalTopK:
    """Exact top-k selector that reuses the previous threshold (see module docstring).

    ``select(magnitude)`` returns a boolean mask of the same shape with exactly ``k`` True
    entries, equal to :func:`reference_topk_mask` (same tie rule) for any input.
    """

    def __init__(self, k: int, numel: int, band_target: int | None = None, max_misses: int = 3):
        if not 1 <= k <= numel:
            raise ValueError(f"k must be in [1, {numel}], got {k!r}")
        self.k = k
        self.numel = numel
        self.band_target = band_target or max(64, numel // 128)
        self.max_misses = max_misses
        self.threshold: float | None = None
        self.delta = 0.0
        # Counters for benchmarks and tests: how often the band held the threshold.
        self.hits = 0
        self.misses = 0
        self.resets = 0

    def reset(self) -> None:
        """Forget the threshold (e.g. after loading other weights); the next call re-seeds it."""
        self.threshold = None

    @torch.no_grad()
    def select(self, magnitude: Tensor) -> Tensor:
        flat = magnitude.reshape(-1)
        if self.k == self.numel:
            return torch.ones_like(magnitude, dtype=torch.bool)
        if self.threshold is None:
            self._seed(flat)
        for _ in range(self.max_misses):
            mask = self._try_band(flat)
            if mask is not None:
                self.hits += 1
                return mask.view_as(magnitude)
            self.misses += 1
        self._seed(flat)
        mask = self._try_band(flat)
        assert mask is not None  # a band of width >= 0 around the exact k-th value holds it
        return mask.view_as(magnitude)

    def _seed(self, flat: Tensor) -> None:
        """Set the threshold to the exact k-th largest value and guess a band width."""
        self.resets += 1
        kth = torch.kthvalue(flat.float(), self.numel - self.k + 1).values
        self.threshold = float(kth)
        spread = float(flat.max() - flat.min())
        self.delta = spread * self.band_target / (2 * self.numel)

    def _try_band(self, flat: Tensor) -> Tensor | None:
        t, delta = self.threshold, self.delta
        above = flat > t + delta
        n_above = int(above.sum())
        if n_above >= self.k:  # threshold moved up past the band
            self.threshold, self.delta = t + 2 * delta, max(4 * delta, 1e-12)
            return None
        # above is a subset of (flat >= lo): xor leaves exactly the band, on 1-byte tensors.
        band_idx = torch.logical_xor(flat >= t - delta, above).nonzero().squeeze(1)
        n_band = band_idx.numel()
        if n_above + n_band < self.k:  # threshold moved down past the band
            self.threshold, self.delta = t - 2 * delta, max(4 * delta, 1e-12)
            return None
        # band_idx is ascending, so a stable descending sort ranks ties by lower index first.
        band_vals = flat[band_idx]
        order = torch.sort(band_vals, descending=True, stable=True).indices
        need = self.k - n_above
        above[band_idx[order[:need]]] = True
        self.threshold = float(band_vals[order[need - 1]])
        # Aim the next band at about band_target elements.
        if n_band > 0 and delta > 0:
            self.delta = delta * min(2.0, max(0.5, self.band_target / n_band))
        if self.delta == 0.0:
            self.delta = abs(self.threshold) * 1e-3 + 1e-12
        return above
