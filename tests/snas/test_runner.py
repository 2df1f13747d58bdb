"""The experiment runner: argument checks, name/folder checks, fixed trial lists, and the
search status on a real local Ray (finished, failed on an exception, interrupted on Ctrl-C)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ray import tune

from snas import runner
from snas.core.errors import SearchError
from snas.store import ResultsStore

ROOT = Path(__file__).parents[2]
DIGITS = ROOT / "search_spaces" / "mlp_digits.yaml"


def _never_trains(config):  # the failing runs below end before any trial starts
    raise AssertionError("no trial should start")


def _experiment(tmp_path, name="r1", **kwargs):
    args = {"name": name, "storage_path": tmp_path / "exp", "trainable": _never_trains,
            "resources": {"cpu": 1}, "configs": [{"x": 1}], "checkpoints": "none", **kwargs}
    return runner.Experiment(**args)


def _record(n=1):
    return runner.Record("text", {"k": 1}, "test", n, {"kind": "test"})


@pytest.fixture
def store(tmp_path):
    return ResultsStore(f"sqlite:///{tmp_path}/r.db")


# ---- no Ray -----------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"searcher": object()}, "give no searcher and no param_space"),
    ({"param_space": {"a": 1}}, "give no searcher and no param_space"),
    ({"configs": []}, "at least one trial config"),
    ({"num_samples": 0}, "num_samples must be an integer >= 1, got 0"),
    ({"metric": "acc", "mode": "up"}, "mode must be 'max', 'min' or None, got 'up'"),
    ({"metric": "acc"}, "give metric and mode together"),
    ({"checkpoints": "some"}, "checkpoints must be one of recent, last, none, got 'some'"),
    ({"max_failures": -1}, "max_failures must be an integer >= 0, got -1"),
])
def test_experiment_checks_every_argument(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _experiment(tmp_path, **kwargs)


def test_experiment_name_must_be_a_folder_name(tmp_path):
    with pytest.raises(SearchError, match="search name must be"):
        _experiment(tmp_path, name="a/b")
    assert _experiment(tmp_path).trials == 1
    assert _experiment(tmp_path, configs=[{"x": 1}, {"x": 2}]).trials == 2


def test_taken_name_or_existing_folder_is_refused(tmp_path, store):
    storage = tmp_path / "exp"
    assert runner.check_new_experiment(store, "new", storage) == storage / "new"
    store.create_search("taken", "text", {}, "test", 1, str(storage / "taken"), {})
    with pytest.raises(SearchError, match="'taken' already exists in .*; resume it"):
        runner.check_new_experiment(store, "taken", storage, taken_hint="resume it")
    (storage / "left").mkdir(parents=True)
    with pytest.raises(SearchError, match="experiment folder .*left' already exists"):
        runner.check_new_experiment(store, "left", storage)


def test_fixed_configs_come_in_order_as_copies_and_resume_where_they_stopped(tmp_path):
    configs = [{"i": 0, "nested": {"a": 1}}, {"i": 1, "nested": {"a": 2}}]
    searcher = runner.FixedConfigs(configs)
    first = searcher.suggest("t0")
    first["nested"]["a"] = 99  # Tune mutates configs; the plan must not change
    path = str(tmp_path / "searcher.pkl")
    searcher.save(path)
    restored = runner.FixedConfigs([{"other": True}])
    restored.restore(path)
    assert restored.suggest("t1") == {"i": 1, "nested": {"a": 2}}
    assert restored.suggest("t2") == tune.search.Searcher.FINISHED
    assert configs[0] == {"i": 0, "nested": {"a": 1}}


def test_stored_search_refuses_unknown_and_finished(store):
    with pytest.raises(SearchError, match="no search named 'nope'"):
        runner.stored_search(store, "nope")
    store.create_search("done", "text", {}, "test", 1, "/tmp/x", {})
    store.set_search_status("done", "finished")
    with pytest.raises(SearchError, match="already finished"):
        runner.stored_search(store, "done")


# ---- real Ray ---------------------------------------------------------------------------


class _Raises(tune.Callback):
    """Raises ``exc`` when Tune sets its callbacks up, before any trial starts."""

    def __init__(self, exc: BaseException):
        self.exc = exc

    def setup(self, **info):
        raise self.exc


class _CtrlC(tune.Callback):
    """Ctrl-C in the driver while Tune's loop runs (at its first step)."""

    def on_step_begin(self, iteration, trials, **info):
        raise KeyboardInterrupt


def test_an_exception_in_the_run_marks_the_search_failed(ray_address, tmp_path, store):
    experiment = _experiment(tmp_path, callbacks=(_Raises(RuntimeError("set-up broke")),))
    with pytest.raises(RuntimeError, match="set-up broke"):
        runner.run(experiment, _record(), store, address=ray_address)
    assert store.get_search("r1")["status"] == "failed"
    assert store.trials("r1") == []


def test_ctrl_c_marks_the_search_interrupted(ray_address, tmp_path, store):
    experiment = _experiment(tmp_path, callbacks=(_CtrlC(),))
    with pytest.raises(runner.Interrupted) as stopped:
        runner.run(experiment, _record(), store, address=ray_address)
    assert stopped.value.exit_code == 130  # a KeyboardInterrupt inside Tune: SIGINT
    assert store.get_search("r1")["status"] == "interrupted"


def test_a_run_sets_tunes_environment_only_where_unset(ray_address, tmp_path, store,
                                                       monkeypatch):
    monkeypatch.delenv("TUNE_GLOBAL_CHECKPOINT_S", raising=False)
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "0")
    experiment = _experiment(tmp_path, callbacks=(_Raises(RuntimeError("stop")),))
    with pytest.raises(RuntimeError):
        runner.run(experiment, _record(), store, address=ray_address)
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "0"


@pytest.mark.slow  # trains two networks (worker start-up, torch): tens of seconds
def test_a_fixed_list_runs_concurrently_and_finishes(ray_address, tmp_path, store):
    from snas.controller import StoreCallback
    from snas.core.config import load_space
    from trainables.tune_trainable import SnasTrainable

    space = load_space(DIGITS, ["model.width=8", "training.epochs=1"]).to_dict()
    configs = [{"space": space, "density": 1.0}, {"space": space, "density": 0.5}]
    url = f"sqlite:///{tmp_path}/r.db"
    callback = StoreCallback(url, "fixed", "val_accuracy", "max", 1, 2, quiet=True)
    experiment = runner.Experiment(
        name="fixed", storage_path=tmp_path / "exp", trainable=SnasTrainable,
        resources={"cpu": 1}, configs=configs, callbacks=(callback,), checkpoints="none")
    runner.run(experiment, _record(2), store, address=ray_address)
    assert store.get_search("fixed")["status"] == "finished"
    # handed out in order (test_fixed_configs_*), run side by side: started in any order
    trials = sorted(store.trials("fixed"), key=lambda t: -t["density"][0])
    assert [t["density"] for t in trials] == [[1.0], [0.5]]
    assert [t["is_baseline"] for t in trials] == [True, False]
    assert all(t["status"] == "terminated" and t["epochs"] == 1 for t in trials)
    with pytest.raises(SearchError, match="already exists"):  # a name runs once
        runner.run(experiment, _record(2), store, address=ray_address)
