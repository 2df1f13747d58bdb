"""The search service end to end on a real local Ray, a real SQLite store, real data."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _faults import wait_for_fault

from snas.cli import main
from snas.store import ResultsStore

ROOT = Path(__file__).parents[2]
DIGITS = str(ROOT / "search_spaces" / "mlp_digits.yaml")
SMALL = ["--set", "model.width=32", "--set", "training.epochs=4",
         "--set", "scheduler.grace_period=1", "--set", "scheduler.reduction_factor=2"]


def search_args(tmp_path, name, *extra):
    return ["search", DIGITS, "--name", name, "--store", f"sqlite:///{tmp_path}/r.db",
            "--storage-path", str(tmp_path / "exp"), "--quiet", *SMALL, *extra]


def dump(db: Path) -> list:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        return [(t, sorted(map(repr, conn.execute(f"select * from {t}")))) for t in tables]


@pytest.mark.parametrize("searcher", ["random", "bayesopt", "optuna"])
def test_search_completes_and_store_holds_every_trial(ray_address, tmp_path, searcher, capsys):
    code = main(search_args(tmp_path, f"s-{searcher}", "--searcher", searcher,
                            "--num-samples", "6"))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "best density vector" in out and "dense baseline" in out
    store = ResultsStore(f"sqlite:///{tmp_path}/r.db")
    trials = store.trials(f"s-{searcher}")
    assert len(trials) == 6
    assert store.get_search(f"s-{searcher}")["status"] == "finished"
    baseline = [t for t in trials if t["is_baseline"]]
    assert len(baseline) == 1 and baseline[0]["status"] == "terminated"
    assert baseline[0]["epochs"] == 4  # ASHA never stops the dense baseline
    assert all(len(t["density"]) == 5 for t in trials)
    for t in trials:  # exactly one epoch row per epoch trained, a summary and a graph each
        assert t["status"] in ("terminated", "stopped")
        assert t["has_summary"] and t["has_graph"]
    counts = store.count_rows(f"s-{searcher}")
    assert counts["epochs"] == sum(t["epochs"] for t in trials)
    # ASHA visibly stops poor trials early: fewer epochs in the store
    if searcher == "random":
        assert any(t["status"] == "stopped" and t["epochs"] < 4 for t in trials)
    graph, stats = store.graph(f"s-{searcher}", trials[0]["trial_id"])
    assert stats["layer_summary"]["active_weights"] == trials[0]["active_weights"]
    assert graph["nodes"]

    # show lists every trial with its density vector
    assert main(["show", f"s-{searcher}", "--store", f"sqlite:///{tmp_path}/r.db",
                 "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {t["trial_id"] for t in shown} == {t["trial_id"] for t in trials}
    assert all(len(t["density"]) == 5 for t in shown)


def test_export_and_retrain_reproduce_top_trial(ray_address, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/r.db"
    assert main(search_args(tmp_path, "exp1", "--num-samples", "4")) == 0
    out = tmp_path / "best.json"
    assert main(["export", "exp1", "--store", db, "--top", "3", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == "snas-export/1" and doc["search"] == "exp1"
    top = doc["trials"][0]
    assert [layer["name"] for layer in top["layers"]][0] == "stem.linear"
    assert all(layer["density"] == d for layer, d in zip(top["layers"], top["density"]))
    for key in ("val_accuracy", "test_accuracy", "active_weights", "egf_1", "egf_2",
                "checkpoint_path"):
        assert top[key] is not None, key
    capsys.readouterr()
    result = tmp_path / "retrain.json"
    assert main(["train", DIGITS, *SMALL, "--from-export", str(out), "--json-out", str(result),
                 "--quiet"]) == 0
    retrained = json.loads(result.read_text())
    assert abs(retrained["test_accuracy"] - top["test_accuracy"]) <= 0.01


def test_bad_input_leaves_store_unchanged(ray_address, tmp_path, capsys):
    db_path = tmp_path / "r.db"
    assert main(search_args(tmp_path, "keep", "--num-samples", "2")) == 0
    before = dump(db_path)
    bad_space = tmp_path / "bad.yaml"
    bad_space.write_text("model: {name: mlp, width: [}\n")
    cases = [
        (search_args(tmp_path, "x1", "--searcher", "grid"), "search.searcher must be one of"),
        (["search", str(bad_space), "--store", f"sqlite:///{db_path}"], "malformed YAML"),
        (search_args(tmp_path, "keep"), "already exists; add --resume"),
        (search_args(tmp_path, "bad/name"), "search name must be"),
        (["search", DIGITS, "--store", "postgresql://u:secret@127.0.0.1:1/db"],
         "cannot open results store"),
        (["search", DIGITS, "--store", f"sqlite:///{tmp_path}/no/such/dir/r.db"],
         "cannot open results store"),
        (["show", "nope", "--store", f"sqlite:///{db_path}"], "no search named 'nope'"),
        (["export", "keep", "--store", f"sqlite:///{db_path}", "--top", "0"], "--top must be"),
        (["resume", "nope", "--store", f"sqlite:///{db_path}"], "no search named 'nope'"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
        assert err.count("\n") == 1 and "secret" not in err
    assert dump(db_path) == before


KILL_POINTS = ["search_created", "epoch_recorded:3", "store_write:14", "checkpoint_write:4",
               "trial_complete:2"]


@pytest.mark.slow
@pytest.mark.parametrize("kill_point", KILL_POINTS)
def test_killed_driver_resumes_without_duplicates(ray_address, tmp_path, kill_point):
    """SIGKILL the driver at a named moment; `snas resume` finishes the planned samples with
    one row per trial and per (trial, epoch), and re-runs no trial that had finished."""
    db = tmp_path / "r.db"
    marker = tmp_path / "marker"
    planned = 5
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SNAS_FAULT": kill_point,
           "SNAS_FAULT_MARKER": str(marker), "SNAS_FAULT_SLEEP": "120"}
    argv = [sys.executable, "-m", "snas.cli", *search_args(tmp_path, "kill", "--num-samples",
            str(planned), "--max-concurrent", "2", "--address", ray_address)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for_fault(proc, marker, kill_point)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    store = ResultsStore(f"sqlite:///{db}")
    assert store.get_search("kill")["status"] == "running"  # the driver died mid-search
    frame = store.epochs_frame("kill")
    finished_before = {
        t["trial_id"]: sorted(map(str, frame[frame.trial_id == t["trial_id"]].recorded_at))
        for t in store.trials("kill") if t["status"] in ("terminated", "stopped")}

    time.sleep(2)  # let the killed job's workers go
    env.pop("SNAS_FAULT")
    resume = subprocess.run([sys.executable, "-m", "snas.cli", "resume", "kill", "--store",
                             f"sqlite:///{db}", "--address", ray_address],
                            env=env, capture_output=True, text=True, timeout=400)
    assert resume.returncode == 0, resume.stdout[-3000:] + resume.stderr[-3000:]
    trials = store.trials("kill")
    assert len(trials) == planned, [(t["trial_id"], t["status"]) for t in trials]
    assert all(t["status"] in ("terminated", "stopped") for t in trials), (
        [(t["trial_id"], t["status"], t["epochs"]) for t in trials], resume.stdout[-3000:])
    counts = store.count_rows("kill")
    assert counts["trials"] == planned and counts["summaries"] == planned
    frame = store.epochs_frame("kill")
    assert not frame.duplicated(["trial_id", "epoch"]).any()
    assert counts["epochs"] == len(frame) == sum(t["epochs"] for t in trials)
    for trial_id, stamps in finished_before.items():  # finished trials were not re-run
        rows = frame[frame.trial_id == trial_id]
        assert sorted(map(str, rows.recorded_at)) == stamps, trial_id
    assert store.get_search("kill")["status"] == "finished"


def test_diverging_trials_fail_with_reason_and_search_goes_on(ray_address, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/r.db"
    code = main(search_args(tmp_path, "nan", "--num-samples", "3", "--no-dense-baseline",
                            "--set", "training.lr=10", "--set", "training.momentum=0.99",
                            "--set", "model.batch_norm=false",
                            "--set", "resources.max_failures=0"))  # no retries: 3 runs, not 9
    out, err = capsys.readouterr()
    assert code == 1, out + err  # every trial failed: the command says so and exits 1
    assert err.strip().count("\n") == 0
    assert "all 3 trials of search 'nan' failed; " in err and "TrialDiverged: diverged" in err
    trials = ResultsStore(db).trials("nan")
    assert len(trials) == 3
    for t in trials:
        assert t["status"] == "error"
        assert "TrialDiverged: diverged: train loss is" in t["error"], t["error"]
    assert ResultsStore(db).get_search("nan")["status"] == "finished"


# SIGTERM end to end; SIGINT takes the same handler (and test_runner's Ctrl-C test checks
# a KeyboardInterrupt inside Tune), so one signal keeps the suite short.
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143)])
def test_signal_stops_the_search_cleanly_and_resume_finishes_it(ray_address, tmp_path, signum,
                                                                code):
    """SIGTERM / Ctrl-C of the driver: Tune stops, the search is stored `interrupted`, the
    command exits 128 + signal with one line, and `snas resume` finishes it."""
    db = tmp_path / "r.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "snas.cli", *search_args(tmp_path, "sig", "--num-samples", "4",
            "--set", "training.epochs=30", "--address", ray_address)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.time() + 180
        while True:  # wait for a first stored epoch: Tune's loop is running
            if proc.poll() is not None:
                pytest.fail("search ended before the signal: " + proc.stderr.read()[-2000:])
            if time.time() > deadline:
                pytest.fail("no epoch stored in time")
            if db.exists() and (polled := ResultsStore(f"sqlite:///{db}")).get_search("sig"):
                if len(polled.epochs_frame("sig")):
                    break
            time.sleep(0.3)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last == (f"snas: search 'sig' interrupted by {signal.Signals(signum).name}; "
                    "`snas resume sig` continues it")
    store = ResultsStore(f"sqlite:///{db}")
    assert store.get_search("sig")["status"] == "interrupted"
    resume = subprocess.run([sys.executable, "-m", "snas.cli", "resume", "sig", "--store",
                             f"sqlite:///{db}", "--address", ray_address],
                            env=env, capture_output=True, text=True, timeout=400)
    assert resume.returncode == 0, resume.stdout[-2000:] + resume.stderr[-2000:]
    assert store.get_search("sig")["status"] == "finished"
    trials = store.trials("sig")
    assert len(trials) == 4 and all(t["status"] in ("terminated", "stopped") for t in trials)
    frame = store.epochs_frame("sig")
    assert not frame.duplicated(["trial_id", "epoch"]).any()


def test_the_space_is_bound_once_not_copied_into_every_trials_state(digits_search):
    """Tune rewrites its experiment state every loop step: each trial's share of it stays
    small because the space reaches the trainable once (``tune.with_parameters``)."""
    import json

    _, name, tmp = digits_search
    state_file = sorted((tmp / "exp" / name).glob("experiment_state-*.json"))[-1]
    trials = json.loads(state_file.read_text())["trial_data"]
    assert len(trials) == 8
    for static, runtime in trials:
        config = json.loads(static)["config"]
        assert config and all(k.startswith("d_") or k == "density" for k in config), config
        assert "space" not in json.loads(runtime)["last_result"]["config"]
        assert len(static) + len(runtime) < 40_000  # ~45 KB with the space in the config
