"""``snas search SPACE``: run a density-vector search with Ray Tune."""

from __future__ import annotations

import argparse
from pathlib import Path

from snas.commands._common import (
    STORE_HELP,
    absolute_data_root,
    check_output_path,
    check_same_space,
    open_store,
    store_files,
)
from snas.core.errors import ConfigError

HELP = "search density vectors with Ray Tune"
DESCRIPTION = ("Run a density-vector search: the searcher proposes vectors, Ray Tune trains "
               "them (ASHA stops poor ones early), every trial goes to the results store. "
               "Ends with a ranked table against the dense baseline and an export of the "
               "top trials.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", help="search-space YAML file (see search_spaces/)")
    parser.add_argument("--searcher", help="override search.searcher (random, bayesopt, optuna)")
    parser.add_argument("--num-samples", type=int, help="override search.num_samples (trials, "
                        "the dense baseline included)")
    parser.add_argument("--name", help="search name (default: file name + time); letters, "
                        "digits, '.', '_', '-'")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument("--address", help="Ray cluster address (e.g. auto); default: start a "
                        "local Ray")
    parser.add_argument("--max-concurrent", type=int, help="override search.max_concurrent")
    parser.add_argument("--seed", type=int, help="override search.seed")
    parser.add_argument("--storage-path", help="experiment folders (default "
                        "$SNAS_HOME/experiments)")
    parser.add_argument("--no-dense-baseline", action="store_true",
                        help="do not evaluate the all-1.0 density vector first")
    parser.add_argument("--resume", action="store_true", help="continue the search if --name "
                        "exists already")
    parser.add_argument("--export", metavar="FILE", help="where to write the export (default "
                        "<experiment folder>/export.json)")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override a key of the file (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no per-trial progress lines")


def _default_name(space_path: str) -> str:
    import datetime as dt

    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(space_path).stem)
    return f"{stem}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _import_search_modules() -> None:
    """What a search's driver imports before its first trial (Ray Tune, SQLAlchemy, torch
    and the models: ~5 s on a 2-core machine), so that Ray's start overlaps it."""
    import snas.controller  # noqa: F401
    import trainables.training  # noqa: F401


def run(args: argparse.Namespace) -> int:
    from snas.commands._summary import confirm_if_asked, finish
    from snas.core.config import parse_space_text, read_space_text

    overrides = list(args.set or [])
    for flag, key in (("searcher", "search.searcher"), ("num_samples", "search.num_samples"),
                      ("max_concurrent", "search.max_concurrent"), ("seed", "search.seed")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.no_dense_baseline:
        overrides.append("search.with_dense_baseline=false")
    text = read_space_text(args.space)
    space = parse_space_text(text, overrides, source=args.space)
    space = absolute_data_root(space, Path(args.space).parent)

    from snas.paths import (
        check_new_experiment,
        check_search_name,
        default_storage_path,
        ensure_storage_path,
    )

    name = check_search_name(args.name if args.name is not None else _default_name(args.space))
    if args.export:
        check_output_path(args.export, "--export",
                          protected=(args.space, *store_files(args.store)))
    store = open_store(args.store)
    storage = Path(args.storage_path).expanduser().resolve() if args.storage_path else (
        default_storage_path())
    if (record := store.get_search(name)) is not None:
        if not args.resume:
            raise ConfigError(f"a search named {name!r} already exists; add --resume to "
                              f"continue it (or run `snas resume {name}`), or pick another --name")
        check_same_space(name, record, space, args.storage_path)
        from snas.controller import resume_search

        resume_search(name, store, args.address, store_url=args.store)
    else:
        check_new_experiment(store, name, storage)
        ensure_storage_path(storage)
        goal = (f", maximise {space.search.metric} and minimise {space.budget.resource}"
                if space.search.multi_objective else "")
        cap = (f", budget {space.budget.max_fraction:g} of the dense network's "
               f"{space.budget.resource}" if space.budget.max_fraction is not None else "")
        print(f"snas search {name}: {space.search.searcher.name} searcher, "
              f"{space.search.num_samples} trials, {space.scheduler.name} scheduler{goal}{cap}, "
              f"store {store.url}", flush=True)
        from snas import ray_session

        # Ray starts now, while the driver's own modules load.
        ray_session.start_while(args.address, _import_search_modules,
                                ray_session.trial_actors_at_once(space))
        from snas.controller import SearchRequest, run_search

        run_search(SearchRequest(name, space, text, store.url if args.store is None else args.store,
                                 storage, args.address, args.quiet), store)
    code = finish(store, name, args.export)
    if code:
        return code
    confirm_if_asked(store, name, args.export, store_url=args.store, address=args.address,
                     quiet=args.quiet)
    return 0
