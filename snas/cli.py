"""The ``snas`` command line.

Every user error is one line on stderr (``snas: error: ...``) and exit code 2; ``--debug``
shows the traceback instead. Heavy imports (torch, ray) happen inside the subcommands that
need them, so ``snas --help`` and store queries start fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from snas.commands._common import (
    STORE_HELP,
    absolute_data_root,
    check_output_path,
    open_store,
    write_json_atomic,
)
from snas.core import metrics as M
from snas.core.errors import ConfigError, SnasError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_density(text: str) -> float | list[float]:
    """``0.5`` -> 0.5 (every layer); ``0.5,0.3,1`` -> one density per maskable layer."""
    parts = [p.strip() for p in text.split(",")]
    values = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise ConfigError(f"--density takes a number in (0, 1] or a comma-separated list "
                              f"of them, got {text!r}") from None
        if not (0.0 < v <= 1.0) or math.isnan(v):
            raise ConfigError(f"--density entries must be in (0, 1] (fraction of weights "
                              f"kept), got {p!r}")
        values.append(v)
    return values[0] if len(values) == 1 else values


# ---------------------------------------------------------------------------------------
# snas train


def _fmt(value: Any, spec: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def format_epoch(record: dict[str, Any], epochs: int) -> str:
    return (f"epoch {record[M.EPOCH]:>3}/{epochs}  "
            f"train_loss {_fmt(record[M.TRAIN_LOSS])}  train_acc {_fmt(record[M.TRAIN_ACCURACY])}  "
            f"val_loss {_fmt(record[M.VAL_LOSS])}  val_acc {_fmt(record[M.VAL_ACCURACY])}  "
            f"egf_2 {_fmt(record[M.EGF_2], '.3g')}  {record[M.EPOCH_SECONDS]:.2f}s")


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"test_accuracy {_fmt(summary[M.TEST_ACCURACY])}  val_accuracy "
        f"{_fmt(summary[M.VAL_ACCURACY])}  test_loss {_fmt(summary[M.TEST_LOSS])}",
        f"active weights {summary[M.ACTIVE_WEIGHTS]:,} of {summary[M.TOTAL_WEIGHTS]:,} "
        f"({summary[M.ACTIVE_WEIGHTS] / summary[M.TOTAL_WEIGHTS]:.1%})  "
        f"egf_1 {_fmt(summary[M.EGF_1], '.4g')}  egf_2 {_fmt(summary[M.EGF_2], '.4g')}  "
        f"{summary['epochs']} epochs in {summary['seconds']:.1f}s on {summary['device']}",
        f"{'layer':<32}{'shape':>16}{'density':>10}{'realized':>10}",
    ]
    for layer, asked, real in zip(summary["layers"], summary["density"],
                                  summary["realized_density"], strict=True):
        shape = "x".join(str(s) for s in layer["shape"])
        lines.append(f"{layer['name']:<32}{shape:>16}{asked:>10.4f}{real:>10.4f}")
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    from snas.core.config import load_space

    overrides = list(args.set or [])
    if args.epochs is not None:
        overrides.append(f"training.epochs={args.epochs}")
    if args.seed is not None:
        overrides.append(f"training.seed={args.seed}")
    if args.device is not None:
        overrides.append(f"training.device={args.device}")
    space = load_space(args.space, overrides)
    density = parse_density(args.density) if args.density is not None else 1.0
    exported = None
    if args.from_export:
        from snas.results import read_export

        if args.density is not None:
            raise ConfigError("give either --density or --from-export, not both")
        exported = read_export(args.from_export, args.rank)
        density = exported["density"]
    if args.json_out:
        check_output_path(args.json_out, "--json-out")

    from trainables.training import Trial  # torch loads here, after the config is valid

    trial = Trial(space, density)
    if exported is not None:
        _check_export_layers(exported, trial.specs, args.from_export)
    out = sys.stdout
    print(f"snas train: {space.model.name} / {space.kernel.name} on {space.dataset.name} "
          f"({trial.data.split_sizes()}), {len(trial.layers)} maskable layers, "
          f"device {trial.device}", file=out, flush=True)
    for _ in range(space.training.epochs):
        record = trial.run_epoch()
        if not args.quiet:
            print(format_epoch(record, space.training.epochs), file=out, flush=True)
    summary = trial.summary()
    print(format_summary(summary), file=out)
    if exported is not None:
        print(f"exported trial {exported['trial_id']} (rank {exported['rank']}): test_accuracy "
              f"{_fmt(exported.get(M.TEST_ACCURACY))}, val_accuracy "
              f"{_fmt(exported.get(M.VAL_ACCURACY))}; retrained: test_accuracy "
              f"{_fmt(summary[M.TEST_ACCURACY])}", file=out)
    if args.json_out:
        write_json_atomic(args.json_out, summary)
        print(f"wrote {args.json_out}", file=out)
    return 0


def _check_export_layers(exported: dict[str, Any], specs: Sequence[Any], path: str) -> None:
    """The exported vector must describe this model: same layer names and shapes."""
    layers = exported.get("layers") or []
    got = [(layer.get("name"), list(layer.get("shape", []))) for layer in layers]
    want = [(spec.name, list(spec.shape)) for spec in specs]
    if layers and got != want:
        raise ConfigError(f"{path!r} was exported for other layers ({len(got)} layers) than "
                          f"this search space's model ({len(want)} layers); use the search's "
                          "own search-space file")


# ---------------------------------------------------------------------------------------
# snas search / resume / list / show / export


def _default_name(space_path: str) -> str:
    import datetime as dt

    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(space_path).stem)
    return f"{stem}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _print_ranking(store: Any, name: str, top: int = 10) -> None:
    from snas.results import ranked_trials, trials_table

    ranked, baseline, metric, _ = ranked_trials(store, name)
    print(f"\nsearch {name}: {len(ranked)} trials, ranked by {metric}"
          + (f" (dense baseline {metric} {_fmt(baseline.get(metric))})" if baseline else ""))
    print(trials_table(ranked, metric, baseline, top=top))


def _write_export(store: Any, name: str, top: int, out: str, pareto: bool = False
                  ) -> dict[str, Any]:
    from snas.results import export_document

    doc = export_document(store, name, top, pareto=pareto)
    write_json_atomic(out, doc)
    return doc


def cmd_search(args: argparse.Namespace) -> int:
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

    from snas.controller import (
        SearchRequest,
        check_search_name,
        default_storage_path,
        resume_search,
        run_search,
    )

    name = check_search_name(args.name if args.name is not None else _default_name(args.space))
    if args.export:
        check_output_path(args.export, "--export")
    store = open_store(args.store)
    storage = Path(args.storage_path).expanduser().resolve() if args.storage_path else (
        default_storage_path())
    if store.get_search(name) is not None:
        if not args.resume:
            raise ConfigError(f"a search named {name!r} already exists; add --resume to "
                              f"continue it (or run `snas resume {name}`), or pick another --name")
        resume_search(name, store, args.address, store_url=args.store)
    else:
        storage.mkdir(parents=True, exist_ok=True)
        goal = (f", maximise {space.search.metric} and minimise {space.budget.resource}"
                if space.search.multi_objective else "")
        cap = (f", budget {space.budget.max_fraction:g} of the dense network's "
               f"{space.budget.resource}" if space.budget.max_fraction is not None else "")
        print(f"snas search {name}: {space.search.searcher.name} searcher, "
              f"{space.search.num_samples} trials, {space.scheduler.name} scheduler{goal}{cap}, "
              f"store {store.url}", flush=True)
        run_search(SearchRequest(name, space, text, store.url if args.store is None else args.store,
                                 storage, args.address, args.quiet), store)
    return _finish(store, name, args.export)


def _finish(store: Any, name: str, export: str | None) -> int:
    record = store.get_search(name)
    _print_ranking(store, name)
    out = export or str(Path(record["storage_path"]) / "export.json")
    doc = _write_export(store, name, 5, out)
    if doc["trials"]:
        best = doc["trials"][0]
        base = doc["baseline"]
        print(f"\nbest density vector (trial {best['trial_id']}): "
              f"{' '.join(f'{d:.3f}' for d in best['density'])}")
        line = (f"{doc['metric']} {_fmt(best.get(doc['metric']))}, test_accuracy "
                f"{_fmt(best.get(M.TEST_ACCURACY))}, active weights {best.get(M.ACTIVE_WEIGHTS)}")
        if base:
            line += (f"; dense baseline: {doc['metric']} {_fmt(base.get(doc['metric']))}, "
                     f"test_accuracy {_fmt(base.get(M.TEST_ACCURACY))}, active weights "
                     f"{base.get(M.ACTIVE_WEIGHTS)}")
        print(line)
    params = record["params"]
    if params.get("budget", {}).get("max_fraction") is not None and not params.get(
            "dense_baseline", True):
        print("dense baseline not trained: it is over the budget")
    if params.get("multi_objective"):
        _print_pareto(store, name)
    print(f"search status: {record['status']}; exported top {len(doc['trials'])} to {out}")
    return 0


def _print_pareto(store: Any, name: str) -> None:
    from snas.results import search_pareto_front, trials_table

    front, metric, _, cost = search_pareto_front(store, name)
    print(f"\nPareto front ({len(front)} trials: best {metric} for the fewest {cost}, "
          f"cheapest first; `snas export {name} --pareto` writes it):")
    print(trials_table(front, metric))


def cmd_resume(args: argparse.Namespace) -> int:
    from snas.controller import resume_search

    store = open_store(args.store)
    resume_search(args.name, store, args.address, store_url=args.store)
    return _finish(store, args.name, None)


def cmd_list(args: argparse.Namespace) -> int:
    from snas.results import searches_table

    store = open_store(args.store)
    searches = store.list_searches()
    if not searches:
        print(f"no searches in {store.url}")
        return 0
    print(searches_table(searches))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from snas.results import ranked_trials, search_record, trials_table

    store = open_store(args.store)
    record = search_record(store, args.name)
    ranked, baseline, metric, _ = ranked_trials(store, args.name)
    if args.format == "table":
        print(f"search {args.name} ({record['status']}, {record['searcher']} searcher, "
              f"{len(ranked)}/{record['num_samples']} trials), ranked by {metric}")
        print(trials_table(ranked, metric, baseline))
        if record["params"].get("multi_objective"):
            _print_pareto(store, args.name)
    elif args.format == "csv":
        frame = store.trials_frame(args.name)
        frame = frame.drop(columns=[c for c in ("config",) if c in frame.columns])
        sys.stdout.write(frame.to_csv(index=False))
    else:
        rows = [{k: v for k, v in t.items() if k != "config"} for t in ranked]
        print(json.dumps(rows, indent=2, default=str))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    if args.model:  # the trained network as a sparse model folder
        from trainables.sparse_export import export_summary, export_trial

        doc = export_trial(store, args.name, args.model, rank=args.rank, trial_id=args.trial)
        print(export_summary(doc, args.name, args.model))
        return 0
    if args.rank is not None or args.trial is not None:
        raise ConfigError("--rank and --trial choose the trial of --model; give --model OUT")
    if args.out:
        check_output_path(args.out, "--out")
        doc = _write_export(store, args.name, args.top, args.out, pareto=args.pareto)
        what = "Pareto-front trials" if args.pareto else "trials"
        print(f"exported {len(doc['trials'])} {what} of {args.name} to {args.out}")
    else:
        from snas.results import export_document

        print(json.dumps(export_document(store, args.name, args.top, pareto=args.pareto),
                         indent=2, default=float))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    import errno

    from snas.dashboard import make_server

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in [0, 65535], got {args.port}")
    store = open_store(args.store)
    try:
        server = make_server(store, args.host, args.port, verbose=args.verbose)
    except OSError as exc:
        why = ("the port is in use (pick another --port)" if exc.errno == errno.EADDRINUSE
               else exc.strerror or str(exc))
        raise ConfigError(f"cannot serve the dashboard on {args.host}:{args.port}: "
                          f"{why}") from None
    print(f"snas dashboard: {server.url} (store {store.url}); Ctrl-C to stop", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("snas dashboard: stopped")
    finally:
        server.server_close()
        store.close()
    return 0


# ---------------------------------------------------------------------------------------
# Parser and entry point


#: Subcommands that live in their own modules, in ``--help`` order: (command, module).
#: A module defines ``HELP`` (one line), ``DESCRIPTION``, ``add_arguments(parser)`` and
#: ``run(args) -> int``; it imports torch/ray inside ``run`` only, so ``snas --help`` stays
#: fast. Shared pieces for them: :data:`STORE_HELP`, :func:`open_store`.
MODULE_COMMANDS: tuple[tuple[str, str], ...] = (
    ("compare", "snas.compare"),
    ("report", "snas.report"),
    ("analyze", "snas.analysis"),
    ("topology", "snas.topology"),
)

def _add_module_commands(sub: Any) -> None:
    import importlib

    for command, module_name in MODULE_COMMANDS:
        module = importlib.import_module(module_name)
        parser = sub.add_parser(command, help=module.HELP, description=module.DESCRIPTION)
        module.add_arguments(parser)
        parser.set_defaults(func=module.run)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="snas", description="Search per-layer density vectors of sparse "
                     "networks (masked MLPs/CNNs) with Ray Tune.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train one trial (no Ray) and report its metrics",
                           description="Train one masked network from a search-space file "
                           "without Ray: per-epoch progress, then a summary.")
    train.add_argument("space", help="search-space YAML file (see search_spaces/)")
    train.add_argument("--density", help="density (fraction of weights kept): one number "
                       "for every layer or a comma-separated vector, one per maskable layer "
                       "(default 1.0, dense)")
    train.add_argument("--epochs", type=int, help="override training.epochs")
    train.add_argument("--seed", type=int, help="override training.seed")
    train.add_argument("--device", help="override training.device (auto, cpu, cuda, cuda:N)")
    train.add_argument("--json-out", metavar="FILE", help="write the summary (density, "
                       "realized_density, layers, metrics, history) as JSON")
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="override a key of the file (repeatable), e.g. --set model.width=64")
    train.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    train.add_argument("--from-export", metavar="FILE", help="train the density vector of an "
                       "exported trial (`snas export`), e.g. to reproduce its accuracy")
    train.add_argument("--rank", type=int, default=1, help="which exported trial (default 1)")
    train.set_defaults(func=cmd_train)

    search = sub.add_parser("search", help="search density vectors with Ray Tune",
                            description="Run a density-vector search: the searcher proposes "
                            "vectors, Ray Tune trains them (ASHA stops poor ones early), every "
                            "trial goes to the results store. Ends with a ranked table against "
                            "the dense baseline and an export of the top trials.")
    search.add_argument("space", help="search-space YAML file (see search_spaces/)")
    search.add_argument("--searcher", help="override search.searcher (random, bayesopt, optuna)")
    search.add_argument("--num-samples", type=int, help="override search.num_samples (trials, "
                        "the dense baseline included)")
    search.add_argument("--name", help="search name (default: file name + time); letters, "
                        "digits, '.', '_', '-'")
    search.add_argument("--store", metavar="URL", help=STORE_HELP)
    search.add_argument("--address", help="Ray cluster address (e.g. auto); default: start a "
                        "local Ray")
    search.add_argument("--max-concurrent", type=int, help="override search.max_concurrent")
    search.add_argument("--seed", type=int, help="override search.seed")
    search.add_argument("--storage-path", help="experiment folders (default $SNAS_HOME/experiments)")
    search.add_argument("--no-dense-baseline", action="store_true",
                        help="do not evaluate the all-1.0 density vector first")
    search.add_argument("--resume", action="store_true", help="continue the search if --name "
                        "exists already")
    search.add_argument("--export", metavar="FILE", help="where to write the export (default "
                        "<experiment folder>/export.json)")
    search.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override a key of the file (repeatable)")
    search.add_argument("--quiet", action="store_true", help="no per-trial progress lines")
    search.set_defaults(func=cmd_search)

    resume = sub.add_parser("resume", help="continue an interrupted search",
                            description="Continue an interrupted search (Tuner.restore): "
                            "finished trials are kept, unfinished ones continue from their "
                            "last checkpoint, the searcher picks up where it was.")
    resume.add_argument("name", help="search name (see snas list)")
    resume.add_argument("--store", metavar="URL", help=STORE_HELP)
    resume.add_argument("--address", help="Ray cluster address")
    resume.set_defaults(func=cmd_resume)

    lister = sub.add_parser("list", help="list searches in the store")
    lister.add_argument("--store", metavar="URL", help=STORE_HELP)
    lister.set_defaults(func=cmd_list)

    show = sub.add_parser("show", help="list a search's trials with density vectors and metrics")
    show.add_argument("name", help="search name (see snas list)")
    show.add_argument("--format", choices=("table", "csv", "json"), default="table")
    show.add_argument("--store", metavar="URL", help=STORE_HELP)
    show.set_defaults(func=cmd_show)

    export = sub.add_parser("export", help="write the best density vectors (or the Pareto "
                            "front) as JSON, or the best network as a sparse model",
                            description="Export the top trials of a search (or its Pareto "
                            "front with --pareto): density vector with layer names and shapes, "
                            "accuracy, active weights and FLOPs, EGF and checkpoint path. `snas "
                            "train SPACE --from-export FILE` retrains one. With --model, write "
                            "a trained network as a sparse model instead.")
    export.add_argument("name", help="search name (see snas list)")
    export.add_argument("--top", type=int, default=5, help="how many trials (default 5)")
    export.add_argument("--out", metavar="FILE", help="output file (default: standard output)")
    export.add_argument("--pareto", action="store_true", help="export the Pareto front instead "
                        "of the top trials: every trial that trained all epochs and that no "
                        "other beats on both the metric and the cost (active weights, or FLOPs "
                        "for a FLOPs budget), cheapest first")
    export.add_argument("--model", metavar="OUT", help="instead of density vectors, write the "
                        "trained network of the best trial (or --rank/--trial) as a sparse model "
                        "folder OUT: CSR weights with BatchNorm folded in and dead neurons "
                        "removed, model.json (format, layer shapes, nnz, density, removed "
                        "neurons) and snas_sparse_runtime.py, which loads it with torch alone; "
                        "MLP searches only (model.name mlp)")
    export.add_argument("--rank", type=int, help="with --model: the trial of this rank in "
                        "`snas show` (default 1, the best)")
    export.add_argument("--trial", metavar="ID", help="with --model: the trial with this id")
    export.add_argument("--store", metavar="URL", help=STORE_HELP)
    export.set_defaults(func=cmd_export)

    dashboard = sub.add_parser("dashboard", help="serve a read-only web page over the store",
                               description="Serve a read-only web page over the results "
                               "store: searches, ranked trials with density vectors, "
                               "accuracy vs active weights, per-layer densities, learning "
                               "and EGF curves, wiring graphs. It refreshes every few "
                               "seconds while a search runs.")
    dashboard.add_argument("--store", metavar="URL", help=STORE_HELP)
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on "
                           "(default 127.0.0.1: this machine only)")
    dashboard.add_argument("--port", type=int, default=8050, help="port (default 8050; 0: "
                           "any free port)")
    dashboard.add_argument("--verbose", action="store_true", help="log every request")
    dashboard.set_defaults(func=cmd_dashboard)
    _add_module_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SnasError as exc:
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(exc).split())  # one line, whatever the message held
        print(f"snas: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("snas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
