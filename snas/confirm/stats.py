"""The statistics of a confirmation (no torch, no Ray): per candidate the test accuracy
over seeds (mean, sample sd, 95 % t interval), per (searched, reference) pair the paired
difference over seeds with a one-sided exact Wilcoxon signed-rank test, and one verdict.

The test is :func:`snas.stats.wilcoxon_greater` (the one ``snas compare`` uses): H1 "the
searched vector's test accuracy is higher than the reference's", pairs matched by training
seed. It is exact for small samples, so with S seeds (no ties, no zero differences) the
smallest p it can give is 1 / 2**S: 0.125 for 3 seeds, 0.031 for 5. The verdict says so
when the seeds cannot reach the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from snas.confirm.plan import REFERENCE, SEARCHED, ConfirmPlan
from snas.core import metrics as M
from snas.stats import mean_sd, wilcoxon_greater

ALPHA = 0.05
TEST_NAME = "one-sided paired Wilcoxon signed-rank (exact), pairs by training seed"


def interval95(values: Sequence[float]) -> list[float] | None:
    """The 95 % t interval of the mean of ``values`` (None for fewer than 2)."""
    from scipy import stats

    summary = mean_sd(values)
    if summary["sd"] is None:
        return None
    half = stats.t.ppf(0.975, summary["n"] - 1) * summary["sd"] / math.sqrt(summary["n"])
    return [summary["mean"] - half, summary["mean"] + half]


def smallest_p(n_pairs: int) -> float:
    """The smallest one-sided p the exact signed-rank test can give with ``n_pairs``."""
    return 0.5 ** n_pairs if n_pairs > 0 else 1.0


def results_by_vector(trials: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, dict]]:
    """``{vector key: {seed: trial}}`` of a confirmation's stored trials."""
    out: dict[str, dict[int, dict]] = {}
    for t in trials:
        tag = (t.get("config") or {}).get("confirm") or {}
        if "vector" in tag and "seed" in tag:
            out.setdefault(tag["vector"], {})[int(tag["seed"])] = dict(t)
    return out


def summarize(plan: ConfirmPlan, trials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The confirmation report (the ``--json-out`` document) from the stored trials."""
    by_vector = results_by_vector(trials)
    candidates = []
    for c in plan.candidates:
        runs = by_vector.get(c.key, {})
        accuracies = [runs[s].get(M.TEST_ACCURACY) if s in runs else None for s in plan.seeds]
        finished = [a for a in accuracies if isinstance(a, (int, float)) and math.isfinite(a)]
        active = next((runs[s].get(M.ACTIVE_WEIGHTS) for s in plan.seeds if s in runs
                       and runs[s].get(M.ACTIVE_WEIGHTS) is not None), None)
        flops = next((runs[s].get(M.ACTIVE_FLOPS) for s in plan.seeds if s in runs
                      and runs[s].get(M.ACTIVE_FLOPS) is not None), None)
        summary = mean_sd(finished)
        candidates.append({
            "label": c.label, "kind": c.kind, "reference_of": c.reference_of,
            "reference": c.reference, "trial_id": c.trial_id, "density": list(c.density),
            "active_weights": active, "active_flops": flops,
            "test_accuracy": accuracies, "mean": summary["mean"], "sd": summary["sd"],
            "ci95": interval95(finished)})
    comparisons = []
    by_label = {c["label"]: c for c in candidates}
    for c in candidates:
        if c["kind"] != SEARCHED:
            continue
        for r in candidates:
            if r["kind"] != REFERENCE or r["reference_of"] not in (c["label"], None):
                continue
            pairs = [(a, b) for a, b in zip(c["test_accuracy"], r["test_accuracy"], strict=True)
                     if a is not None and b is not None]
            if not pairs:
                comparisons.append({"candidate": c["label"], "reference": r["label"],
                                    "mean_difference": None, "p_value": None,
                                    "n_pairs": 0, "test": TEST_NAME})
                continue
            test = wilcoxon_greater([a for a, _ in pairs], [b for _, b in pairs])
            comparisons.append({
                "candidate": c["label"], "reference": r["label"],
                "mean_difference": sum(a - b for a, b in pairs) / len(pairs),
                "p_value": test["p_value"], "n_pairs": len(pairs),
                "wins": sum(1 for a, b in pairs if a > b), "test": TEST_NAME})
    return {"search": plan.search, "seeds": list(plan.seeds), "resource": plan.resource,
            "candidates": candidates, "comparisons": comparisons,
            "verdict": verdict(plan, comparisons, by_label)}


def verdict(plan: ConfirmPlan, comparisons: Sequence[Mapping[str, Any]],
            by_label: Mapping[str, Mapping[str, Any]]) -> str:
    """One line: does a searched vector beat every reference at its cost, p < 0.05?"""
    at_cost = [r for r in plan.references if r != "dense"]
    if not at_cost:
        targets = "dense"
        pick = [c for c in comparisons if c["reference"] == "dense"]
    else:
        targets = " and ".join(at_cost)
        pick = [c for c in comparisons if by_label[c["reference"]]["reference"] in at_cost]
    searched = [c.label for c in plan.candidates if c.kind == SEARCHED]
    for label in searched:
        mine = [c for c in pick if c["candidate"] == label]
        if mine and all(c["p_value"] is not None and c["p_value"] < ALPHA for c in mine):
            parts = ", ".join(f"{by_label[c['reference']]['reference']} by "
                              f"{c['mean_difference']:+.4f} (p = {c['p_value']:.3g})"
                              for c in mine)
            where = "at equal cost" if at_cost else "with fewer weights"
            return f"{label} beats {parts} {where} ({TEST_NAME.split(',')[0]})"
    line = (f"no searched vector beats {targets} {'at equal cost ' if at_cost else ''}"
            f"with p < {ALPHA:g}")
    n = len(plan.seeds)
    if smallest_p(n) >= ALPHA:
        line += (f" (with {n} seeds the exact test cannot go below p = {smallest_p(n):.3g}: "
                 f"use --seeds {math.ceil(math.log2(1 / ALPHA))} or more to decide)")
    return line


def format_report(report: Mapping[str, Any]) -> str:
    """The confirmation as a table, the paired differences and the verdict."""
    seeds = report["seeds"]
    lines = [f"confirmation of {report['search']}: test accuracy over {len(seeds)} training "
             f"seeds ({', '.join(map(str, seeds))}), full epochs; references at each "
             f"candidate's cost in {report['resource']}",
             f"{'candidate':<26}{'kind':<11}{'active':>10}  {'mean ± sd':<19}{'95% CI':<19}"
             "per seed"]
    for c in report["candidates"]:
        active = f"{c['active_weights']:,}" if c["active_weights"] is not None else "-"
        mean = (f"{c['mean']:.4f} ± {c['sd']:.4f}" if c["sd"] is not None
                else (f"{c['mean']:.4f}" if c["mean"] is not None else "-"))
        ci = f"[{c['ci95'][0]:.4f}, {c['ci95'][1]:.4f}]" if c["ci95"] else "-"
        per_seed = " ".join(f"{a:.4f}" if a is not None else "-" for a in c["test_accuracy"])
        lines.append(f"{c['label']:<26}{c['kind']:<11}{active:>10}  {mean:<19}{ci:<19}"
                     f"{per_seed}")
    lines.append(f"\npaired differences, candidate - reference ({TEST_NAME}; H1: candidate "
                 "> reference):")
    for c in report["comparisons"]:
        if c["mean_difference"] is None:
            lines.append(f"  {c['candidate']} vs {c['reference']}: no complete pair")
            continue
        lines.append(f"  {c['candidate']:<8} vs {c['reference']:<26} {c['mean_difference']:+.4f}"
                     f"  wins {c['wins']}/{c['n_pairs']}  p = {c['p_value']:.4g}")
    lines.append(f"\nverdict: {report['verdict']}")
    return "\n".join(lines)


__all__ = ["ALPHA", "TEST_NAME", "format_report", "interval95", "results_by_vector",
           "smallest_p", "summarize", "verdict"]
