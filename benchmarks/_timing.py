"""Shared timing for the benchmarks: variants measured round-robin in one run, medians.

Interleaving makes machine noise (other processes, frequency changes) hit every variant
alike, so the ratios between them mean something even when absolute times drift.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable


def time_interleaved(fns: dict[str, Callable[[], None]], rounds: int, reps: int = 1,
                     warmup: int = 3) -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin."""
    for fn in fns.values():  # warm-up (also seeds the incremental top-k thresholds)
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            samples[name].append((time.perf_counter() - t0) / reps)
    return {name: statistics.median(s) for name, s in samples.items()}


def add_timing_arguments(parser: argparse.ArgumentParser, rounds: int, threads: int = 0,
                         threads_help: str = "torch intra-op threads (0: torch's default)"
                         ) -> None:
    """The flags every step benchmark takes: ``--rounds``, ``--threads``, ``--json``."""
    parser.add_argument("--rounds", type=int, default=rounds,
                        help=f"timing rounds (default {rounds})")
    parser.add_argument("--threads", type=int, default=threads, help=threads_help)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def apply_threads(threads: int) -> None:
    """Pin torch's intra-op threads (0 leaves torch's default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
