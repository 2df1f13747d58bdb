"""``snas compare``: Same Capacity Sparse vs Dense Comparison, SC-SDC (Tessera thesis
§3.2.1, App. A.1).

For every factor level (the cross product of the ``--factor`` values), comparison width
``N_W`` and seed, a dense MLP of width ``N_W`` and a sparse MLP of the max width ``N_MW``
with exactly as many active weights per layer (:mod:`trainables.sc_sdc`) train as Ray Tune
trials; the run is stored in the results store as one search (searcher ``sc-sdc``, one
trial per network), so ``snas list``/``snas show`` and the dashboard read it. The report
gives, per width and overall, the test accuracies (mean ± sd over seeds), EGF and a
one-sided paired Wilcoxon signed-rank test (H1: sparse > dense) on the test accuracies.

This module is the command: the plan (:mod:`snas.compare.plan`) runs as a fixed list of
trial configs through the experiment runner (:mod:`snas.runner`); the statistics
(:mod:`snas.compare.stats`) and the report (:mod:`snas.compare.report`) read it back.
``run`` imports torch and Ray only after the flags and the space file are validated.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snas.compare.plan import (
    factor_levels,
    level_spaces,
    parse_factors,
    parse_widths,
    plan_pairs,
    resolve_widths,
    trial_configs,
)
from snas.compare.report import format_report, report_document
from snas.compare.stats import METRIC
from snas.core.errors import ConfigError

HELP = "SC-SDC: sparse vs dense networks of the same capacity, Wilcoxon test"
DESCRIPTION = (
    "Same Capacity Sparse vs Dense Comparison (Tessera thesis 3.2.1, App. A.1). For each "
    "comparison width N_W (--widths) and seed (--seeds) train the dense MLP of width N_W and "
    "the sparse MLP of the max width N_MW (default: input dimension + 4) whose fixed random "
    "mask keeps, in every layer, exactly as many weights as the dense layer has (first "
    "layer I x N_W, hidden N_W x N_W, last N_W x O); the active weights of both start from "
    "the same distribution (the sparse layer's init uses the dense layer's fan-in); no "
    "Linear biases. All networks train as Ray Tune trials and are stored as one search "
    "(snas show NAME lists them). The report gives, per width and over all widths, the "
    "test accuracy of dense and sparse (mean +- sd over seeds), EGF (egf_2, egf_1: mean "
    "over up to 11 evenly spaced epochs) and the p-value of a one-sided paired Wilcoxon "
    "signed-rank test of H1: sparse > dense on the test accuracies (pairs: same width, "
    "same seed; differences are rounded to 1e-9, zero differences dropped; exact null "
    "distribution without ties, exact permutation distribution over all sign assignments "
    "with tied differences up to 16 pairs, normal approximation beyond; no non-zero "
    "difference: p = 1). --factor sweeps interventions (BatchNorm, skip connections, optimizer, "
    "activation, weight decay, ...): one comparison per level. The space file must use "
    "model.name mlp, kernel.name random and model.bias false; its model.width is not used."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from snas.commands._common import STORE_HELP

    parser.add_argument("space", help="search-space YAML file with an MLP, the random kernel "
                        "and model.bias: false (e.g. search_spaces/compare_mlp_mnist5k.yaml)")
    parser.add_argument("--widths", required=True, metavar="W1,W2,...",
                        help="comparison (dense) widths N_W, comma-separated: an integer is a "
                        "width (79), N%% a percentage of the max width (10%%), a decimal a "
                        "fraction of it (0.1); rounded to the nearest integer, at least 1; "
                        "each <= the max width. E.g. 10%%,30%%,50%%")
    parser.add_argument("--seeds", type=int, default=3, metavar="N",
                        help="training runs per width and level: seeds training.seed, "
                        "training.seed+1, ... (default 3); the pairs of the test are (width, "
                        "seed)")
    parser.add_argument("--max-width", type=int, metavar="N_MW",
                        help="width of the sparse networks (default: input dimension + 4, "
                        "thesis App. A.1)")
    parser.add_argument("--factor", action="append", metavar="SECTION.KEY=V1,V2",
                        help="an intervention to sweep (repeatable; several give their cross "
                        "product): values parsed like --set, one comparison per level, e.g. "
                        "model.batch_norm=true,false, model.skip=true,false, "
                        "training.optimizer=sgd,adamw, model.activation=relu,swish, "
                        "training.weight_decay=0,0.0001. Keys: model.* and training.* except "
                        "model.name/width/bias and training.seed, and dataset.augment")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override a key of the file for every network (repeatable), e.g. "
                        "--set training.epochs=5")
    parser.add_argument("--name", help="name of the stored run (default: file name + time); "
                        "letters, digits, '.', '_', '-'")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument("--storage-path", help="experiment folders (default "
                        "$SNAS_HOME/experiments)")
    parser.add_argument("--address", help="Ray cluster address (e.g. auto); default: start a "
                        "local Ray")
    parser.add_argument("--json-out", metavar="FILE", help="also write the report (every "
                        "number of the tables, per pair too) as JSON")
    parser.add_argument("--checkpoints", action="store_true", help="keep every network's "
                        "final checkpoint (weights, masks) and store its wiring graph, as "
                        "snas search does; off by default: wide networks' graph statistics "
                        "take seconds to minutes each")
    parser.add_argument("--quiet", action="store_true", help="no per-trial progress lines")


def _default_name(space_path: str) -> str:
    import datetime as dt

    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(space_path).stem)
    return f"{stem}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def run(args: argparse.Namespace) -> int:
    """Validate everything, train every pair as Tune trials, print (and write) the report."""
    from snas.commands._common import (
        absolute_data_root,
        check_output_path,
        open_store,
        store_files,
        write_json_atomic,
    )
    from snas.core.config import read_space_text

    text = read_space_text(args.space)
    width_items = parse_widths(args.widths)
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be an integer >= 1, got {args.seeds}")
    if args.max_width is not None and args.max_width < 1:
        raise ConfigError(f"--max-width must be an integer >= 1, got {args.max_width}")
    factors = parse_factors(args.factor)
    levels = factor_levels(factors)
    overrides = list(args.set or [])
    base, *spaces = [absolute_data_root(s, Path(args.space).parent)
                     for s in level_spaces(text, args.space, overrides, [{}, *levels])]
    if args.json_out:
        check_output_path(args.json_out, "--json-out",
                          protected=(args.space, *store_files(args.store)))

    # Heavy imports (torch, Ray) from here on, after the flags and the file are valid.
    from snas import runner
    from snas.paths import default_storage_path
    from trainables.data import load_dataset

    data = load_dataset(base.dataset, "cpu")
    input_shape, num_classes = tuple(data.input_shape), data.num_classes
    input_dim = math.prod(input_shape)
    if args.max_width is not None:
        max_width, max_from = args.max_width, "--max-width"
    else:
        max_width, max_from = input_dim + 4, f"input dimension {input_dim} + 4"
    widths = resolve_widths(width_items, max_width, max_from)
    seeds = [base.training.seed + i for i in range(args.seeds)]

    name = runner.check_search_name(args.name if args.name is not None
                                    else _default_name(args.space))
    store = open_store(args.store)
    storage = (Path(args.storage_path).expanduser().resolve() if args.storage_path
               else default_storage_path())
    # Before the plan builds every network: a taken name fails at once.
    runner.check_new_experiment(store, name, storage)

    plan = plan_pairs(spaces, levels, widths, seeds, max_width, input_shape, num_classes)
    configs = trial_configs(plan)
    opts = base.model.options
    print(f"snas compare {name}: SC-SDC on {base.dataset.name} ({input_dim} inputs, "
          f"{num_classes} classes), MLP with {opts.hidden_layers} hidden layers, no biases; "
          f"dense widths {', '.join(map(str, widths))} vs sparse width {max_width} "
          f"({max_from}); {len(seeds)} seeds, {len(levels)} level(s), {len(configs)} "
          f"networks of {base.training.epochs} epochs; store {store.url}", flush=True)

    store_url = args.store if args.store is not None else store.url
    params = {"kind": "sc-sdc", "metric": METRIC, "mode": "max", "max_width": max_width,
              "max_width_from": max_from, "input_dim": input_dim, "widths": widths,
              "seeds": seeds, "factors": {k: v for k, v in factors},
              "store_url": store_url, "address": args.address}
    record = runner.Record(text, base.to_dict(), "sc-sdc", len(configs), params)
    experiment = _experiment(configs, base, name, storage, store_url, args.quiet,
                             args.checkpoints)
    runner.run(experiment, record, store, address=args.address,
               preflight=runner.resources_preflight(experiment.resources, args.address))

    doc = report_document(store, name, plan, params, base, args.space)
    print(f"\nSC-SDC {name}: {METRIC}, {len(seeds)} seeds per width, dense width N_W vs "
          f"sparse width {max_width}")
    print(format_report(doc))
    if args.json_out:
        write_json_atomic(args.json_out, doc)
        print(f"wrote {args.json_out}")
    return 0


def _experiment(configs: Sequence[Mapping[str, Any]], space: Any, name: str, storage: Path,
                store_url: str, quiet: bool, checkpoints: bool) -> Any:
    """Every network as a Tune trial, FIFO in plan order, mirrored into the store."""
    from snas import runner
    from snas.compare.callback import CompareCallback
    from trainables.sc_sdc import SameCapacityTrainable

    callback = CompareCallback(store_url, name, space.training.epochs, len(configs),
                               progress=not quiet)
    return runner.Experiment(
        name=name, storage_path=storage, trainable=SameCapacityTrainable,
        resources={"cpu": space.resources.cpus_per_trial,
                   "gpu": space.resources.gpus_per_trial},
        configs=configs, callbacks=(callback,),
        # Without checkpoints a trial has no wiring record either (the callback builds
        # it from the checkpoint): graph statistics of wide networks take many seconds.
        checkpoints="last" if checkpoints else "none",
        max_failures=space.resources.max_failures)


__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]
