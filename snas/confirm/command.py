"""``snas confirm NAME``: retrain a search's best vectors and reference allocations at equal
cost over seeds, and say whether the search's answer survives.

The trials run as Tune trials through the experiment runner (:mod:`snas.runner`: parallel,
on a cluster too, resumable) under a stored record of their own, ``NAME.confirm``, whose
params hold the plan. Running the command again on an interrupted confirmation resumes it
(no finished trial re-runs); on a finished one it prints the stored result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from snas.commands._common import (
    STORE_HELP,
    check_output_path,
    open_store,
    store_files,
    write_json_atomic,
)
from snas.confirm.plan import (
    DEFAULT_REFERENCES,
    DEFAULT_SEEDS,
    DEFAULT_TOP,
    DENSE_SUFFIX,
    ConfirmPlan,
    check_options,
    layer_table,
    make_plan,
    record_name,
)
from snas.confirm.stats import format_report, summarize
from snas.core import metrics as M
from snas.core.density import density_keys
from snas.core.errors import ConfigError, SearchError

HELP = "retrain the best vectors and reference allocations over seeds at equal cost"
DESCRIPTION = (
    "Confirm a search's answer: retrain its top-K density vectors and, for each, the "
    "reference allocations (uniform, erk, global_magnitude, dense) at that vector's cost, "
    "with S training seeds each (full epochs, no early stopping, the search's data split), "
    "as Tune trials stored as NAME.confirm. Prints each candidate's test accuracy mean ± sd "
    "and 95%% interval, the paired difference to each reference with the p-value of a "
    "one-sided exact Wilcoxon signed-rank test over seeds, and one verdict line. Run it "
    "again to resume an interrupted confirmation or to print a finished one.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="search name (see snas list)")
    parser.add_argument("--top", type=int, help=f"how many of the best vectors (default: the "
                        f"search's search.confirm.top, else {DEFAULT_TOP})")
    parser.add_argument("--seeds", type=int, help=f"training seeds per vector (default "
                        f"search.confirm.seeds, else {DEFAULT_SEEDS}); the exact test needs 5 "
                        "to reach p < 0.05")
    parser.add_argument("--references", help="comma-separated reference allocations: uniform, "
                        "erk, global_magnitude, dense (default search.confirm.references, else "
                        f"{','.join(DEFAULT_REFERENCES)})")
    parser.add_argument("--json-out", metavar="FILE", help="write the result as JSON")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument("--address", help="Ray cluster address (e.g. auto)")
    parser.add_argument("--quiet", action="store_true", help="no per-trial progress lines")


def _options(args: argparse.Namespace, space: Any) -> tuple[int, int, tuple[str, ...]]:
    stored = (space.get("search") or {}).get("confirm") or {}
    top = args.top if args.top is not None else stored.get("top", DEFAULT_TOP)
    seeds = args.seeds if args.seeds is not None else stored.get("seeds", DEFAULT_SEEDS)
    if args.references is not None:
        references = tuple(r.strip() for r in args.references.split(",") if r.strip())
        if not references:
            raise ConfigError("--references needs at least one allocation, e.g. uniform,erk")
    else:
        references = tuple(stored.get("references", DEFAULT_REFERENCES))
    check_options(top, seeds, references)
    return top, seeds, references


def run(args: argparse.Namespace) -> int:
    from snas.view import SearchView

    if args.json_out:
        check_output_path(args.json_out, "--json-out", protected=store_files(args.store))
    store = open_store(args.store)
    view = SearchView.load(store, args.name)
    top, seeds, references = _options(args, view.space)
    report = confirm_search(store, view, top, seeds, references, store_url=args.store,
                            address=args.address, quiet=args.quiet)
    print(format_report(report))
    if args.json_out:
        write_json_atomic(args.json_out, report)
        print(f"wrote {args.json_out}")
    return 0


def confirm_search(store: Any, view: Any, top: int, seeds: int, references: tuple[str, ...],
                   *, store_url: str | None = None, address: str | None = None,
                   quiet: bool = False, out: TextIO | None = None) -> dict[str, Any]:
    """Run (or resume, or read back) the confirmation of ``view``'s search; its report."""
    out = out or sys.stdout
    name = record_name(view.name)
    existing = store.get_search(name)
    if existing is not None:
        plan = ConfirmPlan.from_params(view.name, existing["params"], view.space)
        if (plan.top, len(plan.seeds), plan.references) != (top, seeds, tuple(references)):
            raise SearchError(
                f"search {view.name!r} was confirmed with --top {plan.top} --seeds "
                f"{len(plan.seeds)} --references {','.join(plan.references)}; give those (or "
                f"no options) to print or resume it")
        if existing["status"] != "finished":
            print(f"snas confirm {view.name}: resuming {name}", file=out, flush=True)
            _resume(store, name, plan, view, store_url, address, quiet)
    else:
        weights = _dense_weights(store, view, store_url, address, quiet, out) if (
            "global_magnitude" in references) else None
        plan = make_plan(view, top, seeds, references, dense_weights=weights)
        configs = plan.trial_configs()
        print(f"snas confirm {view.name}: {len(plan.candidates)} candidates "
              f"({sum(c.kind == 'searched' for c in plan.candidates)} searched), "
              f"{len(configs)} trials ({len(plan.vectors())} vectors x {seeds} seeds), "
              f"stored as {name}", file=out, flush=True)
        _run(store, name, plan.params(), configs, view, store_url, address, quiet)
    return summarize(plan, store.trials(name))


# ---------------------------------------------------------------------------------------
# Running the trials


def _space(view: Any) -> Any:
    from snas.core.config import SpaceConfig

    return SpaceConfig.from_dict(view.space)


def _experiment(name: str, configs: list[dict], view: Any, store_url: str, quiet: bool) -> Any:
    from snas import runner
    from snas.controller import StoreCallback, _resources
    from trainables.tune_trainable import SnasTrainable

    space = _space(view)
    callback = StoreCallback(store_url, name, M.TEST_ACCURACY, "max", space.training.epochs,
                             len(configs), quiet=quiet)
    return runner.Experiment(
        name=name, storage_path=Path(view.record["storage_path"]).parent,
        trainable=SnasTrainable, resources=_resources(space), configs=configs,
        callbacks=(callback,), checkpoints="last", max_failures=space.resources.max_failures)


def _record(plan_params: dict, name: str, n_trials: int, view: Any) -> Any:
    from snas import runner

    return runner.Record(f"# confirmation of search {view.name}\n", dict(view.space),
                         "confirm", n_trials, plan_params)


def _run(store: Any, name: str, plan_params: dict[str, Any], configs: list[dict], view: Any,
         store_url: str | None, address: str | None, quiet: bool) -> None:
    from snas import runner

    url = store_url or view.params.get("store_url") or store.url
    experiment = _experiment(name, configs, view, url, quiet)
    params = {**plan_params, "metric": M.TEST_ACCURACY, "mode": "max", "store_url": url,
              "layers": view.params.get("layers"), "budget": view.params.get("budget")}
    address = address or view.params.get("address")
    runner.run(experiment, _record(params, name, len(configs), view), store,
               address=address,
               taken_hint=f"run `snas confirm {view.name}` to resume it",
               preflight=runner.resources_preflight(experiment.resources, address))


def _resume(store: Any, name: str, plan: ConfirmPlan, view: Any, store_url: str | None,
            address: str | None, quiet: bool) -> None:
    from snas import runner
    from snas.controller import _resources
    from trainables.tune_trainable import SnasTrainable

    record = store.get_search(name)
    url = store_url or record["params"].get("store_url") or store.url
    configs = plan.trial_configs()
    runner.resume(store, name, SnasTrainable, _resources(_space(view)),
                  fresh=lambda: _experiment(name, configs, view, url, quiet),
                  address=address or view.params.get("address"))


def _dense_weights(store: Any, view: Any, store_url: str | None, address: str | None,
                   quiet: bool, out: TextIO) -> dict[str, Any]:
    """The trained dense network's weights per maskable layer, which ``global_magnitude``
    prunes: the search's dense baseline, else one dense trial trained now (stored as
    ``NAME.dense``, at the search's own training seed, reused by later confirmations)."""
    from trainables.checkpoint import has_checkpoint, read_model_state

    checkpoint = (view.baseline or {}).get("checkpoint_path")
    if not has_checkpoint(checkpoint):
        name = f"{view.name}{DENSE_SUFFIX}"
        record = store.get_search(name)
        if record is None or record["status"] != "finished":
            print(f"snas confirm {view.name}: the search has no dense baseline; training one "
                  f"dense network for global_magnitude ({name})", file=out, flush=True)
            dense = {"space": dict(view.space),
                     **dict.fromkeys(density_keys(len(layer_table(view))), 1.0)}
            if record is None:
                _run(store, name, {"dense_for": view.name}, [dense], view, store_url,
                     address, quiet)
            else:
                from snas import runner
                from snas.controller import _resources
                from trainables.tune_trainable import SnasTrainable

                runner.resume(store, name, SnasTrainable, _resources(_space(view)),
                              fresh=lambda: _experiment(name, [dense], view, store_url
                                                        or store.url, quiet))
        trials = [t for t in store.trials(name) if has_checkpoint(t.get("checkpoint_path"))]
        if not trials:
            raise SearchError(f"the dense network for global_magnitude ({name}) has no "
                              "checkpoint; drop global_magnitude from --references")
        checkpoint = trials[0]["checkpoint_path"]
    state = read_model_state(checkpoint)
    return {layer["name"]: state[f"{layer['name']}.weight"].numpy()
            for layer in layer_table(view)}


__all__ = ["DESCRIPTION", "HELP", "add_arguments", "confirm_search", "run"]
