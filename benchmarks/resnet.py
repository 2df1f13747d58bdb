"""Masked ResNet-32 step time relative to a dense ResNet-32, per kernel, same run.

For each kernel at density ``--density`` (default 0.5), one step of the CIFAR ResNet-32
(``resnet_cifar``, depth 32, base width ``--width``) is forward + backward + SGD update at
batch ``--batch`` on 3x32x32 inputs. Baseline: the same network with every masked layer
replaced by a plain ``nn.Conv2d``/``nn.Linear`` (dense). Timings interleave the variants
round by round and report medians and the ratio masked / dense (1.0 = no overhead).

Usage: ``python benchmarks/resnet.py [--batch 64] [--width 16] [--rounds 5] [--threads N] [--json]``.
"""

from __future__ import annotations

import argparse
import json

import torch
from _timing import add_timing_arguments, apply_threads, time_interleaved
from torch import nn

from snas.core.catalog import ResNetCifarOptions
from snas.core.config import KernelConfig, ModelConfig
from trainables.kernels import KERNELS, MaskedConv2d, make_kernel
from trainables.models import build_model, maskable_layers


def build(kernel: str, density: float, width: int) -> nn.Module:
    cfg = ModelConfig(name="resnet_cifar", options=ResNetCifarOptions(depth=32, base_width=width))
    return build_model(cfg, make_kernel(KernelConfig(name=kernel)), (3, 32, 32), 10, density,
                       torch.Generator().manual_seed(0))


def dense_copy(model: nn.Module) -> nn.Module:
    """The model with plain dense layers in place of the masked ones."""
    for name, layer in maskable_layers(model):
        if isinstance(layer, MaskedConv2d):
            plain = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                              stride=layer.stride, padding=layer.padding, bias=False)
        else:
            plain = nn.Linear(layer.in_features, layer.out_features)
        parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
        setattr(parent, name.rpartition(".")[2], plain)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--density", type=float, default=0.5)
    add_timing_arguments(parser, rounds=5)
    args = parser.parse_args()
    apply_threads(args.threads)
    models = {"dense": dense_copy(build("random", 1.0, args.width))}
    for kernel in sorted(KERNELS):
        models[kernel] = build(kernel, args.density, args.width)
    opts = {k: torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.01,
                               momentum=0.9) for k, m in models.items()}
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))

    def step(name: str) -> None:
        model, opt = models[name], opts[name]
        model.train()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    med = time_interleaved({name: (lambda n=name: step(n)) for name in models}, args.rounds,
                           warmup=1)
    rows = [{"kernel": name, "step_s": med[name], "ratio_vs_dense": med[name] / med["dense"]}
            for name in models]
    if args.json:
        print(json.dumps({"density": args.density, "batch": args.batch, "width": args.width,
                          "threads": torch.get_num_threads(), "rows": rows}))
        return
    print(f"ResNet-32 (base width {args.width}), batch {args.batch}, density {args.density}, "
          f"{torch.get_num_threads()} threads")
    for row in rows:
        print(f"{row['kernel']:>12}  {row['step_s'] * 1e3:8.1f} ms/step  "
              f"masked/dense {row['ratio_vs_dense']:.2f}")


if __name__ == "__main__":
    main()
