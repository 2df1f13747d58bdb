"""Masked / dense step time on CUDA, per kernel, and the steps/s of a short ``snas train``.

One command for the first lent GPU (about 2-3 minutes): prints the device, then

1. ResNet-32 (CIFAR, base width 16) at batch 128 on 3x32x32 synthetic inputs: step time of
   each kernel at density 0.5 over the same network with plain dense layers;
2. single Linear layers 784x256, 1024x1024 and 4096x4096 at batch 128: the same ratio;
3. ``snas train search_spaces/resnet32_cifar10.yaml`` on synthetic CIFAR-shaped data (5000
   samples, 2 epochs, ``--device cuda``) in a subprocess, per kernel: train steps per second
   of the second epoch (the first pays for warm-up) from its ``--json-out`` history.

A step is forward + backward + SGD (momentum) update. Timings interleave the variants round
by round, with ``torch.cuda.synchronize()`` only around each timed region, and report
medians. Without CUDA it refuses in one line on stderr with exit status 2.

Usage: ``python benchmarks/gpu.py [--rounds N] [--skip-train] [--json]``.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
KERNEL_NAMES = ["random", "dnw", "edge_popup", "set"]
LINEAR_SHAPES = [(784, 256), (1024, 1024), (4096, 4096)]
BATCH = 128


def time_cuda(fns: dict[str, Callable[[], None]], rounds: int, reps: int,
              warmup: int = 3) -> dict[str, float]:
    """Median seconds per call of each function, round-robin, synchronised per region."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    torch.cuda.synchronize()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            torch.cuda.synchronize()
            samples[name].append((time.perf_counter() - t0) / reps)
    return {name: statistics.median(s) for name, s in samples.items()}


def sgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> Callable[[], None]:
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01,
                          momentum=0.9)
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = nn.functional.cross_entropy(out, y) if y is not None else out.square().mean()
        loss.backward()
        opt.step()

    return step


def resnet_ratios(rounds: int) -> dict[str, float]:
    from resnet import build, dense_copy

    x = torch.randn(BATCH, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (BATCH,), device="cuda")
    fns = {"dense": sgd_step(dense_copy(build("random", 1.0, 16)).cuda(), x, y)}
    for name in KERNEL_NAMES:
        fns[name] = sgd_step(build(name, 0.5, 16).cuda(), x, y)
    times = time_cuda(fns, rounds, reps=5)
    return {"dense_ms": times["dense"] * 1e3,
            **{name: times[name] / times["dense"] for name in KERNEL_NAMES}}


def linear_ratios(rounds: int) -> dict[str, dict[str, float]]:
    from kernels import make_kernel, make_layer

    out = {}
    for n_in, n_out in LINEAR_SHAPES:
        x = torch.randn(BATCH, n_in, device="cuda")
        fns = {"dense": sgd_step(make_layer("linear", (n_in, n_out), None).cuda(), x, None)}
        for name in KERNEL_NAMES:
            layer = make_layer("linear", (n_in, n_out), make_kernel(name)).cuda()
            fns[name] = sgd_step(layer, x, None)
        times = time_cuda(fns, rounds, reps=20)
        out[f"linear_{n_in}x{n_out}"] = {
            "dense_ms": times["dense"] * 1e3,
            **{name: times[name] / times["dense"] for name in KERNEL_NAMES}}
    return out


def train_steps_per_second(kernel: str) -> dict[str, float]:
    """Train steps/s of the second epoch of a 2-epoch ``snas train`` on synthetic data."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "train.json"
        snas = str(Path(sys.executable).with_name("snas"))
        cmd = [snas, "train", "search_spaces/resnet32_cifar10.yaml",
               "--density", "0.5", "--epochs", "2", "--device", "cuda", "--quiet",
               "--set", f"kernel.name={kernel}",
               "--set", "dataset.name=synthetic", "--set", "dataset.synthetic_shape=[3,32,32]",
               "--set", "dataset.synthetic_size=5000", "--json-out", str(out)]
        run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                             timeout=400, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"snas train failed ({run.returncode}): "
                               f"{(run.stderr or run.stdout).strip().splitlines()[-1:]}")
        summary = json.loads(out.read_text())
    sizes = ast.literal_eval(re.search(r"\((\{.*?\})\)", run.stdout).group(1))
    batch = 128  # training.batch_size of the space file
    steps = math.ceil(sizes["train"] / batch)
    seconds = [record["epoch_seconds"] for record in summary["history"]]
    return {"steps_per_epoch": steps, "epoch_seconds": seconds[-1],
            "steps_per_s": steps / seconds[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="timing rounds (default 10)")
    parser.add_argument("--skip-train", action="store_true", help="no snas train runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device (torch.cuda.is_available() is False); "
              "run it on a machine with a GPU", file=sys.stderr)
        sys.exit(2)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    device = torch.cuda.get_device_name()
    if not args.json:
        print(f"device: {device} (torch {torch.__version__}, CUDA {torch.version.cuda})",
              flush=True)
    result: dict = {"device": device, "resnet32_batch128": resnet_ratios(args.rounds)}
    if not args.json:
        row = result["resnet32_batch128"]
        print(f"ResNet-32 batch {BATCH}, masked/dense step (dense {row['dense_ms']:.2f} ms): "
              + "  ".join(f"{k} {row[k]:.3f}" for k in KERNEL_NAMES), flush=True)
    result["linear_batch128"] = linear_ratios(args.rounds)
    if not args.json:
        for shape, row in result["linear_batch128"].items():
            print(f"{shape:<16} masked/dense step (dense {row['dense_ms']:.3f} ms): "
                  + "  ".join(f"{k} {row[k]:.3f}" for k in KERNEL_NAMES), flush=True)
    if not args.skip_train:
        result["snas_train"] = {}
        for kernel in KERNEL_NAMES:
            try:
                row = train_steps_per_second(kernel)
            except (RuntimeError, subprocess.TimeoutExpired, AttributeError, KeyError) as err:
                row = {"error": str(err)}
            result["snas_train"][kernel] = row
            if not args.json:
                text = (f"{row['steps_per_s']:.1f} steps/s (epoch 2: {row['steps_per_epoch']} "
                        f"steps in {row['epoch_seconds']:.2f} s)" if "error" not in row
                        else row["error"])
                print(f"snas train resnet32 synthetic, {kernel:<10}: {text}", flush=True)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
