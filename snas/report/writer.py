"""Writing a report folder: the figure images, ``index.html`` and the ``snas-report.json``
manifest, whose format this module owns.

The manifest (search, time, files, per-figure note) marks the folder as a report: a later
``snas report`` into the same folder replaces the files the previous report listed (and
only those); any other non-empty folder is refused before a file is written. Each file is
written to a temporary name and renamed into place.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from snas.core.errors import ConfigError
from snas.report.data import load_report_data
from snas.report.figures import (
    FIGURES,
    FORMATS,
    accuracy_figure,
    best_graph,
    density_heatmap_figure,
    egf_figure,
    learning_curves_figure,
    render,
    wiring_graph_figure,
)
from snas.report.page import page_html

PAGE = "index.html"
MANIFEST = "snas-report.json"
MANIFEST_FORMAT = "snas-report/1"
#: Files a report may write; only these are ever replaced or removed in ``DIR``.
OWNED_FILES = frozenset({PAGE, MANIFEST} | {f"{f}.{x}" for f in FIGURES for x in FORMATS})


def _prepare_out(out: Path) -> set[str]:
    """Check ``out`` before any work; returns the files a previous report there owns."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; give a folder for the report")
    if not out.exists():
        return set()
    try:
        entries = {p.name for p in out.iterdir()}
    except OSError as exc:
        raise ConfigError(f"cannot read --out folder {str(out)!r}: "
                          f"{exc.strerror or exc}") from None
    if not entries:
        return set()
    if MANIFEST not in entries:
        raise ConfigError(f"--out {str(out)!r} is not empty and holds no snas report "
                          f"({MANIFEST} is missing); give a new or empty folder, or the "
                          "folder of an earlier report to replace it")
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ConfigError(f"--out {str(out)!r} holds a {MANIFEST} that is not a snas report "
                          f"manifest ({MANIFEST_FORMAT}); give a new or empty folder")
    listed = manifest.get("files") if isinstance(manifest.get("files"), list) else []
    # Only names a report can write, whatever the manifest says: never a path elsewhere.
    return {f for f in listed if isinstance(f, str) and f in OWNED_FILES} | {MANIFEST}


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None

def write_report(store: Any, name: str, out: str | os.PathLike, top: int = 10,
                 fmt: str = "png") -> dict[str, Any]:
    """Write the report of search ``name`` into folder ``out``; returns the manifest.

    ``out`` is created if missing. An existing non-empty folder must hold an earlier
    report (its ``snas-report.json``): the files that report listed are replaced or
    removed, nothing else in the folder is touched. Anything else is refused
    (ConfigError) before a file is written. The manifest lists per figure its file or
    the reason it has none.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out).expanduser()
    data = load_report_data(store, name, top)  # an unknown search fails before any write
    previous = _prepare_out(out)
    figures: dict[str, dict[str, Any]] = {}
    graph_trial: list[dict] = []

    def graph() -> tuple[Any, str]:
        trial, graph_json, stats = best_graph(store, data)
        graph_trial.append(trial)
        fig, caption = wiring_graph_figure(graph_json, stats)
        best = data.scored[0]["trial_id"] if data.scored else None
        who = f"Trial {trial['trial_id']}" + (
            f" (rank {trial['rank']})" if trial.get("rank") else " (unranked)")
        if best is not None and trial["trial_id"] != best:
            who += f"; the best trial, {best}, has no stored graph"
        elif best is not None:
            who += ", the best trial"
        return fig, f"{who}. {caption}"

    makers = {"accuracy": lambda: accuracy_figure(data),
              "density_heatmap": lambda: density_heatmap_figure(data),
              "learning_curves": lambda: learning_curves_figure(data),
              "egf_curves": lambda: egf_figure(data),
              "wiring_graph": graph}
    for figure_name in FIGURES:
        figures[figure_name] = render(makers[figure_name], fmt)
        if "bytes" in figures[figure_name]:
            figures[figure_name]["file"] = f"{figure_name}.{fmt}"
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    page = page_html(data, figures, fmt, generated)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --out folder {str(out)!r}: "
                          f"{exc.strerror or exc}") from None
    written = [f["file"] for f in figures.values() if f.get("file")] + [PAGE]
    for stale in sorted(previous - set(written) - {MANIFEST}):
        (out / stale).unlink(missing_ok=True)
    for fig in figures.values():
        if fig.get("file"):
            _write_file(out / fig["file"], fig["bytes"])
    _write_file(out / PAGE, page.encode("utf-8"))
    manifest = {
        "format": MANIFEST_FORMAT, "search": name, "generated_at": generated, "top": top,
        "image_format": fmt, "files": [*written, MANIFEST],
        "figures": {k: {"file": f.get("file"), "caption": f.get("caption"),
                        "note": f.get("note")} for k, f in figures.items()},
        "graph_trial": graph_trial[0]["trial_id"] if graph_trial else None,
    }
    _write_file(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return manifest
