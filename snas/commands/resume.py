"""``snas resume NAME``: continue an interrupted search."""

from __future__ import annotations

import argparse

from snas.commands._common import STORE_HELP, open_store

HELP = "continue an interrupted search"
DESCRIPTION = ("Continue an interrupted search (Tuner.restore): finished trials are kept, "
               "unfinished ones continue from their last checkpoint, the searcher picks up "
               "where it was. Trials are written to --store (the store named now, not the "
               "one the search started with). Refused while another driver runs the search "
               "(its lease is alive); a driver that died is taken over.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="search name (see snas list)")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument("--address", help="Ray cluster address")


def run(args: argparse.Namespace) -> int:
    from snas.commands._summary import confirm_if_asked, finish
    from snas.controller import resume_search

    store = open_store(args.store)
    try:  # closed even when refused: a refused driver keeps no connection open
        store.require_search(args.name)  # the store's one "no search named" error
        resume_search(args.name, store, args.address, store_url=args.store)
        code = finish(store, args.name, None)
        if not code:
            confirm_if_asked(store, args.name, None, store_url=args.store,
                             address=args.address, quiet=False)
    finally:
        store.close()
    return code
