"""What ``snas search``, ``snas resume`` and ``snas show`` print about a search, from one
:class:`~snas.view.SearchView`."""

from __future__ import annotations

import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from snas.commands._common import fmt_number, write_json_atomic
from snas.core import metrics as M
from snas.results import trials_table
from snas.view import SearchView


def near_best(view: SearchView) -> set[str]:
    """Ids of the trials within noise of the best (see :meth:`SearchView.within_noise`)."""
    return {t["trial_id"] for t in view.trials if view.within_noise(t)}


def noise_note(view: SearchView) -> str | None:
    """The line under a trial table: the metric's standard error and what ``~`` means."""
    best = view.best_value
    se = view.standard_error(best)
    if se is None:
        return None
    n = view.split_size(view.metric.split("_", 1)[0])
    return (f"{view.metric} is measured on {n} examples: standard error ±{se:.4f} at the best "
            f"({best:.4f}); ~ marks trials within 2 standard errors of it, which this split "
            "cannot tell apart from the best")


def print_table(view: SearchView, top: int | None = None) -> None:
    """The ranked trials of a search, with the noise note under them."""
    print(trials_table(view.ranked, view.metric, view.baseline, top=top,
                       near_best=near_best(view)))
    note = noise_note(view)
    if note:
        print(note)


def print_ranking(view: SearchView, top: int = 10) -> None:
    metric, baseline = view.metric, view.baseline
    print(f"\nsearch {view.name}: {len(view.ranked)} trials, ranked by {view.ranked_by}"
          + (f" (dense baseline {metric} {fmt_number(baseline.get(metric))})"
             if baseline else ""))
    print_table(view, top)


def versus_dense(view: SearchView, best: dict) -> str | None:
    """Whether the best trial's lead over the dense baseline is larger than the noise."""
    base = view.baseline
    if not base or best.get("is_baseline"):
        return None
    value, dense = best.get(view.metric), base.get(view.metric)
    se = view.standard_error(dense)
    if value is None or dense is None or se is None:
        return None
    n = view.split_size(view.metric.split("_", 1)[0])
    # Two measurements on the same split, each with standard error ~se.
    noise = 2.0 * math.sqrt(2.0) * se
    diff = (value - dense) if view.mode == "max" else (dense - value)
    if abs(diff) < noise:
        return (f"{view.metric} {diff:+.4f} vs dense: not distinguishable from dense on {n} "
                f"validation examples (2 standard errors of a difference: ±{noise:.4f}); "
                f"run `snas confirm {view.name}`")
    word = "better" if diff > 0 else "worse"
    return (f"{view.metric} {diff:+.4f} vs dense: {word} than dense by more than the noise of "
            f"{n} validation examples (±{noise:.4f}), on one seed; `snas confirm "
            f"{view.name}` retrains it over seeds")


def print_pareto(view: SearchView) -> None:
    print(f"\nPareto front ({len(view.pareto_front)} trials: best {view.metric} for the "
          f"fewest {view.cost}, cheapest first; `snas export {view.name} --pareto` writes it):")
    print(trials_table(view.pareto_front, view.metric))


def finish(store: Any, name: str, export: str | None) -> int:
    """The end-of-search summary: ranking, best vector, Pareto front, export file."""
    view = SearchView.load(store, name)
    print_ranking(view)
    out = export or str(Path(view.record["storage_path"]) / "export.json")
    doc = view.export_document(5)
    write_json_atomic(out, doc)
    if doc["trials"]:
        best = doc["trials"][0]
        base = doc["baseline"]
        print(f"\nbest density vector (trial {best['trial_id']}): "
              f"{' '.join(f'{d:.3f}' for d in best['density'])}")
        line = (f"{doc['metric']} {fmt_number(best.get(doc['metric']))}, test_accuracy "
                f"{fmt_number(best.get(M.TEST_ACCURACY))}, active weights "
                f"{best.get(M.ACTIVE_WEIGHTS)}")
        if base:
            line += (f"; dense baseline: {doc['metric']} {fmt_number(base.get(doc['metric']))}"
                     f", test_accuracy {fmt_number(base.get(M.TEST_ACCURACY))}, active weights "
                     f"{base.get(M.ACTIVE_WEIGHTS)}")
        print(line)
        claim = versus_dense(view, doc["trials"][0])
        if claim:
            print(claim)
    if view.baseline_over_budget:
        print("dense baseline not trained: it is over the budget")
    if view.multi_objective:
        print_pareto(view)
    print(f"search status: {view.record['status']}; exported top {len(doc['trials'])} to {out}")
    failed = all_trials_failed(view)
    if failed:
        print(f"snas: error: {failed}", file=sys.stderr)
        return EXIT_ALL_FAILED
    return 0


#: Exit code of a search that ran but whose every trial failed (not a usage error: 2).
EXIT_ALL_FAILED = 1


def all_trials_failed(view: SearchView) -> str | None:
    """One line saying that every trial of a finished search failed, and why (the most
    common error first); None when some trial has a result."""
    trials = view.trials
    if view.record["status"] != "finished" or not trials:
        return None
    if any(t["status"] != "error" for t in trials):
        return None
    reasons = Counter((t.get("error") or "no error message").strip() for t in trials)
    reason, count = reasons.most_common(1)[0]
    more = f" ({len(reasons) - 1} other reasons: `snas show {view.name}`)" if len(
        reasons) > 1 else ""
    return (f"all {len(trials)} trials of search {view.name!r} failed; {count} with: "
            f"{reason}{more}")


def confirm_if_asked(store: Any, name: str, export: str | None, *, store_url: str | None,
                     address: str | None, quiet: bool) -> None:
    """Run the search's ``search.confirm`` stage once the search finished, print its table
    and verdict, and write the export again, now ranked by the confirmed means."""
    view = SearchView.load(store, name)
    asked = (view.space.get("search") or {}).get("confirm")
    if not asked or view.record["status"] != "finished":
        return
    from snas.confirm.command import confirm_search
    from snas.confirm.stats import format_report

    print(f"\nconfirming {name} (search.confirm: top {asked['top']}, {asked['seeds']} seeds, "
          f"references {', '.join(asked['references'])})", flush=True)
    report = confirm_search(store, view, asked["top"], asked["seeds"],
                            tuple(asked["references"]), store_url=store_url, address=address,
                            quiet=quiet)
    print(format_report(report))
    view = SearchView.load(store, name)
    out = export or str(Path(view.record["storage_path"]) / "export.json")
    doc = view.export_document(5)
    write_json_atomic(out, doc)
    print(f"exported top {len(doc['trials'])} to {out}, ranked by {view.ranked_by}")
