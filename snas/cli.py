"""The ``snas`` command line.

Every user error is one line on stderr (``snas: error: ...``) and exit code 2; ``--debug``
shows the traceback instead. Heavy imports (torch, ray) happen inside the subcommands that
need them, so ``snas --help`` and store queries start fast.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from snas import metrics as M
from snas.errors import ConfigError, SnasError

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


def check_output_path(path: str | Path, flag: str) -> Path:
    """Refuse an output path that cannot be written, before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} is a directory; give a file path")
    if not path.parent.is_dir():
        raise ConfigError(f"{flag} folder does not exist: {str(path.parent)!r}")
    return path


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to ``path`` via a temporary file and rename: never half-written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=float) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


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
    from snas.config import load_space

    overrides = list(args.set or [])
    if args.epochs is not None:
        overrides.append(f"training.epochs={args.epochs}")
    if args.seed is not None:
        overrides.append(f"training.seed={args.seed}")
    if args.device is not None:
        overrides.append(f"training.device={args.device}")
    space = load_space(args.space, overrides)
    density = parse_density(args.density) if args.density is not None else 1.0
    if args.json_out:
        check_output_path(args.json_out, "--json-out")

    from trainables.training import Trial  # torch loads here, after the config is valid

    trial = Trial(space, density)
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
    if args.json_out:
        write_json_atomic(args.json_out, summary)
        print(f"wrote {args.json_out}", file=out)
    return 0


# ---------------------------------------------------------------------------------------
# Parser and entry point


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
    train.set_defaults(func=cmd_train)
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
