"""CPU inference of the sparse export (``snas export --model``) against the dense model.

Model: the snas MLP (Linear -> BatchNorm -> PReLU cells with skip connections) of width
``--width`` (default 3072) on ``--in-features`` inputs (default 3072, a CIFAR image), with
``--hidden-layers`` hidden layers (default 4: 5 Linear layers) and 10 classes; masked by
the ``random`` kernel at one density for every hidden layer; the output layer (3072 x 10)
stays dense unless ``--sparse-head``: a sparse head leaves most neurons of the last cell
unread, the export removes them (and, through the skips, more), and the timing would then
measure neuron removal rather than sparse products. BatchNorm running statistics are set to
random values so the fold is not trivial. No training: inference time depends on the
shapes and the number of non-zeros only. Threads: 1 by default (``--threads``): on a busy
machine a multi-threaded CSR product waits for descheduled threads, which swamps batch-1
times; single-threaded numbers are the reproducible ones.

Variants, per density and batch size, measured round-robin in the same run
(``benchmarks/_timing.py``), medians:

- ``dense``: the same architecture with every weight, exported at density 1.0 and run by
  the export runtime with dense weights (BN folded, one ``addmm`` per layer): the dense
  model one would deploy;
- ``sparse``: the export of the masked model at that density (CSR weights, dead neurons
  removed), run by the same runtime;
- ``masked``: the snas model itself in eval mode (dense ``w * mask`` matmuls: what running
  the trained model without exporting costs).

Printed: milliseconds per forward, ``dense / sparse`` (> 1: the sparse export is faster)
and ``dense / masked``, then per batch size the crossover density: the export beats the
dense model at every measured density up to the printed one (and the crossover estimate
interpolates log(ratio) linearly between the last winning and the first losing density).

Usage: ``python benchmarks/sparse_inference.py [--width N] [--densities 0.01,0.05,...]
[--batches 1,128] [--rounds N] [--threads N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from _timing import add_timing_arguments, apply_threads, time_interleaved

from snas.core.catalog import MLPOptions
from trainables import sparse_runtime as runtime
from trainables.kernels import RandomKernel
from trainables.models import build_model
from trainables.sparse_export import sparse_model

DENSITIES = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)


class _Model:
    """Model config in the shape :func:`build_model` wants (``name`` + ``options``)."""

    def __init__(self, options: MLPOptions):
        self.name, self.options = "mlp", options


def build(width: int, in_features: int, hidden_layers: int, density: float,
          head_density: float | None = 1.0, seed: int = 0) -> torch.nn.Module:
    """The masked MLP (random kernel) with ``density`` in every hidden layer and
    ``head_density`` (None: ``density``) in the output layer; eval mode, random BN
    statistics."""
    options = MLPOptions(hidden_layers=hidden_layers, width=width, activation="prelu")
    gen = torch.Generator().manual_seed(seed)
    vector = [density] * hidden_layers + [density if head_density is None else head_density]
    model = build_model(_Model(options), RandomKernel(), (in_features,), 10, vector, gen)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0.0, 0.1, generator=gen)
                module.running_var.uniform_(0.5, 2.0, generator=gen)
    return model.eval()


def crossover(densities: list[float], ratios: list[float]) -> tuple[float | None, float | None]:
    """(largest measured density up to which the export wins at every density, the
    interpolated density where dense/sparse crosses 1), ``None`` where there is none."""
    last_win = None
    for d, r in zip(densities, ratios, strict=True):
        if r <= 1.0:
            break
        last_win = d
    if last_win is None:
        return None, None
    i = densities.index(last_win)
    if i + 1 == len(densities):
        return last_win, None  # the export wins everywhere measured
    d0, d1 = densities[i], densities[i + 1]
    r0, r1 = math.log(ratios[i]), math.log(ratios[i + 1])
    t = r0 / (r0 - r1)
    return last_win, math.exp(math.log(d0) + t * (math.log(d1) - math.log(d0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=3072)
    parser.add_argument("--in-features", type=int, default=3072)
    parser.add_argument("--hidden-layers", type=int, default=4)
    parser.add_argument("--densities", default=",".join(str(d) for d in DENSITIES))
    parser.add_argument("--batches", default="1,128")
    add_timing_arguments(parser, rounds=7, threads=1, threads_help="torch threads (default "
                         "1: on a busy machine a multi-threaded CSR product waits for "
                         "descheduled threads, which swamps batch-1 times; 0 = torch's default)")
    parser.add_argument("--no-masked", action="store_true", help="skip the masked variant")
    parser.add_argument("--sparse-head", action="store_true", help="mask the output layer at "
                        "the same density (default: dense head, see the module docstring)")
    args = parser.parse_args()
    apply_threads(args.threads)
    densities = sorted(float(d) for d in args.densities.split(","))
    batches = [int(b) for b in args.batches.split(",")]
    torch.manual_seed(0)
    dense_model = build(args.width, args.in_features, args.hidden_layers, 1.0)
    dense = runtime.SparseModel(*sparse_model(dense_model), weights="dense")
    del dense_model
    inputs = {b: torch.randn(b, args.in_features) for b in batches}
    print(f"MLP {args.in_features} -> {args.hidden_layers} x {args.width} -> 10 (PReLU, BN "
          f"folded, skips), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.rounds} rounds")
    header = (f"{'density':>8}{'batch':>7}{'nnz':>12}{'dense ms':>10}{'sparse ms':>11}"
              f"{'dense/sparse':>14}" + ("" if args.no_masked else f"{'masked ms':>11}"
                                         f"{'dense/masked':>14}"))
    print(header)
    rows = []
    for density in densities:
        model = build(args.width, args.in_features, args.hidden_layers, density,
                      None if args.sparse_head else 1.0)
        t0 = time.perf_counter()
        description, tensors = sparse_model(model)
        export_s = time.perf_counter() - t0
        sparse = runtime.SparseModel(description, tensors)
        for b in batches:
            x = inputs[b]
            diff = float((sparse(x) - model(x).detach()).abs().max())
            fns = {"dense": lambda x=x: dense(x), "sparse": lambda x=x: sparse(x)}
            if not args.no_masked:
                fns["masked"] = lambda x=x: model(x)
            with torch.no_grad():
                t = time_interleaved(fns, rounds=args.rounds, warmup=2)
            row = {"density": density, "batch": b, "nnz": description["totals"]["nnz"],
                   "dense_s": t["dense"], "sparse_s": t["sparse"],
                   "dense_over_sparse": t["dense"] / t["sparse"],
                   "max_abs_logit_difference": diff, "export_s": export_s}
            line = (f"{density:>8.3f}{b:>7}{row['nnz']:>12,}{t['dense'] * 1e3:>10.2f}"
                    f"{t['sparse'] * 1e3:>11.2f}{row['dense_over_sparse']:>13.2f}x")
            if not args.no_masked:
                row["masked_s"] = t["masked"]
                row["dense_over_masked"] = t["dense"] / t["masked"]
                line += f"{t['masked'] * 1e3:>11.2f}{row['dense_over_masked']:>13.2f}x"
            print(line, flush=True)
            rows.append(row)
        del model, sparse
    summary = {}
    for b in batches:
        mine = [r for r in rows if r["batch"] == b]
        last, cross = crossover([r["density"] for r in mine],
                                [r["dense_over_sparse"] for r in mine])
        summary[b] = {"wins_up_to": last, "crossover": cross}
        if last is None:
            print(f"batch {b}: the sparse export is slower than dense at every measured density")
        elif cross is None:
            print(f"batch {b}: the sparse export beats dense at every measured density "
                  f"(up to {last})")
        else:
            print(f"batch {b}: the sparse export beats dense below density ~{cross:.3f} "
                  f"(wins at every measured density <= {last})")
    if args.json:
        print(json.dumps({"rows": rows, "crossover": summary}, indent=2))


if __name__ == "__main__":
    main()
