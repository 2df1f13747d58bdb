"""Does searching beat the obvious allocations? Every searcher, confirmed, in one run.

For each searcher (random, bayesopt, optuna by default) runs the same budgeted search on the
shipped MNIST subset (``search_spaces/mlp_mnist5k_budget.yaml``, cap ``--cap`` of the dense
weights, ``density.low`` ``--low``, ``--samples`` trials) and confirms it (``snas confirm``: the rank-1 vector, and a
uniform and an ERK allocation at its cost, ``--seeds`` new training seeds each, full
epochs). Prints one line per searcher: the confirmed test accuracy (mean ± sd over seeds) of
its rank-1 vector next to uniform's and ERK's at the same cost, the paired differences with
their one-sided exact Wilcoxon p-values, and the verdict. The baseline is uniform at equal
cost: a searcher is worth running only where it beats it.

Usage: ``python benchmarks/confirm.py [--cap 0.05] [--samples 24] [--seeds 3]
[--searchers random,bayesopt,optuna] [--epochs 9] [--json FILE]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "search_spaces" / "mlp_mnist5k_budget.yaml"


def run_searcher(name: str, args: argparse.Namespace, workdir: Path) -> dict:
    from snas.cli import main

    url = f"sqlite:///{workdir}/bench.db"
    search = f"confirm-{name}"
    began = time.perf_counter()
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        code = main(["search", str(SPACE), "--name", search, "--searcher", name,
                     "--num-samples", str(args.samples), "--store", url, "--storage-path",
                     str(workdir / "exp"), "--quiet", "--set", f"budget.max_fraction={args.cap}",
                     "--set", f"density.low={args.low}",
                     "--set", f"training.epochs={args.epochs}"])
        if code == 0:
            code = main(["confirm", search, "--top", "1", "--seeds", str(args.seeds),
                         "--references", "uniform,erk", "--store", url, "--quiet",
                         "--json-out", str(workdir / f"{search}.json")])
    if code != 0:
        raise SystemExit(f"{name}: snas exited with {code}:\n{quiet.getvalue()[-2000:]}")
    report = json.loads((workdir / f"{search}.json").read_text())
    report["seconds"] = time.perf_counter() - began
    return report


def _cell(c: dict) -> str:
    return f"{c['mean']:.4f} ± {c['sd']:.4f}" if c["sd"] is not None else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap", type=float, default=0.05)
    parser.add_argument("--low", type=float, default=0.01,
                        help="density.low (below the cap, so the searchers have room)")
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--searchers", default="random,bayesopt,optuna")
    parser.add_argument("--json", metavar="FILE", help="also write the reports as JSON")
    args = parser.parse_args()
    reports = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.searchers.split(","):
            reports[name] = run_searcher(name.strip(), args, Path(tmp))
    print(f"budget {args.cap:g} of the dense weights, {args.samples} trials per search, "
          f"{args.seeds} confirmation seeds; test accuracy mean ± sd; p: one-sided exact "
          "Wilcoxon over seeds, H1 searched > reference")
    print(f"{'searcher':<10}{'rank 1':>18}{'uniform':>18}{'erk':>18}"
          f"{'vs uniform':>12}{'p':>7}{'vs erk':>10}{'p':>7}{'seconds':>9}")
    for name, report in reports.items():
        by = {c["label"]: c for c in report["candidates"]}
        comp = {c["reference"]: c for c in report["comparisons"]}
        u, e = comp["uniform @ rank 1"], comp["erk @ rank 1"]
        print(f"{name:<10}{_cell(by['rank 1']):>18}{_cell(by['uniform @ rank 1']):>18}"
              f"{_cell(by['erk @ rank 1']):>18}{u['mean_difference']:>+12.4f}"
              f"{u['p_value']:>7.3f}{e['mean_difference']:>+10.4f}{e['p_value']:>7.3f}"
              f"{report['seconds']:>9.0f}")
    for name, report in reports.items():
        print(f"{name}: {report['verdict']}")
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()
