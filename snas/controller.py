"""The search controller: a validated search space becomes a Ray Tune run.

Data flow: search-space file -> :class:`~snas.core.config.SpaceConfig` -> a Tune ``Tuner`` whose
search domain is the density vector (one ``[low, high]`` range per maskable layer, keys
``d_00``, ``d_01``, ..., or one ``density`` scalar when ``density.uniform``), a searcher from
:mod:`snas.searchers`, ASHA from the ``scheduler`` section, and the trainable from
:mod:`trainables.tune_trainable`. Results flow back through :class:`StoreCallback`, which
writes every trial, epoch, summary and wiring graph to the results store from the driver.

Fault tolerance: trials checkpoint every epoch and Tune saves its experiment state after
every step of its loop (``TUNE_GLOBAL_CHECKPOINT_S=0``), so after a hard kill of the driver
``snas resume NAME`` (``Tuner.restore``) re-runs no finished trial; the store's writes are
idempotent, so replayed results add no duplicate rows.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

# Before Ray is imported: save the experiment state after every loop step (default: at
# most every 10 s). A kill then loses no trial that Tune had seen finish; the state is a
# small JSON file, so this costs little next to the per-epoch trial checkpoints.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")

from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402

from snas.core import faults  # noqa: E402
from snas.core import metrics as M  # noqa: E402
from snas.core.budget import CostModel, DensityBudget, cost_model_from_layers  # noqa: E402
from snas.core.config import SpaceConfig, to_dict  # noqa: E402
from snas.core.errors import SearchError  # noqa: E402
from snas.paths import default_storage_path  # noqa: E402,F401  (re-exported)
from snas.store import ResultsStore  # noqa: E402

SUMMARY_KEYS = (M.TEST_ACCURACY, M.TEST_LOSS, M.VAL_ACCURACY, M.VAL_LOSS, M.TRAIN_LOSS,
                M.TRAIN_ACCURACY, M.EGF_1, M.EGF_2, M.GRAD_NORM_1, M.GRAD_NORM_2,
                M.ACTIVE_WEIGHTS, M.TOTAL_WEIGHTS, M.ACTIVE_FLOPS, M.TOTAL_FLOPS,
                M.REALIZED_DENSITY, M.EPOCH, "density")
EPOCH_KEYS = (*M.EPOCH_SCALARS, M.REALIZED_DENSITY, M.TEST_ACCURACY, M.TEST_LOSS,
              M.ACTIVE_FLOPS, M.TOTAL_FLOPS)


def density_config(result_or_config: Mapping[str, Any]) -> list[float] | None:
    from trainables.tune_trainable import density_from_config

    d = density_from_config(result_or_config)
    return [d] if isinstance(d, float) else d


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
        self._wiring_pool: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_store"] = None
        state["_out"] = None
        state["_reconciled"] = False  # a restored run reconciles again
        state["_wiring_pool"] = None
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
                                status="running", is_baseline=is_dense_config(trial.config))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        epoch = result.get(M.EPOCH)
        if epoch is None:
            return
        metrics = {k: result[k] for k in EPOCH_KEYS if k in result}
        self.store.record_epoch(self.search, trial.trial_id, int(epoch), metrics)
        faults.point("epoch_recorded")
        # The Ray node id (from the trainable): node IPs repeat when nodes share a host.
        self.store.upsert_trial(self.search, trial.trial_id,
                                node_id=result.get("node_id") or result.get("node_ip"))
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
            # Graph statistics take a noticeable fraction of a second for a few-thousand-
            # neuron MLP: compute them off the Tune loop, in one background thread.
            if self._wiring_pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._wiring_pool = ThreadPoolExecutor(1, thread_name_prefix="snas-wiring")
            self._wiring_pool.submit(self._record_wiring, trial.trial_id, str(path))
        self.store.upsert_trial(self.search, trial.trial_id, status=status,
                                checkpoint_path=str(path) if path else None)
        self._progress(trials, trial.trial_id, status, result)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.store.upsert_trial(self.search, trial.trial_id, status="error",
                                error=_error_text(trial))
        self._progress(trials, trial.trial_id, "error", {})

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.flush()

    def flush(self) -> None:
        """Wait until every wiring record is written."""
        if self._wiring_pool is not None:
            self._wiring_pool.shutdown(wait=True)
            self._wiring_pool = None

    # ---- helpers --------------------------------------------------------------------
    def _record_wiring(self, trial_id: str, checkpoint_dir: str) -> None:
        from trainables.wiring_record import wiring_record

        try:
            graph, stats = wiring_record(checkpoint_dir)
            self.store.record_graph(self.search, trial_id, graph, stats)
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


def check_search_name(name: str) -> str:
    """A search name becomes a folder name: letters, digits, ``-``, ``_``, ``.`` only."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name or ""):
        raise SearchError(f"search name must be 1-100 characters of letters, digits, '.', '_' "
                          f"or '-' starting with a letter or digit, got {name!r}")
    return name


def is_dense_config(config: Mapping[str, Any]) -> bool:
    """Whether a trial config is the dense baseline (every density 1.0)."""
    density = density_config(config)
    return bool(density) and all(d == 1.0 for d in density)


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


def _tune_objects(space: SpaceConfig, layers: Sequence[Mapping[str, Any]]
                  ) -> tuple[Any, Any, dict]:
    """(searcher, scheduler, param_space) for a space and its layer table."""
    from ray.tune.schedulers import FIFOScheduler

    from snas.searchers import DensitySpace, make_searcher
    from trainables.tune_trainable import DENSITY_KEY, density_key

    names = ((DENSITY_KEY,) if space.density.uniform
             else tuple(density_key(i) for i in range(len(layers))))
    s = space.search
    cost_model, budget = search_budget(space, layers)
    searcher = make_searcher(
        s.searcher.name, DensitySpace(names, space.density.low, space.density.high),
        metric=s.metric, mode=s.mode, seed=s.seed, options=s.searcher.options,
        dense_baseline=runs_dense_baseline(space, budget), max_concurrent=s.max_concurrent,
        budget=budget, cost_model=cost_model, multi_objective=s.multi_objective)
    if space.scheduler.name == "asha":
        scheduler = BaselineKeepingASHA(time_attr="training_iteration", max_t=space.training.epochs,
                                  grace_period=min(space.scheduler.grace_period,
                                                   space.training.epochs),
                                  reduction_factor=space.scheduler.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    return searcher, scheduler, {"space": space.to_dict()}


def layer_table(space: SpaceConfig) -> list[dict[str, Any]]:
    """The search's layer table, in density-vector order: ``name``, ``shape`` and
    ``positions`` (output positions per example, what a weight costs in FLOPs), from the
    space's model built on CPU."""
    import torch

    from trainables.data import load_dataset
    from trainables.kernels import make_kernel
    from trainables.models import build_model, layer_specs, output_positions

    data = load_dataset(space.dataset, "cpu")
    model = build_model(space.model, make_kernel(space.kernel), data.input_shape,
                        data.num_classes, 1.0, torch.Generator().manual_seed(0))
    positions = output_positions(model, data.input_shape)
    return [{"name": spec.name, "shape": list(spec.shape), "positions": p}
            for spec, p in zip(layer_specs(model), positions, strict=True)]


def init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=True, logging_level="ERROR",
                 runtime_env=faults.runtime_env())
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local Ray instance"
        raise SearchError(f"cannot connect to Ray at {where}: {' '.join(str(exc).split())}"
                          ) from None


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _run_config(name: str, storage_path: Path, callback: StoreCallback, max_failures: int = 0
                ) -> Any:
    return tune.RunConfig(
        name=name, storage_path=str(storage_path), callbacks=[callback], verbose=0,
        # Keep every checkpoint while the search runs: after a hard kill, Tune's restored
        # state may point at a checkpoint a few epochs old (its state lags up to 1 s), and
        # a deleted one cannot be restored. Finished searches are pruned to the last one.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None, checkpoint_frequency=1,
                                                checkpoint_at_end=True),
        # A trial whose node dies (or whose worker is killed) restarts from its last
        # checkpoint on any node with room, up to max_failures times.
        failure_config=tune.FailureConfig(max_failures=max_failures),
    )


def run_search(request: SearchRequest, store: ResultsStore) -> dict[str, Any]:
    """Start a new search and run it to the end."""
    space = request.space
    if store.get_search(request.name) is not None:
        raise SearchError(f"a search named {request.name!r} already exists in the store; "
                          f"continue it with `snas resume {request.name}` or pick another --name")
    experiment = request.storage_path / request.name
    if experiment.exists():
        raise SearchError(f"experiment folder {str(experiment)!r} already exists; pick another "
                          "--name or remove the folder")
    layers = layer_table(space)
    _, budget = search_budget(space, layers)  # an impossible budget fails before Ray starts
    init_ray(request.address)
    params = {"metric": space.search.metric, "mode": space.search.mode,
              "layers": layers, "store_url": request.store_url, "address": request.address,
              "budget": to_dict(space.budget), "multi_objective": space.search.multi_objective,
              "dense_baseline": runs_dense_baseline(space, budget)}
    store.create_search(request.name, request.space_text, space.to_dict(), space.search.searcher.name,
                        space.search.num_samples, str(experiment), params)
    faults.point("search_created")
    tuner = _new_tuner(space, layers, request.name,
                       request.storage_path, request.store_url, request.quiet)
    return _fit(tuner, store, request.name)


def _new_tuner(space: SpaceConfig, layers: Sequence[Mapping[str, Any]], name: str,
               storage_path: Path, store_url: str, quiet: bool) -> Any:
    from trainables.tune_trainable import SnasTrainable

    searcher, scheduler, param_space = _tune_objects(space, layers)
    callback = StoreCallback(store_url, name, space.search.metric, space.search.mode,
                             space.training.epochs, space.search.num_samples, quiet=quiet)
    return tune.Tuner(
        tune.with_resources(SnasTrainable, _resources(space)),
        param_space=param_space,
        tune_config=tune.TuneConfig(metric=space.search.metric, mode=space.search.mode,
                                    search_alg=searcher, scheduler=scheduler,
                                    num_samples=space.search.num_samples, reuse_actors=True,
                                    trial_dirname_creator=_trial_dirname),
        run_config=_run_config(name, storage_path, callback, space.resources.max_failures),
    )


def _resources(space: SpaceConfig) -> dict[str, float]:
    return {"cpu": space.resources.cpus_per_trial, "gpu": space.resources.gpus_per_trial}


def resume_search(name: str, store: ResultsStore, address: str | None = None,
                  store_url: str | None = None) -> dict[str, Any]:
    """Continue an interrupted search from its experiment folder (``Tuner.restore``).

    A search whose driver died before Tune saved any state (no trial in the store yet) is
    started afresh under the same name. ``store_url`` is the store to write to (default:
    the one the search was started with).
    """
    from trainables.tune_trainable import SnasTrainable

    record = store.get_search(name)
    if record is None:
        raise SearchError(f"no search named {name!r} in the store; `snas list` shows the "
                          "searches")
    if record["status"] == "finished":
        raise SearchError(f"search {name!r} already finished; `snas show {name}` lists its "
                          "trials")
    experiment = Path(record["storage_path"])
    # The stored space is the validated one, --set overrides included.
    space = SpaceConfig.from_dict(record["space"])
    params = record["params"]
    restorable = tune.Tuner.can_restore(str(experiment))
    if not restorable and store.trials(name):
        raise SearchError(f"search {name!r} has no restorable experiment state at "
                          f"{str(experiment)!r}")
    init_ray(address or params.get("address"))
    store.set_search_status(name, "running")
    if restorable:
        tuner = tune.Tuner.restore(str(experiment),
                                   tune.with_resources(SnasTrainable, _resources(space)),
                                   resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
    else:
        tuner = _new_tuner(space, params.get("layers") or layer_table(space), name,
                           experiment.parent,
                           store_url or params["store_url"], quiet=False)
    return _fit(tuner, store, name)


def fit_tuner(tuner: Any, store: ResultsStore, name: str) -> list[dict[str, Any]]:
    """Run ``tuner.fit()`` for search ``name``; returns its stored trials afterwards.

    Ctrl-C marks the search ``interrupted`` and any other exception ``failed`` (both are
    re-raised); setting the final status is the caller's job.
    """
    try:
        tuner.fit()
    except KeyboardInterrupt:
        store.set_search_status(name, "interrupted")
        raise
    except Exception:
        store.set_search_status(name, "failed")
        raise
    return store.trials(name)


def _fit(tuner: Any, store: ResultsStore, name: str) -> dict[str, Any]:
    start = time.perf_counter()
    trials = fit_tuner(tuner, store, name)
    faults.point("search_end")
    unfinished = [t for t in trials if t["status"] in ("pending", "running")]
    if not unfinished:
        from snas.results import search_pareto_front

        front = search_pareto_front(store, name)[0]
        store.update_search_params(name, {"pareto_front": [t["trial_id"] for t in front]})
    store.set_search_status(name, "interrupted" if unfinished else "finished")
    if not unfinished:
        prune_checkpoints(trials)
    return {"name": name, "seconds": time.perf_counter() - start}


def prune_checkpoints(trials: Sequence[Mapping[str, Any]]) -> None:
    """Delete every checkpoint of a finished trial but the one the store points at."""
    import shutil

    for t in trials:
        keep = t.get("checkpoint_path")
        if not keep or not Path(keep).is_dir():
            continue
        for old in Path(keep).parent.glob("checkpoint_*"):
            if old.is_dir() and old != Path(keep):
                shutil.rmtree(old, ignore_errors=True)


__all__ = ["SearchRequest", "StoreCallback", "check_search_name", "default_storage_path",
           "fit_tuner", "layer_table", "resume_search", "run_search"]
