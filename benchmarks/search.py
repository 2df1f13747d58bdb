"""ASHA against no early stopping, and the overhead of Ray + snas, in one run.

Runs the same 16-trial random search (same seed, so the same density vectors) on the
shipped digits data twice on one local Ray instance: with ASHA and with FIFO (every trial
trains every epoch). Prints for each: trial-epochs spent, best validation and test accuracy,
wall time, and the fraction of wall time spent outside training (Ray and snas overhead):
``1 - sum(epoch seconds) / (wall seconds * concurrent trials)``. The baseline is FIFO.

Usage: ``python benchmarks/search.py [--samples 16] [--epochs 9] [--json]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_one(scheduler: str, samples: int, epochs: int, concurrent: int, reduction: float,
            workdir: Path) -> dict[str, float]:
    from snas.controller import SearchRequest, run_search
    from snas.core.config import load_space
    from snas.store import ResultsStore

    space_path = ROOT / "search_spaces" / "mlp_digits.yaml"
    space = load_space(space_path, [
        f"scheduler.name={scheduler}", "scheduler.grace_period=1",
        f"scheduler.reduction_factor={reduction}", f"training.epochs={epochs}",
        f"search.num_samples={samples}", f"search.max_concurrent={concurrent}",
        "search.seed=0", "search.searcher=random"])
    url = f"sqlite:///{workdir}/bench.db"
    store = ResultsStore(url)
    start = time.perf_counter()
    run_search(SearchRequest(f"bench-{scheduler}", space, space_path.read_text(), url,
                             workdir / "exp", quiet=True), store)
    wall = time.perf_counter() - start
    trials = store.trials(f"bench-{scheduler}")
    epochs_frame = store.epochs_frame(f"bench-{scheduler}")
    train_seconds = float(epochs_frame["epoch_seconds"].sum())
    full = [t for t in trials if t["status"] == "terminated"]
    best = max(full, key=lambda t: t["val_accuracy"])
    return {
        "trial_epochs": int(len(epochs_frame)),
        "best_val_accuracy": best["val_accuracy"],
        "best_test_accuracy": best.get("test_accuracy"),
        "wall_seconds": wall,
        "train_seconds": train_seconds,
        "overhead_fraction": 1.0 - train_seconds / (wall * concurrent),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--reduction-factor", type=float, default=4.0,
                        help="ASHA reduction factor (grace period 1 epoch)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import ray

    ray.init(num_cpus=args.concurrent, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: run_one(name, args.samples, args.epochs, args.concurrent,
                                 args.reduction_factor, Path(tmp))
                   for name in ("fifo", "asha")}
    ray.shutdown()
    fifo, asha = results["fifo"], results["asha"]
    results["ratios"] = {
        "asha_epochs_vs_fifo": asha["trial_epochs"] / fifo["trial_epochs"],
        "asha_wall_vs_fifo": asha["wall_seconds"] / fifo["wall_seconds"],
        "asha_best_val_minus_fifo": asha["best_val_accuracy"] - fifo["best_val_accuracy"],
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.samples}-trial random search, {args.epochs} epochs max, "
          f"{args.concurrent} concurrent trials, ASHA grace 1 reduction "
          f"{args.reduction_factor:g}, mlp_digits")
    print(f"{'scheduler':<10}{'trial-epochs':>14}{'best val':>10}{'its test':>10}"
          f"{'wall s':>9}{'train s':>9}{'overhead':>10}")
    for name in ("fifo", "asha"):
        r = results[name]
        print(f"{name:<10}{r['trial_epochs']:>14}{r['best_val_accuracy']:>10.4f}"
              f"{r['best_test_accuracy']:>10.4f}{r['wall_seconds']:>9.1f}"
              f"{r['train_seconds']:>9.1f}{r['overhead_fraction']:>10.1%}")
    ratios = results["ratios"]
    print(f"ASHA / FIFO: trial-epochs {ratios['asha_epochs_vs_fifo']:.2f}x, wall "
          f"{ratios['asha_wall_vs_fifo']:.2f}x, best val accuracy "
          f"{ratios['asha_best_val_minus_fifo']:+.4f}")


if __name__ == "__main__":
    main()
