"""``snas analyze`` and ``snas compare`` report the same 11-epoch EGF for the same trial:
both go through snas.core.epoch_sampling (they used to pick different epochs)."""

from __future__ import annotations

import pytest

from snas.analysis import average_gradient_flow
from snas.compare.stats import evenly_spaced_mean
from snas.core import metrics as M
from snas.store import ResultsStore


def test_analyze_and_compare_agree_on_one_stored_trial(tmp_path):
    store = ResultsStore(f"sqlite:///{tmp_path}/r.db")
    store.create_search("s", "", {}, "random", 1, str(tmp_path), {"layers": []})
    store.upsert_trial("s", "t1", density=[0.5], status="running")
    n_epochs = 37  # not a multiple of 10: index- and epoch-based sampling pick differently
    for e in range(1, n_epochs + 1):
        store.record_epoch("s", "t1", e, {M.EGF_1: float(e * e), M.EGF_2: 1.0 / e,
                                          M.GRAD_NORM_1: 1.0, M.GRAD_NORM_2: 1.0})
    frame = store.epochs_frame("s")
    rows = frame.to_dict("records")
    analyzed = average_gradient_flow(rows)  # what snas analyze computes per trial
    for key in (M.EGF_1, M.EGF_2):
        # what snas compare's report computes per trial, from the same frame
        compared = evenly_spaced_mean(dict(zip(frame[M.EPOCH], frame[key], strict=True)))
        assert compared == pytest.approx(analyzed[key], rel=1e-12)
        # the index-based pick compare used before would have differed here
        picks = sorted({round(i * (n_epochs - 1) / 10) for i in range(11)})
        old = sum(float(frame[key].iloc[i]) for i in picks) / len(picks)
        assert old != pytest.approx(analyzed[key], rel=1e-6)
