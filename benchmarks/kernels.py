"""Masking-kernel step time relative to a dense layer, measured in the same run.

For each shape (Linear 1024x1024 and 784x256 at batch 128, Conv2d 64->64 3x3 at batch
32x32x32) and each kernel at density 0.5, one *step* is forward + backward + an SGD update
of the trainable parameters (the update matters: DNW/edge-popup masks follow the moving
weights/scores, which is what the incremental top-k exploits). Baseline: the same step with
a plain ``nn.Linear``/``nn.Conv2d``. ``reference_sort`` is edge-popup with the public
code's mask method (full sort of the score tensor every forward); ``eval_cached`` is an
eval-mode forward of a masked layer (cached ``w * mask``) against a dense eval forward.

Timings interleave the variants round by round and report medians, so machine noise hits
all of them alike. Usage: ``python benchmarks/kernels.py [--json] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import torch
from _timing import time_interleaved
from torch import Tensor, nn

from snas.core.catalog import EdgePopupKernelOptions, SETKernelOptions
from trainables.kernels import (
    KERNELS,
    EdgePopupKernel,
    MaskedConv2d,
    MaskedLayer,
    MaskedLinear,
    MaskKernel,
    reference_topk_mask,
)

DENSITY = 0.5


class _GetSubnet(torch.autograd.Function):
    """The public edge-popup code's ``GetSubnet``: forward the 0/1 mask, backward straight
    through to the (absolute) scores."""

    @staticmethod
    def forward(ctx, magnitude: Tensor, mask: Tensor) -> Tensor:  # noqa: D102
        return mask.to(magnitude.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        return grad, None


class ReferenceSortKernel(EdgePopupKernel):
    """Edge-popup as the public code does it: a full stable sort of ``scores.abs()`` on every
    forward, ``w * GetSubnet(|s|)``, autograd through the absolute value."""

    name = "reference_sort"

    def effective_weight(self, layer: MaskedLayer) -> Tensor:
        magnitude = layer.scores.abs()
        layer.mask = reference_topk_mask(magnitude.detach(), layer.k)
        return layer.weight * _GetSubnet.apply(magnitude, layer.mask)


SHAPES: dict[str, tuple[str, tuple[int, ...], tuple[int, ...]]] = {
    # name: (layer kind, layer args, input shape)
    "linear_1024x1024": ("linear", (1024, 1024), (128, 1024)),
    "linear_784x256": ("linear", (784, 256), (128, 784)),
    "conv_64x64x3x3": ("conv", (64, 64), (32, 64, 32, 32)),
}


def make_kernel(name: str) -> MaskKernel:
    if name == "reference_sort":
        return ReferenceSortKernel(EdgePopupKernelOptions())
    options = {"edge_popup": EdgePopupKernelOptions(), "set": SETKernelOptions()}.get(name)
    return KERNELS[name](options)


def make_layer(kind: str, args: tuple[int, ...], kernel: MaskKernel | None) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    if kind == "linear":
        if kernel is None:
            return nn.Linear(*args, bias=False)
        layer = MaskedLinear(*args, bias=False, kernel=kernel)
    else:
        if kernel is None:
            return nn.Conv2d(*args, 3, padding=1, bias=False)
        layer = MaskedConv2d(*args, 3, padding=1, bias=False, kernel=kernel)
    layer.configure(DENSITY, gen)
    layer.track_gradient = False
    return layer


def train_step_fn(layer: nn.Module, x: Tensor) -> Callable[[], None]:
    params = [p for p in layer.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        layer(x).square().mean().backward()
        opt.step()

    return step


def eval_fn(layer: nn.Module, x: Tensor) -> Callable[[], None]:
    layer.eval()

    def forward() -> None:
        with torch.no_grad():
            layer(x)

    return forward


def run(rounds: int) -> dict[str, dict[str, float]]:
    torch.manual_seed(0)
    kernels = ["random", "dnw", "edge_popup", "set", "reference_sort"]
    out: dict[str, dict[str, float]] = {}
    for shape, (kind, args, in_shape) in SHAPES.items():
        x = torch.randn(in_shape)
        reps = 2 if kind == "conv" else 5
        fns = {"dense": train_step_fn(make_layer(kind, args, None), x)}
        for name in kernels:
            fns[name] = train_step_fn(make_layer(kind, args, make_kernel(name)), x)
        fns["dense_eval"] = eval_fn(make_layer(kind, args, None), x)
        fns["eval_cached"] = eval_fn(make_layer(kind, args, make_kernel("edge_popup")), x)
        times = time_interleaved(fns, rounds, reps)
        ratios = {name: times[name] / times["dense"] for name in kernels}
        ratios["eval_cached"] = times["eval_cached"] / times["dense_eval"]
        out[shape] = ratios
        out[shape + "_dense_ms"] = {"train_step": times["dense"] * 1e3,
                                   "eval_forward": times["dense_eval"] * 1e3}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object "
                        "{shape: {kernel: ratio}} instead of the table")
    parser.add_argument("--rounds", type=int, default=15, help="timing rounds (default 15)")
    args = parser.parse_args()
    result = run(args.rounds)
    ratios = {k: v for k, v in result.items() if not k.endswith("_dense_ms")}
    if args.json:
        print(json.dumps(ratios, indent=2))
        return
    cols = list(next(iter(ratios.values())))
    print(f"step time / dense step time (density {DENSITY}, {torch.get_num_threads()} threads;"
          " eval_cached is vs a dense eval forward)")
    print(f"{'shape':<18}" + "".join(f"{c:>15}" for c in cols) + f"{'dense ms':>10}")
    for shape, row in ratios.items():
        ms = result[shape + "_dense_ms"]["train_step"]
        print(f"{shape:<18}" + "".join(f"{row[c]:>15.3f}" for c in cols) + f"{ms:>10.2f}")


if __name__ == "__main__":
    main()
