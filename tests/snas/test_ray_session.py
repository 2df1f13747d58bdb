"""snas.ray_session: the adapters that keep a search's start-up short, and the script's exit.

The local-Ray and telemetry checks run in fresh subprocesses: the test session's shared Ray
was started without snas' options, and ``sys.modules`` there already holds everything.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from snas.store import ResultsStore

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_callback_count_matches_rays_without_importing_integrations():
    out = _python("""
        import sys
        from ray import tune
        from ray.tune.logger import LoggerCallback
        from ray.tune.logger.csv import CSVLoggerCallback
        from snas.ray_session import _count_callbacks

        class Mine(tune.Callback): pass
        class MyLogger(LoggerCallback): pass
        callbacks = [Mine(), Mine(), MyLogger(), CSVLoggerCallback(), object()]
        ours = dict(_count_callbacks(callbacks))
        heavy = [m for m in ("mlflow", "wandb", "ray.air.integrations.mlflow") if m in sys.modules]
        from ray.air._internal.usage import _count_callbacks as rays
        print(ours == dict(rays(callbacks)), ours, heavy)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "True", out.stdout
    assert "'CustomCallback': 2" in out.stdout and "'CSVLoggerCallback': 1" in out.stdout
    assert out.stdout.rstrip().endswith("[]"), out.stdout  # nothing heavy was imported


def test_tune_actors_get_no_runtime_env_of_their_own():
    """Without one, Ray hands a trial actor an idle prestarted worker (no new process)."""
    out = _python("""
        from ray.tune import Trainable
        from ray.tune.execution.class_cache import _ActorClassCache
        from snas.ray_session import _trial_actors_take_prestarted_workers

        class T(Trainable): pass
        before = _ActorClassCache().get(T)._default_options["runtime_env"]
        _trial_actors_take_prestarted_workers()
        class U(Trainable): pass
        after = _ActorClassCache().get(U)._default_options["runtime_env"]
        print(before, after)
    """)
    assert out.returncode == 0, out.stderr
    before, after = out.stdout.strip().rsplit(" ", 1)
    assert "PL_DISABLE_FORK" in before, out.stdout  # Tune's default
    assert after == "{}", out.stdout  # an empty env_vars: Ray keeps no runtime env at all


def test_ray_start_and_the_search_modules_share_only_modules_imported_before_both(ray_address):
    """`snas search` starts Ray while a thread imports Ray Tune, torch and snas's modules:
    a module both would import must be loaded before the thread starts
    (``SHARED_WITH_RAY_START``), else each thread may find the other's half-initialised (an
    ImportError of a circular import, seen with Tune's ``tune_controller``). Checked on
    this Ray, each side in a fresh interpreter that has loaded what `snas search` has by
    then: the CLI, the store and the shared modules."""
    setup = ("import importlib, sys, snas.cli, snas.commands.search, snas.store, ray\n"
             "from snas.ray_session import SHARED_WITH_RAY_START\n"
             "for m in SHARED_WITH_RAY_START: importlib.import_module(m)\n"
             "before = set(sys.modules)\n")
    loaded = "\nprint(sorted(set(sys.modules) - before))"
    runs = {"connect": _python(setup + f"ray.init(address={ray_address!r}, logging_level="
                               "'ERROR', log_to_driver=False)" + loaded),
            "local start": _python(setup + "from snas.ray_session import init_ray\n"
                                   "init_ray(None, workers=1)" + loaded),
            "search modules": _python(setup + "snas.commands.search._import_search_modules()"
                                      + loaded)}
    assert all(r.returncode == 0 for r in runs.values()), {k: r.stderr for k, r in runs.items()}
    modules = {k: set(eval(r.stdout.strip().splitlines()[-1])) for k, r in runs.items()}
    imports = modules["search modules"]
    assert "ray.tune" in imports and "trainables.training" in imports, imports
    assert modules["local start"] - modules["connect"], modules  # it imports on its own too
    for start in ("connect", "local start"):
        assert modules[start] & imports == set(), (start, modules[start] & imports)


def test_local_ray_starts_while_the_driver_prepares_and_preloads_the_trainable():
    """And prestarts only the workers the run can use (``workers``), without the head
    services a search does not use."""
    out = _python("""
        import sys, threading, ray
        from snas.core.errors import ConfigError
        from snas.ray_session import start_while

        def fails():
            raise ConfigError("budget.max_fraction=2 is not a fraction")
        try:
            start_while(None, fails, workers=1)
        except ConfigError as exc:
            print("error:", exc, "| ray up:", ray.is_initialized())
        from ray._private import ray_constants, worker
        raylet = worker._global_node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0]
        with open(f"/proc/{raylet.process.pid}/cmdline") as f:
            print("prestarts:", [a for a in f.read().split(chr(0)) if "prestart" in a])
        print("services:", sorted(worker._global_node.all_processes))

        @ray.remote
        def modules():
            return [m in sys.modules for m in ("trainables.tune_trainable", "torch._dynamo")]
        from snas.ray_session import _preload_fits
        print("preloaded:", ray.get(modules.remote()) == [_preload_fits()] * 2)
        print("prepared in:", start_while(None, lambda: threading.current_thread().name))
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # The config error is what the user sees, once Ray's start (which ran meanwhile) is done.
    assert lines[0] == "error: budget.max_fraction=2 is not a fraction | ray up: True", lines
    # A run of at most one trial at a time: the raylet prestarts one worker, not one per CPU.
    assert lines[1] == "prestarts: ['--num_prestart_python_workers=1']", lines
    # No autoscaler monitor, log monitor or dashboard API server: what a search runs is the
    # GCS, the raylet (which starts its agents) and Ray's reaper.
    services = lines[2].removeprefix("services: ")
    for unused in ("monitor", "log_monitor", "dashboard"):
        assert f"'{unused}'" not in services, lines
    assert "'gcs_server'" in services and "'raylet'" in services, lines
    assert lines[3] == "preloaded: True", lines  # where one worker per CPU fits (8 x memory)
    # Ray already up: prepare runs in the caller's thread.
    assert lines[4] == "prepared in: MainThread", lines


def test_preload_only_where_a_worker_per_cpu_fits_in_an_eighth_of_memory(monkeypatch):
    import snas.core.machine as machine
    from snas import ray_session

    monkeypatch.setattr(ray_session.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(machine, "physical_memory", lambda: 256 * 2**30)
    assert not ray_session._preload_fits()  # 64 x 0.6 GB > 32 GB
    monkeypatch.setattr(machine, "physical_memory", lambda: 512 * 2**30)
    assert ray_session._preload_fits()
    monkeypatch.setattr(machine, "physical_memory", lambda: None)
    assert not ray_session._preload_fits()


def test_script_exit_keeps_the_code_and_folds_the_sqlite_log(tmp_path):
    """``snas`` ends with os._exit: the exit code, the output and the store survive it."""
    url = f"sqlite:///{tmp_path}/r.db"
    store = ResultsStore(url)
    for name in ("a", "b"):
        store.create_search(name, "x: 1\n", {}, "random", 1, str(tmp_path / name), {})
    store.close()
    script = [sys.executable, "-m", "snas.cli"]
    deleted = subprocess.run([*script, "delete", "a", "--yes", "--store", url],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted search 'a'" in deleted.stdout
    assert not Path(f"{tmp_path}/r.db-wal").exists()  # every connection was closed
    missing = subprocess.run([*script, "delete", "zzz", "--yes", "--store", url],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert missing.returncode == 2 and missing.stderr.startswith("snas: error:"), missing
    assert [s["name"] for s in ResultsStore(url, read_only=True).list_searches()] == ["b"]


def test_tune_saves_its_experiment_state_only_when_it_changed(ray_address, tmp_path,
                                                               monkeypatch):
    """A driver waiting on a slow trial loops every 0.1 s; only steps that changed what a
    resume depends on write the state. A 4 x 0.5 s trial without checkpoints: its start,
    its end and Tune's final forced save, not one save per step nor one per result (its
    results are progress only, saved at most every ``PROGRESS_SAVE_PERIOD_S``)."""
    import time

    from ray import tune
    from ray.tune.execution.tune_controller import TuneController

    from snas.ray_session import start

    start(ray_address)
    counts = {"steps": 0, "saves": 0}
    step, save = TuneController.step, TuneController.save_to_dir

    def counted_step(self):
        counts["steps"] += 1
        return step(self)

    def counted_save(self):
        counts["saves"] += 1
        return save(self)

    monkeypatch.setattr(TuneController, "step", counted_step)
    monkeypatch.setattr(TuneController, "save_to_dir", counted_save)

    def slow(config):
        for i in range(4):
            time.sleep(0.5)
            tune.report({"i": i})

    tune.Tuner(slow, run_config=tune.RunConfig(storage_path=str(tmp_path), name="slow",
                                               verbose=0)).fit()
    assert counts["steps"] >= 20, counts
    assert counts["saves"] <= 3, counts
    assert list((tmp_path / "slow").glob("experiment_state-*.json"))  # it did save


def test_tune_keeps_statistics_only_of_the_search_metrics(ray_address, tmp_path):
    """Each trial's saved state holds running statistics of the metrics a search may rank by
    and Tune's iteration counter, not of every result field and config value."""
    import json

    from ray import tune

    from snas.core import metrics as M
    from snas.ray_session import TUNE_STATISTICS, start

    start(ray_address)

    def reports(config):
        for i in range(3):
            tune.report({M.VAL_ACCURACY: 0.5 + i / 10, M.EPOCH_SECONDS: 0.1, M.LR: 0.01})

    grid = tune.Tuner(reports, param_space={"d_00": 0.5}, tune_config=tune.TuneConfig(
        metric=M.VAL_ACCURACY, mode="max"), run_config=tune.RunConfig(
        storage_path=str(tmp_path), name="stats", verbose=0)).fit()
    assert grid.get_best_result().metrics[M.VAL_ACCURACY] == 0.7  # Tune still ranks
    state = json.loads(next((tmp_path / "stats").glob("experiment_state-*.json")).read_text())
    (_, metadata), = state["trial_data"]
    analysis = json.loads(metadata)["metric_analysis"]
    assert set(analysis) == {M.VAL_ACCURACY, "training_iteration"} <= TUNE_STATISTICS
    assert analysis[M.VAL_ACCURACY]["max"] == 0.7


def test_tune_state_is_encoded_in_one_pass_and_reads_back_the_same(ray_address):
    """Tune's state writers get the one-pass json (C encoder, no indentation); what it writes
    parses to what Tune's own ``json.dump`` wrote, cloudpickled fallbacks included."""
    import io
    import json

    from ray.tune.execution import tune_controller
    from ray.tune.experiment import trial
    from ray.tune.trainable import metadata
    from ray.tune.utils.serialization import TuneFunctionDecoder, TuneFunctionEncoder

    from snas.ray_session import _OnePassJSON, start

    start(ray_address)
    for module in (tune_controller, trial, metadata):
        assert isinstance(module.json, _OnePassJSON), module
    state = {"trial_data": [["{\"a\": 1}", "{\"b\": [1.5, null]}"]], "f": len,
             "stats": {"start_time": 1.25, "nan": float("nan")}}
    ours, theirs = io.StringIO(), io.StringIO()
    tune_controller.json.dump(state, ours, cls=TuneFunctionEncoder)
    json.dump(state, theirs, cls=TuneFunctionEncoder)
    assert ours.getvalue() == theirs.getvalue()  # same separators, same order
    decode = TuneFunctionDecoder(allow_cloudpickle=True).decode
    assert decode(ours.getvalue())["f"] is len
    indented = json.loads(metadata.json.dumps({"x": [1, 2]}, indent=2, cls=TuneFunctionEncoder))
    assert indented == {"x": [1, 2]}


def test_a_search_prestarts_workers_only_for_the_trials_it_runs_at_once():
    from snas.ray_session import trial_actors_at_once
    from snas.core.config import load_space

    def actors(*overrides: str, cpus: int = 2) -> int:
        space = load_space(ROOT / "search_spaces" / "mlp_digits.yaml", list(overrides))
        return trial_actors_at_once(space, cpus)

    assert actors("search.num_samples=1", "search.with_dense_baseline=false") == 1
    assert actors("search.num_samples=1", "search.with_dense_baseline=true") == 2
    assert actors("search.num_samples=16", "search.max_concurrent=1") == 1
    assert actors("search.num_samples=16", "search.max_concurrent=8", cpus=16) == 8
    assert actors("search.num_samples=16", "search.max_concurrent=8",
                  "resources.cpus_per_trial=4", cpus=16) == 4
    assert actors("search.num_samples=16", "search.max_concurrent=8",
                  "resources.cpus_per_trial=0.5", cpus=2) == 8  # Ray caps it at its CPUs
