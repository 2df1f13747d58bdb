"""The ``snas report NAME --out DIR`` command: its flags and the one line it prints.

The work is :func:`snas.report.write_report`; this module is the command contract
(``HELP``, ``DESCRIPTION``, :func:`add_arguments`, :func:`run`) the CLI registry loads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from snas.report.figures import FORMATS
from snas.report.writer import PAGE, write_report

HELP = "write an HTML report with figures of a search"
DESCRIPTION = ("Write a self-contained HTML report of a search into a folder: a summary "
               "(searcher, trials by status, best trial and its density vector against the "
               "dense baseline, top trials) and figures: accuracy vs active weights with the "
               "Pareto front and the dense baseline, per-layer densities of the top trials, "
               "learning curves, EGF curves and the best trial's wiring graph (Kamada-Kawai). "
               "Open DIR/index.html in a browser; it fetches nothing from the network.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``snas report`` flags."""
    from snas.commands._common import STORE_HELP

    parser.add_argument("name", help="search name (see snas list)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for index.html, the figures and snas-report.json; "
                        "created if missing. A non-empty folder must hold an earlier snas "
                        "report, whose files are replaced (nothing else there is touched)")
    parser.add_argument("--top", type=int, default=10, help="how many of the best trials the "
                        "heatmap, the highlighted curves and the table show (default 10)")
    parser.add_argument("--format", choices=FORMATS, default="png",
                        help="image format of the figures (default png)")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)


def run(args: argparse.Namespace) -> int:
    """``snas report``: write the report and print where it is, one line."""
    from snas.commands._common import open_reader

    store = open_reader(args.store)
    try:
        manifest = write_report(store, args.name, args.out, args.top, args.format)
    finally:
        store.close()
    drawn = [k for k, f in manifest["figures"].items() if f["file"]]
    missing = [k for k, f in manifest["figures"].items() if not f["file"]]
    print(f"snas report {args.name}: wrote {Path(args.out) / PAGE} with {len(drawn)} "
          f"figure(s)" + (f"; no data for {', '.join(missing)}" if missing else ""))
    return 0
