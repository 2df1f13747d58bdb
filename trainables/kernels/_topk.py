"""Exact top-k masks: the kept count, the reference full sort, and a fast incremental path.

Tie rule (everywhere in snas): values are ranked by magnitude, descending; among equal
magnitudes the element with the lower flat index ranks first. This is what a stable
descending sort of the flattened tensor gives, and :func:`reference_topk_mask` is exactly
that sort (the method of the public edge-popup code, which sorts every score tensor on every
forward).

:class:`IncrementalTopK` gives the same mask without sorting the whole tensor. The scores
(edge-popup) and weights (DNW) move little between optimizer steps, so most entries stay
clearly above or clearly below the k-th largest magnitude. A *rebuild* splits the entries
into three sets around the last threshold t: A (above t + delta), L (below t - delta) and a
small candidate band C in between (about ``band_target`` entries). Each later call only

1. re-ranks C (one ``kthvalue`` over |C| entries, ties by lower index), and
2. checks with two fused float reductions that min(A) still beats the best unchosen
   entry and that max(L) still loses to the last chosen one,

so the mask is A plus the chosen part of C, exactly. When the check fails (something
crossed the band) the sets are rebuilt around the new threshold, and the band widens if
that happens often. Exactness never depends on the band: a failed check always rebuilds.
"""

from __future__ import annotations

import math

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


def _choose(values: Tensor, need: int) -> tuple[Tensor, float, float]:
    """Pick the ``need`` largest of ``values`` (ties: lower position first).

    Returns (chosen flags, smallest chosen value or +inf, largest unchosen value or -inf).
    """
    m = values.numel()
    if need <= 0:
        return (torch.zeros(m, dtype=torch.bool, device=values.device), math.inf,
                float(values.max()) if m else -math.inf)
    if need >= m:
        return torch.ones(m, dtype=torch.bool, device=values.device), float(values.min()), -math.inf
    v = torch.kthvalue(values, m - need + 1).values  # the need-th largest
    chosen = values > v
    ties = values == v
    n_gt, n_eq = int(chosen.sum()), int(ties.sum())
    if n_gt + n_eq == need:
        chosen |= ties
        c_out = float(torch.where(chosen, -math.inf, values).max())
    else:  # the tie at v is split: the lower positions win
        chosen[ties.nonzero().squeeze(1)[: need - n_gt]] = True
        c_out = float(v)
    return chosen, float(v), c_out


class IncrementalTopK:
    """Exact top-k selector that reuses the previous split (see module docstring).

    ``select(magnitude)`` returns a boolean mask of the same shape with exactly ``k`` True
    entries, equal to :func:`reference_topk_mask` (same tie rule) for any input. The
    returned tensor is owned by the selector and updated in place by later calls.
    """

    def __init__(self, k: int, numel: int, band_target: int | None = None):
        if not 1 <= k <= numel:
            raise ValueError(f"k must be in [1, {numel}], got {k!r}")
        self.k = k
        self.numel = numel
        self.band_target = band_target or max(256, numel // 64)
        self.max_band = max(256, numel // 8)
        self.threshold: float | None = None
        self.delta = 0.0
        self._cand: Tensor | None = None  # C: candidate indices, ascending
        self._mask: Tensor | None = None
        self._pen_above: Tensor | None = None  # 0 on A, +max elsewhere
        self._pen_below: Tensor | None = None  # 0 on L, -max elsewhere
        self._n_above = self._n_below = 0
        self._since_rebuild = 0
        # Counters for benchmarks and tests.
        self.hits = 0
        self.rebuilds = 0
        self.resets = 0

    def reset(self) -> None:
        """Forget all state (e.g. after loading other weights); the next call re-seeds."""
        self.threshold = None
        self._cand = None

    @torch.no_grad()
    def select(self, magnitude: Tensor) -> Tensor:
        flat = magnitude.reshape(-1)
        if self.k == self.numel:
            return torch.ones_like(magnitude, dtype=torch.bool)
        if self._cand is not None and self._refresh(flat):
            self.hits += 1
            self._since_rebuild += 1
        else:
            self._rebuild(flat)
        return self._mask.view_as(magnitude)

    def _refresh(self, flat: Tensor) -> bool:
        """Re-rank C; True if A + chosen(C) is still the exact top-k."""
        cand = self._cand
        chosen, c_in, c_out = _choose(flat.index_select(0, cand), self.k - self._n_above)
        bounds = torch.stack([
            (flat + self._pen_above).amin() if self._n_above else flat.new_tensor(math.inf),
            (flat + self._pen_below).amax() if self._n_below else flat.new_tensor(-math.inf),
        ])
        min_above, max_below = bounds.tolist()
        if min_above > max(c_out, max_below) and c_in > max_below:
            self._mask[cand] = chosen
            self.threshold = c_in
            return True
        return False

    def _rebuild(self, flat: Tensor) -> None:
        self.rebuilds += 1
        if self._cand is not None:  # widen the band if it did not last, narrow if it idles
            if self._since_rebuild < 4:
                self.band_target = min(self.max_band, self.band_target * 2)
            elif self._since_rebuild > 64:
                self.band_target = max(256, self.band_target // 2)
        self._since_rebuild = 0
        if self.threshold is None:
            self._seed(flat)
        for _ in range(8):
            if self._split(flat):
                return
        self._seed(flat)
        self.delta = 0.0  # a band of only the ties at the exact k-th value always holds it
        if not self._split(flat):  # pragma: no cover - impossible by construction
            raise RuntimeError("top-k split failed around the exact k-th value")

    def _seed(self, flat: Tensor) -> None:
        """Set the threshold to the exact k-th largest value and guess a band width."""
        self.resets += 1
        self.threshold = float(torch.kthvalue(flat, self.numel - self.k + 1).values)
        spread = float(flat.max() - flat.min())
        self.delta = spread * self.band_target / (2 * self.numel)

    def _split(self, flat: Tensor) -> bool:
        """Split into A, L and C around the threshold; False if the k-th value is outside C."""
        t, delta = self.threshold, self.delta
        step = max(2 * delta, abs(t) * 1e-3, 1e-12)
        above = flat > t + delta
        n_above = int(above.sum())
        if n_above >= self.k:  # the k-th value moved up past the band
            self.threshold, self.delta = t + step, step
            return False
        at_least_low = flat >= t - delta
        n_ge = int(at_least_low.sum())
        if n_ge < self.k:  # the k-th value moved down past the band
            self.threshold, self.delta = t - step, step
            return False
        # A is a subset of (flat >= low): xor leaves exactly the band, on 1-byte tensors.
        cand = torch.logical_xor(at_least_low, above).nonzero().squeeze(1)
        big = torch.finfo(flat.dtype).max
        self._cand = cand
        self._n_above, self._n_below = n_above, self.numel - n_ge
        self._pen_above = (~above).to(flat.dtype).mul_(big)
        self._pen_below = at_least_low.to(flat.dtype).mul_(-big)
        chosen, c_in, _ = _choose(flat.index_select(0, cand), self.k - n_above)
        above[cand] = chosen
        self._mask = above
        self.threshold = c_in
        n_band = cand.numel()
        if delta > 0 and n_band > 0:  # aim the next band at about band_target entries
            self.delta = delta * min(4.0, max(0.25, self.band_target / n_band))
        else:
            self.delta = max(abs(c_in) * 1e-3, 1e-12)
        return True
