"""Janik-Nowak DAG step time: batched node aggregate vs an edge-loop reference, same run.

Both networks are the same ``dag`` model with the same weights; they differ only in how a
node aggregates its inputs: ``batched`` is one matrix-vector product per node over a
per-stage buffer of node outputs (:mod:`trainables.models.dag`), ``loop`` one multiply-add
per edge. One step is forward + backward + SGD update at batch ``--batch`` on ``--size`` x
``--size`` inputs. The defaults are the paper's 60 nodes at a small CPU size; the CPU
search space ``dag_mnist5k.yaml`` trains ``--nodes 12 --channels 8 --batch 128 --size 28``.
Timings interleave the two variants round by round and report medians and the ratio
loop / batched (> 1: the batched aggregate is faster).

Usage: ``python benchmarks/dag.py [--nodes 60] [--channels 4] [--batch 32] [--size 16]
[--rounds 5] [--threads N] [--json]``.
"""

from __future__ import annotations

import argparse
import json

import torch
from _timing import add_timing_arguments, apply_threads, time_interleaved

from snas.core.catalog import DAGOptions
from snas.core.config import KernelConfig
from trainables.kernels import make_kernel
from trainables.models import configure_densities, layer_specs
from trainables.models.dag import DAGNetwork


def make(aggregate: str, args: argparse.Namespace) -> DAGNetwork:
    model = DAGNetwork((3, args.size, args.size), 10,
                       DAGOptions(nodes=args.nodes, channels=args.channels),
                       make_kernel(KernelConfig(name="random")), aggregate)
    configure_densities(model, [1.0] * len(layer_specs(model)), torch.Generator().manual_seed(0))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=60)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=16)
    add_timing_arguments(parser, rounds=5)
    args = parser.parse_args()
    apply_threads(args.threads)
    models = {"batched": make("batched", args), "loop": make("loop", args)}
    models["loop"].load_state_dict(models["batched"].state_dict())
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    opts = {k: torch.optim.SGD(m.parameters(), lr=0.01) for k, m in models.items()}

    def step(name: str) -> None:
        model, opt = models[name], opts[name]
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y) + model.extra_loss()
        loss.backward()
        opt.step()

    med = time_interleaved({name: (lambda n=name: step(n)) for name in models}, args.rounds,
                           warmup=1)
    result = {"nodes": args.nodes, "edges": args.nodes * (args.nodes - 1) // 2,
              "batched_s": med["batched"], "loop_s": med["loop"],
              "loop_over_batched": med["loop"] / med["batched"],
              "threads": torch.get_num_threads()}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"DAG {args.nodes} nodes ({result['edges']} edges), batch {args.batch}, "
              f"{args.size}x{args.size}, {args.channels} channels: batched "
              f"{med['batched'] * 1e3:.1f} ms/step, edge loop {med['loop'] * 1e3:.1f} ms/step, "
              f"ratio loop/batched {result['loop_over_batched']:.2f}")


if __name__ == "__main__":
    main()
