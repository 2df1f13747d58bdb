"""The SC-SDC report: the document read back from the store (what ``--json-out`` writes,
:func:`report_document`) and its text tables (:func:`format_report`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from snas.compare.stats import METRIC, compare_report, evenly_spaced_mean
from snas.core import metrics as M


def _pm(stat: Mapping[str, Any], spec: str = ".4f") -> str:
    if stat.get("mean") is None:
        return "-"
    sd = stat.get("sd")
    return f"{stat['mean']:{spec}} ± {sd:{spec}}" if sd is not None else f"{stat['mean']:{spec}}"


def _g(stat: Mapping[str, Any]) -> str:
    return "-" if stat.get("mean") is None else f"{stat['mean']:.3g}"


_METHOD_MARK = {"exact": " ", "exact-permutation": "*", "normal": "~", "none": "="}


def _p(test: Mapping[str, Any]) -> str:
    return f"{test['p_value']:.4f}{_METHOD_MARK[test['method']]}"


def format_level(level: Mapping[str, Any]) -> str:
    """The table of one factor level: a row per width and an overall row."""
    header = (f"{'width':>6} {'density':>8} {'active':>10}  {'dense acc':>17} "
              f"{'sparse acc':>17} {'diff':>8} {'wins':>6}  {'egf_2 d':>8} {'egf_2 s':>8} "
              f"{'egf_1 d':>8} {'egf_1 s':>8}  {'p (H1: s > d)':>13}")
    lines = [header]

    def row(first: str, density: str, active: str, g: Mapping[str, Any]) -> str:
        diff = g["difference"]["mean"]
        return (f"{first:>6} {density:>8} {active:>10}  {_pm(g['dense'][METRIC]):>17} "
                f"{_pm(g['sparse'][METRIC]):>17} "
                f"{(f'{diff:+.4f}' if diff is not None else '-'):>8} "
                f"{g['sparse_wins']:>3}/{g['n_pairs']:<2}  "
                f"{_g(g['dense'][M.EGF_2]):>8} {_g(g['sparse'][M.EGF_2]):>8} "
                f"{_g(g['dense'][M.EGF_1]):>8} {_g(g['sparse'][M.EGF_1]):>8}  "
                f"{_p(g['wilcoxon']):>13}")

    for w in level["per_width"]:
        lines.append(row(str(w["width"]), f"{w['sparse_density']:.4f}",
                         f"{w['active_weights']:,}", w))
    lines.append(row("all", "", "", level["overall"]))
    return "\n".join(lines)


LEGEND = (
    "density: the sparse network's active/total weights; active: active weights of each "
    "network (equal per layer). acc: test accuracy, mean ± sd over seeds; diff: mean of "
    "sparse - dense; wins: pairs where sparse > dense. egf_2/egf_1 d|s: Effective Gradient "
    "Flow of dense|sparse, mean over up to 11 evenly spaced epochs. p: one-sided paired "
    "Wilcoxon signed-rank test, H1: sparse > dense (pairs: same width and seed; zero "
    "differences dropped); no mark: exact distribution, *: exact permutation distribution "
    "(tied differences), ~: normal approximation, =: every difference zero (p = 1).")


def format_report(doc: Mapping[str, Any]) -> str:
    """The whole report: a table per factor level, then (several levels) p per level."""
    parts = []
    for i, level in enumerate(doc["levels"], 1):
        parts.append(f"\nlevel {i}/{len(doc['levels'])}: {level['label']}")
        parts.append(format_level(level))
    if len(doc["levels"]) > 1:
        parts.append("\noverall p-value per level (H1: sparse > dense)")
        width = max(len(level["label"]) for level in doc["levels"])
        for level in doc["levels"]:
            g = level["overall"]
            diff = g["difference"]["mean"]
            parts.append(f"  {level['label']:<{width}}  p {_p(g['wilcoxon']):>9}  "
                         f"wins {g['sparse_wins']}/{g['n_pairs']}  diff "
                         + (f"{diff:+.4f}" if diff is not None else "-"))
    parts.append("\n" + LEGEND)
    return "\n".join(parts)


def report_document(store: Any, name: str, plan: Sequence[Mapping[str, Any]],
                    params: Mapping[str, Any], space: Any, space_path: str) -> dict[str, Any]:
    """Read the trials back from the store and build the report (what --json-out writes)."""
    from trainables.sc_sdc import ROLE_KEY

    epochs = store.epochs_frame(name)
    egf: dict[tuple[str, str], float | None] = {}
    for trial_id, frame in epochs.groupby("trial_id"):
        for key in (M.EGF_1, M.EGF_2):
            egf[(trial_id, key)] = evenly_spaced_mean(dict(zip(frame[M.EPOCH], frame[key],
                                                               strict=True)))
    members: dict[tuple[int, int, int, str], dict[str, Any]] = {}
    for t in store.trials(name):
        role = (t.get("config") or {}).get(ROLE_KEY)
        if not role:
            continue
        accuracy = t.get(METRIC) if t["status"] == "terminated" else None
        members[(role["level"], role["width"], role["seed"], role["role"])] = {
            "trial_id": t["trial_id"], "status": t["status"], METRIC: accuracy,
            M.ACTIVE_WEIGHTS: t.get(M.ACTIVE_WEIGHTS),
            M.EGF_1: egf.get((t["trial_id"], M.EGF_1)),
            M.EGF_2: egf.get((t["trial_id"], M.EGF_2))}
    missing = {"trial_id": None, "status": "missing", METRIC: None}
    levels = []
    for index, level in enumerate(plan):
        per_width = []
        for w in level["widths"]:
            pairs = []
            for dense_cfg, _ in w["configs"]:
                seed = dense_cfg[ROLE_KEY]["seed"]
                pairs.append({"seed": seed, **{
                    role: members.get((index, w["width"], seed, role), missing)
                    for role in ("dense", "sparse")}})
            per_width.append({"width": w["width"], "active_weights": w["active_weights"],
                              "sparse_density": w["sparse_density"], "layers": w["layers"],
                              "pairs": pairs})
        levels.append({"factors": level["factors"], "widths": per_width})
    opts = space.model.options
    return {"kind": "sc-sdc", "name": name, "space_file": space_path, "metric": METRIC,
            "alternative": "greater", "dataset": space.dataset.name,
            "hidden_layers": opts.hidden_layers, "epochs": space.training.epochs,
            **{k: params[k] for k in ("input_dim", "max_width", "max_width_from", "widths",
                                      "seeds", "factors")},
            "levels": compare_report(levels)}

__all__ = ["LEGEND", "format_level", "format_report", "report_document"]
