"""``snas delete``: remove a search from the store, and its experiment folder."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from snas.commands._common import STORE_HELP, open_reader, open_store
from snas.core.errors import SearchError

HELP = "delete a search (its store rows and experiment folder)"
DESCRIPTION = (
    "Delete a search: its row, trials, epochs, summaries and wiring graphs in the store, and "
    "its experiment folder (Tune state and checkpoints) when that folder is one a search "
    "created (it holds Tune's experiment state, or is empty); any other folder is left "
    "alone and named. Refused while a driver runs the search (its lease is alive). Asks for "
    "confirmation on a terminal; --yes skips the question (needed when not on a terminal). "
    "The searches `snas confirm` and `snas compare` add (NAME.confirm, NAME.dense) are "
    "separate searches: delete them by their own names.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="search name (see snas list)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--keep-files", action="store_true",
                        help="delete the store rows only, keep the experiment folder")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)


def _created_by_a_search(folder: Path) -> bool:
    """Whether ``folder`` looks like an experiment folder snas/Tune wrote."""
    entries = list(folder.iterdir())
    return not entries or any(p.name.startswith(("experiment_state", "tuner.pkl"))
                              for p in entries)


def _confirm(name: str, trials: int, folder: Path | None) -> bool:
    where = f" and {folder}" if folder is not None else ""
    print(f"delete search {name!r} ({trials} trials){where}? [y/N] ", end="", flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def run(args: argparse.Namespace) -> int:
    from snas.store._lease import LEASE_TIMEOUT_S, held_message, holder_is_alive

    open_reader(args.store).close()  # a missing or foreign store: one line, nothing created
    store = open_store(args.store)
    try:
        record = store.require_search(args.name)
        lease = store.lease_of(args.name)
        if lease is not None and holder_is_alive(lease, LEASE_TIMEOUT_S):
            raise SearchError(held_message(args.name, lease, LEASE_TIMEOUT_S)
                              + "; stop it before deleting")
        folder = Path(record["storage_path"]) if record.get("storage_path") else None
        if folder is not None and not folder.is_dir():
            folder = None
        remove_folder = folder is not None and not args.keep_files
        if remove_folder and not _created_by_a_search(folder):
            print(f"snas: leaving {folder}: it does not look like an experiment folder",
                  file=sys.stderr)
            remove_folder = False
        n_trials = len(store.trials(args.name))
        if not args.yes:
            if not sys.stdin.isatty():
                raise SearchError(f"snas delete {args.name} needs --yes when not run from a "
                                  "terminal")
            if not _confirm(args.name, n_trials, folder if remove_folder else None):
                print("nothing deleted")
                return 1
        store.delete_search(args.name)
    finally:
        store.close()
    if remove_folder:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"deleted search {args.name!r} ({n_trials} trials)"
          + (f" and {folder}" if remove_folder else ""))
    return 0


__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]
