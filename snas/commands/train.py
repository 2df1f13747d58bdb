"""``snas train SPACE``: train one masked network without Ray, epoch by epoch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from snas.commands._common import check_output_path, fmt_number, write_json_atomic
from snas.core import metrics as M
from snas.core.errors import ConfigError

HELP = "train one trial (no Ray) and report its metrics"
DESCRIPTION = ("Train one masked network from a search-space file without Ray: per-epoch "
               "progress, then a summary.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", help="search-space YAML file (see search_spaces/)")
    parser.add_argument("--density", help="density (fraction of weights kept): one number "
                        "for every layer or a comma-separated vector, one per maskable layer "
                        "(default 1.0, dense)")
    parser.add_argument("--epochs", type=int, help="override training.epochs")
    parser.add_argument("--seed", type=int, help="override training.seed")
    parser.add_argument("--device", help="override training.device (auto, cpu, cuda, cuda:N)")
    parser.add_argument("--json-out", metavar="FILE", help="write the summary (density, "
                        "realized_density, layers, metrics, history) as JSON")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override a key of the file (repeatable), e.g. --set model.width=64")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    parser.add_argument("--from-export", metavar="FILE", help="train the density vector of an "
                        "exported trial (`snas export`), e.g. to reproduce its accuracy")
    parser.add_argument("--rank", type=int, default=1, help="which exported trial (default 1)")


def format_epoch(record: dict[str, Any], epochs: int) -> str:
    f = fmt_number
    return (f"epoch {record[M.EPOCH]:>3}/{epochs}  "
            f"train_loss {f(record[M.TRAIN_LOSS])}  train_acc {f(record[M.TRAIN_ACCURACY])}  "
            f"val_loss {f(record[M.VAL_LOSS])}  val_acc {f(record[M.VAL_ACCURACY])}  "
            f"egf_2 {f(record[M.EGF_2], '.3g')}  {record[M.EPOCH_SECONDS]:.2f}s")


def format_summary(summary: dict[str, Any]) -> str:
    f = fmt_number
    lines = [
        f"test_accuracy {f(summary[M.TEST_ACCURACY])}  val_accuracy "
        f"{f(summary[M.VAL_ACCURACY])}  test_loss {f(summary[M.TEST_LOSS])}",
        f"active weights {summary[M.ACTIVE_WEIGHTS]:,} of {summary[M.TOTAL_WEIGHTS]:,} "
        f"({summary[M.ACTIVE_WEIGHTS] / summary[M.TOTAL_WEIGHTS]:.1%})  "
        f"egf_1 {f(summary[M.EGF_1], '.4g')}  egf_2 {f(summary[M.EGF_2], '.4g')}  "
        f"{summary['epochs']} epochs in {summary['seconds']:.1f}s on {summary['device']}",
        f"{'layer':<32}{'shape':>16}{'density':>10}{'realized':>10}",
    ]
    for layer, asked, real in zip(summary["layers"], summary["density"],
                                  summary["realized_density"], strict=True):
        shape = "x".join(str(s) for s in layer["shape"])
        lines.append(f"{layer['name']:<32}{shape:>16}{asked:>10.4f}{real:>10.4f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from snas.core.config import load_space
    from snas.core.density import parse_density

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
        from snas.view import read_export

        if args.density is not None:
            raise ConfigError("give either --density or --from-export, not both")
        exported = read_export(args.from_export, args.rank)
        density = exported["density"]
    if args.json_out:
        check_output_path(args.json_out, "--json-out",
                          protected=(args.space, args.from_export))

    from trainables.data import load_dataset
    from trainables.memory import check_fits
    from trainables.training import Trial, resolve_device  # torch loads here, after the config

    data = load_dataset(space.dataset, resolve_device(space.training.device))
    check_fits(space, data.input_shape, data.num_classes)
    trial = Trial(space, density, data=data)
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
              f"{fmt_number(exported.get(M.TEST_ACCURACY))}, val_accuracy "
              f"{fmt_number(exported.get(M.VAL_ACCURACY))}; retrained: test_accuracy "
              f"{fmt_number(summary[M.TEST_ACCURACY])}", file=out)
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
