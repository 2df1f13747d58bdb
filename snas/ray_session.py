"""Starting Ray for a run: the environment Tune reads, the local instance, the cluster check,
and the small adapters snas puts on Ray and Tune so a search starts fast.

Environment: Tune reads the variables of :data:`TUNE_ENV` when a run starts, not when Ray
is imported (``TuneController.__init__`` reads ``TUNE_GLOBAL_CHECKPOINT_S``, ``tune.run``
reads ``RAY_AIR_NEW_OUTPUT``), so :func:`start` sets them, where unset, right before the
``Tuner`` is built; a value the user exported wins.

Where a short search's fixed cost went, and what :func:`start` does about it (measured on a
2-core machine: a 1-trial search took ~24 s against ~4 s for ``ray.init`` alone):

- **A fresh worker process per trial actor.** Ray prestarts one idle worker per CPU when a
  driver connects, but hands it only to work without a ``runtime_env`` of its own. Tune
  gives every trainable actor ``runtime_env={"env_vars": {"PL_DISABLE_FORK": "1"}}`` (a
  PyTorch Lightning setting, ``ray.tune.execution.class_cache``), so each trial actor
  started a new process through Ray's setup worker (two Ray imports, then torch). snas
  trains no Lightning modules: :func:`start` drops that default, and Tune's actors take the
  prestarted workers (variables Tune propagates from the driver, such as AWS credentials,
  still give an actor its own runtime env).
- **Imports in the trial actor.** On the local instance it starts, snas has Ray's
  prestarted workers import :data:`PRELOAD` (torch, Ray Tune, the trainable) while the
  driver prepares the search, so the first trial starts in ~0.5 s instead of ~5 s.
  The cost: every prestarted worker (one per CPU) holds those modules (~0.6 GB each,
  :data:`PRELOAD_BYTES`), so snas preloads only where that is at most an eighth of the
  machine's memory (2 CPUs and 24 GB: 1.2 GB; a 64-CPU, 256 GB node: none).
- **Workers no trial will use.** Ray prestarts one worker per CPU, and each imports
  :data:`PRELOAD` (~3.5 CPU-s) while the driver and the first trial need the cores: a
  1-trial search on two cores paid for a second worker it never used. ``start_while(...,
  workers=n)`` has the local raylet prestart at most n workers, the most trial actors the
  run keeps at once (:func:`trial_actors_at_once`); a later actor beyond
  them starts its own worker, as Ray does anyway. Measured, 1-trial search, 7 runs each:
  whole-machine CPU 33-40 -> 26-30 s, wall (median) 24.8 -> 23.8 s on a slow day.
- **Head services a search does not use.** ``ray.init`` starts, besides the GCS and the
  raylet, three Python processes that each import Ray (~1.2-1.5 CPU-s apiece): the
  autoscaler's monitor (nothing to scale on one machine), the log monitor (it streams
  worker output to drivers, and snas's drivers ask for none, ``log_to_driver=False``) and
  the dashboard's API server (with ``include_dashboard=False`` it still starts, for usage
  statistics and the job and state APIs, and ``ray.init`` waits for it to register, then
  lists its children). On the local instance it starts, snas starts none of them
  (:func:`_head_without_unused_services`); for Ray's dashboard or ``ray status`` on a
  search, start Ray yourself (``ray start --head``) and pass ``--address``. Measured,
  1-trial search, 4 interleaved runs each: wall 18.7-22.0 -> 16.1-17.8 s, whole-machine
  CPU 22.8-25.9 -> 18.6-21.7 s.
- **The driver's own imports and preparation** (Ray Tune, SQLAlchemy, torch, the
  dataset, the layer table and memory check: ~5-6 s) run while Ray's processes start
  (:func:`start_while`): ``snas search`` starts Ray as soon as the search-space file is
  valid and imports the rest meanwhile, so Ray's prestarted worker, which imports torch
  and the trainable (~8 CPU-s, the longest part of a short search's start-up), begins
  ~3 s sooner. Measured with the head services above, 4 interleaved runs each: a 1-trial
  search 23.0-23.8 -> 16.6-18.0 s (both changes together).
- **Experiment-state saves when nothing changed.** With ``TUNE_GLOBAL_CHECKPOINT_S=0``
  Tune rewrites its whole experiment state (every trial's, ~30 KB each) after every step
  of its loop, and a step that finds no event after 0.1 s is a step too: a driver waiting
  on running trials rewrote the file ten times a second, taking CPU from the trials
  (27 % of a 128-trial search's wall time). :func:`start` makes a step save only when
  something a resume depends on changed (a trial was added, finished, failed or
  registered a checkpoint; the searcher finished) or Tune forces the save; a change of
  progress only (a result without a checkpoint, pending -> running) waits up to
  :data:`PROGRESS_SAVE_PERIOD_S`. A resume from a state without that progress restarts the
  same trials from the same checkpoints, and the store upserts the epochs they report
  again, so every resume guarantee holds (the kill matrix in ``tests/snas/test_search.py``).
  A 16-trial, 9-epoch search (FIFO, 2 concurrent) saved 306 times when every changed step
  saved and saves 158 times now (about one per checkpoint); 64 one-epoch trials: 195 -> 125.
- **The size of each save.** Every save rewrites every trial's state, so its cost grows
  with the trial count: Tune's running statistics of every result field are dropped except
  those of the search metrics (:func:`_statistics_only_of_search_metrics`: ~32 -> 20 KB
  per trial), and the state is encoded by json's C encoder instead of its Python one
  (:func:`_tune_state_json_in_one_pass`): a 128-trial search's saves 5.2 -> 2.5 s.
- **Callback telemetry.** ``tune.run`` counts the callbacks it was given for Ray's usage
  statistics, importing Ray's MLflow, W&B, Comet and Aim integrations to compare classes;
  with ``mlflow`` installed (``snas[tracking]``) that import alone is ~2 s. :func:`start`
  replaces the count with one by class name that imports nothing (same counts).

What is left of a 1-trial search's start-up, measured on the 2-core machine (per-process CPU
sampled from ``/proc`` every 0.1 s; the raylet's log for its own steps): the raylet starts
~1.9 s after the CLI, then waits 1.2-1.6 s for Ray's dashboard agent (a Python process it
starts and monitors, present even without a dashboard) before it reports itself started,
and starts the prestarted worker ~0.7 s after that, ~4.3 s after the CLI. From then on that
worker is the critical path: ~10 CPU-s of imports (torch and ``torch._dynamo`` ~6 s, Ray
Tune ~2 s, under contention with the driver) and the trial itself (of which SciPy's
``csgraph`` and ``optimize``, first imported by the wiring record, ~1 s), while the driver
is idle from ~9.5 s on. Neither wait is snas's to remove without replacing Ray's processes:
``torch._dynamo`` is imported by every ``Optimizer.step``, and the raylet treats its agent
as part of itself.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from snas.core import faults
from snas.core import metrics as M
from snas.core.errors import ConfigError, SearchError

#: Set by :func:`start` where unset. ``TUNE_GLOBAL_CHECKPOINT_S=0``: Tune saves its
#: experiment state after every step of its loop (default: at most every 10 s), and snas
#: skips the steps that changed nothing a resume depends on (module docstring), so a
#: killed driver loses no trial that Tune had seen finish. The price: each save rewrites
#: the whole state (~20 KB per trial: the checkpoint list, the last result, statistics of
#: the search metrics; the space is bound to the trainable once,
#: ``Experiment.trainable_params``), so a search's per-trial cost grows with its trial
#: count (``benchmarks/search.py --scaling``).
#: ``RAY_AIR_NEW_OUTPUT=0``: Tune's legacy reporter, which ``verbose=0`` silences (snas
#: prints its own progress).
#: ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``: no JSON, CSV and TensorBoard files per trial
#: written by the driver after every result (the store has every result; the ``tracking``
#: section asks for TensorBoard or MLflow explicitly).
TUNE_ENV = {"TUNE_GLOBAL_CHECKPOINT_S": "0", "RAY_AIR_NEW_OUTPUT": "0",
            "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}

#: What the prestarted workers of a local Ray import before they take work: the trainable
#: (torch, Ray Tune, the models and kernels) and ``torch._dynamo``, which torch imports when
#: the first optimizer is built (``Optimizer.add_param_group`` is wrapped by
#: ``torch._disable_dynamo``; ~2 s with the sympy it pulls in).
PRELOAD = ("trainables.tune_trainable", "torch._dynamo")

#: Memory of an idle worker that imported :data:`PRELOAD` (proportional set size, measured:
#: ~600 MB, 440 MB of it private).
PRELOAD_BYTES = 600 * 2**20

T = TypeVar("T")


def init_ray(address: str | None, workers: int | None = None) -> None:
    """Connect to the Ray at ``address`` (None: start a local one); no-op when connected.

    ``workers``: at most how many trial actors the run keeps alive at once (None: as many
    as fit); a local Ray then prestarts no more workers than that (module docstring).
    """
    import ray

    if ray.is_initialized():
        return
    options: dict[str, Any] = {}
    if address is None and _preload_fits():  # a cluster's workers were set up at its start
        options["_system_config"] = {"preload_python_modules": list(PRELOAD)}
    try:
        with (_raylet_prestarts_at_most(workers if address is None else None),
              _head_without_unused_services(address is None)):
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=True, logging_level="ERROR",
                     runtime_env=faults.runtime_env(), **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local Ray instance"
        raise SearchError(f"cannot connect to Ray at {where}: {' '.join(str(exc).split())}"
                          ) from None


#: The raylet's command-line flag that sets how many Python workers it prestarts.
_PRESTART_FLAG = "--num_prestart_python_workers="


@contextmanager
def _raylet_prestarts_at_most(workers: int | None) -> Iterator[None]:
    """While a local Ray starts: its raylet prestarts at most ``workers`` Python workers
    (Ray's default: one per CPU). A Ray whose raylet is started another way starts as it
    would."""
    try:
        from ray._private import ray_constants, services

        original = services.start_ray_process
        raylet = ray_constants.PROCESS_TYPE_RAYLET
    except (ImportError, AttributeError):
        original = None
    if workers is None or original is None:
        yield
        return

    def start_ray_process(command: list[str], process_type: str, *args: Any,
                          **kwargs: Any) -> Any:
        if process_type == raylet:
            command = [f"{_PRESTART_FLAG}{min(int(part[len(_PRESTART_FLAG):]), workers)}"
                       if part.startswith(_PRESTART_FLAG) else part for part in command]
        return original(command, process_type, *args, **kwargs)

    services.start_ray_process = start_ray_process
    try:
        yield
    finally:
        services.start_ray_process = original


@contextmanager
def _head_without_unused_services(local: bool) -> Iterator[None]:
    """While a local Ray starts (``local``): its head node starts no autoscaler monitor, log
    monitor or dashboard API server (module docstring; Ray itself runs a node without a
    dashboard where its dependencies are missing). A Ray whose ``Node`` lacks those hooks
    starts as it would."""
    try:
        from ray._private.node import Node

        start_head, start_api = Node.start_head_processes, Node.start_api_server
    except (ImportError, AttributeError):
        local = False
    if not local:
        yield
        return

    def start_head_processes(self: Any) -> Any:
        self._ray_params.no_monitor = True
        self._ray_params.include_log_monitor = False
        return start_head(self)

    def start_api_server(self: Any, **kwargs: Any) -> None:
        self._webui_url = None

    Node.start_head_processes, Node.start_api_server = start_head_processes, start_api_server
    try:
        yield
    finally:
        Node.start_head_processes, Node.start_api_server = start_head, start_api


def _preload_fits() -> bool:
    """Whether one preloaded worker per CPU takes at most an eighth of this machine's memory
    (Ray prestarts one worker per CPU it sees)."""
    from snas.core.machine import physical_memory

    memory = physical_memory()
    return memory is not None and (os.cpu_count() or 1) * PRELOAD_BYTES <= memory / 8


def start(address: str | None, workers: int | None = None) -> None:
    """Everything a Tune run needs before its ``Tuner`` exists: :data:`TUNE_ENV`, Ray
    (:func:`init_ray`, ``workers`` as there) and the adapters (module docstring)."""
    _set_tune_env()
    init_ray(address, workers)
    _adapt_tune()


def _set_tune_env() -> None:
    """:data:`TUNE_ENV`, where unset (a value the user exported wins)."""
    for key, value in TUNE_ENV.items():
        os.environ.setdefault(key, value)


def _adapt_tune() -> None:
    """The adapters on Ray Tune (module docstring); each applies once."""
    _trial_actors_take_prestarted_workers()
    _count_callbacks_without_imports()
    _save_experiment_state_on_change()
    _statistics_only_of_search_metrics()
    _tune_state_json_in_one_pass()


def trial_actors_at_once(space: Any, cpus: int | None = None) -> int:
    """At most how many trials of a search on this machine (``cpus``: its CPU count) run at
    once: its trial count (the dense baseline included), ``search.max_concurrent``, and the
    trials whose ``resources.cpus_per_trial`` fit in ``cpus``. A local Ray prestarts that
    many workers instead of one per CPU (each imports torch, ~3.5 CPU-s at start-up, which a
    1-trial search on two cores paid twice). ``space``: a :class:`SpaceConfig`."""
    trials = space.search.num_samples + int(space.search.with_dense_baseline)
    fit: float = math.inf
    per_trial = space.resources.cpus_per_trial
    if per_trial >= 1:
        fit = max(1, int((cpus or os.cpu_count() or 1) // per_trial))
    return int(min(trials, space.search.max_concurrent, fit))


#: Modules that both Ray's start (``ray.init`` imports them on first use) and Ray Tune,
#: torch or snas's own modules import: :func:`start_while` imports them before its thread,
#: so that no module is ever being imported by both threads at once. Two threads importing
#: modules that import each other can each find the other's module half-initialised
#: (``ImportError: cannot import name ... from partially initialized module``). Found by
#: comparing ``sys.modules`` after ``ray.init`` and after importing the search's modules.
SHARED_WITH_RAY_START = ("ctypes.util", "ray._common.usage.usage_lib", "ray.dashboard")


def start_while(address: str | None, prepare: Callable[[], T],
                workers: int | None = None) -> T:
    """:func:`start` Ray while ``prepare()`` runs in a thread; what ``prepare`` returns.

    ``prepare`` may import anything, Ray Tune included: the adapters on Tune, which import
    it too, are applied once ``prepare`` is done (see :data:`SHARED_WITH_RAY_START` for
    the modules Ray's start shares with it). An error of ``prepare`` (a bad config) wins
    over one of Ray's start, and is raised once both are done (Ray, once started, is shut
    down at exit as always).
    """
    import importlib

    import ray

    if ray.is_initialized():
        start(address)
        return prepare()
    for module in SHARED_WITH_RAY_START:
        try:
            importlib.import_module(module)
        except ImportError:  # another Ray: nothing to share
            pass
    _set_tune_env()
    with ThreadPoolExecutor(1, thread_name_prefix="snas-prepare") as pool:
        prepared = pool.submit(prepare)
        try:
            init_ray(address, workers)
        except BaseException:
            prepared.result()  # raises the config error, if any, instead
            raise
        result = prepared.result()
    _adapt_tune()
    return result


def _trial_actors_take_prestarted_workers() -> None:
    """Drop Tune's default ``PL_DISABLE_FORK`` runtime env of trainable actors (see the
    module docstring); a Ray without that table is left as it is."""
    try:
        from ray.tune.execution import class_cache
    except ImportError:
        return
    defaults = getattr(class_cache, "DEFAULT_ENV_VARS", None)
    if isinstance(defaults, dict):
        defaults.pop("PL_DISABLE_FORK", None)


#: Seconds between saves that would record only running trials' progress (a new result, a
#: move among pending, running and paused), nothing a resume depends on.
PROGRESS_SAVE_PERIOD_S = 10.0


def _experiment_keys(controller: Any) -> tuple[tuple, tuple]:
    """Of what a Tune experiment-state save records: (what a resume depends on, running
    trials' progress).

    A resume depends on the trials that exist (none is suggested again), which of them
    finished and how (none is run again), each one's failures (no extra retry) and latest
    checkpoint (where an unfinished trial restarts), and whether the searcher finished.
    Progress is the rest that changes: a result without a checkpoint, a move among the
    unfinished statuses. A resume from a state without it restarts the same trials from
    the same checkpoints, and the epochs they report again are upserts in the store.
    """
    resume, progress = [], []
    for t in controller.get_trials():
        finished = t.status if t.status in (t.TERMINATED, t.ERROR) else None
        resume.append((t.trial_id, finished, t.num_failures,
                       getattr(t.checkpoint, "path", None)))
        progress.append((t.status, t.run_metadata.last_result_time))
    return (tuple(resume), controller._search_alg.is_finished()), tuple(progress)


def _save_experiment_state_on_change() -> None:
    """Wrap ``TuneController.checkpoint``: a non-forced save happens only when what a resume
    depends on changed, or progress did and :data:`PROGRESS_SAVE_PERIOD_S` passed since the
    last save (module docstring); a Tune without those attributes saves as before."""
    try:
        from ray.tune.execution.tune_controller import TuneController
    except ImportError:
        return
    original = TuneController.checkpoint
    if getattr(original, "_snas_on_change", False):
        return

    def checkpoint(self: Any, force: bool = False, wait: bool = False) -> None:
        try:
            manager = self._checkpoint_manager
            resume, progress = _experiment_keys(self)
            saved = getattr(self, "_snas_saved", None)  # (resume, progress, monotonic time)
            due = (force or manager._should_force_sync_up or saved is None
                   or resume != saved[0]
                   or (progress != saved[1]
                       and time.monotonic() - saved[2] >= PROGRESS_SAVE_PERIOD_S))
        except AttributeError:  # another Tune: no skipping
            return original(self, force=force, wait=wait)
        if not due:
            return None
        saved_before = manager._last_save_time
        original(self, force=force, wait=wait)
        if manager._last_save_time != saved_before:  # it saved (not throttled by a period)
            self._snas_saved = (resume, progress, time.monotonic())
        return None

    checkpoint._snas_on_change = True  # type: ignore[attr-defined]
    TuneController.checkpoint = checkpoint


#: The result fields of which Tune keeps running statistics in each trial's state: what a
#: search may rank by (``search.metric``) and Tune's iteration counter.
TUNE_STATISTICS = frozenset((*M.SEARCH_METRICS, "training_iteration"))


def _statistics_only_of_search_metrics() -> None:
    """Have Tune keep running statistics only of :data:`TUNE_STATISTICS`.

    For every numeric field of every result (the epoch's ~25 metrics and the trial's config
    values), Tune keeps in the trial's state its min, max, mean and last value and the last 5
    and 10 values with their means, and every experiment-state save rewrites all of it: ~15
    of a trial's ~29 KB in ``experiment_state-*.json``. Nothing in snas reads them (the store
    has every result; the scheduler and searcher get the results themselves), and Tune's own
    ``ResultGrid.get_best_result`` needs them only for the metric it ranks by, so the other
    fields are left out. A Tune without ``_TrainingRunMetadata.update_metric`` keeps all.
    """
    try:
        from ray.tune.trainable.metadata import _TrainingRunMetadata
    except ImportError:
        return
    original = getattr(_TrainingRunMetadata, "update_metric", None)
    if original is None or getattr(original, "_snas_filtered", False):
        return

    def update_metric(self: Any, metric: str, value: Any, step: int | None = 1) -> None:
        if metric in TUNE_STATISTICS:
            original(self, metric, value, step=step)

    update_metric._snas_filtered = True  # type: ignore[attr-defined]
    _TrainingRunMetadata.update_metric = update_metric


class _OnePassJSON:
    """The ``json`` module as Tune's state writers see it after
    :func:`_tune_state_json_in_one_pass`: ``dump`` writes one ``dumps`` string and ``dumps``
    ignores ``indent``, so both run in the C encoder; the rest is ``json`` itself."""

    def __init__(self, base: Any):
        self._base = base

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def dump(self, obj: Any, fp: Any, **options: Any) -> None:
        fp.write(self._base.dumps(obj, **options))

    def dumps(self, obj: Any, *, indent: Any = None, **options: Any) -> str:
        return self._base.dumps(obj, **options)


#: Tune's modules that write a trial's or the experiment's state with ``json``.
_TUNE_STATE_WRITERS = ("ray.tune.execution.tune_controller", "ray.tune.experiment.trial",
                       "ray.tune.trainable.metadata")


def _tune_state_json_in_one_pass() -> None:
    """Have Tune encode its experiment state with json's C encoder.

    Tune writes ``experiment_state-*.json`` with ``json.dump(state, file, cls=...)``, and
    json runs ``dump`` (unlike ``dumps``) in its pure-Python encoder, writing hundreds of
    small chunks; each trial's state and metadata inside it are ``json.dumps(...,
    indent=2)``, which also takes the Python encoder (the C one has no indentation). Profiled
    on a 128-trial search: 386 saves, 5.2 s, half of it in the Python encoder. Through
    :class:`_OnePassJSON` the same documents (without the indentation inside the embedded
    strings, which only Tune reads back) are encoded in one C call each.
    """
    import importlib
    import json

    for name in _TUNE_STATE_WRITERS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "json", None) is json:
            module.json = _OnePassJSON(json)


#: The callback classes Ray's usage statistics count by name, next to Tune's defaults.
_INTEGRATION_CALLBACKS = ("WandbLoggerCallback", "MLflowLoggerCallback",
                          "CometLoggerCallback", "AimLoggerCallback")


def _count_callbacks(callbacks: Any) -> dict[str, int]:
    """Ray's ``_count_callbacks`` by class name: the same counts, no integration imports."""
    from ray.tune import Callback
    from ray.tune.logger import LoggerCallback
    from ray.tune.utils.callback import DEFAULT_CALLBACK_CLASSES

    built_in = {*_INTEGRATION_CALLBACKS, *(cls.__name__ for cls in DEFAULT_CALLBACK_CLASSES)}
    counts: dict[str, int] = defaultdict(int)
    for callback in callbacks or []:
        if not isinstance(callback, Callback):
            continue
        name = type(callback).__name__
        if name in built_in:
            counts[name] += 1
        elif isinstance(callback, LoggerCallback):
            counts["CustomLoggerCallback"] += 1
        else:
            counts["CustomCallback"] += 1
    return counts


def _count_callbacks_without_imports() -> None:
    try:
        from ray.air._internal import usage
    except ImportError:
        return
    if callable(getattr(usage, "_count_callbacks", None)):
        usage._count_callbacks = _count_callbacks


def _amount(value: float, unit: str) -> str:
    return f"{value:g} {unit}{'' if value == 1 else 's'}"


def check_cluster_resources(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Refuse per-trial resources that no alive node of the connected Ray cluster has.

    Tune would keep such trials pending forever without a word. A cluster that grows
    (an autoscaler adding nodes later) is judged by the nodes it has now.
    """
    import ray

    nodes = [node.get("Resources") or {} for node in ray.nodes() if node.get("Alive")]
    cpus = [float(r.get("CPU", 0)) for r in nodes]
    gpus = [float(r.get("GPU", 0)) for r in nodes]
    if any(c >= cpus_per_trial and g >= gpus_per_trial for c, g in zip(cpus, gpus)):
        return
    gpu_short = not any(g >= gpus_per_trial for g in gpus)
    cpu_short = not any(c >= cpus_per_trial for c in cpus)
    # The node closest to fitting: most of the resource that is short, then the other.
    c, g = max(zip(cpus, gpus), key=(lambda n: n[::-1]) if gpu_short else (lambda n: n),
               default=(0.0, 0.0))
    largest = f"largest: {_amount(g, 'GPU')}, {_amount(c, 'CPU')}"
    if gpu_short or cpu_short:
        key, value, unit = (("gpus_per_trial", gpus_per_trial, "GPU") if gpu_short
                            else ("cpus_per_trial", cpus_per_trial, "CPU"))
        raise ConfigError(f"resources.{key}={value:g} but no node of the Ray cluster has "
                          f"{_amount(value, unit)} ({largest})")
    raise ConfigError(f"resources.cpus_per_trial={cpus_per_trial:g} and resources."
                      f"gpus_per_trial={gpus_per_trial:g} but no node of the Ray cluster has "
                      f"{_amount(cpus_per_trial, 'CPU')} and {_amount(gpus_per_trial, 'GPU')} "
                      f"together ({largest})")


def resources_preflight(resources: Mapping[str, float], address: str | None = None
                        ) -> Callable[[], None]:
    """A :func:`snas.runner.run` ``preflight`` checking an :attr:`Experiment.resources` mapping
    (``{"cpu": ..., "gpu": ...}``) against the cluster.

    On the local Ray that snas starts (``address`` None) the nodes are all there is, so a
    shortfall is an error. On a cluster (``--address``) an autoscaler may still add a node
    that fits (``cluster.yaml`` scales GPU workers from zero), so a shortfall is a warning
    on stderr and the search waits for it.
    """

    def check() -> None:
        cpus, gpus = float(resources.get("cpu", 1)), float(resources.get("gpu", 0))
        try:
            check_cluster_resources(cpus, gpus)
        except ConfigError as exc:
            if address is None:
                raise
            print(f"snas: warning: {exc}; trials wait until the cluster has such a node "
                  "(an autoscaler may add one)", file=sys.stderr, flush=True)

    return check


__all__ = ["PRELOAD", "SHARED_WITH_RAY_START", "TUNE_ENV", "TUNE_STATISTICS",
           "check_cluster_resources", "init_ray", "resources_preflight", "start", "start_while",
           "trial_actors_at_once"]
