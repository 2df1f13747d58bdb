"""Experiment tracking (``tracking`` section): Tune's MLflow and TensorBoard callbacks.

A real two-trial search logs to a local SQLite MLflow store and to TensorBoard event files;
both are read back with their own readers and checked against the results store.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from snas.cli import main
from snas.core.config import MlflowConfig, TrackingConfig, parse_space_text
from snas.core.errors import ConfigError
from snas.store import ResultsStore

ROOT = Path(__file__).parents[2]
DIGITS = str(ROOT / "search_spaces" / "mlp_digits.yaml")
EPOCHS = 2
TINY = ["--num-samples", "2", "--set", "model.width=16", "--set", f"training.epochs={EPOCHS}",
        "--set", "scheduler.name=fifo", "--quiet"]


def search_args(tmp_path: Path, name: str, *extra: str) -> list[str]:
    return ["search", DIGITS, "--name", name, "--store", f"sqlite:///{tmp_path}/r.db",
            "--storage-path", str(tmp_path / "exp"), *TINY, *extra]


# --------------------------------------------------------------------------------------
# The section


@pytest.mark.parametrize("text,overrides,expected", [
    ("", [], TrackingConfig()),
    ("tracking: {}", [], TrackingConfig()),
    ("tracking: {mlflow: null, tensorboard: false}", [], TrackingConfig()),
    ("tracking: {tensorboard: true}", [], TrackingConfig(tensorboard=True)),
    ("", ["tracking.tensorboard=true"], TrackingConfig(tensorboard=True)),
    ("tracking: {mlflow: true}", [], TrackingConfig(mlflow=MlflowConfig())),
    ("tracking: {mlflow: {uri: 'sqlite:///m.db', experiment: mine}}", [],
     TrackingConfig(mlflow=MlflowConfig(uri="sqlite:///m.db", experiment="mine"))),
    ("", ["tracking.mlflow.uri=file:///tmp/mlruns"],
     TrackingConfig(mlflow=MlflowConfig(uri="file:///tmp/mlruns"))),
    ("tracking: {mlflow: true}", ["tracking.mlflow.experiment=e"],
     TrackingConfig(mlflow=MlflowConfig(experiment="e"))),
    ("tracking: {mlflow: {uri: 'sqlite:///m.db'}}", ["tracking.mlflow=false"], TrackingConfig()),
])
def test_tracking_section_parses_and_round_trips(text, overrides, expected):
    space = parse_space_text(text, overrides)
    assert space.tracking == expected
    assert type(space).from_dict(space.to_dict()) == space


@pytest.mark.parametrize("text,overrides,message", [
    ("tracking: {mlfow: {}}", [],
     "unknown key tracking.mlfow; allowed keys: mlflow, tensorboard"),
    ("tracking: {mlflow: {url: x}}", [],
     "unknown key tracking.mlflow.url; allowed keys: experiment, uri"),
    ("tracking: {tensorboard: 1}", [], "tracking.tensorboard must be true or false, got 1"),
    ("", ["tracking.tensorboard=maybe"], "tracking.tensorboard must be true or false"),
    ("tracking: {mlflow: 5}", [],
     "tracking.mlflow must be a mapping {uri: ..., experiment: ...}, true or null, got 5"),
    ("tracking: {mlflow: {uri: 5}}", [], "tracking.mlflow.uri must be a string or null, got 5"),
    ("tracking: {mlflow: {experiment: ' '}}", [],
     "tracking.mlflow.experiment must be a non-empty string"),
    ("tracking: [mlflow]", [], "tracking must be a mapping of keys to values"),
    ("", ["tracking.mlflow.uri.x=1"], "--set takes section.key=value"),
])
def test_tracking_errors_are_one_line(text, overrides, message):
    with pytest.raises(ConfigError) as info:
        parse_space_text(text, overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_callbacks_of_the_section(tmp_path, monkeypatch):
    from ray.tune.logger import TBXLoggerCallback

    import snas.tracking
    from snas.tracking import MLflowCallback, tracking_callbacks

    assert tracking_callbacks(TrackingConfig(), "s") == []
    (tbx,) = tracking_callbacks(TrackingConfig(tensorboard=True), "s")
    assert isinstance(tbx, TBXLoggerCallback)
    pytest.importorskip("mlflow")
    with pytest.raises(ConfigError, match="cannot open the MLflow tracking store 'nope://x'"
                       ) as info:
        tracking_callbacks(TrackingConfig(mlflow=MlflowConfig(uri="nope://x")), "s")
    assert "\n" not in str(info.value)
    # A new SQLite store's tables take seconds to create; the search below opens one.
    monkeypatch.setattr(snas.tracking, "_open_mlflow_store", lambda mlflow, uri: None)
    uri = f"sqlite:///{tmp_path}/m.db"
    (ml,) = tracking_callbacks(TrackingConfig(mlflow=MlflowConfig(uri=uri)), "s")
    assert isinstance(ml, MLflowCallback)
    assert (ml.tracking_uri, ml.experiment_name, ml.should_save_artifact) == (uri, "s", False)
    (ml,) = tracking_callbacks(TrackingConfig(mlflow=MlflowConfig(uri=uri, experiment="e")), "s")
    assert ml.experiment_name == "e"


# --------------------------------------------------------------------------------------
# Searches


def test_missing_mlflow_fails_before_anything_is_stored(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    argv = search_args(tmp_path, "nomlflow", "--set", f"tracking.mlflow.uri=sqlite:///"
                       f"{tmp_path}/mlflow.db")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'snas[tracking]'" in err, err
    assert "tracking.mlflow" in err
    assert ResultsStore(f"sqlite:///{tmp_path}/r.db").get_search("nomlflow") is None
    assert not (tmp_path / "exp" / "nomlflow").exists() and not (tmp_path / "mlflow.db").exists()


def test_search_logs_each_trial_to_mlflow_and_tensorboard(ray_address, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(search_args(tmp_path, "tracked", "--set", f"tracking.mlflow.uri={uri}",
                            "--set", "tracking.tensorboard=true")) == 0

    store = ResultsStore(f"sqlite:///{tmp_path}/r.db")
    trials = store.trials("tracked")
    epochs = store.epochs_frame("tracked")
    assert len(trials) == 2 and {t["status"] for t in trials} == {"terminated"}
    expected = {t["trial_id"]: list(epochs[epochs.trial_id == t["trial_id"]].val_accuracy)
                for t in trials}
    assert all(len(v) == EPOCHS for v in expected.values())

    # MLflow: experiment named after the search, one run per trial, one value per epoch.
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == len(trials)
    logged = {}
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags["snas_search"] == "tracked"
        (trial_id,) = [t for t in expected if t in run.info.run_name]
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == list(range(1, EPOCHS + 1))
        logged[trial_id] = [m.value for m in history]
        params = run.data.params
        assert {"d_00", "d_01", "d_02", "d_03", "d_04"} <= set(params), sorted(params)[:20]
        assert params["space/model/width"] == "16"
        assert not [k for k in run.data.metrics if k.startswith("config/")]  # params, only
    assert logged.keys() == expected.keys()
    assert all(logged[t] == pytest.approx(expected[t]) for t in expected), (logged, expected)

    # TensorBoard: one event file per trial folder, the same per-epoch scalars.
    files = sorted((tmp_path / "exp" / "tracked").glob("*/events.out.tfevents.*"))
    assert len(files) == len(trials), files
    read = []
    for path in files:
        acc = event_accumulator.EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        scalars = acc.Scalars("ray/tune/val_accuracy")
        assert [s.step for s in scalars] == list(range(1, EPOCHS + 1))
        read.append([s.value for s in scalars])
    for got, want in zip(sorted(read), sorted(expected.values()), strict=True):
        assert got == pytest.approx(want, abs=1e-6)  # event files hold float32
