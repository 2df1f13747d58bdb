"""The search controller: a validated search space becomes a Ray Tune run.

Data flow: search-space file -> :class:`~snas.core.config.SpaceConfig` -> an
:class:`~snas.runner.Experiment` whose search domain is the density vector (one
``[low, high]`` range per maskable layer, keys ``d_00``, ``d_01``, ..., or one ``density``
scalar when ``density.uniform``), a searcher from :mod:`snas.searchers`, ASHA from the
``scheduler`` section, and the trainable from :mod:`trainables.tune_trainable`; the
experiment runner (:mod:`snas.runner`) starts Ray, fits it and keeps the search status.
Results flow back through :class:`StoreCallback`, which writes every trial, epoch, summary
and wiring graph to the results store from the driver.

Fault tolerance: trials checkpoint where ASHA may stop them, after their last epoch and
otherwise every ~30 s of training (:mod:`trainables.tune_trainable`), and Tune saves its
experiment state after every step of its loop that changed it
(``TUNE_GLOBAL_CHECKPOINT_S=0`` and the on-change gate, both set by
:func:`snas.ray_session.start`), so after a hard kill of the driver ``snas resume NAME``
(``Tuner.restore``) re-runs no finished trial; the store's writes are idempotent, so
replayed results add no duplicate rows.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ray import tune
from ray.tune.schedulers import ASHAScheduler

from snas import runner
from snas.core import faults
from snas.core import metrics as M
from snas.core.budget import CostModel, DensityBudget, cost_model_from_layers
from snas.core.config import SpaceConfig, to_dict
from snas.core.density import density_keys, density_list, is_dense
from snas.core.errors import ConfigError
from snas.paths import default_storage_path  # noqa: F401  (re-exported)
from snas.ray_session import trial_actors_at_once
from snas.runner import (  # noqa: F401  (re-exported: the CLI and compare use them)
    check_search_name,
    fit_tuner,
    init_ray,
    prune_checkpoints,
)
from snas.store import ResultsStore

SUMMARY_KEYS = (M.TEST_ACCURACY, M.TEST_LOSS, M.VAL_ACCURACY, M.VAL_LOSS, M.TRAIN_LOSS,
                M.TRAIN_ACCURACY, M.EGF_1, M.EGF_2, M.GRAD_NORM_1, M.GRAD_NORM_2,
                M.ACTIVE_WEIGHTS, M.TOTAL_WEIGHTS, M.ACTIVE_FLOPS, M.TOTAL_FLOPS,
                M.REALIZED_DENSITY, M.EPOCH, "density")
EPOCH_KEYS = (*M.EPOCH_SCALARS, M.REALIZED_DENSITY, M.TEST_ACCURACY, M.TEST_LOSS,
              M.ACTIVE_FLOPS, M.TOTAL_FLOPS)


def density_config(result_or_config: Mapping[str, Any]) -> list[float]:
    """A trial's density as a list (:func:`snas.core.density.density_list`)."""
    return density_list(result_or_config)


class StoreCallback(tune.Callback):
    """Tune callback that mirrors trials into the results store and prints progress.

    It is pickled with the experiment (for ``Tuner.restore``), so it holds the store URL and
    opens the store lazily in whichever driver process runs it.
    """

    def __init__(self, store_url: str, search: str, metric: str, mode: str, max_epochs: int,
                 num_samples: int, out: TextIO | None = None, quiet: bool = False):
        self.store_url = store_url
        self.search = search
        self.metric, self.mode = metric, mode
        self.max_epochs = max_epochs
        self.num_samples = num_samples
        self.quiet = quiet
        self._out = out
        super().__init__()
        self._store: ResultsStore | None = None
        self._last: dict[str, dict[str, Any]] = {}
        self._ended: set[str] = set()
        self._reconciled = False

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_store"] = None
        state["_out"] = None
        state["_reconciled"] = False  # a restored run reconciles again
        return state

    @property
    def store(self) -> ResultsStore:
        if self._store is None:
            self._store = ResultsStore(self.store_url)
        return self._store

    def _print(self, line: str) -> None:
        if not self.quiet:
            print(line, file=self._out or sys.stdout, flush=True)

    # ---- Tune callback hooks (names and signatures from ray.tune.Callback) -------------
    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._reconciled:
            return
        # Once per driver run: trials the store has but Tune's (restored) state does not
        # were lost with a killed driver; Tune will start their work afresh under new ids.
        self._reconciled = True
        known = {t.trial_id for t in trials}
        orphans = [t["trial_id"] for t in self.store.trials(self.search)
                   if t["trial_id"] not in known and t["status"] in ("pending", "running")]
        if orphans:
            self.store.delete_trials(self.search, orphans)
            self._print(f"dropped {len(orphans)} unfinished trial(s) the interrupted run had "
                        f"not saved: {', '.join(orphans)}")

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        density = density_config(trial.config)
        self.store.upsert_trial(self.search, trial.trial_id, density=density,
                                config={k: v for k, v in trial.config.items() if k != "space"},
                                status="running", is_baseline=self.is_baseline(trial.config))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        epoch = result.get(M.EPOCH)
        if epoch is None:
            return
        metrics = {k: result[k] for k in EPOCH_KEYS if k in result}
        self.store.record_epoch(self.search, trial.trial_id, int(epoch), metrics)
        faults.point("epoch_recorded")
        # The Ray node id (from the trainable): node IPs repeat when nodes share a host.
        # Written when it changes (a trial's first result, a retry elsewhere), not per epoch.
        node = result.get("node_id") or result.get("node_ip")
        nodes = self.__dict__.setdefault("_nodes", {})  # (absent from older pickles)
        if nodes.get(trial.trial_id, ()) != node:
            self.store.upsert_trial(self.search, trial.trial_id, node_id=node)
            nodes[trial.trial_id] = node
        self._last[trial.trial_id] = result

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info: Any) -> None:
        path = getattr(checkpoint, "path", None)
        if path:
            self.store.upsert_trial(self.search, trial.trial_id, checkpoint_path=str(path))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.store.upsert_trial(self.search, trial.trial_id, status="pending")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = self._last.get(trial.trial_id) or trial.last_result or {}
        epochs = int(result.get(M.EPOCH, 0))
        status = "terminated" if epochs >= self.max_epochs else "stopped"
        summary = {k: result[k] for k in SUMMARY_KEYS if k in result}
        summary["epochs"] = epochs
        self.store.record_summary(self.search, trial.trial_id, summary)
        faults.point("trial_complete")
        checkpoint = getattr(trial, "checkpoint", None)
        path = getattr(checkpoint, "path", None)
        if path:
            self._record_wiring(trial.trial_id, str(path))
        self.store.upsert_trial(self.search, trial.trial_id, status=status,
                                checkpoint_path=str(path) if path else None)
        self._progress(trials, trial.trial_id, status, result)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.store.upsert_trial(self.search, trial.trial_id, status="error",
                                error=_error_text(trial))
        self._progress(trials, trial.trial_id, "error", {})

    # ---- helpers --------------------------------------------------------------------
    def is_baseline(self, config: Mapping[str, Any]) -> bool:
        """Whether the trial of ``config`` is the search's dense baseline."""
        return is_dense_config(config)

    def _record_wiring(self, trial_id: str, checkpoint_dir: str) -> None:
        """Store the wiring record the trainable wrote into the trial's last checkpoint;
        rebuild it from the checkpoint where there is none (older checkpoints, a trial
        stopped at an epoch where it could not end)."""
        from trainables.checkpoint import read_wiring_record

        try:
            record = read_wiring_record(checkpoint_dir)
            if record is None:
                from trainables.wiring_record import wiring_record

                record = wiring_record(checkpoint_dir)
            self.store.record_graph(self.search, trial_id, *record)
        except Exception as exc:  # noqa: BLE001 - a missing graph must not kill the search
            self._print(f"trial {trial_id}: no wiring record ({type(exc).__name__}: {exc})")

    def _progress(self, trials: list, trial_id: str, status: str, result: Mapping[str, Any]
                  ) -> None:
        self._ended.add(trial_id)
        running = sum(1 for t in trials if t.status == "RUNNING" and t.trial_id not in self._ended)
        value = result.get(self.metric)
        best = self._best(trials)
        shown = f"{self.metric} {value:.4f}" if isinstance(value, float) else "no result"
        self._print(f"[{len(self._ended)}/{self.num_samples} done, {running} running] "
                    f"trial {trial_id} {status} after {result.get(M.EPOCH, 0)} epochs: {shown}"
                    + (f" | best {best[1]:.4f} ({best[0]})" if best else ""))

    def _best(self, trials: list) -> tuple[str, float] | None:
        scored = []
        for t in trials:
            value = (self._last.get(t.trial_id) or {}).get(self.metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                scored.append((t.trial_id, float(value)))
        if not scored:
            return None
        pick = max if self.mode == "max" else min
        return pick(scored, key=lambda item: item[1])


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        text = Path(path).read_text(errors="replace").strip()
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else text
    return "trial failed (no error file)"


@dataclass(frozen=True)
class SearchRequest:
    """Everything ``snas search`` needs, validated."""

    name: str
    space: SpaceConfig
    space_text: str
    store_url: str
    storage_path: Path
    address: str | None = None
    quiet: bool = False


def is_dense_config(config: Mapping[str, Any]) -> bool:
    """Whether a trial config is the dense baseline (every density 1.0)."""
    return is_dense(config)


class BaselineKeepingASHA(ASHAScheduler):
    """ASHA that never stops the dense baseline: every result is read against it, so it
    must train its full budget. Its results still enter the rungs."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == self.STOP and is_dense_config(trial.config) and not result.get("done"):
            return self.CONTINUE
        return decision


def search_budget(space: SpaceConfig, layers: Sequence[Mapping[str, Any]]
                  ) -> tuple[CostModel, DensityBudget | None]:
    """The cost model of a search's network and its budget (None without a cap).

    ``layers``: the search's layer table (``params["layers"]``: name, shape, positions).
    A cap below the cheapest vector the density range allows is a ConfigError.
    """
    model = cost_model_from_layers(layers, space.budget.resource)
    if space.budget.max_fraction is None:
        return model, None
    budget = DensityBudget(model, space.budget.max_fraction)
    budget.check_feasible(space.density.low)
    return model, budget


def runs_dense_baseline(space: SpaceConfig, budget: DensityBudget | None) -> bool:
    """Whether the search trains the dense baseline: asked for, and within the budget."""
    return space.search.with_dense_baseline and (budget is None or budget.allows(1.0))


def _tune_objects(space: SpaceConfig, layers: Sequence[Mapping[str, Any]],
                  split_sizes: Mapping[str, int] | None = None) -> tuple[Any, Any, dict]:
    """(searcher, scheduler, param_space) for a space, its layer table and split sizes."""
    from ray.tune.schedulers import FIFOScheduler

    from snas.searchers import DensitySpace, make_searcher

    names = density_keys(len(layers), uniform=space.density.uniform)
    s = space.search
    cost_model, budget = search_budget(space, layers)
    searcher = make_searcher(
        s.searcher.name, DensitySpace(names, space.density.low, space.density.high),
        metric=s.metric, mode=s.mode, seed=s.seed, options=s.searcher.options,
        dense_baseline=runs_dense_baseline(space, budget), max_concurrent=s.max_concurrent,
        budget=budget, cost_model=cost_model, multi_objective=s.multi_objective,
        warm_start=warm_start_configs(space, layers),
        val_size=(split_sizes or {}).get("val") or None)
    if space.scheduler.name == "asha":
        scheduler = BaselineKeepingASHA(time_attr="training_iteration", max_t=space.training.epochs,
                                  grace_period=min(space.scheduler.grace_period,
                                                   space.training.epochs),
                                  reduction_factor=space.scheduler.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    return searcher, scheduler, {}  # the space goes to the trainable once (_experiment)


def layer_table(space: SpaceConfig) -> list[dict[str, Any]]:
    """The search's layer table, in density-vector order: ``name``, ``shape`` and
    ``positions`` (output positions per example, what a weight costs in FLOPs), from the
    space's model built on CPU."""
    return network_facts(space)[0]


def network_facts(space: SpaceConfig) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(:func:`layer_table`, the examples in each data split) of a space: what the driver
    needs to know about the trials' network and data before any trial runs."""
    import torch

    from trainables.data import load_dataset
    from trainables.kernels import make_kernel
    from trainables.memory import check_fits
    from trainables.models import build_model, layer_specs, output_positions

    data = load_dataset(space.dataset, "cpu")
    check_fits(space, data.input_shape, data.num_classes)  # before building it for real
    model = build_model(space.model, make_kernel(space.kernel), data.input_shape,
                        data.num_classes, 1.0, torch.Generator().manual_seed(0))
    positions = output_positions(model, data.input_shape)
    layers = [{"name": spec.name, "shape": list(spec.shape), "positions": p}
              for spec, p in zip(layer_specs(model), positions, strict=True)]
    return layers, {k: int(v) for k, v in data.split_sizes().items()}


def warm_start_configs(space: SpaceConfig, layers: Sequence[Mapping[str, Any]]
                       ) -> list[dict[str, float]]:
    """The density configs of ``search.warm_start``: each reference allocation at the
    budget's cost (or ``search.warm_start_fraction`` of the dense cost without a budget)."""
    from snas.core.allocations import reference_allocation

    s = space.search
    if not s.warm_start:
        return []
    fraction = (space.budget.max_fraction if space.budget.max_fraction is not None
                else s.warm_start_fraction)
    names = density_keys(len(layers), uniform=space.density.uniform)
    configs = []
    for allocation in s.warm_start:
        vector = reference_allocation(allocation, list(layers), fraction,
                                      space.budget.resource)
        if space.density.uniform:
            if len(set(vector)) > 1:
                raise ConfigError(f"search.warm_start: {allocation} gives one density per "
                                  "layer, but density.uniform searches one scalar; use uniform")
            vector = vector[:1]
        configs.append(dict(zip(names, vector, strict=True)))
    return configs


# Experiments saved before the runner existed pickled Tune's trial-folder namer from here
# by reference; `snas resume` of such a run unpickles it under this name.
_trial_dirname = runner.trial_dirname


def _experiment(space: SpaceConfig, layers: Sequence[Mapping[str, Any]], name: str,
                storage_path: Path, store_url: str, quiet: bool,
                split_sizes: Mapping[str, int] | None = None) -> runner.Experiment:
    """The Tune run of a search: its searcher, scheduler, store callback and trainable."""
    from trainables.tune_trainable import SnasTrainable

    searcher, scheduler, param_space = _tune_objects(space, layers, split_sizes)
    callback = StoreCallback(store_url, name, space.search.metric, space.search.mode,
                             space.training.epochs, space.search.num_samples, quiet=quiet)
    from snas.tracking import tracking_callbacks  # MLflow, TensorBoard (Tune callbacks)

    bound = _trainable_params(space)
    # A missing package: ConfigError. MLflow logs the bound space once per run as params.
    tracked = tracking_callbacks(space.tracking, name, bound)
    return runner.Experiment(
        name=name, storage_path=storage_path, trainable=SnasTrainable,
        trainable_params=bound,
        resources=_resources(space), param_space=param_space, searcher=searcher,
        scheduler=scheduler, num_samples=space.search.num_samples,
        callbacks=(callback, *tracked),
        metric=space.search.metric, mode=space.search.mode, checkpoints="recent",
        max_failures=space.resources.max_failures)


def _trainable_params(space: SpaceConfig) -> dict[str, Any]:
    """What a search binds to its trainable once (``Experiment.trainable_params``) rather
    than copying it into every trial's config: the space."""
    return {"space": space.to_dict()}


def _resources(space: SpaceConfig) -> dict[str, float]:
    return {"cpu": space.resources.cpus_per_trial, "gpu": space.resources.gpus_per_trial}


def _record_pareto_front(store: ResultsStore, name: str) -> None:
    from snas.results import search_pareto_front

    front = search_pareto_front(store, name)[0]
    store.update_search_params(name, {"pareto_front": [t["trial_id"] for t in front]})


_TAKEN_HINT = "continue it with `snas resume {name}` or pick another --name"


def run_search(request: SearchRequest, store: ResultsStore) -> dict[str, Any]:
    """Start a new search and run it to the end."""
    space = request.space
    # Before the layer table (torch, the dataset): a taken name fails at once.
    runner.check_new_experiment(store, request.name, request.storage_path,
                                taken_hint=_TAKEN_HINT.format(name=request.name))

    def prepare() -> tuple[list[dict[str, Any]], dict[str, int], Any, runner.Experiment]:
        layers, split_sizes = network_facts(space)
        _, budget = search_budget(space, layers)  # an impossible budget: before any trial
        experiment = _experiment(space, layers, request.name, request.storage_path,
                                 request.store_url, request.quiet, split_sizes)
        return layers, split_sizes, budget, experiment

    # Torch, the dataset and the model (~3 s) while Ray's processes start.
    layers, split_sizes, budget, experiment = runner.start_while(
        request.address, prepare, workers=trial_actors_at_once(space))
    params = {"metric": space.search.metric, "mode": space.search.mode,
              "layers": layers, "split_sizes": split_sizes,
              "store_url": request.store_url, "address": request.address,
              "budget": to_dict(space.budget), "multi_objective": space.search.multi_objective,
              "dense_baseline": runs_dense_baseline(space, budget)}
    record = runner.Record(request.space_text, space.to_dict(), space.search.searcher.name,
                           space.search.num_samples, params)
    return runner.run(experiment, record, store, address=request.address,
                      on_complete=_record_pareto_front,
                      taken_hint=_TAKEN_HINT.format(name=request.name),
                      preflight=runner.resources_preflight(experiment.resources, request.address))


def resume_search(name: str, store: ResultsStore, address: str | None = None,
                  store_url: str | None = None) -> dict[str, Any]:
    """Continue an interrupted search from its experiment folder (``Tuner.restore``).

    A search whose driver died before Tune saved any state (no trial in the store yet) is
    started afresh under the same name. ``store_url`` is the store to write to (default:
    ``store``, the one the user named; never the URL stored with the search).
    """
    from trainables.tune_trainable import SnasTrainable

    record = runner.stored_search(store, name)
    folder = Path(record["storage_path"])
    # The stored space is the validated one, --set overrides included.
    space = SpaceConfig.from_dict(record["space"])
    params = record["params"]

    def fresh() -> runner.Experiment:
        return _experiment(space, params.get("layers") or layer_table(space), name,
                           folder.parent, store_url or store.connect_url, quiet=False,
                           split_sizes=params.get("split_sizes"))

    # Searches stored before the space moved out of the trials' configs carry it there
    # too; the trainable prefers that copy.
    return runner.resume(store, name, SnasTrainable, _resources(space), fresh=fresh,
                         address=address or params.get("address"),
                         on_complete=_record_pareto_front,
                         trainable_params=_trainable_params(space))


__all__ = ["SearchRequest", "StoreCallback", "check_search_name", "default_storage_path",
           "fit_tuner", "layer_table", "resume_search", "run_search"]
