"""``snas list``: the searches in the store."""

from __future__ import annotations

import argparse

from snas.commands._common import STORE_HELP, open_reader

HELP = "list searches in the store"
DESCRIPTION = ("List the searches in the results store: status, searcher, finished trials "
               "and the best value of their metric.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)


def run(args: argparse.Namespace) -> int:
    from snas.results import searches_table

    store = open_reader(args.store)
    searches = store.list_searches()
    if not searches:
        print(f"no searches in {store.url}")
        return 0
    print(searches_table(searches))
    return 0
