"""Exact top-k masks: the kept count, the reference full sort, and a fast incremental path.

Tie rule (everywhere in snas): values are ranked by magnitude, descending; among equal
magnitudes the element with the lower flat index ranks first. This is what a stable
descending sort of the flattened tensor gives, and :func:`reference_topk_mask` is exactly
that sort (the method of the public edge-popup code, which sorts every score tensor on every
forward).

:class:`IncrementalTopK` gives the same mask without sorting the whole tensor. The scores
(edge-popup) and weights (DNW) move little between optimizer steps, so most entries stay
clearly above or clearly below the k-th largest value. A *rebuild* splits the entries into
three sets around the last threshold t: A (above t + delta), L (below t - delta) and a small
candidate band C in between (about ``band_target`` entries), and stores them as one float
tensor ``bias`` (0 on A, K/2 on C, K on L, K a power of two above twice the value spread).
Each later call only

1. re-ranks C (one ``kthvalue`` over |C| entries, ties by lower index), and
2. computes ``r = values + bias`` into a reused buffer and reduces it with ``amin`` and
   ``amax``: ``amin(r)`` is a lower bound of min(A) (r equals the value on A) and
   ``amax(r) - K`` (plus a rounding margin) an upper bound of max(L). The mask is A plus the
   chosen part of C, exactly, when min(A) beats the best unchosen entry of C and max(L), and
   the last chosen entry of C beats max(L).

The bounds are sufficient conditions whatever the values do: a value that crossed the band,
a sign change, growth past K or a rounding doubt only make the check fail, and a failed check
rebuilds the sets around the new threshold (the band widens if that happens often).
Exactness never depends on the band.

Cost per call (1M entries): one pass to form ``r`` plus two float reductions, the re-rank of
C, and index writes only where the chosen part of C changed (:attr:`IncrementalTopK.changed`
lists them, so callers can update derived tensors such as ``w * mask`` in place). The
selector keeps the mask both as a bool tensor (``layer.mask``) and as 0/1 in the values'
dtype (:attr:`IncrementalTopK.float_mask`): multiplying by a float mask is several times
faster than by a bool one on CPU. Bool-valued full-tensor ops are avoided for the same
reason (comparisons write 0/1 floats; float->bool copies are cheap).
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


def _choose(values: Tensor, need: int, exact_out: bool = True) -> tuple[Tensor, float, float]:
    """Pick the ``need`` largest of ``values`` (ties: lower position first).

    Returns (chosen flags, smallest chosen value or +inf, largest unchosen value or -inf).
    With ``exact_out=False`` the third value may be replaced by the (larger or equal) second,
    which saves two small ops; callers use it as an upper bound only.
    """
    m = values.numel()
    if need <= 0:
        return (torch.zeros(m, dtype=torch.bool, device=values.device), math.inf,
                float(values.max()) if m else -math.inf)
    if need >= m:
        return torch.ones(m, dtype=torch.bool, device=values.device), float(values.min()), -math.inf
    v = torch.kthvalue(values, m - need + 1).values  # the need-th largest
    chosen = values >= v
    n_ge = int(chosen.sum())
    if n_ge == need:  # no tie split at v
        c_in = float(v)
        if not exact_out:
            return chosen, c_in, c_in
        return chosen, c_in, float(values.masked_fill(chosen, -math.inf).max())
    chosen = values > v  # the tie at v is split: the lower positions win
    n_gt = int(chosen.sum())
    chosen[(values == v).nonzero().squeeze(1)[: need - n_gt]] = True
    return chosen, float(v), float(v)


def _nonzero_bytes(flags: Tensor) -> Tensor:
    """Ascending indices of the nonzero bytes of a 1-D bool/uint8 tensor whose length is a
    multiple of 8 and that is mostly zero (about 4x faster than ``nonzero`` on CPU: the scan
    runs over 8-byte words, and only the few nonzero words are split into bytes)."""
    words = flags.view(torch.int64)
    nz = words.nonzero().squeeze(1)
    sub = words.index_select(0, nz).view(torch.uint8).view(-1, 8).nonzero()
    return nz.index_select(0, sub[:, 0]).mul_(8).add_(sub[:, 1])


def _pow2_at_least(x: float) -> float:
    """The smallest power of two >= x (1.0 for non-positive or non-finite x)."""
    if not (x > 0.0 and math.isfinite(x)):
        return 1.0
    return 2.0 ** math.ceil(math.log2(x))


class IncrementalTopK:
    """Exact top-k selector that reuses the previous split (see module docstring).

    ``select(values)`` returns a boolean mask of the same shape with exactly ``k`` True
    entries, equal to :func:`reference_topk_mask` (same tie rule) for any input;
    ``select_abs(x)`` does the same for ``x.abs()`` without allocating it. The returned mask,
    :attr:`float_mask` and :attr:`changed` are owned by the selector and updated in place by
    later calls. Editing the returned mask in place is detected and forces a rebuild.
    """

    def __init__(self, k: int, numel: int, band_target: int | None = None):
        if not 1 <= k <= numel:
            raise ValueError(f"k must be in [1, {numel}], got {k!r}")
        self.k = k
        self.numel = numel
        self.band_target = band_target or max(256, numel // 256)
        # kthvalue and temporaries slow down sharply past ~16K entries (64 KB) on CPU
        self.max_band = max(256, min(numel // 8, 16384))
        self.threshold: float | None = None
        self.delta = 0.0
        self._estimate: float | None = None  # k-th value from the last (failed) re-rank
        self._cand: Tensor | None = None  # C: candidate indices, ascending
        self._chosen: Tensor | None = None  # which of C are in the mask (bool, len(C))
        self._mask: Tensor | None = None  # the mask, bool, flat
        self._maskf: Tensor | None = None  # the mask as 0/1 in the values' dtype, flat
        self._bias: Tensor | None = None  # 0 on A, K/2 on C, K on L
        self._work: Tensor | None = None  # scratch: |x|, values + bias
        self._band: Tensor | None = None  # band flags for rebuilds, padded to 8 bytes
        self._scale = 1.0  # K
        self._slack = 0.0  # relative rounding margin of values + K
        self._n_above = self._n_below = 0
        self._mask_version = -1
        self._since_rebuild = 0
        #: Incremented by every ``select`` call.
        self.generation = 0
        #: Flat indices whose mask entry changed in the last call; None = maybe all of them.
        self.changed: Tensor | None = None
        # Counters for benchmarks and tests.
        self.hits = 0
        self.rebuilds = 0
        self.resets = 0

    @property
    def float_mask(self) -> Tensor:
        """The last mask as 0/1 in the values' dtype (flat; owned by the selector)."""
        if self._maskf is None:
            raise RuntimeError("select() has not been called yet")
        return self._maskf

    @property
    def scratch(self) -> Tensor | None:
        """A flat buffer of the values' dtype that is free between ``select`` calls."""
        return self._work

    def reset(self) -> None:
        """Forget all state (e.g. after loading other weights); the next call re-seeds."""
        self.threshold = None
        self._estimate = None
        self._cand = None

    @torch.no_grad()
    def select(self, values: Tensor) -> Tensor:
        self._select(self._prepare(values), None)
        return self._mask.view(values.shape)

    @torch.no_grad()
    def select_abs(self, x: Tensor) -> Tensor:
        """``select(x.abs())`` with |x| written into a reused buffer."""
        src = self._prepare(x)
        flat = torch.abs(src, out=self._work)
        self._select(flat, src)
        return self._mask.view(x.shape)

    # ---- internals -------------------------------------------------------------------
    def _prepare(self, values: Tensor) -> Tensor:
        flat = values.detach().reshape(-1)
        if flat.numel() != self.numel:
            raise ValueError(f"expected {self.numel} values, got {flat.numel()}")
        if not flat.is_floating_point():
            flat = flat.to(torch.get_default_dtype())
        if (self._maskf is None or self._maskf.dtype != flat.dtype
                or self._maskf.device != flat.device):
            self._mask = torch.ones(self.numel, dtype=torch.bool, device=flat.device)
            self._maskf = torch.ones(self.numel, dtype=flat.dtype, device=flat.device)
            self._bias = torch.empty_like(self._maskf)
            self._work = torch.empty_like(self._maskf)
            self._band = torch.zeros(-(-self.numel // 8) * 8, dtype=torch.bool, device=flat.device)
            self._slack = 4.0 * torch.finfo(flat.dtype).eps
            self._cand = None
        return flat

    def _select(self, flat: Tensor, src: Tensor | None) -> None:
        self.generation += 1
        if self._mask._version != self._mask_version:  # edited from outside: start over
            self._cand = None
        if self.k == self.numel:
            if self._cand is None:
                self._mask.fill_(True)
                self._maskf.fill_(1.0)
                self._cand = torch.empty(0, dtype=torch.long, device=flat.device)
                self.changed = None
            else:
                self.changed = self._cand
        elif self._cand is not None and self._refresh(flat, src):
            self.hits += 1
            self._since_rebuild += 1
        else:
            self._rebuild(flat)
            self.changed = None
        self._mask_version = self._mask._version

    def _count(self, indicator: Tensor) -> int:
        """Number of ones in a 0/1 float tensor (exact)."""
        dtype = torch.float32 if self.numel < 2**24 else torch.float64
        return int(indicator.sum(dtype=dtype))

    def _refresh(self, flat: Tensor, src: Tensor | None) -> bool:
        """Re-rank C; True (and the mask updated) if A + chosen(C) is still the exact top-k."""
        cand = self._cand
        vals = flat.index_select(0, cand)
        chosen, c_in, c_out = _choose(vals, self.k - self._n_above, exact_out=False)
        r = torch.add(flat, self._bias, out=self._work)  # in place when flat is the work buffer
        min_above = float(r.amin()) if self._n_above else math.inf
        if self._n_below:
            hi = float(r.amax())
            max_below = hi - self._scale + self._slack * abs(hi)
        else:
            max_below = -math.inf
        if min_above <= c_out < math.inf and c_out == c_in:  # c_out was only a bound: get it
            unchosen = vals.masked_fill(chosen, -math.inf)
            c_out = float(unchosen.max()) if unchosen.numel() else -math.inf
        if not (min_above > c_out and min_above > max_below and c_in > max_below):
            if src is not None:  # the caller's |x| was overwritten: recompute it
                torch.abs(src, out=self._work)
            if math.isfinite(c_in):
                self._estimate = c_in
            return False
        diff = (chosen != self._chosen).nonzero().squeeze(1)
        changed = cand.index_select(0, diff)
        if changed.numel():
            new = chosen.index_select(0, diff)
            self._mask.index_put_((changed,), new)
            self._maskf.index_put_((changed,), new.to(self._maskf.dtype))
            self._chosen = chosen
        self.changed = changed
        if math.isfinite(c_in):
            self.threshold = c_in
        return True

    def _rebuild(self, flat: Tensor) -> None:
        self.rebuilds += 1
        if self._cand is not None and self._chosen is not None:
            # widen the band if it did not last, narrow it if it idles
            if self._since_rebuild < 4:
                self.band_target = min(self.max_band, self.band_target * 2)
            elif self._since_rebuild > 64:
                self.band_target = max(256, self.band_target // 2)
        self._since_rebuild = 0
        if self.threshold is None:
            self._seed(flat)
        elif self._estimate is not None:
            self.threshold = self._estimate
        self._estimate = None
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
        above, bias = self._maskf, self._bias  # 0/1 indicators, written as floats
        torch.gt(flat, t + delta, out=above)
        n_above = self._count(above)
        if n_above >= self.k:  # the k-th value moved up past the band
            self.threshold, self.delta = t + step, step
            return False
        torch.ge(flat, t - delta, out=bias)
        n_ge = self._count(bias)
        if n_ge < self.k:  # the k-th value moved down past the band
            self.threshold, self.delta = t - step, step
            return False
        # A is a subset of (flat >= low), so the difference is exactly the band.
        bias.sub_(above)
        band = self._band
        band[: self.numel].copy_(bias)  # float -> bool copies are fast; padding stays False
        cand = _nonzero_bytes(band)
        hi, lo = float(flat.amax()), float(flat.amin())
        scale = _pow2_at_least(2.0 * (hi - lo)) if hi > lo else _pow2_at_least(abs(hi))
        # band indicator -> 0 on A, K/2 on C, K on L (all exact: K is a power of two)
        bias.mul_(-0.5 * scale).add_(scale).sub_(above, alpha=scale)
        chosen, c_in, _ = _choose(flat.index_select(0, cand), self.k - n_above)
        self._mask.copy_(above)
        self._mask.index_put_((cand,), chosen)
        above.index_put_((cand,), chosen.to(above.dtype))
        self._cand, self._chosen = cand, chosen
        self._n_above, self._n_below = n_above, self.numel - n_ge
        self._scale = scale
        self.threshold = c_in
        n_band = cand.numel()
        if delta > 0 and n_band > 0:  # aim the next band at about band_target entries
            self.delta = delta * min(4.0, max(0.25, self.band_target / n_band))
        else:
            self.delta = max(abs(c_in) * 1e-3, 1e-12)
        return True
