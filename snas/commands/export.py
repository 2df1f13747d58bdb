"""``snas export NAME``: the best density vectors (or the Pareto front) as JSON, or the
best trained network as a sparse model folder (``--model``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from snas.commands._common import (
    STORE_HELP,
    check_output_path,
    open_reader,
    store_files,
    write_json_atomic,
)
from snas.core.errors import ConfigError, SearchError

HELP = ("write the best density vectors (or the Pareto front) as JSON, or the best network "
        "as a sparse model")
DESCRIPTION = ("Export the top trials of a search (or its Pareto front with --pareto): "
               "density vector with layer names and shapes, accuracy, active weights and "
               "FLOPs, EGF and checkpoint path. `snas train SPACE --from-export FILE` "
               "retrains one. With --model, write a trained network as a sparse model "
               "instead.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="search name (see snas list)")
    parser.add_argument("--top", type=int, default=5, help="how many trials (default 5)")
    parser.add_argument("--out", metavar="FILE", help="output file (default: standard output)")
    parser.add_argument("--pareto", action="store_true", help="export the Pareto front "
                        "instead of the top trials: every trial that trained all epochs and "
                        "that no other beats on both the metric and the cost (active weights, "
                        "or FLOPs for a FLOPs budget), cheapest first")
    parser.add_argument("--model", metavar="OUT", help="instead of density vectors, write the "
                        "trained network of the best trial (or --rank/--trial) as a sparse "
                        "model folder OUT: CSR weights with BatchNorm folded in and dead "
                        "neurons removed, model.json (format, layer shapes, nnz, density, "
                        "removed neurons) and snas_sparse_runtime.py, which loads it with "
                        "torch alone; MLP searches only (model.name mlp)")
    parser.add_argument("--rank", type=int, help="with --model: the trial of this rank in "
                        "`snas show` (default 1, the best)")
    parser.add_argument("--trial", metavar="ID", help="with --model: the trial with this id")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)


def run(args: argparse.Namespace) -> int:
    from snas.view import SearchView

    store = open_reader(args.store)
    if args.model:  # the trained network as a sparse model folder
        from trainables.sparse_export import check_model_out, export_summary

        check_model_out(args.model)
        doc = export_model(SearchView.load(store, args.name), args.model, rank=args.rank,
                           trial_id=args.trial)
        print(export_summary(doc, args.name, args.model))
        return 0
    if args.rank is not None or args.trial is not None:
        raise ConfigError("--rank and --trial choose the trial of --model; give --model OUT")
    if args.out:
        check_output_path(args.out, "--out", protected=store_files(args.store))
    doc = SearchView.load(store, args.name).export_document(args.top, pareto=args.pareto)
    if args.out:
        write_json_atomic(args.out, doc)
        what = "Pareto-front trials" if args.pareto else "trials"
        print(f"exported {len(doc['trials'])} {what} of {args.name} to {args.out}")
    else:
        print(json.dumps(doc, indent=2, default=float))
    return 0


def export_model(view: Any, out: str, *, rank: int | None = None,
                 trial_id: str | None = None) -> dict[str, Any]:
    """Export the trained network of a search's trial (best, ``rank`` or ``trial_id``) from
    its last checkpoint to the folder ``out``; returns its ``model.json`` description.

    User errors (unknown trial, no checkpoint, a model other than an MLP, an unwritable
    ``out``) raise :class:`~snas.core.errors.SnasError` before anything is written.
    """
    from snas.core import metrics as M
    from snas.core.config import SpaceConfig
    from trainables.checkpoint import has_checkpoint
    from trainables.sparse_export import SUPPORTED_MODELS, export_checkpoint

    trial, position = view.select_trial(rank, trial_id)
    space = SpaceConfig.from_dict(view.record["space"])
    if space.model.name not in SUPPORTED_MODELS:
        raise ConfigError(f"--model exports {', '.join(SUPPORTED_MODELS)} models only; search "
                          f"{view.name!r} trained model.name {space.model.name!r} (use snas "
                          "export without --model for its density vectors)")
    checkpoint = trial.get("checkpoint_path")
    if not checkpoint or not has_checkpoint(checkpoint):
        where = f" ({checkpoint} is gone)" if checkpoint else ""
        raise SearchError(f"trial {trial['trial_id']} of search {view.name!r} has no "
                          f"checkpoint{where} (status {trial['status']}); pick another with "
                          "--rank or --trial")
    source = {"search": view.name, "trial_id": trial["trial_id"], "rank": position,
              "status": trial["status"], M.VAL_ACCURACY: trial.get(M.VAL_ACCURACY),
              M.TEST_ACCURACY: trial.get(M.TEST_ACCURACY),
              M.ACTIVE_WEIGHTS: trial.get(M.ACTIVE_WEIGHTS)}
    return export_checkpoint(Path(checkpoint), space, out, source=source)
