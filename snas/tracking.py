"""Experiment tracking: the ``tracking`` section of a search-space file as Tune callbacks.

Nothing here logs by itself: :func:`tracking_callbacks` returns Ray Tune's own logger
callbacks, which run on the driver beside :class:`~snas.controller.StoreCallback`:

* ``tracking.mlflow`` -> ``ray.air.integrations.mlflow.MLflowLoggerCallback``: one MLflow
  run per trial (named after the trial, tagged ``snas_search``), the trial's config and
  the search's space as params (flattened: ``d_00``..., ``space/training/lr``...; the space
  is bound to the trainable once, not in each config), every reported result as
  metrics with ``step`` = the epoch (``training_iteration``), no artifacts. Tune's result
  also carries the config; :class:`MLflowCallback` leaves that copy out of the metrics
  (it is in the params; TBXLoggerCallback leaves it out too), which halves the writes.
* ``tracking.tensorboard`` -> ``ray.tune.logger.TBXLoggerCallback``: ``events.out.tfevents.*``
  in each trial's folder (``<storage-path>/<name>/<trial>/``), scalars under ``ray/tune/``.
  Tune adds this callback by itself when tensorboardX imports, unless
  ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``; naming it here makes the event files a promise
  (Tune does not add a second one).

A missing package is a one-line :class:`~snas.core.errors.ConfigError` raised while the
experiment is built, before anything is stored; so is an MLflow store that cannot be opened.
"""

from __future__ import annotations

import importlib
from typing import Any

from snas.core.config import TrackingConfig
from snas.core.errors import ConfigError

INSTALL_HINT = "pip install 'snas[tracking]'"


def _mlflow_callback_class() -> type:
    """:class:`MLflowCallback`, defined on first use: Ray's MLflow integration imports
    mlflow (~2 s), which a search without ``tracking.mlflow`` must not pay."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class MLflowCallback(MLflowLoggerCallback):
        """Tune's MLflow logger, less the config copy in every result (logged once, as
        params), plus ``search_params``: params every trial's run gets besides its config
        (the search's space, which the trials' configs do not carry)."""

        def __init__(self, *args: Any, search_params: dict | None = None,
                     **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.search_params = dict(search_params or {})

        def log_trial_start(self, trial: Any) -> None:
            super().log_trial_start(trial)
            if self.search_params and not self.log_params_on_trial_end:
                self.mlflow_util.log_params(run_id=self._trial_runs[trial],
                                            params_to_log=self.search_params)

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            super().log_trial_result(iteration, trial,
                                     {k: v for k, v in result.items() if k != "config"})

    MLflowCallback.__module__, MLflowCallback.__qualname__ = __name__, "MLflowCallback"
    return MLflowCallback


def __getattr__(name: str) -> Any:
    # ``snas.tracking.MLflowCallback`` (also what unpickling a restored run looks up).
    if name == "MLflowCallback":  # defined once, then found in the module's globals
        if name not in globals():
            globals()[name] = _mlflow_callback_class()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _require(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{what} needs the {module} package, which is not installed: "
                          f"{INSTALL_HINT}") from None


def mlflow_experiment(tracking: TrackingConfig, search_name: str) -> str:
    """The MLflow experiment a search logs to: ``tracking.mlflow.experiment`` or its name."""
    return (tracking.mlflow.experiment if tracking.mlflow and tracking.mlflow.experiment
            else search_name)


def _open_mlflow_store(mlflow: Any, uri: str | None) -> None:
    """Open the tracking store once (SQLite: creates its tables), so a bad ``uri`` fails
    before the search starts rather than inside Tune."""
    try:
        mlflow.tracking.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any failure to open it is the user's uri
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        shown = uri if uri is not None else "MLflow's default"
        raise ConfigError(f"tracking.mlflow.uri: cannot open the MLflow tracking store "
                          f"{shown!r}: {first}") from None


def tracking_callbacks(tracking: TrackingConfig, search_name: str,
                       search_params: dict | None = None) -> list[Any]:
    """The Tune callbacks of ``tracking`` for search ``search_name`` (empty: no tracking);
    ``search_params`` go to every MLflow run as params next to the trial's config."""
    callbacks: list[Any] = []
    if tracking.tensorboard:
        _require("tensorboardX", "tracking.tensorboard")
        from ray.tune.logger import TBXLoggerCallback

        callbacks.append(TBXLoggerCallback())
    if tracking.mlflow is not None:
        mlflow = _require("mlflow", "tracking.mlflow")
        _open_mlflow_store(mlflow, tracking.mlflow.uri)
        callbacks.append(__getattr__("MLflowCallback")(
            tracking_uri=tracking.mlflow.uri,
            experiment_name=mlflow_experiment(tracking, search_name),
            tags={"snas_search": search_name}, save_artifact=False,
            search_params=search_params))
    return callbacks


__all__ = ["INSTALL_HINT", "MLflowCallback", "mlflow_experiment", "tracking_callbacks"]  # noqa: F822
