"""Gradient-flow analysis: epoch sampling, averages, Kendall correlations, ``snas analyze``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import kendalltau

from snas.analysis import (
    MEASURES,
    analyze_search,
    average_gradient_flow,
    kendall_correlations,
    sampled_epochs,
)
from snas.cli import main
from snas.core import metrics as M
from snas.core.errors import SearchError
from snas.store import ResultsStore

MEASURE_NAMES = [m for m, _ in MEASURES]


# ---------------------------------------------------------------------------------------
# Which epochs


def test_sampled_epochs_on_known_lengths():
    # the thesis' example: 1000 epochs -> 0, 99, 199, ..., 999 counted from 0
    assert sampled_epochs(1000) == [1] + [100 * k for k in range(1, 11)]
    assert sampled_epochs(6) == [1, 2, 3, 4, 5, 6]  # fewer than 11: all
    assert sampled_epochs(11) == list(range(1, 12))
    assert sampled_epochs(12) == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    assert sampled_epochs(20) == [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert sampled_epochs(25) == [1, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25]
    assert sampled_epochs(1) == [1]


def test_sampled_epochs_are_distinct_evenly_spaced_and_span_the_run():
    for n in range(1, 400):
        got = sampled_epochs(n)
        assert len(got) == min(11, n) and len(set(got)) == len(got) and got == sorted(got)
        assert got[0] == 1 and got[-1] == n
        if n > 11:  # each sampled point k lies within one epoch of k * n / 10
            assert all(abs(e - k * n / 10) < 1 for k, e in enumerate(got[1:], 1))
    with pytest.raises(ValueError, match="n_epochs"):
        sampled_epochs(0)


def test_average_over_sampled_epochs_of_a_known_history():
    history = [{M.EPOCH: e, M.EGF_1: float(e), M.EGF_2: 2.0 * e, M.GRAD_NORM_1: 1.0,
                M.GRAD_NORM_2: float(e * e)} for e in range(1, 21)]
    got = average_gradient_flow(history)
    chosen = [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert got["epochs"] == 20 and got["sampled_epochs"] == chosen
    assert got[M.EGF_1] == pytest.approx(np.mean(chosen))
    assert got[M.EGF_2] == pytest.approx(2 * np.mean(chosen))
    assert got[M.GRAD_NORM_1] == 1.0
    assert got[M.GRAD_NORM_2] == pytest.approx(np.mean(np.square(chosen)))
    # short trial: every epoch counts
    assert average_gradient_flow(history[:5])[M.EGF_1] == pytest.approx(3.0)
    # a sampled epoch missing or not finite: no average for that measure
    gap = [r for r in history if r[M.EPOCH] != 14]
    assert average_gradient_flow(gap)[M.EGF_1] is None
    nan = [dict(r, **{M.EGF_2: float("nan")}) if r[M.EPOCH] == 4 else r for r in history]
    out = average_gradient_flow(nan)
    assert out[M.EGF_2] is None and out[M.EGF_1] == pytest.approx(np.mean(chosen))
    # an unsampled epoch does not matter
    odd = [dict(r, **{M.EGF_1: 1e9}) if r[M.EPOCH] == 3 else r for r in history]
    assert average_gradient_flow(odd)[M.EGF_1] == pytest.approx(np.mean(chosen))


# ---------------------------------------------------------------------------------------
# A store built by hand: the correlations equal scipy's


def _build_store(tmp_path, n_full=6, epochs=12, seed=0):
    rng = np.random.default_rng(seed)
    url = f"sqlite:///{tmp_path}/results.db"
    store = ResultsStore(url)
    store.create_search("gf", "", {}, "random", n_full + 3, str(tmp_path),
                        {"metric": M.VAL_ACCURACY, "mode": "max"})
    expected = {}
    for i in range(n_full + 1):
        tid = f"t{i}"
        stopped = i == n_full
        n_epochs = 4 if stopped else epochs
        store.upsert_trial("gf", tid, density=[0.5], status="stopped" if stopped
                           else "terminated", is_baseline=i == 0)
        rows = []
        for e in range(1, n_epochs + 1):
            row = {M.EPOCH: e, **{m: float(rng.lognormal()) for m in MEASURE_NAMES},
                   M.VAL_ACCURACY: 0.5}
            store.record_epoch("gf", tid, e, row)
            rows.append(row)
        chosen = sampled_epochs(n_epochs)
        means = {m: float(np.mean([rows[e - 1][m] for e in chosen])) for m in MEASURE_NAMES}
        summary = {M.VAL_ACCURACY: 0.5}
        if not stopped:
            summary.update({M.TEST_LOSS: float(rng.random()),
                            M.TEST_ACCURACY: float(rng.random())})
        store.record_summary("gf", tid, summary)
        expected[tid] = {**means, **summary}
    store.upsert_trial("gf", "failed", density=[0.5], status="error", error="boom")
    return store, url, expected


def _taus(expected, ids):
    out = {}
    for m in MEASURE_NAMES:
        for target in (M.TEST_LOSS, M.TEST_ACCURACY):
            res = kendalltau([expected[t][m] for t in ids], [expected[t][target] for t in ids])
            out[(m, target)] = (res.statistic, res.pvalue)
    return out


def test_tau_equals_scipy_on_a_built_store(tmp_path):
    store, _, expected = _build_store(tmp_path)
    result = analyze_search(store, "gf")
    full = [f"t{i}" for i in range(6)]
    assert [t["trial_id"] for t in result.trials] == full
    assert result.left_out == {"stopped early by ASHA (add --include-stopped)": 1,
                               "status error": 1}
    for t in result.trials:
        for m in MEASURE_NAMES:
            assert t[m] == pytest.approx(expected[t["trial_id"]][m])
    want = _taus(expected, full)
    assert len(result.correlations) == 8
    for c in result.correlations:
        tau, p = want[(c["measure"], c["target"])]
        assert c["tau"] == pytest.approx(tau) and c["p_value"] == pytest.approx(p)
        assert c["n"] == 6
    # the dense baseline out
    sparse = analyze_search(store, "gf", sparse_only=True)
    assert [t["trial_id"] for t in sparse.trials] == full[1:]
    want = _taus(expected, full[1:])
    for c in sparse.correlations:
        assert c["tau"] == pytest.approx(want[(c["measure"], c["target"])][0])


def test_stopped_trials_count_with_test_metrics_measured_elsewhere(tmp_path):
    store, _, expected = _build_store(tmp_path)
    stopped = "t6"
    # without test metrics a stopped trial is unusable even when asked for
    result = analyze_search(store, "gf", include_stopped=True)
    assert stopped not in [t["trial_id"] for t in result.trials]
    assert result.left_out["no test metrics"] == 1
    expected[stopped].update({M.TEST_LOSS: 0.123, M.TEST_ACCURACY: 0.9})
    result = analyze_search(store, "gf", include_stopped=True,
                            test_metrics={stopped: (0.123, 0.9)})
    ids = [t["trial_id"] for t in result.trials]
    assert stopped in ids and len(ids) == 7
    row = next(t for t in result.trials if t["trial_id"] == stopped)
    assert row["epochs"] == 4 and row["sampled_epochs"] == [1, 2, 3, 4]
    want = _taus(expected, ids)
    for c in result.correlations:
        assert c["tau"] == pytest.approx(want[(c["measure"], c["target"])][0])


def test_fewer_than_three_usable_trials_is_a_one_line_error(tmp_path, capsys):
    store, url, _ = _build_store(tmp_path, n_full=2)
    with pytest.raises(SearchError, match="needs at least 3 usable trials, search 'gf' has 2"):
        analyze_search(store, "gf")
    assert main(["analyze", "gf", "--store", url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has 2" in err and "--include-stopped" in err
    assert main(["analyze", "nope", "--store", url]) == 2
    assert "no search named 'nope'" in capsys.readouterr().err


def test_constant_measure_gives_no_tau():
    rows = [{**{m: 1.0 for m in MEASURE_NAMES}, M.TEST_LOSS: float(i), M.TEST_ACCURACY: 1.0 - i}
            for i in range(4)]
    rows[0][M.EGF_1] = 2.0
    out = {(c["measure"], c["target"]): c for c in kendall_correlations(rows)}
    assert out[(M.EGF_2, M.TEST_LOSS)]["tau"] is None
    assert out[(M.EGF_1, M.TEST_LOSS)]["tau"] == pytest.approx(
        kendalltau([2, 1, 1, 1], [0, 1, 2, 3]).statistic)


def test_cli_formats_on_a_built_store(tmp_path, capsys):
    _, url, expected = _build_store(tmp_path)
    assert main(["analyze", "gf", "--store", url]) == 0
    table = capsys.readouterr().out
    assert "across 6 trials" in table and "mean over epochs 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, " \
        "12 of 12" in table
    lines = table.splitlines()
    for label in ("||g||_1", "||g||_2", "EGF_1", "EGF_2"):
        assert any(line.startswith(label) for line in lines)
    want = _taus(expected, [f"t{i}" for i in range(6)])
    egf2 = next(line for line in lines if line.startswith("EGF_2")).split()
    assert float(egf2[1]) == pytest.approx(want[(M.EGF_2, M.TEST_LOSS)][0], abs=5e-4)
    assert float(egf2[3]) == pytest.approx(want[(M.EGF_2, M.TEST_ACCURACY)][0], abs=5e-4)
    assert main(["analyze", "gf", "--store", url, "--format", "csv"]) == 0
    csv_lines = capsys.readouterr().out.strip().splitlines()
    assert csv_lines[0] == "measure,target,tau,p_value,n_trials" and len(csv_lines) == 9
    assert main(["analyze", "gf", "--store", url, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_trials"] == 6 and len(doc["correlations"]) == 8
    assert "ceil(k * E / 10)" in doc["epoch_rule"]


# ---------------------------------------------------------------------------------------
# End to end on a real search


def test_analyze_on_digits_search(digits_search, capsys):
    url, name, _ = digits_search
    store = ResultsStore(url)
    full = [t for t in store.trials(name) if t["status"] == "terminated"]
    assert main(["analyze", name, "--store", url, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_trials"] == len(full) >= 3
    assert sorted(t["trial_id"] for t in doc["trials"]) == sorted(t["trial_id"] for t in full)
    epochs = store.epochs_frame(name)
    for t in doc["trials"]:
        assert t["sampled_epochs"] == [1, 2, 3, 4, 5, 6]  # 6 epochs: all of them
        mine = epochs[epochs.trial_id == t["trial_id"]]
        assert t[M.EGF_2] == pytest.approx(mine[M.EGF_2].mean())
    for c in doc["correlations"]:
        res = kendalltau([t[c["measure"]] for t in doc["trials"]],
                         [t[c["target"]] for t in doc["trials"]])
        assert c["tau"] == pytest.approx(res.statistic)

    assert main(["analyze", name, "--store", url]) == 0
    assert "EGF_2" in capsys.readouterr().out
    # ASHA-stopped trials, with test metrics measured from their checkpoints
    stopped = [t for t in store.trials(name) if t["status"] == "stopped"]
    assert main(["analyze", name, "--store", url, "--include-stopped",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_trials"] == len(full) + len(stopped)
    for t in doc["trials"]:
        assert 0.0 < t[M.TEST_ACCURACY] <= 1.0 and t[M.TEST_LOSS] > 0
