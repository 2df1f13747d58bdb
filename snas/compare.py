"""``snas compare``: Same Capacity Sparse vs Dense Comparison, SC-SDC (Tessera thesis
§3.2.1, App. A.1).

For every factor level (the cross product of the ``--factor`` values), comparison width
``N_W`` and seed, a dense MLP of width ``N_W`` and a sparse MLP of the max width ``N_MW``
with exactly as many active weights per layer (:mod:`trainables.sc_sdc`) train as Ray Tune
trials; the run is stored in the results store as one search (searcher ``sc-sdc``, one
trial per network), so ``snas list``/``snas show`` and the dashboard read it. The report
gives, per width and overall, the test accuracies (mean ± sd over seeds), EGF and a
one-sided paired Wilcoxon signed-rank test (H1: sparse > dense) on the test accuracies.

The statistics (:func:`wilcoxon_greater`, :func:`compare_report`) need neither torch nor
Ray; ``run`` imports those only after the flags and the space file are validated.
"""

from __future__ import annotations

import argparse
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snas.core import metrics as M
from snas.core.epoch_sampling import SAMPLE_POINTS, mean_over_sampled_epochs
from snas.core.errors import ConfigError, SearchError

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

METRIC = M.TEST_ACCURACY
#: Search-space keys ``--factor`` may sweep: model and training keys except those SC-SDC
#: sets itself, plus data augmentation.
RESERVED_KEYS = {
    "model.name": "SC-SDC compares MLPs",
    "model.width": "the widths come from --widths and --max-width",
    "model.bias": "SC-SDC trains without Linear biases",
    "training.seed": "seeds come from --seeds",
}
EXTRA_FACTOR_KEYS = ("dataset.augment",)
#: EGF is averaged over this many evenly spaced epochs (thesis §3.3.1).
EGF_POINTS = SAMPLE_POINTS
#: Above this many non-zero differences with ties, the p-value uses the normal
#: approximation instead of enumerating all 2^n sign assignments.
MAX_EXACT_PERMUTATION = 16
_ROUND_DECIMALS = 9


# ---------------------------------------------------------------------------------------
# Parsing --widths, --factor


def parse_widths(text: str) -> list[str]:
    """Split ``--widths`` into items and check their syntax (resolved later, when the max
    width is known): ``79`` (a width), ``10%`` (percent of the max width) or ``0.1`` (a
    fraction of it)."""
    items = [p.strip() for p in (text or "").split(",") if p.strip()]
    if not items:
        raise ConfigError(f"--widths needs at least one width, e.g. --widths 10%,30%,50% or "
                          f"--widths 79,236,394; got {text!r}")
    for item in items:
        _width_value(item, 100)
    return items


def _width_value(item: str, max_width: int) -> int:
    """One ``--widths`` item as an absolute width for ``max_width``."""
    bad = ConfigError(f"--widths items must be widths (integers >= 1), percentages of the max "
                      f"width (10%) or fractions of it (0.1), got {item!r}")
    try:
        if item.endswith("%"):
            value = float(item[:-1])
            if not 0 < value <= 100:
                raise ConfigError(f"--widths percentages must be in (0%, 100%], got {item!r}")
            fraction = value / 100
        elif any(c in item for c in ".eE"):
            fraction = float(item)
            if not 0 < fraction <= 1:
                raise ConfigError(f"--widths fractions must be in (0, 1], got {item!r}")
        else:
            width = int(item)
            if width < 1:
                raise bad
            return width
    except ValueError:
        raise bad from None
    if math.isnan(fraction):
        raise bad
    return max(1, math.floor(fraction * max_width + 0.5))


def resolve_widths(items: Sequence[str], max_width: int, max_width_from: str) -> list[int]:
    """Absolute comparison widths, ascending; each must be <= ``max_width``."""
    widths = []
    for item in items:
        width = _width_value(item, max_width)
        if width > max_width:
            raise ConfigError(f"--widths: {item} is above the max width {max_width} "
                              f"({max_width_from}); give widths <= {max_width} or raise "
                              "--max-width")
        if width in widths:
            raise ConfigError(f"--widths: {item} gives width {width} twice; give distinct "
                              "widths")
        widths.append(width)
    return sorted(widths)


def factor_keys() -> list[str]:
    """Every ``section.key`` ``--factor`` accepts."""
    import dataclasses

    from snas.core.catalog import MODELS
    from snas.core.config import SECTIONS

    keys = {f"model.{f.name}" for f in dataclasses.fields(MODELS.options("mlp"))}
    keys |= {f"training.{f.name}" for f in dataclasses.fields(SECTIONS["training"])}
    keys |= set(EXTRA_FACTOR_KEYS)
    return sorted(keys - set(RESERVED_KEYS))


def parse_factors(items: Sequence[str] | None) -> list[tuple[str, list[str]]]:
    """``["model.batch_norm=true,false", ...]`` -> ``[("model.batch_norm", ["true",
    "false"]), ...]`` (values checked later, against the space file)."""
    factors: list[tuple[str, list[str]]] = []
    allowed = factor_keys()
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        values = [v.strip() for v in raw.split(",")]
        if not sep or not key or not all(values):
            raise ConfigError(f"--factor takes section.key=value1,value2,... (e.g. "
                              f"model.batch_norm=true,false), got {item!r}")
        if key in RESERVED_KEYS:
            raise ConfigError(f"--factor {key} cannot be swept: {RESERVED_KEYS[key]}; "
                              f"allowed keys: {', '.join(allowed)}")
        if key not in allowed:
            raise ConfigError(f"--factor: unknown key {key!r}; allowed keys: "
                              f"{', '.join(allowed)}")
        if any(key == k for k, _ in factors):
            raise ConfigError(f"--factor {key} is given twice; list all its values in one "
                              f"--factor {key}=a,b")
        if len(set(values)) != len(values):
            raise ConfigError(f"--factor {key} repeats a value: {raw!r}")
        factors.append((key, values))
    return factors


def factor_levels(factors: Sequence[tuple[str, Sequence[str]]]) -> list[dict[str, str]]:
    """The cross product of the factors' values: one ``{key: value}`` per level."""
    keys = [k for k, _ in factors]
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(values for _, values in factors))]


def level_label(level: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in level.items()) or "as in the space file"


def check_compare_space(space: Any, where: str) -> None:
    """The space must describe an SC-SDC MLP: model mlp, kernel random, no biases."""
    if space.model.name != "mlp":
        raise ConfigError(f"{where}: snas compare needs model.name: mlp (SC-SDC compares "
                          f"MLPs), got {space.model.name!r}")
    if space.kernel.name != "random":
        raise ConfigError(f"{where}: snas compare needs kernel.name: random (fixed "
                          f"exact-count masks), got {space.kernel.name!r}")
    if getattr(space.kernel.options, "init_fan_in", None) is not None:
        raise ConfigError(f"{where}: remove kernel.init_fan_in: snas compare gives every "
                          "sparse layer the dense layer's fan-in itself")
    if space.model.options.bias:
        raise ConfigError(f"{where}: SC-SDC trains without Linear biases: set model.bias: "
                          "false in the file or add --set model.bias=false")


# ---------------------------------------------------------------------------------------
# Statistics (no torch, no Ray)


def wilcoxon_greater(sparse: Sequence[float], dense: Sequence[float]) -> dict[str, Any]:
    """One-sided paired Wilcoxon signed-rank test of H1: sparse > dense.

    Differences ``sparse - dense`` are rounded to 9 decimals (so float noise does not split
    ties). Zero differences are dropped (Wilcoxon's method, scipy's ``zero_method="wilcox"``)
    and ``n_used`` counts the rest. The p-value is scipy.stats.wilcoxon's with
    ``alternative="greater"``: the exact null distribution when the non-zero |differences|
    are distinct and n_used <= 50 (``method: exact``); with tied |differences| the exact
    permutation distribution over all 2^n_used sign assignments for n_used <= 16
    (``exact-permutation``), beyond that the normal approximation with tie correction
    (``normal``). No non-zero difference: no evidence for H1, p = 1 (``method: none``).
    ``statistic`` is W+, the sum of the ranks of the positive differences.
    """
    import numpy as np
    from scipy import stats

    s = np.asarray(sparse, dtype=float)
    d = np.asarray(dense, dtype=float)
    if s.ndim != 1 or s.shape != d.shape:
        raise ValueError(f"sparse and dense must be 1-d of equal length, got shapes "
                         f"{s.shape} and {d.shape}")
    diff = np.round(s - d, _ROUND_DECIMALS)
    diff = diff[np.isfinite(diff)]
    nonzero = diff[diff != 0]
    out: dict[str, Any] = {"n_pairs": int(diff.size), "n_zero": int(diff.size - nonzero.size),
                           "n_used": int(nonzero.size), "alternative": "greater"}
    if nonzero.size == 0:
        return {**out, "statistic": 0.0, "p_value": 1.0, "method": "none"}
    ties = np.unique(np.abs(nonzero)).size < nonzero.size
    if not ties and nonzero.size <= 50:
        method, arg = "exact", "exact"
    elif nonzero.size <= MAX_EXACT_PERMUTATION:
        method, arg = "exact-permutation", stats.PermutationMethod(
            n_resamples=2 ** nonzero.size)
    else:
        method, arg = "normal", "asymptotic"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's z for non-asymptotic runs
        result = stats.wilcoxon(nonzero, alternative="greater", method=arg)
    return {**out, "statistic": float(result.statistic), "p_value": float(result.pvalue),
            "method": method}


def mean_sd(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof 1; None for fewer than 2 values)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"mean": None, "sd": None, "n": 0}
    mean = sum(vals) / len(vals)
    sd = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
          if len(vals) > 1 else None)
    return {"mean": mean, "sd": sd, "n": len(vals)}


def evenly_spaced_mean(values_by_epoch: Mapping[int, float], points: int = EGF_POINTS
                       ) -> float | None:
    """Mean of a per-epoch metric at the epochs :func:`snas.core.epoch_sampling.sampled_epochs`
    picks (the same epochs as ``snas analyze``); epochs without a finite value are skipped."""
    return mean_over_sampled_epochs(values_by_epoch, points=points, missing="skip")


def _group(pairs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Summary of a list of pairs: accuracies, EGF, differences, wins, Wilcoxon."""
    complete = [p for p in pairs if p["dense"].get(METRIC) is not None
                and p["sparse"].get(METRIC) is not None]
    out: dict[str, Any] = {"n_pairs": len(complete), "n_incomplete": len(pairs) - len(complete)}
    for role in ("dense", "sparse"):
        out[role] = {key: mean_sd([p[role].get(key) for p in complete])
                     for key in (METRIC, M.EGF_2, M.EGF_1)}
    diffs = [p["sparse"][METRIC] - p["dense"][METRIC] for p in complete]
    out["difference"] = mean_sd(diffs)
    out["sparse_wins"] = sum(1 for d in diffs if round(d, _ROUND_DECIMALS) > 0)
    out["wilcoxon"] = wilcoxon_greater([p["sparse"][METRIC] for p in complete],
                                       [p["dense"][METRIC] for p in complete])
    return out


def compare_report(levels: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per level: per-width and overall summaries of its pairs.

    ``levels``: ``{"factors": {...}, "widths": [{"width", "active_weights",
    "sparse_density", "pairs": [{"seed", "dense": {...}, "sparse": {...}}]}]}``, where a
    member dict holds ``test_accuracy`` (None when the trial failed), ``egf_1``, ``egf_2``.
    """
    out = []
    for level in levels:
        per_width = [{**{k: v for k, v in w.items() if k != "pairs"}, **_group(w["pairs"]),
                      "pairs": list(w["pairs"])} for w in level["widths"]]
        all_pairs = [p for w in level["widths"] for p in w["pairs"]]
        out.append({"factors": dict(level["factors"]), "label": level_label(level["factors"]),
                    "per_width": per_width, "overall": _group(all_pairs)})
    return out


# ---------------------------------------------------------------------------------------
# Tables


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


# ---------------------------------------------------------------------------------------
# The command


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


def level_spaces(text: str, source: str, overrides: Sequence[str],
                 levels: Sequence[Mapping[str, str]]) -> list[Any]:
    """The validated space of every level: the file + ``--set`` overrides + the level's
    factor values (a bad value is a ConfigError naming the level)."""
    from snas.core.config import parse_space_text

    spaces = []
    for level in levels:
        level_overrides = [f"{k}={v}" for k, v in level.items()]
        try:
            space = parse_space_text(text, [*overrides, *level_overrides], source=source)
        except ConfigError as exc:
            if not level:
                raise
            raise ConfigError(f"--factor level {level_label(level)}: {exc}") from None
        check_compare_space(space, source if not level else
                            f"{source} with {level_label(level)}")
        spaces.append(space)
    return spaces


def run(args: argparse.Namespace) -> int:
    """Validate everything, train every pair as Tune trials, print (and write) the report."""
    from snas.commands._common import (
        absolute_data_root,
        check_output_path,
        open_store,
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
        check_output_path(args.json_out, "--json-out")

    # Heavy imports (torch, Ray) from here on, after the flags and the file are valid.
    from snas.controller import check_search_name, default_storage_path
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

    name = check_search_name(args.name if args.name is not None else _default_name(args.space))
    store = open_store(args.store)
    if store.get_search(name) is not None:
        raise SearchError(f"a search named {name!r} already exists in {store.url}; pick "
                          "another --name")
    storage = (Path(args.storage_path).expanduser().resolve() if args.storage_path
               else default_storage_path())
    experiment = storage / name
    if experiment.exists():
        raise SearchError(f"experiment folder {str(experiment)!r} already exists; pick "
                          "another --name or remove the folder")

    plan = plan_pairs(spaces, levels, widths, seeds, max_width, input_shape, num_classes)
    configs = [c for level in plan for w in level["widths"] for pair in w["configs"]
               for c in pair]
    opts = base.model.options
    print(f"snas compare {name}: SC-SDC on {base.dataset.name} ({input_dim} inputs, "
          f"{num_classes} classes), MLP with {opts.hidden_layers} hidden layers, no biases; "
          f"dense widths {', '.join(map(str, widths))} vs sparse width {max_width} "
          f"({max_from}); {len(seeds)} seeds, {len(levels)} level(s), {len(configs)} "
          f"networks of {base.training.epochs} epochs; store {store.url}", flush=True)

    from snas.controller import init_ray

    init_ray(args.address)
    store_url = args.store if args.store is not None else store.url
    params = {"kind": "sc-sdc", "metric": METRIC, "mode": "max", "max_width": max_width,
              "max_width_from": max_from, "input_dim": input_dim, "widths": widths,
              "seeds": seeds, "factors": {k: v for k, v in factors},
              "store_url": store_url, "address": args.address}
    storage.mkdir(parents=True, exist_ok=True)
    store.create_search(name, text, base.to_dict(), "sc-sdc", len(configs), str(experiment),
                        params)
    _run_trials(configs, base, name, storage, store_url, store, args.quiet,
                args.checkpoints)

    doc = _report_document(store, name, plan, params, base, args.space)
    print(f"\nSC-SDC {name}: {METRIC}, {len(seeds)} seeds per width, dense width N_W vs "
          f"sparse width {max_width}")
    print(format_report(doc))
    if args.json_out:
        write_json_atomic(args.json_out, doc)
        print(f"wrote {args.json_out}")
    return 0


def _with_seed(space: Any, seed: int) -> Any:
    import dataclasses

    return space.replace(training=dataclasses.replace(space.training, seed=seed))


def plan_pairs(spaces: Sequence[Any], levels: Sequence[Mapping[str, str]],
               widths: Sequence[int], seeds: Sequence[int], max_width: int,
               input_shape: tuple[int, ...], num_classes: int) -> list[dict[str, Any]]:
    """Per factor level (its validated space) and width: the matched layers and the
    (dense, sparse) Tune configs, one pair per seed. Imports torch."""
    from trainables.sc_sdc import pair_configs, same_capacity_pair

    plan = []
    for index, (space, level) in enumerate(zip(spaces, levels, strict=True)):
        per_width = []
        for width in widths:
            dense, sparse, layers = same_capacity_pair(space, input_shape, num_classes, width,
                                                       max_width)
            configs = []
            for seed in seeds:
                role = {"level": index, "factors": dict(level), "seed": seed}
                configs.append(pair_configs(_with_seed(dense, seed), _with_seed(sparse, seed),
                                            layers, role))
            active = sum(layer.active_weights for layer in layers)
            total = sum(math.prod(layer.sparse_shape) for layer in layers)
            per_width.append({"width": width, "active_weights": active,
                              "sparse_density": active / total,
                              "layers": [{"name": layer.name,
                                          "dense_shape": list(layer.dense_shape),
                                          "sparse_shape": list(layer.sparse_shape),
                                          "active_weights": layer.active_weights,
                                          "sparse_density": layer.sparse_density,
                                          "init_fan_in": layer.init_fan_in}
                                         for layer in layers],
                              "configs": configs})
        plan.append({"factors": dict(level), "widths": per_width})
    return plan


def _run_trials(configs: Sequence[dict[str, Any]], space: Any, name: str, storage: Path,
                store_url: str, store: Any, quiet: bool, checkpoints: bool) -> None:
    """Train every network as a Tune trial (FIFO, in the given order); mirror into the store."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from snas.controller import fit_tuner
    from trainables.sc_sdc import SameCapacityTrainable

    callback = _callback(store_url, name, space.training.epochs, len(configs), quiet)
    tuner = tune.Tuner(
        tune.with_resources(SameCapacityTrainable, {"cpu": space.resources.cpus_per_trial,
                                                    "gpu": space.resources.gpus_per_trial}),
        param_space={},
        tune_config=tune.TuneConfig(search_alg=_fixed_configs(configs),
                                    scheduler=FIFOScheduler(), num_samples=len(configs),
                                    reuse_actors=True,
                                    trial_dirname_creator=lambda t: f"trial_{t.trial_id}"),
        run_config=tune.RunConfig(
            name=name, storage_path=str(storage), callbacks=[callback], verbose=0,
            # Without checkpoints a trial has no wiring record either (the callback builds
            # it from the checkpoint): graph statistics of wide networks take many seconds.
            checkpoint_config=(tune.CheckpointConfig(num_to_keep=1, checkpoint_frequency=1,
                                                     checkpoint_at_end=True) if checkpoints
                               else tune.CheckpointConfig(checkpoint_frequency=0,
                                                          checkpoint_at_end=False)),
            failure_config=tune.FailureConfig(max_failures=space.resources.max_failures)),
    )
    trials = fit_tuner(tuner, store, name)
    unfinished = any(t["status"] in ("pending", "running") for t in trials)
    store.set_search_status(name, "interrupted" if unfinished else "finished")


def _fixed_configs(configs: Sequence[dict[str, Any]]) -> Any:
    """A Tune searcher that hands out ``configs`` in order, then reports FINISHED."""
    import copy

    from ray.tune.search import Searcher

    class FixedConfigs(Searcher):
        def __init__(self) -> None:
            super().__init__()
            self._next = 0

        def suggest(self, trial_id: str) -> dict | str | None:
            if self._next >= len(configs):
                return Searcher.FINISHED
            self._next += 1
            return copy.deepcopy(configs[self._next - 1])

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            pass

    return FixedConfigs()


def _callback(store_url: str, name: str, epochs: int, n: int, quiet: bool) -> Any:
    """The search's StoreCallback, except that no trial is the dense baseline (every dense
    network is the baseline of its own pair only) and progress lines name the network."""
    from snas.controller import StoreCallback
    from trainables.sc_sdc import ROLE_KEY

    class CompareCallback(StoreCallback):
        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            super().on_trial_start(iteration, trials, trial, **info)
            self.store.upsert_trial(self.search, trial.trial_id, is_baseline=False)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any,
                              **info: Any) -> None:
            super().on_trial_complete(iteration, trials, trial, **info)
            result = trial.last_result or {}
            value = result.get(METRIC)
            self._line(trial, f"{METRIC} {value:.4f}" if isinstance(value, float)
                       else f"stopped after {result.get(M.EPOCH, 0)} epochs")

        def on_trial_error(self, iteration: int, trials: list, trial: Any,
                           **info: Any) -> None:
            super().on_trial_error(iteration, trials, trial, **info)
            self._line(trial, "failed (snas show NAME --format json has the error)")

        def _line(self, trial: Any, what: str) -> None:
            self.done = getattr(self, "done", 0) + 1
            if not self.verbose:
                return
            role = trial.config.get(ROLE_KEY, {})
            level = (f"{level_label(role['factors'])}: " if role.get("factors") else "")
            print(f"[{self.done}/{self.num_samples}] {level}{role.get('role', '?'):<6} width "
                  f"{role.get('width', '?'):>5}, seed {role.get('seed', '?')}: {what} "
                  f"(trial {trial.trial_id})", flush=True)

    callback = CompareCallback(store_url, name, METRIC, "max", epochs, n, quiet=True)
    callback.verbose = not quiet
    return callback


def _report_document(store: Any, name: str, plan: Sequence[Mapping[str, Any]],
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


__all__ = ["DESCRIPTION", "HELP", "add_arguments", "compare_report", "evenly_spaced_mean",
           "factor_keys", "factor_levels", "format_report", "level_spaces", "mean_sd",
           "parse_factors", "parse_widths", "plan_pairs", "resolve_widths", "run",
           "wilcoxon_greater"]
