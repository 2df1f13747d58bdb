"""The experiment runner: one stored search = one Ray Tune run, started or resumed.

``snas search``, ``snas resume`` and ``snas compare`` all run here. A caller describes the
run as an :class:`Experiment` (the trainable and its resources; a ``param_space`` and a
searcher, or a fixed list of trial ``configs``; the scheduler, callbacks, metric and mode;
the checkpoint policy) and what the store records about it (:class:`Record`). The runner
owns everything around Tune: the name and folder checks, the store's search row, starting
Ray, Tune's ``RunConfig``, ``fit`` and the search status, and pruning checkpoints.

Status: ``running`` while Tune runs; Ctrl-C during ``fit`` marks it ``interrupted`` and any
other exception ``failed`` (both are re-raised); at the end it is ``finished`` when every
stored trial ended, else ``interrupted`` (Tune stopped early, e.g. on its own SIGINT
handling, and ``snas resume`` continues it).

Ray itself (the environment Tune reads, the local instance, the cluster check) starts in
:mod:`snas.ray_session`.
"""

from __future__ import annotations

import contextlib
import copy
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from snas.core import faults
from snas.core.errors import SearchError
from snas.paths import check_new_experiment, check_search_name  # noqa: F401  (re-exported)
from snas.ray_session import (  # noqa: F401  (re-exported)
    TUNE_ENV,
    check_cluster_resources,
    init_ray,
    resources_preflight,
    start,
    start_while,
)

#: Checkpoint policies: ``recent`` keeps a trial's newest :data:`RECENT_CHECKPOINTS` while the
#: run goes on (a finished run is pruned to the last), ``last`` only the newest, ``none``
#: writes none. Disk use stays bounded however many epochs a trial trains. Which epochs
#: write one: :func:`checkpoint_config`.
CHECKPOINTS = ("recent", "last", "none")
RECENT_CHECKPOINTS = 2

#: Statuses a search row holds while, or after, the runner runs it.
RUNNING, FINISHED, INTERRUPTED, FAILED = "running", "finished", "interrupted", "failed"
_UNFINISHED_TRIALS = ("pending", "running")


@dataclass(frozen=True)
class Record:
    """What the store's search row says about a new experiment (``create_search``)."""

    space_text: str
    space: Mapping[str, Any]
    searcher: str
    num_samples: int
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Experiment:
    """One Tune run, as its caller describes it.

    Args:
        name: the search name (:func:`check_search_name`); also the experiment folder's.
        storage_path: the folder that holds experiment folders; this run's is
            ``storage_path / name`` (:attr:`folder`).
        trainable: the Tune trainable (class or function).
        trainable_params: keyword arguments of the trainable's ``setup`` shared by every
            trial (``tune.with_parameters``: put in Ray's object store once, so they are
            not copied into every trial's config, results, checkpoints' metadata and
            Tune's experiment state, which Tune rewrites whole after every loop step
            that changed it).
        resources: per trial, e.g. ``{"cpu": 1, "gpu": 0}``.
        param_space: Tune's ``param_space`` (the searcher fills in the rest); not with
            ``configs``.
        configs: a fixed list of trial configs, run in this order (:class:`FixedConfigs`);
            not with ``searcher`` or ``param_space``.
        searcher: a Tune searcher (``search_alg``); None: Tune's default (one trial per
            sample of ``param_space``).
        scheduler: a Tune scheduler; None: FIFO.
        num_samples: trials to run; default ``len(configs)``, else 1.
        callbacks: Tune callbacks (the store's mirror, progress lines).
        metric, mode: what Tune's searcher and scheduler optimise; None for a fixed list
            that needs neither (Tune then does not check every result carries the metric).
        checkpoints: one of :data:`CHECKPOINTS`.
        max_failures: restarts of a trial whose node or worker dies, from its last
            checkpoint.
    """

    name: str
    storage_path: Path
    trainable: Any
    resources: Mapping[str, float]
    trainable_params: Mapping[str, Any] | None = None
    param_space: Mapping[str, Any] | None = None
    configs: Sequence[Mapping[str, Any]] | None = None
    searcher: Any = None
    scheduler: Any = None
    num_samples: int | None = None
    callbacks: Sequence[Any] = ()
    metric: str | None = None
    mode: str | None = None
    checkpoints: str = "recent"
    max_failures: int = 0

    def __post_init__(self) -> None:
        check_search_name(self.name)
        if self.configs is not None:
            if self.searcher is not None or self.param_space is not None:
                raise ValueError("configs is a fixed list of trials: give no searcher and no "
                                 "param_space with it")
            if not self.configs:
                raise ValueError("configs must hold at least one trial config, got none")
        if self.num_samples is not None and (not isinstance(self.num_samples, int)
                                             or self.num_samples < 1):
            raise ValueError(f"num_samples must be an integer >= 1, got {self.num_samples!r}")
        if self.mode not in (None, "max", "min"):
            raise ValueError(f"mode must be 'max', 'min' or None, got {self.mode!r}")
        if (self.metric is None) != (self.mode is None):
            raise ValueError(f"give metric and mode together, got metric={self.metric!r}, "
                             f"mode={self.mode!r}")
        if self.checkpoints not in CHECKPOINTS:
            raise ValueError(f"checkpoints must be one of {', '.join(CHECKPOINTS)}, got "
                             f"{self.checkpoints!r}")
        if not isinstance(self.max_failures, int) or self.max_failures < 0:
            raise ValueError(f"max_failures must be an integer >= 0, got {self.max_failures!r}")

    @property
    def folder(self) -> Path:
        return Path(self.storage_path) / self.name

    @property
    def trials(self) -> int:
        """How many trials the run plans."""
        if self.num_samples is not None:
            return self.num_samples
        return len(self.configs) if self.configs is not None else 1

    def tuner(self) -> Any:
        """The Tune ``Tuner`` of this run (call after :func:`start`)."""
        from ray import tune
        from ray.tune.schedulers import FIFOScheduler

        searcher = self.searcher
        if self.configs is not None:
            from ray.tune.search import ConcurrencyLimiter

            # Tune lets a custom searcher without a ConcurrencyLimiter keep one trial
            # pending at a time, which runs a fixed list one trial after the other; the
            # limiter lifts that (the cluster's resources still bound what runs at once).
            searcher = ConcurrencyLimiter(FixedConfigs(self.configs),
                                          max_concurrent=len(self.configs))
        params = {**(self.trainable_params or {}),
                  **checkpoint_params(self.checkpoints, self.trainable)}
        return tune.Tuner(
            tune.with_resources(with_parameters(self.trainable, params),
                                dict(self.resources)),
            param_space=dict(self.param_space or {}),
            tune_config=tune.TuneConfig(metric=self.metric, mode=self.mode,
                                        search_alg=searcher,
                                        scheduler=self.scheduler or FIFOScheduler(),
                                        num_samples=self.trials, reuse_actors=True,
                                        trial_dirname_creator=trial_dirname),
            run_config=self.run_config(),
        )

    def run_config(self) -> Any:
        from ray import tune

        return tune.RunConfig(
            name=self.name, storage_path=str(self.storage_path),
            callbacks=list(self.callbacks), verbose=0,
            checkpoint_config=checkpoint_config(self.checkpoints, self.trainable),
            # A trial whose node dies (or whose worker is killed) restarts from its last
            # checkpoint on any node with room, up to max_failures times.
            failure_config=tune.FailureConfig(max_failures=self.max_failures),
        )


def with_parameters(trainable: Any, params: Mapping[str, Any] | None) -> Any:
    """``trainable`` with ``params`` bound (``tune.with_parameters``); as it is without."""
    if not params:
        return trainable
    from ray import tune

    return tune.with_parameters(trainable, **params)


def _on_request(trainable: Any) -> bool:
    return bool(getattr(trainable, "checkpoints_on_request", False))


def checkpoint_config(policy: str, trainable: Any) -> Any:
    """Tune's ``CheckpointConfig`` for a checkpoint policy (:data:`CHECKPOINTS`).

    A trainable with ``checkpoints_on_request = True`` (``SnasTrainable``) asks for its
    checkpoints itself (``should_checkpoint`` in a result, where a checkpoint is worth its
    cost): Tune saves those and one after the last epoch, and for ``none`` the trainable is
    told to ask for none (:func:`checkpoint_params`). Any other trainable checkpoints after
    every epoch (``recent``, ``last``) or never (``none``).
    """
    from ray import tune

    frequency = 0 if _on_request(trainable) else 1
    if policy == "recent":
        # Tune deletes a trial's older checkpoints only after saving an experiment state
        # that no longer points at them (with num_to_keep it forces that save every
        # num_to_keep checkpoints; snas saves it after every step that registered one
        # anyway, snas.ray_session), so
        # a restore after a hard kill always finds the checkpoint its state names. Two, not
        # one: the newest may still be being written when the driver dies.
        return tune.CheckpointConfig(num_to_keep=RECENT_CHECKPOINTS,
                                     checkpoint_frequency=frequency, checkpoint_at_end=True)
    if policy == "last":
        return tune.CheckpointConfig(num_to_keep=1, checkpoint_frequency=frequency,
                                     checkpoint_at_end=True)
    if policy == "none":
        return tune.CheckpointConfig(checkpoint_frequency=0, checkpoint_at_end=False)
    raise ValueError(f"checkpoints must be one of {', '.join(CHECKPOINTS)}, got {policy!r}")


def checkpoint_params(policy: str, trainable: Any) -> dict[str, Any]:
    """What to bind to ``trainable`` for a checkpoint policy: ``checkpoints=False`` for
    ``none`` where the trainable asks for its own checkpoints, else nothing."""
    return {"checkpoints": False} if policy == "none" and _on_request(trainable) else {}


def trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


class FixedConfigs(Searcher):
    """A Tune searcher that hands out ``configs`` in order (deep copies), then FINISHED.

    Its position is saved with the experiment, so a restored run hands out only the
    configs it had not yet.
    """

    def __init__(self, configs: Sequence[Mapping[str, Any]]) -> None:
        super().__init__()
        self.configs = [dict(c) for c in configs]
        self.next_ = 0

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.next_ >= len(self.configs):
            return Searcher.FINISHED
        self.next_ += 1
        return copy.deepcopy(self.configs[self.next_ - 1])

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        pass

    def get_state(self) -> dict:
        return {"configs": self.configs, "next": self.next_}

    def set_state(self, state: dict) -> None:
        self.configs, self.next_ = state["configs"], state["next"]

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))


# ---------------------------------------------------------------------------------------
# Running


def run(experiment: Experiment, record: Record, store: Any, *, address: str | None = None,
        on_complete: Callable[[Any, str], None] | None = None,
        taken_hint: str = "pick another --name",
        preflight: Callable[[], None] | None = None) -> dict[str, Any]:
    """Start a new experiment: checks, Ray, the store's search row, fit, status.

    ``preflight()`` runs once Ray is up, before anything is stored or created (e.g.
    :func:`resources_preflight`); what it raises leaves no trace. ``on_complete(store,
    name)`` runs once every trial ended, before the status becomes ``finished``. Returns
    ``{"name", "seconds"}`` (seconds of ``fit`` and what follows).
    """
    folder = check_new_experiment(store, experiment.name, experiment.storage_path,
                                  taken_hint=taken_hint)
    start(address)
    if preflight is not None:
        preflight()
    from snas.paths import ensure_storage_path

    ensure_storage_path(experiment.storage_path)
    store.create_search(experiment.name, record.space_text, dict(record.space),
                        record.searcher, record.num_samples, str(folder), dict(record.params))
    with store.hold_lease(experiment.name):  # one driver per search, released at the end
        faults.point("search_created")
        try:
            tuner = experiment.tuner()
        except Exception as exc:  # the search row exists: it must not stay "running"
            mark_failed(store, experiment.name, exc)
            raise
        return _fit(tuner, store, experiment.name, on_complete)


def mark_failed(store: Any, name: str, exc: BaseException) -> None:
    """Store search ``name`` as ``failed``, with the reason (one line) in its params."""
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
    store.set_search_status(name, FAILED)
    store.update_search_params(name, {"failure": reason})


def stored_search(store: Any, name: str) -> dict[str, Any]:
    """The search row of an experiment to resume; an unknown or finished one is an error."""
    record = store.require_search(name)  # the store's one "no search named" error
    if record["status"] == FINISHED:
        raise SearchError(f"search {name!r} already finished; `snas show {name}` lists its "
                          "trials")
    return record


def resume(store: Any, name: str, trainable: Any, resources: Mapping[str, float], *,
           fresh: Callable[[], Experiment], address: str | None = None,
           on_complete: Callable[[Any, str], None] | None = None,
           trainable_params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Continue an interrupted experiment from its folder (``Tuner.restore``), with the
    trainable (and :attr:`Experiment.trainable_params`) it ran with.

    One whose driver died before Tune saved any state (no trial in the store yet) starts
    afresh under the same name from ``fresh()`` (called after Ray started). Unfinished
    trials resume from their last checkpoint; errored trials stay errored.
    """
    from ray import tune

    record = stored_search(store, name)
    # One driver per search: refused (nothing written) while another driver runs it.
    with store.hold_lease(name):
        folder = Path(record["storage_path"])
        restorable = tune.Tuner.can_restore(str(folder))
        if not restorable and store.trials(name):
            raise SearchError(f"search {name!r} has no restorable experiment state at "
                              f"{str(folder)!r}")
        start(address)
        store.set_search_status(name, RUNNING)
        if restorable:
            tuner = tune.Tuner.restore(str(folder),
                                       tune.with_resources(
                                           with_parameters(trainable, trainable_params),
                                           dict(resources)),
                                       resume_unfinished=True, resume_errored=False,
                                       restart_errored=False)
            write_to(tuner, store)
        else:
            tuner = fresh().tuner()
        return _fit(tuner, store, name, on_complete)


def write_to(tuner: Any, store: Any) -> None:
    """Point a restored run's store callbacks at ``store``, the store this resume opened
    (``--store``): Tune restores them as they were pickled, with the old store's URL."""
    run_config = tuner._local_tuner.get_run_config()
    for callback in run_config.callbacks or ():
        if hasattr(callback, "store_url"):
            callback.store_url = store.connect_url
            callback._store = None


class Interrupted(Exception):
    """The driver was asked to stop (SIGINT, SIGTERM): the search is stored ``interrupted``
    and ``snas resume`` continues it. ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, name: str, signum: int):
        self.name, self.signum = name, signum
        self.exit_code = 128 + signum
        super().__init__(f"search {name!r} interrupted by {signal.Signals(signum).name}; "
                         f"`snas resume {name}` continues it")


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[list[int]]:
    """While Tune runs: the first SIGINT or SIGTERM asks Tune to stop cleanly (its own
    SIGUSR1 handler: trials are stopped, the experiment state is saved) and is recorded in
    the yielded list; a second one stops at once (KeyboardInterrupt / the default action).
    Only in the main thread (signal handlers cannot be set elsewhere)."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    tune_sigint = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")

    def stop(signum: int, frame: Any) -> None:
        caught.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
            raise KeyboardInterrupt  # Tune's loop has not started: stop right here
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune ends its loop after this step

    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours, not Tune's, handles Ctrl-C
    for sig in saved:
        signal.signal(sig, stop)
    try:
        yield caught
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if tune_sigint is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = tune_sigint


def fit_tuner(tuner: Any, store: Any, name: str) -> list[dict[str, Any]]:
    """Run ``tuner.fit()`` for search ``name``; returns its stored trials afterwards.

    SIGINT (Ctrl-C) or SIGTERM stops Tune cleanly, marks the search ``interrupted`` and
    raises :class:`Interrupted` (a second signal stops at once, same status); any other
    exception marks it ``failed`` and is re-raised. Otherwise the final status is
    :func:`_fit`'s job.
    """
    with _stop_on_signals() as caught:
        try:
            tuner.fit()
        except KeyboardInterrupt:
            store.set_search_status(name, INTERRUPTED)
            raise Interrupted(name, caught[0] if caught else signal.SIGINT) from None
        except Exception as exc:
            mark_failed(store, name, exc)
            raise
    if caught:
        store.set_search_status(name, INTERRUPTED)
        raise Interrupted(name, caught[0])
    return store.trials(name)


def _fit(tuner: Any, store: Any, name: str,
         on_complete: Callable[[Any, str], None] | None) -> dict[str, Any]:
    began = time.perf_counter()
    trials = fit_tuner(tuner, store, name)
    faults.point("search_end")
    unfinished = [t for t in trials if t["status"] in _UNFINISHED_TRIALS]
    if not unfinished and on_complete is not None:
        try:
            on_complete(store, name)
        except Exception as exc:
            mark_failed(store, name, exc)
            raise
    store.set_search_status(name, INTERRUPTED if unfinished else FINISHED)
    if not unfinished:
        prune_checkpoints(trials)
    return {"name": name, "seconds": time.perf_counter() - began}


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


__all__ = ["CHECKPOINTS", "TUNE_ENV", "Experiment", "FixedConfigs", "Interrupted", "Record",
           "check_new_experiment", "check_search_name", "fit_tuner", "init_ray", "mark_failed",
           "prune_checkpoints", "resources_preflight", "resume", "run", "start", "start_while",
           "stored_search", "trial_dirname", "write_to"]
