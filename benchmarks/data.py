"""Benchmark: one epoch of on-device batches vs a DataLoader over the same tensors.

Loads mnist5k once, then times one shuffled epoch (batch 128) of
``DeviceDataset.batches`` without and with augmentation (crop padding 4, flip), and one
epoch of ``DataLoader(TensorDataset(train_x, train_y), batch_size=128, shuffle=True,
num_workers=2)``, the baseline (a fresh iterator per epoch, so worker start-up counts, as
it does in a trial), plus the same DataLoader with ``num_workers=0`` for reference. The
variants run ``--repeats`` epochs each, round-robin, after two warm-up epochs; the table
shows the median epoch time and its ratio to the baseline's. ``--json`` prints a JSON
object instead.

Torch runs with ``--threads`` intra-op threads (default 1: Ray Tune sets OMP_NUM_THREADS to
a trial's CPUs, 1 by default; on a shared 2-core machine two threads also stall whenever
another process holds a core, which makes timings erratic).

    python benchmarks/data.py [--repeats 7] [--threads 1] [--device cpu] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from snas.core.config import DatasetConfig  # noqa: E402
from trainables.data import load_dataset  # noqa: E402

BATCH = 128


def _consume(batches: Iterable, device: torch.device) -> int:
    """Touch every batch (sum on the device) so lazy work is done; returns samples seen."""
    seen = 0
    total = torch.zeros((), device=device)
    for x, y in batches:
        total += x.sum()
        seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return seen


def _time_all(variants: dict[str, Callable[[int], int]], repeats: int
              ) -> dict[str, tuple[float, int]]:
    """Median epoch seconds and samples per variant. Variants run round-robin after two
    warm-up epochs each, so load from other processes hits them alike."""
    for epoch in variants.values():
        epoch(-2)
        epoch(-1)
    times: dict[str, list[float]] = {name: [] for name in variants}
    seen: dict[str, int] = {}
    for r in range(repeats):
        for name, epoch in variants.items():
            start = time.perf_counter()
            seen[name] = epoch(r)
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), seen[name]) for name in variants}


def run(repeats: int, device: str) -> dict:
    dev = torch.device(device)
    ds = load_dataset(DatasetConfig(name="mnist5k", crop_padding=4, hflip=True), dev)

    def device_epoch(augment: bool) -> Callable[[int], int]:
        def epoch(seed: int) -> int:
            gen = torch.Generator().manual_seed(seed + 1)
            return _consume(ds.batches("train", BATCH, shuffle=True, generator=gen,
                                       augment=augment), dev)
        return epoch

    # The DataLoader reads CPU tensors (workers cannot share CUDA tensors) and each batch
    # is moved to the device, as a trial would do.
    tensors = TensorDataset(ds.train_x.cpu(), ds.train_y.cpu())

    def loader_epoch(workers: int) -> Callable[[int], int]:
        def epoch(seed: int) -> int:
            gen = torch.Generator().manual_seed(seed + 1)
            loader = DataLoader(tensors, batch_size=BATCH, shuffle=True,
                                num_workers=workers, generator=gen)
            return _consume(((x.to(dev), y.to(dev)) for x, y in loader), dev)
        return epoch

    variants = {
        "dataloader (2 workers)": loader_epoch(2),
        "dataloader (0 workers)": loader_epoch(0),
        "device batches": device_epoch(False),
        "device batches + augment": device_epoch(True),
    }
    rows = [{"variant": name, "epoch_s": seconds, "samples": seen}
            for name, (seconds, seen) in _time_all(variants, repeats).items()]
    base = rows[0]["epoch_s"]
    for row in rows:
        row["ratio_to_dataloader"] = row["epoch_s"] / base
    return {"dataset": "mnist5k", "train_samples": ds.split_sizes()["train"],
            "batch_size": BATCH, "device": str(dev), "repeats": repeats,
            "torch_threads": torch.get_num_threads(), "results": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed epochs per variant")
    parser.add_argument("--device", default="cpu", help="torch device for the dataset")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    report = run(args.repeats, args.device)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"mnist5k train split: {report['train_samples']} samples, batch {BATCH}, "
          f"device {report['device']}, {report['torch_threads']} torch thread(s), "
          f"median of {args.repeats} epochs")
    print(f"{'variant':<26} {'epoch ms':>10} {'vs DataLoader':>14}")
    for row in report["results"]:
        print(f"{row['variant']:<26} {row['epoch_s'] * 1e3:>10.2f} "
              f"{row['ratio_to_dataloader']:>13.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
