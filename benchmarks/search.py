"""Where a search's wall time goes, and how it scales: one run, ratios against FIFO.

Every search here is a random search of the shipped digits data (``mlp_digits.yaml`` at
``--width``) on one local Ray instance. The run prints:

1. **Fixed cost of a search**: a 1-trial ``snas search`` (3 epochs, FIFO, no baseline) as a
   user runs it, in a subprocess: process wall time minus its trial's time in the
   trainable, next to ``ray.init`` alone (also a fresh subprocess) in the same run; its
   phases (to the trial's start, the trial, from its end to the exit; from the store's
   timestamps); what a trial actor's process imports before its first trial, timed in a
   fresh process (paid after ``ray.init``, so a floor of the fixed cost); and (Linux) the
   CPU seconds the whole machine spent meanwhile, divided by its cores: the least wall
   time that work can take, however well it overlaps.
2. **ASHA against FIFO** (the baseline): the same 16-trial search (same seed, same vectors)
   with and without early stopping: trial-epochs, best accuracy, wall time and the ratio
   of wall ratios to trial-epoch ratios (1.0: wall time follows the work ASHA saves), also
   counted from the first trial's start (without the start-up both searches pay).
3. **The breakdown** of each search's wall time: per trial, time in training (epochs incl.
   validation), test evaluation, trial construction, checkpoint writes and wiring records
   (reported by the trainable); in the driver, store writes (snas' Tune callback), Tune's
   experiment-state saves and the rest (Ray scheduling and waiting).
4. **Per-trial overhead** at 1 and 2 concurrent trials: (wall(N) - wall(M)) / (N - M)
   minus the extra trials' time in the trainable / concurrency.
5. **An epoch inside Tune against the same epoch in ``snas train``** (one thread each,
   means over every epoch of a trial on both sides): at 1 concurrent trial against one
   ``snas train``, at 2 against two ``snas train`` processes at once (the same sharing of
   the cores) and against one alone; ``snas train`` runs before and after the searches, so
   a drift of the machine's speed meanwhile shows.
6. With ``--scaling``: per-trial overhead of 16, 64 and 256 one-epoch trials on a local
   two-node Ray cluster (``ray.cluster_utils.Cluster``, one CPU per node).

Usage: ``python benchmarks/search.py [--samples 16] [--epochs 9] [--width 16] [--scaling]
[--json FILE]``
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "search_spaces" / "mlp_digits.yaml"
PY = sys.executable


# --------------------------------------------------------------------------------------
# Driver-side clocks: the driver's hooks are wrapped for the benchmark only.

class DriverClock:
    """Seconds spent in the wrapped driver functions, and per-trial event times."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.results: dict[str, dict[str, Any]] = {}
        self.epoch_seconds: dict[str, float] = defaultdict(float)
        self.first_start: float | None = None
        self.last_complete: float | None = None

    def reset(self) -> None:
        self.__init__()

    def wrap(self, owner: Any, attr: str, bucket: str, hook: Any = None) -> None:
        original = getattr(owner, attr)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[bucket] += time.perf_counter() - began
                if hook is not None:
                    hook(began, *args, **kwargs)

        setattr(owner, attr, timed)


CLOCK = DriverClock()


def install_clocks() -> None:
    from ray.tune.execution.tune_controller import TuneController

    from snas.controller import StoreCallback

    def on_start(began: float, *args: Any, **kwargs: Any) -> None:
        CLOCK.first_start = CLOCK.first_start or began

    def on_result(began: float, callback: Any, iteration: int, trials: list, trial: Any,
                  result: dict, **info: Any) -> None:
        CLOCK.results[trial.trial_id] = result
        CLOCK.epoch_seconds[trial.trial_id] += float(result.get("epoch_seconds", 0.0))

    def on_complete(began: float, *args: Any, **kwargs: Any) -> None:
        CLOCK.last_complete = time.perf_counter()

    CLOCK.wrap(TuneController, "checkpoint", "tune_state_saves")
    for hook in ("on_step_begin", "on_trial_start", "on_trial_result", "on_checkpoint",
                 "on_trial_complete", "on_trial_error", "on_trial_recover"):
        extra = {"on_trial_start": on_start, "on_trial_result": on_result,
                 "on_trial_complete": on_complete}.get(hook)
        CLOCK.wrap(StoreCallback, hook, "store_writes", extra)


def trainable_seconds(result: dict[str, Any], epoch_seconds: float) -> dict[str, float]:
    return {"training": epoch_seconds, "test_eval": float(result.get("time_eval_s") or 0.0),
            "trial_setup": float(result.get("time_setup_s") or 0.0),
            "checkpoints": float(result.get("time_checkpoint_s") or 0.0),
            "wiring_records": float(result.get("time_wiring_s") or 0.0)}


def run_search(tag: str, workdir: Path, *, samples: int, epochs: int, concurrent: int,
               scheduler: str, width: int, reduction: float = 4.0) -> dict[str, Any]:
    from snas.controller import SearchRequest
    from snas.controller import run_search as snas_run_search
    from snas.core.config import load_space
    from snas.store import ResultsStore

    space = load_space(SPACE, [
        f"scheduler.name={scheduler}", "scheduler.grace_period=1",
        f"scheduler.reduction_factor={reduction}", f"training.epochs={epochs}",
        f"model.width={width}", f"search.num_samples={samples}",
        f"search.max_concurrent={concurrent}", "search.seed=0", "search.searcher=random"])
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir}/bench.db"
    store = ResultsStore(url)
    CLOCK.reset()
    began = time.perf_counter()
    snas_run_search(SearchRequest(tag, space, SPACE.read_text(), url, workdir / "exp",
                                  quiet=True), store)
    wall = time.perf_counter() - began
    trials = store.trials(tag)
    per_trial = defaultdict(float)
    for trial_id, result in CLOCK.results.items():
        for key, value in trainable_seconds(result, CLOCK.epoch_seconds[trial_id]).items():
            per_trial[key] += value
    in_trainable = sum(per_trial.values())
    full = [t for t in trials if t["status"] == "terminated"]
    best = max(full, key=lambda t: t["val_accuracy"])
    driver = dict(CLOCK.seconds)
    return {
        "trials": len(trials), "concurrent": concurrent, "scheduler": scheduler,
        "trial_epochs": int(sum(int(r.get("epoch", 0)) for r in CLOCK.results.values())),
        "best_val_accuracy": best["val_accuracy"], "best_test_accuracy": best["test_accuracy"],
        "wall_seconds": wall,
        "start_up_seconds": (CLOCK.first_start or began) - began,
        "wind_down_seconds": began + wall - (CLOCK.last_complete or began + wall),
        "trainable_seconds": dict(per_trial), "in_trainable_seconds": in_trainable,
        "driver_seconds": driver,
        "mean_epoch_seconds": per_trial["training"] / max(1, sum(
            int(r.get("epoch", 0)) for r in CLOCK.results.values())),
    }


def overhead_per_trial(small: dict[str, Any], large: dict[str, Any]) -> float:
    extra = large["trials"] - small["trials"]
    work = (large["in_trainable_seconds"] - small["in_trainable_seconds"]) / large["concurrent"]
    return (large["wall_seconds"] - small["wall_seconds"] - work) / extra


# --------------------------------------------------------------------------------------
# Subprocess measurements: a user's `snas search`, ray.init alone, an epoch in snas train.

def time_ray_init() -> float:
    code = ("import time, ray; t = time.perf_counter(); ray.init(num_cpus=2, "
            "include_dashboard=False, logging_level='ERROR'); print(time.perf_counter() - t); "
            "ray.shutdown()")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def machine_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has been busy since boot (user + nice + system, all
    cores; Linux ``/proc/stat``), or None elsewhere: a start-up's total work, whichever
    process did it (the driver, Ray's processes, the prestarted workers)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    return (int(fields[1]) + int(fields[2]) + int(fields[3])) / os.sysconf("SC_CLK_TCK")


def time_cli_search(workdir: Path, width: int) -> dict[str, float]:
    from snas.store import ResultsStore

    url = f"sqlite:///{workdir}/cli.db"
    argv = [PY, "-m", "snas.cli", "search", str(SPACE), "--name", "one", "--num-samples",
            "1", "--store", url, "--storage-path", str(workdir / "cli"), "--quiet", "--set",
            f"model.width={width}", "--set", "training.epochs=3", "--set",
            "scheduler.name=fifo", "--set", "search.with_dense_baseline=false"]
    cpu, began, began_clock = machine_cpu_seconds(), time.perf_counter(), time.time()
    subprocess.run(argv, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - began
    ended_clock, cpu_after = time.time(), machine_cpu_seconds()
    store = ResultsStore(url)
    epochs = store.epochs_frame("one")
    (trial,) = store.trials("one")  # created when it started, updated last when it ended
    return {"wall_seconds": wall, "trial_seconds": float(epochs["epoch_seconds"].sum()),
            "to_first_trial_seconds": trial["created_at"].timestamp() - began_clock,
            "trial_span_seconds": (trial["updated_at"] - trial["created_at"]).total_seconds(),
            "after_last_trial_seconds": ended_clock - trial["updated_at"].timestamp(),
            "machine_cpu_seconds": None if cpu is None else cpu_after - cpu}


def time_worker_imports() -> dict[str, float]:
    """Wall and CPU seconds of what a trial actor's process imports before its first trial
    (:data:`snas.ray_session.PRELOAD`, after Ray itself), in a fresh process: every search
    pays it once per trial actor, after ``ray.init`` and before its first trial can start,
    so it bounds the fixed cost from below however the driver overlaps its own work."""
    from snas.ray_session import PRELOAD

    code = ("import resource, time, ray; c0 = resource.getrusage(resource.RUSAGE_SELF); "
            "t = time.perf_counter(); import importlib; "
            f"[importlib.import_module(m) for m in {list(PRELOAD)!r}]; "
            "w = time.perf_counter() - t; c1 = resource.getrusage(resource.RUSAGE_SELF); "
            "print(w, c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    wall, cpu = (float(v) for v in out.stdout.split())
    return {"wall_seconds": wall, "cpu_seconds": cpu}


def time_snas_train_epochs(width: int, epochs: int, at_once: int = 1) -> list[list[float]]:
    """Epoch seconds (every epoch, the first included, as in a trial) of the benchmark's
    trial config trained as ``snas train`` does, one thread, in ``at_once`` processes
    started together: the same epoch with 1 or 2 trainings sharing the machine, as 1 or 2
    concurrent Tune trials do."""
    code = (
        "import sys, json, torch; sys.path.insert(0, %r); torch.set_num_threads(1)\n"
        "from snas.core.config import load_space\nfrom trainables.training import Trial\n"
        "t = Trial(load_space(%r, ['model.width=%d', 'training.epochs=%d']), 0.5)\n"
        "print(json.dumps([t.run_epoch()['epoch_seconds'] for _ in range(%d)]))"
    ) % (str(ROOT), str(SPACE), width, epochs, epochs)
    procs = [subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
             for _ in range(at_once)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a snas train subprocess failed")
    return [json.loads(out.strip().splitlines()[-1]) for out in outs]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


# --------------------------------------------------------------------------------------

def breakdown_lines(r: dict[str, Any]) -> list[str]:
    wall = r["wall_seconds"]
    trainable = r["trainable_seconds"]
    driver = r["driver_seconds"]
    slots = wall * r["concurrent"]
    lines = [f"  {r['scheduler']}: {r['trials']} trials, {r['concurrent']} concurrent, wall "
             f"{wall:.1f} s (start-up {r['start_up_seconds']:.1f} s, wind-down "
             f"{r['wind_down_seconds']:.1f} s)"]
    lines += [f"    trainable {k:<16}{v:8.2f} s  {v / slots:6.1%} of trial slots"
              for k, v in trainable.items()]
    rest = slots - r["in_trainable_seconds"]
    lines.append(f"    outside the trainable {rest:8.2f} s  {rest / slots:6.1%} of trial slots "
                 "(Ray scheduling, actor reuse, result transfer, waiting on the driver)")
    lines += [f"    driver {k:<19}{v:8.2f} s  {v / wall:6.1%} of wall" for k, v in driver.items()]
    return lines


def scaling(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    try:
        runs = [run_search(f"scale-{n}", workdir / f"scale-{n}", samples=n, epochs=1,
                           concurrent=2, scheduler="fifo", width=args.width)
                for n in (16, 64, 256)]
    finally:
        ray.shutdown()
        cluster.shutdown()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--reduction-factor", type=float, default=4.0,
                        help="ASHA reduction factor (grace period 1 epoch)")
    parser.add_argument("--scaling", action="store_true",
                        help="also 16/64/256 one-epoch trials on a two-node local cluster")
    parser.add_argument("--json", metavar="FILE", help="write every number as JSON")
    args = parser.parse_args()

    import ray

    install_clocks()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out["ray_init_seconds"] = time_ray_init()
        cli = time_cli_search(tmp, args.width)
        out["cli_search"] = cli
        out["fixed_cost_seconds"] = cli["wall_seconds"] - cli["trial_seconds"]
        out["worker_imports"] = time_worker_imports()
        # the same epochs in snas train, alone and two at once, before and after the
        # searches (the machine's speed drifts over minutes: both ends bracket them)
        train = {"alone": [], "two_at_once": []}

        def train_epochs() -> None:
            train["alone"] += time_snas_train_epochs(args.width, args.epochs)
            train["two_at_once"] += time_snas_train_epochs(args.width, args.epochs, 2)

        train_epochs()

        from snas.ray_session import start

        start(None)  # the local Ray `snas search` starts (workers preload the trainable)
        # A warm-up search first (not reported): the first search on a new Ray takes its
        # actors' workers while the prestarted ones are still importing; every search after
        # it starts its trial actors in new worker processes (the previous search's ended),
        # so the searches compared below all start alike.
        runs = {}
        for name, kw in {
            "warm_up": dict(samples=2, epochs=1, concurrent=2, scheduler="fifo"),
            "c1_n2": dict(samples=2, epochs=3, concurrent=1, scheduler="fifo"),
            "c1_n10": dict(samples=10, epochs=3, concurrent=1, scheduler="fifo"),
            "c2_n4": dict(samples=4, epochs=3, concurrent=2, scheduler="fifo"),
            "c2_n16": dict(samples=16, epochs=3, concurrent=2, scheduler="fifo"),
            "fifo": dict(samples=args.samples, epochs=args.epochs, concurrent=2,
                         scheduler="fifo"),
            "asha": dict(samples=args.samples, epochs=args.epochs, concurrent=2,
                         scheduler="asha", reduction=args.reduction_factor),
        }.items():
            runs[name] = run_search(name, tmp / name, width=args.width, **kw)
        ray.shutdown()
        train_epochs()
        out["snas_train_epochs"] = train
        out["runs"] = runs
        if args.scaling:
            out["scaling"] = scaling(args, tmp)

    fifo, asha = runs["fifo"], runs["asha"]
    epochs_ratio = asha["trial_epochs"] / fifo["trial_epochs"]
    wall_ratio = asha["wall_seconds"] / fifo["wall_seconds"]
    out["ratios"] = {
        "asha_epochs_vs_fifo": epochs_ratio, "asha_wall_vs_fifo": wall_ratio,
        "asha_wall_ratio_over_epoch_ratio": wall_ratio / epochs_ratio,
        "asha_wall_after_start_up": ((asha["wall_seconds"] - asha["start_up_seconds"])
                                     / (fifo["wall_seconds"] - fifo["start_up_seconds"])),
        # each side's mean over every epoch of its trials (3-epoch trials at 1 concurrent:
        # snas train's first 3 epochs; 9-epoch trials at 2: all 9, two trainings at once)
        "tune_epoch_vs_snas_train_c1": runs["c1_n10"]["mean_epoch_seconds"] / mean(
            [e for h in train["alone"] for e in h[:3]]),
        "tune_epoch_vs_snas_train_c2": fifo["mean_epoch_seconds"] / mean(
            [e for h in train["two_at_once"] for e in h]),
        "tune_epoch_c2_vs_snas_train_alone": fifo["mean_epoch_seconds"] / mean(
            [e for h in train["alone"] for e in h]),
        "overhead_per_trial_c1": overhead_per_trial(runs["c1_n2"], runs["c1_n10"]),
        "overhead_per_trial_c2": overhead_per_trial(runs["c2_n4"], runs["c2_n16"]),
    }
    r = out["ratios"]
    print(f"digits MLP width {args.width}; random search, seed 0; baseline: FIFO")
    print(f"fixed cost of a 1-trial `snas search`: {out['fixed_cost_seconds']:.1f} s outside "
          f"its trial ({cli['wall_seconds']:.1f} s wall); ray.init alone "
          f"{out['ray_init_seconds']:.1f} s -> ray.init + "
          f"{out['fixed_cost_seconds'] - out['ray_init_seconds']:.1f} s")
    imports = out["worker_imports"]
    print(f"  phases: {cli['to_first_trial_seconds']:.1f} s to its trial's start, the trial "
          f"{cli['trial_span_seconds']:.1f} s ({cli['trial_seconds']:.1f} s of it in epochs), "
          f"{cli['after_last_trial_seconds']:.1f} s from its end to the exit")
    print(f"  a trial actor's own imports (torch, torch._dynamo, Ray Tune, the trainable; "
          f"after ray.init, before its first trial) in a fresh process: "
          f"{imports['wall_seconds']:.1f} s wall, {imports['cpu_seconds']:.1f} CPU-s")
    if cli.get("machine_cpu_seconds") is not None:
        cores = os.cpu_count() or 1
        print(f"  its whole-machine CPU: {cli['machine_cpu_seconds']:.1f} s, at least "
              f"{cli['machine_cpu_seconds'] / cores:.1f} s of wall on {cores} cores")
    print(f"{'scheduler':<10}{'trial-epochs':>14}{'best val':>10}{'its test':>10}{'wall s':>9}")
    for name in ("fifo", "asha"):
        x = runs[name]
        print(f"{name:<10}{x['trial_epochs']:>14}{x['best_val_accuracy']:>10.4f}"
              f"{x['best_test_accuracy']:>10.4f}{x['wall_seconds']:>9.1f}")
    print(f"ASHA / FIFO: trial-epochs {epochs_ratio:.2f}x, wall {wall_ratio:.2f}x "
          f"(wall ratio / epoch ratio {r['asha_wall_ratio_over_epoch_ratio']:.2f}); after "
          f"the start-up (first trial started): wall {r['asha_wall_after_start_up']:.2f}x "
          f"({r['asha_wall_after_start_up'] / epochs_ratio:.2f})")
    print("breakdown:")
    for name in ("fifo", "asha"):
        print("\n".join(breakdown_lines(runs[name])))
    alone = [mean(h) for h in train["alone"]]
    print("epoch inside Tune / the same epoch in snas train (means over every epoch; snas "
          f"train alone before / after the searches: {alone[0]:.3f} / {alone[-1]:.3f} s): "
          f"1 concurrent trial {r['tune_epoch_vs_snas_train_c1']:.2f}x "
          f"({runs['c1_n10']['mean_epoch_seconds']:.3f} s); 2 concurrent vs two snas trains "
          f"at once {r['tune_epoch_vs_snas_train_c2']:.2f}x "
          f"({fifo['mean_epoch_seconds']:.3f} s), vs snas train alone "
          f"{r['tune_epoch_c2_vs_snas_train_alone']:.2f}x")
    print(f"overhead per extra trial: {r['overhead_per_trial_c1']:.2f} s at 1 concurrent "
          f"(2 -> 10 trials), {r['overhead_per_trial_c2']:.2f} s at 2 concurrent "
          "(4 -> 16 trials)")
    if args.scaling:
        s16, s64, s256 = out["scaling"]
        print(f"two-node cluster, one-epoch trials: wall 16 {s16['wall_seconds']:.1f} s, 64 "
              f"{s64['wall_seconds']:.1f} s, 256 {s256['wall_seconds']:.1f} s; overhead per "
              f"extra trial 16->64 {overhead_per_trial(s16, s64):.2f} s, 64->256 "
              f"{overhead_per_trial(s64, s256):.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
