"""``snas show NAME``: a search's trials, ranked, with density vectors and metrics."""

from __future__ import annotations

import argparse
import json
import sys

from snas.commands._common import STORE_HELP, open_reader

HELP = "list a search's trials with density vectors and metrics"
DESCRIPTION = ("List a search's trials ranked best first (trials that trained every epoch "
               "first), with density vectors and metrics, as a table, CSV or JSON; a "
               "multi-objective search also shows its Pareto front.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="search name (see snas list)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)


def run(args: argparse.Namespace) -> int:
    from snas.commands._summary import print_pareto, print_table
    from snas.view import SearchView

    store = open_reader(args.store)
    view = SearchView.load(store, args.name)
    if args.format == "table":
        record = view.record
        print(f"search {args.name} ({record['status']}, {record['searcher']} searcher, "
              f"{len(view.ranked)}/{record['num_samples']} trials), ranked by {view.ranked_by}")
        print_table(view)
        if view.confirmation is not None:
            print(f"confirmation: {view.confirmation['verdict']} (`snas confirm {args.name}` "
                  "prints it whole)")
        if view.multi_objective:
            print_pareto(view)
    elif args.format == "csv":
        # The CSV is the store's frame (one column per layer and metric), not the view.
        frame = store.trials_frame(args.name)
        frame = frame.drop(columns=[c for c in ("config",) if c in frame.columns])
        sys.stdout.write(frame.to_csv(index=False))
    else:
        rows = [{k: v for k, v in t.items() if k != "config"} for t in view.ranked]
        print(json.dumps(rows, indent=2, default=str))
    return 0
