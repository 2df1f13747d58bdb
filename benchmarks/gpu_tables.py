"""The papers' own CIFAR settings on a CUDA device: our number next to the paper's.

Rows (``--rows`` picks some):

- ``edge_popup_conv4`` / ``edge_popup_conv6``: edge-popup Conv4 / Conv6 on CIFAR-10 at
  density 0.5, signed-constant weights, 100 epochs (``conv6_edge_popup_cifar10.yaml``).
- ``dnw`` / ``rg``: the DNW static neural graph on CIFAR-10 and its random-graph baseline at
  the same edges (``neural_graph_cifar10.yaml``).
- ``resnet32_dense`` / ``resnet32_uniform``: ResNet-32 on CIFAR-100, dense and at the
  density of the thesis' best SNAS vector (13.38 % sparsity), as a uniform allocation
  (``resnet32_cifar10.yaml`` with ``dataset.name=cifar100``).
- ``dag60``: the Janik-Nowak DAG of 60 nodes on CIFAR-10, before and after thresholding at
  tau = 0.006 (``dag_cifar10.yaml``).

The data is read from ``DATA_ROOT`` in torchvision's layout (``cifar-10-batches-py/`` and
``cifar-100-python/`` inside); nothing is downloaded. Without a CUDA device or without the
data the script refuses in one line (exit 2) before training anything. Rows run one after
the other on the device, each printed as it finishes; ``--json`` writes them all.

Figures marked "approx." are read off a paper's plot (it has no table for them).

Usage: ``python benchmarks/gpu_tables.py DATA_ROOT [--rows id,id] [--epochs N]
[--json FILE]``. ``--smoke`` (for the test suite) trains every row for one epoch on a small
synthetic 3x16x16 dataset on whatever device there is, CPU included.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"
FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


@dataclass(frozen=True)
class Row:
    id: str
    what: str
    space: str
    dataset: str
    density: float
    paper: str
    overrides: tuple[str, ...] = ()
    metric: str = "test_accuracy"
    extra: tuple[str, ...] = field(default=())  # summary keys shown next to the metric


ROWS = [
    Row("edge_popup_conv4", "edge-popup Conv4, density 0.5", "conv6_edge_popup_cifar10.yaml",
        "cifar10", 0.5, "about 0.86 (fig. 3, approx.)", ("model.name=conv4",)),
    Row("edge_popup_conv6", "edge-popup Conv6, density 0.5", "conv6_edge_popup_cifar10.yaml",
        "cifar10", 0.5, "about 0.89 (fig. 3, approx.)"),
    Row("dnw", "DNW static neural graph", "neural_graph_cifar10.yaml", "cifar10", 0.5,
        "0.809 ± 0.006 (table 1)", ("model.random_graph=false",)),
    Row("rg", "random graph (RG), same edges", "neural_graph_cifar10.yaml", "cifar10", 0.5,
        "0.761 ± 0.005 (table 1)", ("model.random_graph=true",)),
    Row("resnet32_dense", "ResNet-32 dense, CIFAR-100", "resnet32_cifar10.yaml", "cifar100",
        1.0, "0.7509 (thesis table 4.3, SGD)", ("dataset.name=cifar100",)),
    Row("resnet32_uniform", "ResNet-32 uniform density 0.866, CIFAR-100",
        "resnet32_cifar10.yaml", "cifar100", 0.8662,
        "SNAS's searched vector at this density: 0.7563 (thesis table 4.3)",
        ("dataset.name=cifar100",)),
    Row("dag60", "Janik-Nowak DAG, 60 nodes", "dag_cifar10.yaml", "cifar10", 1.0,
        "0.928 ± 0.002 full, 0.928 ± 0.001 thresholded (table 5)", (),
        "dag_accuracy_before", ("dag_accuracy_after", "dag_edges_total", "dag_edges_after")),
]
BY_ID = {row.id: row for row in ROWS}


def refuse(message: str) -> None:
    print(f"gpu_tables: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_rows(text: str | None) -> list[Row]:
    if not text:
        return list(ROWS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in BY_ID:
            refuse(f"unknown row {n!r}; choose from {', '.join(BY_ID)}")
    return [BY_ID[n] for n in names]


def check_data(root: Path, rows: list[Row]) -> None:
    for dataset in sorted({row.dataset for row in rows}):
        folder = root / FOLDERS[dataset]
        if not folder.is_dir():
            refuse(f"{dataset} not found: {folder} is missing (torchvision layout under "
                   f"DATA_ROOT; nothing is downloaded)")


def overrides_for(row: Row, args: argparse.Namespace) -> list[str]:
    out = list(row.overrides)
    if args.smoke:
        classes = 100 if row.dataset == "cifar100" else 10
        out += ["dataset.name=synthetic", "dataset.synthetic_shape=[3,16,16]",
                f"dataset.synthetic_classes={classes}", "dataset.synthetic_size=64",
                "dataset.augment=false", "training.epochs=1", "training.batch_size=32",
                "training.device=auto"]
    else:
        out += [f"dataset.data_root={args.data_root}", "training.device=cuda"]
        if args.epochs is not None:
            out.append(f"training.epochs={args.epochs}")
    return out


def run_row(row: Row, args: argparse.Namespace) -> dict[str, Any]:
    from snas.core.config import load_space
    from trainables.training import Trial

    trial = Trial(load_space(SPACES / row.space, overrides_for(row, args)), row.density)
    for _ in range(trial.space.training.epochs):
        trial.run_epoch()
    summary = trial.summary()
    return {"id": row.id, "what": row.what, "paper": row.paper, "ours": summary[row.metric],
            **{k: summary.get(k) for k in row.extra},
            "active_weights": summary["active_weights"], "epochs": summary["epochs"],
            "seconds": summary["seconds"], "device": summary["device"]}


def format_row(result: dict[str, Any], row: Row) -> str:
    extra = ", ".join(f"{k} {result[k]:.4g}" if isinstance(result[k], float)
                      else f"{k} {result[k]}" for k in row.extra)
    ours = f"{result['ours']:.4f}" + (f" ({extra})" if extra else "")
    return (f"| {row.what} | {row.paper} | {ours} | {result['epochs']} epochs, "
            f"{result['seconds']:.0f} s on {result['device']} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_root", nargs="?", help="folder with cifar-10-batches-py/ and "
                                                      "cifar-100-python/ (not with --smoke)")
    parser.add_argument("--rows", help=f"comma-separated subset of: {', '.join(BY_ID)}")
    parser.add_argument("--epochs", type=int, help="override every row's epochs (default: "
                                                   "the paper's, as in the space files)")
    parser.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    parser.add_argument("--smoke", action="store_true",
                        help="one epoch on synthetic data on any device (for tests)")
    args = parser.parse_args(argv)
    rows = parse_rows(args.rows)
    if not args.smoke:
        import torch

        if not torch.cuda.is_available():
            refuse("needs a CUDA device (torch.cuda.is_available() is False); the papers' "
                   "CIFAR settings take hours on CPU")
        if not args.data_root:
            refuse("give DATA_ROOT, the folder with cifar-10-batches-py/ and cifar-100-python/")
        root = Path(args.data_root).expanduser()
        if not root.is_dir():
            refuse(f"DATA_ROOT {root} is not a folder")
        check_data(root, rows)
        args.data_root = str(root)
    print("| row | paper | snas | run |\n|---|---|---|---|", flush=True)
    results, began = [], time.perf_counter()
    for row in rows:
        result = run_row(row, args)
        results.append(result)
        print(format_row(result, row), flush=True)
    print(f"{len(results)} rows in {time.perf_counter() - began:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"smoke": args.smoke, "rows": results},
                                              indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
