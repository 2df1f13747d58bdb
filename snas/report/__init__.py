"""``snas report NAME --out DIR``: a static HTML report of one search, with figures.

The report reads the results store only (the search through one
:class:`~snas.view.SearchView`, then ``epochs_frame`` and ``graph``) and writes into
``DIR``:

* ``index.html``: the summary (search, searcher, trials by status, the best trial and its
  density vector against the dense baseline, the ranked top trials) and one section per
  figure; a figure without data (no finished trial, no graph, no EGF yet) is a note saying
  so, never a crash.
* one image per figure (PNG by default, SVG with ``--format svg``; matplotlib on the Agg
  canvas): ``accuracy``, ``density_heatmap``, ``learning_curves``, ``egf_curves``,
  ``wiring_graph``.
* ``snas-report.json``: the manifest (search, time, files, per-figure note). It marks the
  folder as a report: a later ``snas report`` into the same folder replaces the files the
  previous report listed (and only those); any other non-empty folder is refused.

The page is self-contained: relative image links, inline CSS, no script, no network
fetch (its Content-Security-Policy allows nothing else). Every text from the store is
HTML-escaped, and ``$`` is escaped for matplotlib so names are never read as mathtext.

The parts: :mod:`~snas.report.data` (what is read from the store),
:mod:`~snas.report.figures` (the matplotlib figures), :mod:`~snas.report.page` (the HTML),
:mod:`~snas.report.writer` (the folder and its manifest) and
:mod:`~snas.report.command` (the CLI contract, re-exported here for the command registry).

Imports at module level stay light (``snas --help`` imports this package); matplotlib,
networkx and pandas load inside :func:`write_report`. Neither torch nor ray is imported.
"""

from snas.report.command import DESCRIPTION, HELP, add_arguments, run
from snas.report.data import ReportData, load_report_data
from snas.report.figures import (
                                 FIGURES,
                                 FORMATS,
                                 MAX_LAYOUT_NODES,
                                 NoData,
                                 accuracy_figure,
                                 density_heatmap_figure,
                                 egf_figure,
                                 learning_curves_figure,
                                 wiring_graph_figure,
)
from snas.report.writer import (
                                 MANIFEST,
                                 MANIFEST_FORMAT,
                                 OWNED_FILES,
                                 PAGE,
                                 write_report,
)

__all__ = ["DESCRIPTION", "FIGURES", "FORMATS", "HELP", "MANIFEST", "MANIFEST_FORMAT",
           "MAX_LAYOUT_NODES", "OWNED_FILES", "PAGE", "NoData", "ReportData",
           "accuracy_figure", "add_arguments", "density_heatmap_figure", "egf_figure",
           "learning_curves_figure", "load_report_data", "run", "wiring_graph_figure",
           "write_report"]
