"""snas compare (SC-SDC): the Wilcoxon test, width/factor parsing, bad input, a real run."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from snas.cli import main
from snas.compare.plan import factor_levels, parse_factors, parse_widths, resolve_widths
from snas.compare.report import format_report
from snas.compare.stats import evenly_spaced_mean, wilcoxon_greater
from snas.core.errors import ConfigError
from snas.store import ResultsStore

ROOT = Path(__file__).parents[2]
DIGITS = str(ROOT / "search_spaces" / "compare_mlp_digits.yaml")
MNIST = str(ROOT / "search_spaces" / "compare_mlp_mnist5k.yaml")


# ---- the test ---------------------------------------------------------------------------


def _brute_force_p(diffs):
    """P(W+ >= observed) over all 2^n sign assignments, midranks of |d| (zeros dropped)."""
    d = np.asarray([x for x in diffs if x != 0], dtype=float)
    ranks = stats.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    hits = sum(1 for signs in itertools.product((0, 1), repeat=len(d))
               if ranks[np.array(signs, dtype=bool)].sum() >= observed - 1e-9)
    return hits / 2 ** len(d)


def test_all_five_positive_gives_one_in_32():
    test = wilcoxon_greater([0.91, 0.82, 0.73, 0.94, 0.85], [0.9, 0.8, 0.7, 0.9, 0.8])
    assert test["p_value"] == pytest.approx(1 / 32)
    assert test["statistic"] == 15 and test["method"] == "exact" and test["n_used"] == 5
    # one negative, the smallest |d|: only W+ = 15 and 14 are as extreme -> 2/32
    test = wilcoxon_greater([0.0, 0.2, 0.3, 0.4, 0.5], [0.01, 0.0, 0.0, 0.0, 0.0])
    assert test["statistic"] == 14 and test["p_value"] == pytest.approx(2 / 32)
    assert wilcoxon_greater([1, 1, 1], [0, 0, 0])["p_value"] == pytest.approx(1 / 8)


@pytest.mark.parametrize("sparse,dense", [
    ([0.912, 0.883, 0.934, 0.856, 0.905, 0.871], [0.900, 0.890, 0.900, 0.800, 0.860, 0.880]),
    ([0.5, 0.6, 0.7, 0.8], [0.55, 0.62, 0.77, 0.9]),
    (list(np.linspace(0.1, 0.9, 12) + np.linspace(-0.05, 0.3, 12) ** 3),
     list(np.linspace(0.1, 0.9, 12))),
])
def test_p_value_equals_scipy_without_ties(sparse, dense):
    ours = wilcoxon_greater(sparse, dense)
    theirs = stats.wilcoxon(sparse, dense, alternative="greater", method="exact")
    assert ours["method"] == "exact"
    assert ours["p_value"] == pytest.approx(theirs.pvalue, rel=1e-12)
    assert ours["statistic"] == theirs.statistic
    assert ours["p_value"] == pytest.approx(_brute_force_p(np.subtract(sparse, dense)))


def test_ties_and_zeros_use_the_exact_permutation_distribution():
    # accuracies on a 1000-image test set: equal differences tie, equal accuracies are zero
    sparse = [0.912, 0.905, 0.930, 0.871, 0.900, 0.888, 0.921]
    dense = [0.910, 0.903, 0.930, 0.870, 0.899, 0.890, 0.915]
    test = wilcoxon_greater(sparse, dense)
    assert test["n_pairs"] == 7 and test["n_zero"] == 1 and test["n_used"] == 6
    assert test["method"] == "exact-permutation"
    assert test["p_value"] == pytest.approx(_brute_force_p(np.subtract(sparse, dense)))
    # the same as scipy on the non-zero differences (scipy 'auto' enumerates for n <= 13)
    nonzero = [d for d in np.round(np.subtract(sparse, dense), 9) if d != 0]
    assert test["p_value"] == pytest.approx(
        stats.wilcoxon(nonzero, alternative="greater").pvalue)


def test_no_nonzero_difference_is_p_one_and_larger_samples_use_the_normal_approximation():
    assert wilcoxon_greater([0.9, 0.8], [0.9, 0.8]) == {
        "n_pairs": 2, "n_zero": 2, "n_used": 0, "alternative": "greater", "statistic": 0.0,
        "p_value": 1.0, "method": "none"}
    d = [0.01] * 10 + [-0.02] * 10  # ties, n = 20 > 16
    test = wilcoxon_greater(d, [0.0] * 20)
    assert test["method"] == "normal"
    assert test["p_value"] == pytest.approx(
        stats.wilcoxon(d, alternative="greater", method="asymptotic").pvalue)
    with pytest.raises(ValueError, match="equal length"):
        wilcoxon_greater([1, 2], [1])


def test_egf_mean_over_evenly_spaced_epochs():
    values = {e: float(e) for e in range(1, 22)}  # 21 epochs: every second one, 11 points
    assert evenly_spaced_mean(values) == pytest.approx(np.mean(range(1, 22, 2)))
    assert evenly_spaced_mean({1: 2.0, 2: 4.0, 3: math.nan}) == pytest.approx(3.0)
    assert evenly_spaced_mean({}) is None
    assert evenly_spaced_mean({5: 7.0}) == 7.0


# ---- parsing ---------------------------------------------------------------------------


def test_widths_as_percentages_fractions_and_integers():
    assert resolve_widths(parse_widths("10%,30%,50%"), 788, "x") == [79, 236, 394]
    assert resolve_widths(parse_widths("0.9, 0.1"), 3076, "x") == [308, 2768]
    assert resolve_widths(parse_widths("5,100%"), 68, "x") == [5, 68]
    assert resolve_widths(parse_widths("1%"), 68, "x") == [1]  # at least 1
    with pytest.raises(ConfigError, match="above the max width 68"):
        resolve_widths(parse_widths("69"), 68, "input dimension 64 + 4")
    with pytest.raises(ConfigError, match="twice"):
        resolve_widths(parse_widths("34,50%"), 68, "x")
    for bad in ("", " , ", "0", "-3", "abc", "150%", "1.5", "nan", "0%"):
        with pytest.raises(ConfigError, match="--widths"):
            parse_widths(bad)


def test_factors_cross_product_and_errors():
    factors = parse_factors(["model.batch_norm=true,false", "training.optimizer=sgd,adamw"])
    assert factor_levels(factors) == [
        {"model.batch_norm": "true", "training.optimizer": "sgd"},
        {"model.batch_norm": "true", "training.optimizer": "adamw"},
        {"model.batch_norm": "false", "training.optimizer": "sgd"},
        {"model.batch_norm": "false", "training.optimizer": "adamw"}]
    assert factor_levels([]) == [{}]
    with pytest.raises(ConfigError, match="unknown key 'model.batchnorm'; allowed keys: .*"
                                          "model.batch_norm"):
        parse_factors(["model.batchnorm=true,false"])
    with pytest.raises(ConfigError, match="cannot be swept: the widths come from --widths"):
        parse_factors(["model.width=3,4"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_factors(["model.skip=true", "model.skip=false"])
    with pytest.raises(ConfigError, match="section.key=value1,value2"):
        parse_factors(["model.skip"])


def test_report_table_from_hand_made_pairs():
    from snas.compare.stats import compare_report

    def pair(seed, d, s):
        return {"seed": seed, "dense": {"test_accuracy": d, "egf_1": 1.0, "egf_2": 0.5},
                "sparse": {"test_accuracy": s, "egf_1": 2.0, "egf_2": 0.25}}

    levels = [{"factors": {"model.skip": "true"}, "widths": [
        {"width": 7, "active_weights": 665, "sparse_density": 0.035,
         "pairs": [pair(0, 0.80, 0.90), pair(1, 0.70, 0.75), pair(2, 0.60, 0.62)]},
        {"width": 20, "active_weights": 2680, "sparse_density": 0.14,
         "pairs": [pair(0, 0.90, 0.91), pair(1, 0.85, 0.80),
                   {"seed": 2, "dense": {"test_accuracy": None}, "sparse": {}}]}]}]
    report = compare_report(levels)[0]
    first, second = report["per_width"]
    assert first["wilcoxon"]["p_value"] == pytest.approx(1 / 8)
    assert first["dense"]["test_accuracy"]["mean"] == pytest.approx(0.7)
    assert first["dense"]["test_accuracy"]["sd"] == pytest.approx(0.1)
    assert second["n_pairs"] == 2 and second["n_incomplete"] == 1
    overall = report["overall"]
    assert overall["n_pairs"] == 5 and overall["sparse_wins"] == 4
    # |+0.05| and |-0.05| tie once rounded (in floats they differ, and scipy on the raw
    # pairs would rank them apart): the exact permutation distribution decides
    diffs = np.round(np.subtract([0.90, 0.75, 0.62, 0.91, 0.80], [0.80, 0.70, 0.60, 0.90, 0.85]),
                     9)
    assert overall["wilcoxon"]["method"] == "exact-permutation"
    assert overall["wilcoxon"]["p_value"] == pytest.approx(_brute_force_p(diffs))
    text = format_report({"levels": [report]})
    assert "model.skip=true" in text and "0.1250" in text and "0.7000 ± 0.1000" in text


# ---- the command -----------------------------------------------------------------------


@pytest.mark.parametrize("argv,message", [
    ([DIGITS, "--widths", "10%", "--factor", "model.colour=red,blue"],
     "--factor: unknown key 'model.colour'; allowed keys:"),
    ([DIGITS, "--widths", "10%", "--factor", "model.activation=relu,tanh"],
     "model.activation must be one of 'relu', 'prelu', 'swish', 'elu', 'sigmoid', got 'tanh'"),
    ([DIGITS, "--widths", "10,69"], "--widths: 69 is above the max width 68 (input dimension "
                                    "64 + 4)"),
    ([DIGITS, "--widths", "30", "--max-width", "20"], "above the max width 20 (--max-width)"),
    ([DIGITS, "--widths", ""], "--widths needs at least one width"),
    ([DIGITS], "the following arguments are required: --widths"),
    ([DIGITS, "--widths", "10%", "--seeds", "0"], "--seeds must be an integer >= 1"),
    ([DIGITS, "--widths", "10%", "--set", "model.bias=true"], "set model.bias: false"),
    ([DIGITS, "--widths", "10%", "--set", "kernel.name=dnw"], "needs kernel.name: random"),
    ([DIGITS, "--widths", "10%", "--name", "bad name"], "search name must be"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    db = tmp_path / "results.db"
    try:
        code = main(["compare", *argv, "--store", f"sqlite:///{db}",
                     "--storage-path", str(tmp_path / "exp")])
    except SystemExit as exc:  # argparse's own errors (a missing flag)
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "exp").exists()
    if db.exists():
        assert ResultsStore(f"sqlite:///{db}").list_searches() == []


def test_compare_digits_end_to_end(ray_address, tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/results.db"
    out = tmp_path / "report.json"
    code = main(["compare", DIGITS, "--widths", "10%,20,50%", "--seeds", "3",
                 "--name", "scsdc", "--store", url, "--storage-path", str(tmp_path / "exp"),
                 "--set", "training.epochs=2", "--set", "model.hidden_layers=2",
                 "--json-out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "p (H1: s > d)" in printed and "dense acc" in printed
    rows = [line.split() for line in printed.splitlines()
            if line.split() and line.split()[0] in ("7", "20", "34", "all")]
    assert [r[0] for r in rows] == ["7", "20", "34", "all"]
    doc = json.loads(out.read_text())
    assert doc["max_width"] == 68 and doc["widths"] == [7, 20, 34] and doc["seeds"] == [0, 1, 2]
    (level,) = doc["levels"]
    pairs = [p for w in level["per_width"] for p in w["pairs"]]
    assert len(pairs) == 9
    sparse = [p["sparse"]["test_accuracy"] for p in pairs]
    dense = [p["dense"]["test_accuracy"] for p in pairs]
    assert None not in sparse and None not in dense
    # the printed and stored p-value is scipy's one-sided test on the stored pairs
    expected = wilcoxon_greater(sparse, dense)["p_value"]
    assert level["overall"]["wilcoxon"]["p_value"] == pytest.approx(expected)
    assert f"{expected:.4f}" in " ".join(rows[-1])

    store = ResultsStore(url)
    record = store.get_search("scsdc")
    assert record["status"] == "finished" and record["searcher"] == "sc-sdc"
    assert record["params"]["kind"] == "sc-sdc"
    trials = store.trials("scsdc")
    assert len(trials) == 18 and all(t["status"] == "terminated" for t in trials)
    assert not any(t["is_baseline"] for t in trials)
    by_role = {(t["config"]["sc_sdc"]["width"], t["config"]["sc_sdc"]["seed"],
                t["config"]["sc_sdc"]["role"]): t for t in trials}
    for w in level["per_width"]:
        shapes = [layer["sparse_shape"] for layer in w["layers"]]
        counts = [layer["active_weights"] for layer in w["layers"]]
        for seed in (0, 1, 2):
            d, s = by_role[(w["width"], seed, "dense")], by_role[(w["width"], seed, "sparse")]
            assert d["active_weights"] == s["active_weights"] == w["active_weights"]
            # per layer: the sparse network's realised density x its shape = dense count
            assert [round(r * a * b) for r, (a, b) in zip(s["realized_density"], shapes,
                                                          strict=True)] == counts
            assert d["test_accuracy"] == pytest.approx(
                next(p for p in w["pairs"] if p["seed"] == seed)["dense"]["test_accuracy"])
    assert main(["show", "scsdc", "--store", url]) == 0
    assert "sc-sdc searcher, 18/18 trials" in capsys.readouterr().out


def test_factor_levels_change_both_members_of_every_pair():
    from snas.compare.plan import level_spaces, plan_pairs

    text = Path(DIGITS).read_text()
    levels = factor_levels(parse_factors(["model.batch_norm=true,false",
                                          "training.weight_decay=0,0.0001"]))
    spaces = level_spaces(text, DIGITS, ["model.hidden_layers=2"], levels)
    plan = plan_pairs(spaces, levels, [5, 17], [3, 4], 68, (1, 8, 8), 10)
    assert [level["factors"] for level in plan] == levels
    for level in plan:
        batch_norm = level["factors"]["model.batch_norm"] == "true"
        decay = float(level["factors"]["training.weight_decay"])
        for w in level["widths"]:
            assert [layer["active_weights"] for layer in w["layers"]] == (
                [64 * w["width"], w["width"] ** 2, w["width"] * 10])
            for seed, (dense, sparse) in zip((3, 4), w["configs"], strict=True):
                for cfg, width in ((dense, w["width"]), (sparse, 68)):
                    assert cfg["space"]["model"]["batch_norm"] is batch_norm
                    assert cfg["space"]["model"]["width"] == width
                    assert cfg["space"]["training"]["weight_decay"] == decay
                    assert cfg["space"]["training"]["seed"] == seed
                    assert cfg["sc_sdc"]["factors"] == level["factors"]
    with pytest.raises(ConfigError, match="--factor level model.skip=maybe: .*model.skip must "
                                          "be true or false"):
        level_spaces(text, DIGITS, [], factor_levels(parse_factors(["model.skip=maybe"])))
