"""Exact top-k masks: the kept count, the reference full sort, and the two selectors.

Tie rule (everywhere in snas): values are ranked by magnitude, descending; among equal
magnitudes the element with the lower flat index ranks first. This is what a stable
descending sort of the flattened tensor gives, and :func:`reference_topk_mask` is exactly
that sort (the method of the public edge-popup code, which sorts every score tensor on every
forward).

One selector interface, one implementation per device family (:func:`selector_class`):
``select(values)`` / ``select_abs(x)`` return the mask (bool, owned by the selector) with
exactly k True entries, equal to the reference sort's; :attr:`float_mask` is the same as 0/1
in the values' dtype, :attr:`changed` the flat indices whose entry changed in the last call
(None: maybe all), ``generation`` counts calls and ``reset()`` forgets state.

- :class:`DeviceTopK` (CUDA, and any tensor that is not CPU float32/float64): the k-th value
  by ``torch.topk``, the tie at it split by a cumulative count, all on the device. k is a
  Python int, so a call makes no host synchronisation.
- :class:`IncrementalTopK` (CPU float32/float64) reuses the previous split, as follows.

The scores (edge-popup) and weights (DNW) move little between optimizer steps, so most
entries stay clearly above or clearly below the k-th largest value. A *rebuild* splits the
entries into three sets around the last threshold t: A (above t + delta), L (below
t - delta) and a small candidate band C in between (about ``band_target`` entries), and
stores them as one float tensor ``bias`` (0 on A, K/2 on C, K on L, K a power of two above
twice the value spread). Each later call only

1. re-ranks C (ties by lower index) with ``np.partition``, and
2. computes ``r = key + bias`` into a reused buffer in one pass and reduces it with one
   ``aminmax``: ``min(r)`` is a lower bound of min(A) (r equals the key on A) and
   ``max(r) - K`` (plus a rounding margin) an upper bound of max(L). The key is the value
   for ``select`` and ``x * x`` (rounded, one ``addcmul``) for ``select_abs``: rounding a
   square is monotone, so comparing keys compares magnitudes, and no separate ``|x|`` pass
   is needed. The mask is A plus the chosen part of C, exactly, when min(A) beats the best
   unchosen entry of C and max(L), and the last chosen entry of C beats max(L) (all strict,
   with the band's values mapped to keys the same way).

The bounds are sufficient conditions whatever the values do: a value that crossed the band,
a sign change, growth past K or a rounding doubt only make the check fail. A failed check
first tries a *repair* (:meth:`IncrementalTopK._repair`): the band slides to the new
k-th value estimate, two scans of the ``r`` already computed find exactly the entries of A
and L that are now inside it (typically 1-2K of 200K: single weights drift across the band
while the threshold moves slowly), they join C, C is re-ranked and sheds what drifted out,
and the result is exact by a final test on the new edges. Otherwise (the k-th value jumped
out of the band, too many movers or a NaN) the sets are rebuilt around the new threshold
(NumPy passes; the band widens if that happens often). Exactness never depends on the band. Inputs holding a NaN get the reference sort's
mask (NaN ranks first).

Cost per call (1M entries): one pass to form ``r`` plus one float reduction, the re-rank of
C, and index writes only where the chosen part of C changed (:attr:`IncrementalTopK.changed`
lists them, so callers can update derived tensors such as ``w * mask`` in place). The
selector keeps the mask both as a bool tensor (``layer.mask``) and as 0/1 in the values'
dtype (:attr:`IncrementalTopK.float_mask`): multiplying by a float mask is several times
faster than by a bool one on CPU. Bool-valued full-tensor ops are avoided for the same
reason (comparisons write 0/1 floats; float->bool copies are cheap).

The band work (gather, partition, compare, diff, mask writes) runs in NumPy on arrays
that share the tensors' memory: ``torch.kthvalue`` takes ~140 us on 13K values that change
from call to call (branch mispredictions in its quickselect; repeated calls on the same data
look five times faster), ``np.partition`` ~20 us, and a small torch op costs ~10 us of
dispatch where NumPy takes ~1 us. Mask writes through NumPy bump the tensors' version
counters by hand, so caches keyed on them (the eval-mode float mask) see every change.
Rebuilds and repairs run in single-threaded NumPy passes: no OpenMP region, which on a
machine whose cores are busy costs a scheduler time slice each. Measured on the DNW benchmark step
(784x256, 300 recorded steps): a rebuild every ~12 steps (~640 us) became a repair every
~10 steps (~250-450 us) and almost no rebuilds.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

# The one definition of how many weights a layer keeps; the searchers' budgets count with it.
from snas.core.density import kept_count

__all__ = ["DeviceTopK", "IncrementalTopK", "kept_count", "reference_topk_mask",
           "selector_class"]


def reference_topk_mask(magnitude: Tensor, k: int) -> Tensor:
    """Boolean mask of the k largest entries by a full stable sort (the reference method)."""
    flat = magnitude.reshape(-1)
    order = torch.sort(flat, descending=True, stable=True).indices
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[order[:k]] = True
    return mask.view_as(magnitude)


def selector_class(values: Tensor) -> type[IncrementalTopK | DeviceTopK]:
    """The top-k selector family for ``values``: :class:`IncrementalTopK` for CPU float32 /
    float64 tensors, :class:`DeviceTopK` for everything else (CUDA)."""
    if values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64):
        return IncrementalTopK
    return DeviceTopK


class _Selector:
    """What both selector families share: the 0/1 mask they own and a scratch buffer
    (``_maskf`` and ``_work``, allocated by the first ``select``)."""

    _maskf: Tensor | None
    _work: Tensor | None

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


class DeviceTopK(_Selector):
    """Exact top-k on the values' device without host synchronisation (module docstring).

    Per call: the key (``|x|`` or the values; NaN ranks like +inf, i.e. first) in a reused
    buffer, its k-th largest value v by ``torch.topk``, then mask = (key > v) plus the first
    ``k - #(key > v)`` entries equal to v in flat order (a cumulative count). The count and
    the tie split stay tensors on the device.
    """

    def __init__(self, k: int, numel: int):
        if not 1 <= k <= numel:
            raise ValueError(f"k must be in [1, {numel}], got {k!r}")
        self.k, self.numel = k, numel
        self._mask: Tensor | None = None
        self._maskf: Tensor | None = None
        self._work: Tensor | None = None
        self.generation = 0
        #: Always None: any entry may change in a call.
        self.changed: Tensor | None = None
        self.hits = self.rebuilds = self.repairs = 0  # the incremental selector's counters

    def reset(self) -> None:
        """Nothing to forget: every call selects from scratch."""

    @torch.no_grad()
    def select(self, values: Tensor) -> Tensor:
        return self._select(values, absolute=False)

    @torch.no_grad()
    def select_abs(self, x: Tensor, scratch: Tensor | None = None) -> Tensor:
        """``select(x.abs())``; ``scratch`` (common interface) is not needed here."""
        return self._select(x, absolute=True)

    def _select(self, values: Tensor, absolute: bool) -> Tensor:
        flat = values.detach().reshape(-1)
        if flat.numel() != self.numel:
            raise ValueError(f"expected {self.numel} values, got {flat.numel()}")
        if not flat.is_floating_point():
            flat = flat.to(torch.get_default_dtype())
        if (self._maskf is None or self._maskf.dtype != flat.dtype
                or self._maskf.device != flat.device):
            self._mask = torch.empty(self.numel, dtype=torch.bool, device=flat.device)
            self._maskf = torch.empty(self.numel, dtype=flat.dtype, device=flat.device)
            self._work = torch.empty_like(self._maskf)
        self.generation += 1
        key = torch.abs(flat, out=self._work) if absolute else self._work.copy_(flat)
        key.nan_to_num_(nan=math.inf, posinf=math.inf, neginf=-math.inf)
        kth = torch.topk(key, self.k, sorted=False).values.amin()
        mask = torch.gt(key, kth, out=self._mask)
        tied = key == kth  # the lower flat indices win the tie, as many as are left
        tied &= torch.cumsum(tied, 0) <= self.k - mask.sum()
        mask |= tied
        self._maskf.copy_(mask)
        self.changed = None
        return mask.view(values.shape)


class _NaNValues(Exception):
    """A band holds a NaN: the caller falls back to the reference sort."""


def _choose_host(values: np.ndarray, need: int, exact_out: bool = True,
                 index: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """:func:`_choose` on a NumPy array (the CPU path). ``index`` (distinct flat indices of
    the values, any order) breaks ties by lower index; without it, by lower position.

    ``np.partition`` (introselect) ranks a band of ~10K entries several times faster than
    ``torch.kthvalue`` on CPU when the values differ from call to call (measured ~20 us vs
    ~140 us for 13K float32 values), and NumPy's small-array ops cost ~1 us instead of ~10.
    """
    m = values.size
    if need <= 0:
        return np.zeros(m, dtype=bool), math.inf, float(values.max()) if m else -math.inf
    if need >= m:
        return np.ones(m, dtype=bool), float(values.min()), -math.inf
    part = np.partition(values, m - need)
    if np.isnan(part[-1]):  # NaNs sort last; the comparisons below would drop them
        raise _NaNValues
    v = part[m - need]  # the need-th largest
    chosen = values >= v
    n_ge = int(np.count_nonzero(chosen))
    if n_ge == need:  # no tie split at v
        c_in = float(v)
        if not exact_out:
            return chosen, c_in, c_in
        return chosen, c_in, float(part[: m - need].max())  # all below v here
    chosen = values > v  # the tie at v is split: the lower indices win
    n_gt = int(np.count_nonzero(chosen))
    tied = np.flatnonzero(values == v)
    if index is not None:
        tied = tied[np.argsort(index[tied], kind="stable")]
    chosen[tied[: need - n_gt]] = True
    return chosen, float(v), float(v)


def _merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The union of two ascending arrays without common elements, ascending (NumPy's stable
    sort is a timsort for these: two runs make one linear merge)."""
    return np.sort(np.concatenate((a, b)), kind="stable")


def _pow2_at_least(x: float) -> float:
    """The smallest power of two >= x (1.0 for non-positive or non-finite x)."""
    if not (x > 0.0 and math.isfinite(x)):
        return 1.0
    return 2.0 ** math.ceil(math.log2(x))


class IncrementalTopK(_Selector):
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
        # the band's re-rank and temporaries slow down sharply past ~16K entries on CPU
        self.max_band = max(256, min(numel // 8, 16384))
        #: Aim of the band's width: about one repair per this many calls (a repair costs a
        #: few passes, a wider band a longer re-rank on every call).
        self.repair_every = 8
        self._half_width = 0.0  # the band's half width (value space) at the last split/repair
        self._r_max: float | None = None  # max of key + bias from the last check (or None)
        self.threshold: float | None = None
        self.delta = 0.0
        self._estimate: float | None = None  # k-th value from the last (failed) re-rank
        self._cand: Tensor | None = None  # C: candidate indices, ascending
        self._cand_np: np.ndarray | None = None  # the same as a NumPy view (CPU path)
        # which of C are in the mask (bool, len(C)): a NumPy array on the CPU path
        self._chosen: Tensor | np.ndarray | None = None
        self._mask: Tensor | None = None  # the mask, bool, flat
        self._maskf: Tensor | None = None  # the mask as 0/1 in the values' dtype, flat
        self._bias: Tensor | None = None  # 0 on A, K/2 on C, K on L
        self._work: Tensor | None = None  # scratch: |x|, values + bias
        self._r_buf: Tensor | None = None  # where the check writes values + bias
        self._absolute = False  # select_abs (keys x * x) or select (keys = values)
        self._scale = 1.0  # K
        self._slack = 0.0  # relative rounding margin of values + K
        self._n_above = self._n_below = 0
        self._mask_version = -1
        self._since_rebuild = 0
        self._since_fix = 0  # hits since the last repair or rebuild
        #: Incremented by every ``select`` call.
        self.generation = 0
        #: Flat indices whose mask entry changed in the last call; None = maybe all of them.
        self.changed: Tensor | None = None
        # Counters for benchmarks and tests.
        self.hits = 0
        self.rebuilds = 0
        self.resets = 0
        self.repairs = 0

    def reset(self) -> None:
        """Forget all state (e.g. after loading other weights); the next call re-seeds."""
        self.threshold = None
        self._estimate = None
        self._cand = None

    @torch.no_grad()
    def select(self, values: Tensor) -> Tensor:
        self._select(self._prepare(values), absolute=False)
        return self._mask.view(values.shape)

    @torch.no_grad()
    def select_abs(self, x: Tensor, scratch: Tensor | None = None) -> Tensor:
        """``select(x.abs())`` without allocating ``|x|`` (the bound check runs on ``x * x``,
        which orders entries like ``|x|``). ``scratch``: a contiguous tensor like ``x`` that
        the call may overwrite (the caller's next output buffer: fewer cache lines touched);
        None uses the selector's own."""
        src = self._prepare(x)
        if (scratch is not None and scratch.is_contiguous() and scratch.numel() == self.numel
                and scratch.dtype == src.dtype and scratch.device == src.device):
            self._r_buf = scratch.view(-1)
        try:
            self._select(src, absolute=True)
        finally:
            self._r_buf = self._work
        return self._mask.view(x.shape)

    # ---- internals -------------------------------------------------------------------
    def _prepare(self, values: Tensor) -> Tensor:
        flat = values.detach().reshape(-1)
        if flat.numel() != self.numel:
            raise ValueError(f"expected {self.numel} values, got {flat.numel()}")
        if not flat.is_floating_point():
            flat = flat.to(torch.get_default_dtype())
        if flat.device.type != "cpu" or flat.dtype not in (torch.float32, torch.float64):
            raise ValueError("IncrementalTopK takes CPU float32/float64 values, got "
                             f"{flat.dtype} on {flat.device} (make_selector picks DeviceTopK)")
        if (self._maskf is None or self._maskf.dtype != flat.dtype
                or self._maskf.device != flat.device):
            self._mask = torch.ones(self.numel, dtype=torch.bool, device=flat.device)
            self._maskf = torch.ones(self.numel, dtype=flat.dtype, device=flat.device)
            self._bias = torch.empty_like(self._maskf)
            self._work = self._r_buf = torch.empty_like(self._maskf)
            self._slack = 4.0 * torch.finfo(flat.dtype).eps
            self._cand = None
            # the band work runs in NumPy on views that share the tensors' memory
            self._mask_np, self._maskf_np = self._mask.numpy(), self._maskf.numpy()
            self._bias_np, self._work_np = self._bias.numpy(), self._work.numpy()
            self._np_dtype = self._maskf_np.dtype.type
            self._flags = np.empty((2, self.numel), dtype=bool)  # rebuild/repair scratch
            self._code = np.empty(self.numel, dtype=np.uint8)
        return flat

    def _select(self, src: Tensor, absolute: bool) -> None:
        self.generation += 1
        if self._mask._version != self._mask_version:  # edited from outside: start over
            self._cand = None
        if absolute != self._absolute:  # the bias encodes the other kind of key
            self._cand = None
            self._absolute = absolute
        if self.k == self.numel:
            if self._cand is None:
                self._mask.fill_(True)
                self._maskf.fill_(1.0)
                self._cand = torch.empty(0, dtype=torch.long, device=src.device)
                self.changed = None
            else:
                self.changed = self._cand
        elif self._cand is not None and self._refresh_or_nan(src):
            self.hits += 1
            self._since_rebuild += 1
            self._since_fix += 1
        else:
            if absolute:
                np.abs(src.numpy(), out=self._work_np)
            self._rebuild(self._work if absolute else src)
            self.changed = None
        self._mask_version = self._mask._version

    def _refresh_or_nan(self, src: Tensor) -> bool:
        try:
            return self._refresh(src)
        except _NaNValues:
            return False

    def _key(self, c: float) -> float:
        """The check's key of a value c taken from the band: c itself, or for
        :meth:`select_abs` c * c rounded in the values' dtype (exactly what the check pass
        computes for an entry of magnitude c, so comparisons between keys are comparisons
        between magnitudes: rounding a square is monotone)."""
        if not self._absolute or not math.isfinite(c):
            return c
        v = self._np_dtype(c)
        return float(v * v)

    def _check(self, src: Tensor) -> tuple[float, float]:
        """(lower bound of min(A), upper bound of max(L)) in key space, from one pass writing
        ``key + bias`` into the work buffer and its min and max (module docstring)."""
        if self._absolute:
            r = torch.addcmul(self._bias, src, src, out=self._r_buf)
        else:
            r = torch.add(src, self._bias, out=self._r_buf)
        if self._n_above and self._n_below:
            lo, hi = (float(v) for v in torch.aminmax(r))
        else:
            lo = float(r.amin()) if self._n_above else math.inf
            hi = float(r.amax()) if self._n_below else None
        self._r_max = hi
        min_above = lo if self._n_above else math.inf
        if hi is not None:
            max_below = hi - self._scale + self._slack * abs(hi)
        else:
            max_below = -math.inf
        return min_above, max_below

    def _refresh(self, src: Tensor) -> bool:
        """Re-rank C; True (and the mask updated) if A + chosen(C) is still the exact top-k.

        Band work in NumPy (:func:`_choose_host`); the one full-tensor pass and its two
        reductions are torch ops."""
        need = self.k - self._n_above
        vals = np.take(src.numpy(), self._cand_np)
        if self._absolute:
            np.abs(vals, out=vals)
        chosen, c_in, c_out = _choose_host(vals, need, False, self._cand_np)
        min_above, max_below = self._check(src)
        key_in, key_out = self._key(c_in), self._key(c_out)
        if min_above <= key_out < math.inf and c_out == c_in:  # c_out was only a bound: get it
            c_out = float(np.max(vals, where=~chosen, initial=-np.inf))
            key_out = self._key(c_out)
        if not (min_above > key_out and min_above > max_below and key_in > max_below):
            if self._repair(src, c_in):
                return True
            if math.isfinite(c_in):
                self._estimate = c_in
            return False
        # mask writes through NumPy views: bump the version counters by hand (caches keyed
        # on them, such as the eval-mode float mask, must see the change)
        diff = np.flatnonzero(chosen != self._chosen)
        changed_np = self._cand_np[diff]
        if changed_np.size:
            new = chosen[diff]
            self._mask_np[changed_np] = new
            self._maskf_np[changed_np] = new
            torch.autograd.graph.increment_version([self._mask, self._maskf])
            self._chosen = chosen
        self.changed = torch.from_numpy(changed_np)
        if math.isfinite(c_in):
            self.threshold = c_in
        return True

    def _repair(self, src: Tensor, center: float) -> bool:
        """After a failed check: slide the band to ``center`` (the k-th value estimate from
        the failed re-rank) without rebuilding. True (and the mask updated) if that gives the
        exact top-k. CPU (NumPy) only; the work buffer still holds ``r = key + bias`` from
        :meth:`_check`: exactly the key on A, and on L ``fl(K + key)`` or ``fl(K + x * x)``.

        With U, Lo the new edges in key space: every entry of A with key <= U has r <= U,
        and every entry of L with key >= Lo has r >= fl(K + pred(Lo)) (rounding is
        monotone), so two scans of r find them all (plus, harmlessly, a few others); they
        join C. After the re-rank of C, entries of C above U move to A and those below Lo
        to L, so A's keys are > U, L's are < Lo, and the mask is exact when C needs between
        0 and |C| entries, its best unchosen key is <= U and its last chosen key >= Lo.
        Declined (False: rebuild) when r holds a NaN, when more than ``band_target`` entries
        would move, or when that final test fails (the k-th value jumped out of the band)."""
        r = self._r_buf.numpy()
        r_max = self._r_max if self._r_max is not None else float(r.max())
        if math.isnan(r_max) or not math.isfinite(center):  # NaN would slip past the scans
            return False
        dt = self._np_dtype
        half_width = self._half_width
        low_edge = center - half_width
        if self._absolute:
            low_edge = max(low_edge, 0.0)
        # the edges as values of the dtype: the scans below and the final test must agree
        upper = float(dt(self._key(center + half_width)))
        lower = float(dt(self._key(low_edge)))
        scale, half = dt(self._scale), dt(0.5 * self._scale)
        low_flags, high_flags = self._flags
        np.less_equal(r, dt(upper), out=low_flags)
        # r >= fl(K + pred(Lo)) for every key >= Lo, whether r was formed as fl(K + key) or
        # fused as fl(K + x * x) (then x * x > pred(Lo) exactly)
        np.greater_equal(r, scale + np.nextafter(dt(lower), dt(-np.inf)), out=high_flags)
        np.logical_or(low_flags, high_flags, out=low_flags)
        movers = np.flatnonzero(low_flags)
        bias = self._bias_np[movers]
        keep = bias != half  # entries of C stay where they are
        movers, bias = movers[keep], bias[keep]
        if movers.size > self.band_target:
            return False
        from_above = int(np.count_nonzero(bias == 0))
        n_above = self._n_above - from_above
        n_below = self._n_below - (movers.size - from_above)
        need = self.k - n_above
        cand = _merge_sorted(self._cand_np, movers)  # ascending: gathers stay local
        if not 0 <= need <= cand.size:
            return False
        vals = np.take(src.numpy(), cand)
        if self._absolute:
            np.abs(vals, out=vals)
        chosen, c_in, c_out = _choose_host(vals, need, False, cand)
        key_in, key_out = self._key(c_in), self._key(c_out)
        if key_out > upper and c_out == c_in:  # c_out was only a bound: get it
            c_out = float(np.max(vals, where=~chosen, initial=-np.inf))
            key_out = self._key(c_out)
        if not (key_out <= upper and key_in >= lower):
            return False
        self._bias_np[movers] = half
        diff = np.flatnonzero(chosen != self._mask_np[cand])
        changed_np = cand[diff]
        if changed_np.size:
            new = chosen[diff]
            self._mask_np[changed_np] = new
            self._maskf_np[changed_np] = new
            torch.autograd.graph.increment_version([self._mask, self._maskf])
        # C sheds what drifted out of [Lo, U] (when that is worth a compaction): above U is
        # chosen (key_out <= U) and joins A, below Lo is unchosen and joins L
        keys = np.multiply(vals, vals, out=vals) if self._absolute else vals
        to_above, to_below = keys > dt(upper), keys < dt(lower)
        n_up, n_down = int(np.count_nonzero(to_above)), int(np.count_nonzero(to_below))
        if n_up + n_down > cand.size // 8:
            self._bias_np[cand[to_above]] = 0.0
            self._bias_np[cand[to_below]] = scale
            stay = ~(to_above | to_below)
            n_above, n_below = n_above + n_up, n_below + n_down
            cand, chosen = cand[stay], chosen[stay]
        self._n_above, self._n_below = n_above, n_below
        self._cand_np, self._cand, self._chosen = cand, torch.from_numpy(cand), chosen
        self.changed = torch.from_numpy(changed_np)
        if math.isfinite(c_in):
            self.threshold = c_in
        self.repairs += 1
        # aim the band at about band_target entries, and band_target at a repair every few
        # calls (a repair costs a few passes, a wider band a longer re-rank every call)
        if cand.size:
            self._half_width *= min(2.0, max(0.5, self.band_target / cand.size))
        if self._since_fix < self.repair_every // 2:
            self.band_target = min(self.max_band, self.band_target * 2)
        elif self._since_fix > 2 * self.repair_every:
            self.band_target = max(256, self.band_target // 2)
        self._since_fix = -1  # the caller counts this call as a hit
        return True

    def _rebuild(self, flat: Tensor) -> None:
        self.rebuilds += 1
        if bool(torch.isnan(flat).any()):  # no threshold splits NaNs: the reference sort
            self._mask.copy_(reference_topk_mask(flat, self.k))  # (NaN ranks first)
            self._maskf.copy_(self._mask)
            self._cand, self.threshold = None, None  # the next call starts over
            return
        if self._cand is not None and self._chosen is not None:
            # widen the band if it did not last, narrow it if it idles
            if self._since_rebuild < 4:  # a band that failed at once grows faster
                growth = 4 if self._since_rebuild < 2 else 2
                self.band_target = min(self.max_band, self.band_target * growth)
            elif self._since_fix > 64:  # no repair or rebuild for a long time: idle band
                self.band_target = max(256, self.band_target // 2)
        self._since_rebuild = self._since_fix = 0
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

    def _adopt_split(self, n_above: int, n_ge: int, scale: float, c_in: float, delta: float,
                     n_band: int) -> None:
        """Record a fresh split's counts, bias scale K and threshold, and aim the next
        band at about ``band_target`` entries."""
        self._n_above, self._n_below = n_above, self.numel - n_ge
        self._scale = scale
        self._half_width = delta
        self.threshold = c_in
        if delta > 0 and n_band > 0:
            self.delta = delta * min(4.0, max(0.25, self.band_target / n_band))
        else:
            self.delta = max(abs(c_in) * 1e-3, 1e-12)

    def _split(self, flat: Tensor) -> bool:
        """Split into A, L and C around the threshold (NumPy passes); False if the k-th value
        is outside C. ``flat`` holds the magnitudes (|x| for :meth:`select_abs`) or the
        values."""
        t, delta = self.threshold, self.delta
        step = max(2 * delta, abs(t) * 1e-3, 1e-12)
        dt = self._np_dtype
        x = flat.numpy()
        upper, lower = dt(t + delta), dt(t - delta)
        above, at_least = self._flags  # x > upper (A), x >= lower (A and C)
        np.greater(x, upper, out=above)
        n_above = int(np.count_nonzero(above))
        if n_above >= self.k:  # the k-th value moved up past the band
            self.threshold, self.delta = t + step, step
            return False
        np.greater_equal(x, lower, out=at_least)
        n_ge = int(np.count_nonzero(at_least))
        if n_ge < self.k:  # the k-th value moved down past the band
            self.threshold, self.delta = t - step, step
            return False
        hi = float(x.max())
        if self._absolute:  # keys x * x lie in [0, hi * hi]
            scale = _pow2_at_least(2.0 * hi * hi)
        else:
            lo = float(x.min())
            scale = _pow2_at_least(2.0 * (hi - lo)) if hi > lo else _pow2_at_least(abs(hi))
        # code = at_least + above: 0 on L, 1 on C, 2 on A -> bias K, K/2, 0 (exact: K is a
        # power of two)
        code = np.add(at_least.view(np.uint8), above.view(np.uint8), out=self._code)
        np.multiply(code, dt(-0.5 * scale), out=self._bias_np)
        np.add(self._bias_np, dt(scale), out=self._bias_np)
        np.not_equal(at_least, above, out=at_least)  # the band (A is inside x >= lower)
        cand_np = np.flatnonzero(at_least)
        np.copyto(self._mask_np, above)
        np.copyto(self._maskf_np, above)
        chosen, c_in, _ = _choose_host(np.take(x, cand_np), self.k - n_above)
        picked = cand_np[chosen]
        self._mask_np[picked] = True
        self._maskf_np[picked] = 1.0
        torch.autograd.graph.increment_version([self._mask, self._maskf])
        self._cand_np, self._cand, self._chosen = cand_np, torch.from_numpy(cand_np), chosen
        self._adopt_split(n_above, n_ge, scale, c_in, delta, cand_np.size)
        return True
