"""Reference allocations (snas.core.allocations) against hand computations and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from snas.core.allocations import (
    ALLOCATIONS,
    erk,
    global_magnitude,
    matching_cost,
    reference_allocation,
    uniform,
)
from snas.core.budget import cost_model_from_layers
from snas.core.density import kept_count
from snas.core.errors import ConfigError


def table(*shapes, positions=None) -> list[dict]:
    positions = positions or [1] * len(shapes)
    return [{"name": f"layer{i}", "shape": list(shape), "positions": p}
            for i, (shape, p) in enumerate(zip(shapes, positions, strict=True))]


MLP = table((256, 784), (256, 256), (10, 256))
# a small CNN: two 3x3 convs (32x32 then 16x16 output positions) and a Linear head
CNN = table((16, 3, 3, 3), (32, 16, 3, 3), (10, 2048), positions=[1024, 256, 1])


def kept(layers, density, resource="weights") -> list[int]:
    model = cost_model_from_layers(layers, resource)
    return [kept_count(d, n) for d, n in zip(density, model.numel, strict=True)]


def cost(layers, density, resource="weights") -> int:
    return cost_model_from_layers(layers, resource).cost(density)


def assert_at_target(layers, density, target_fraction, resource="weights") -> None:
    """Within the target cost and under one weight (its cost) per layer below it."""
    model = cost_model_from_layers(layers, resource)
    target = target_fraction * model.dense_cost
    assert all(0.0 < d <= 1.0 for d in density)
    assert target - sum(model.unit_costs) < model.cost(density) <= target + 1e-6


def dense_weights(layers, seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # different scales per layer, so the global ranking favours some layers
    return [rng.normal(scale=1.0 + i, size=layer["shape"]) for i, layer in enumerate(layers)]


# ---------------------------------------------------------------------------------------
# ERK


def test_erk_mlp_by_hand_without_capping():
    # d_l * n_l = eps * (out + in): at 5 % of 268800 weights, eps = 13440 / (1040 + 512 + 266)
    eps = 0.05 * (200704 + 65536 + 2560) / (1040 + 512 + 266)
    hand = [eps * 1040 / 200704, eps * 512 / 65536, eps * 266 / 2560]
    assert max(hand) < 1  # nothing capped at this target
    got = erk(MLP, 0.05)
    assert_at_target(MLP, got, 0.05)
    for d, h, n in zip(got, hand, (200704, 65536, 2560), strict=True):
        assert abs(d - h) * n <= len(MLP)  # within the rounding of the kept counts
    assert got[0] / got[1] == pytest.approx((1040 / 200704) / (512 / 65536))


def test_erk_caps_a_small_last_layer_at_one():
    # at 10 %: eps = 26880 / 1818 = 14.8 gives the head 14.8 * 266 / 2560 = 1.54 > 1, so the
    # head is dense and eps = (26880 - 2560) / (1040 + 512) over the other two
    first_eps = 26880 / 1818
    assert first_eps * 266 / 2560 > 1
    eps = (26880 - 2560) / (1040 + 512)
    hand = [eps * 1040 / 200704, eps * 512 / 65536, 1.0]
    got = erk(MLP, 0.10)
    assert got[2] == 1.0
    assert_at_target(MLP, got, 0.10)
    for d, h, n in zip(got[:2], hand[:2], (200704, 65536), strict=True):
        assert abs(d - h) * n <= len(MLP)


def rigl_erk(layers, target_fraction) -> list[float]:
    """RigL's procedure, written out: solve eps, set the layers above 1 dense, repeat."""
    numel = [math.prod(layer["shape"]) for layer in layers]
    ratio = [sum(layer["shape"]) / n for layer, n in zip(layers, numel, strict=True)]
    target = target_fraction * sum(numel)
    is_dense = [False] * len(layers)
    while True:
        left = target - sum(n for n, d in zip(numel, is_dense, strict=True) if d)
        eps = left / sum(r * n for r, n, d in zip(ratio, numel, is_dense, strict=True) if not d)
        over = [not d and eps * r > 1 for r, d in zip(ratio, is_dense, strict=True)]
        if not any(over):
            return [1.0 if d else eps * r for r, d in zip(ratio, is_dense, strict=True)]
        is_dense = [d or o for d, o in zip(is_dense, over, strict=True)]


def test_erk_matches_rigl_iteration_when_capping_takes_two_rounds():
    layers = table((256, 784), (64, 256), (10, 64), (10, 10))
    got, hand = erk(layers, 0.3), rigl_erk(layers, 0.3)
    assert hand.count(1.0) >= 2  # the first round caps the last layer, the next one more
    assert_at_target(layers, got, 0.3)
    for d, h, layer in zip(got, hand, layers, strict=True):
        assert abs(d - h) * math.prod(layer["shape"]) <= len(layers)


def test_erk_conv_counts_the_kernel_dimensions():
    # conv (out, in, kh, kw): r = (out + in + kh + kw) / (out * in * kh * kw)
    ratios = [(16 + 3 + 3 + 3) / 432, (32 + 16 + 3 + 3) / 4608, (10 + 2048) / 20480]
    eps = 0.1 * (432 + 4608 + 20480) / (25 + 54 + 2058)
    got = erk(CNN, 0.1)
    assert_at_target(CNN, got, 0.1)
    for d, r, n in zip(got, ratios, (432, 4608, 20480), strict=True):
        assert abs(d - eps * r) * n <= len(CNN)


def test_erk_flops_target_scales_the_same_shape():
    # FLOPs of layer l = eps * sum(shape_l) * positions_l when nothing is capped
    flops_per_eps = 25 * 1024 + 54 * 256 + 2058 * 1
    dense_flops = 432 * 1024 + 4608 * 256 + 20480
    eps = 0.05 * dense_flops / flops_per_eps
    got = erk(CNN, 0.05, "flops")
    assert_at_target(CNN, got, 0.05, "flops")
    for d, r in zip(got, [25 / 432, 54 / 4608, 2058 / 20480], strict=True):
        assert d == pytest.approx(eps * r, rel=1e-3)
    weights_erk = erk(CNN, 0.05)
    assert got[0] / got[1] == pytest.approx(weights_erk[0] / weights_erk[1], rel=1e-3)


def test_erk_holds_a_layer_at_one_weight_rather_than_zero():
    # 5 weights: ERK puts eps * 8192 in the big layer and eps * 4 (far below one) in the
    # small one, which is held at one weight (density 1 / 4) while the big layer gets 4
    layers = table((4096, 4096), (2, 2))
    got = erk(layers, 5 / (4096 * 4096 + 4))
    assert kept(layers, got) == [4, 1]
    assert got[1] == 0.25


# ---------------------------------------------------------------------------------------
# Uniform, dense


@pytest.mark.parametrize("resource", ["weights", "flops"])
@pytest.mark.parametrize("fraction", [0.01, 0.2, 0.5, 0.93, 1.0])
def test_uniform_is_one_density_at_the_target(resource, fraction):
    got = uniform(CNN, fraction, resource)
    assert len(set(got)) == 1
    assert_at_target(CNN, got, fraction, resource)


def test_uniform_mlp_by_hand():
    # 20 % of 268800 = 53760: round(0.2 * 200704) + round(0.2 * 65536) + 512 = 53760
    got = uniform(MLP, 0.2)
    assert got[0] == pytest.approx(0.2, abs=1e-5)
    assert kept(MLP, got) == [40141, 13107, 512]


def test_dense_is_all_ones():
    assert reference_allocation("dense", CNN, 0.3) == [1.0, 1.0, 1.0]
    assert reference_allocation("uniform", CNN, 1.0) == [1.0, 1.0, 1.0]
    assert reference_allocation("erk", CNN, 1.0, "flops") == [1.0, 1.0, 1.0]


# ---------------------------------------------------------------------------------------
# Global magnitude


def brute_force_global(layers, weights, target_cost, unit_costs) -> list[int]:
    """Kept weights per layer: walk one global stable descending sort of |w| and keep
    each weight while the cost still fits (the rule without the one-weight floor)."""
    flat = np.concatenate([np.abs(w).reshape(-1) for w in weights])
    owner = np.concatenate([[i] * w.size for i, w in enumerate(weights)])
    counts, spent = [0] * len(layers), 0
    for index in sorted(range(flat.size), key=lambda j: (-flat[j], j)):
        step = unit_costs[owner[index]]
        if spent + step > target_cost:
            break
        spent += step
        counts[owner[index]] += 1
    return counts


@pytest.mark.parametrize("fraction", [0.06, 0.3, 0.77])
def test_global_magnitude_is_a_global_sort_of_the_weights(fraction):
    layers = table((40, 50), (30, 40), (10, 30))
    weights = dense_weights(layers)
    target = math.floor(fraction * (2000 + 1200 + 300))
    expected = brute_force_global(layers, weights, target, [1, 1, 1])
    assert min(expected) > 0  # the floor does not bind here
    got = global_magnitude(layers, fraction, weights)
    assert kept(layers, got) == expected
    assert [d * math.prod(layer["shape"]) for d, layer in zip(got, layers, strict=True)] == \
        pytest.approx(expected)
    # the same as keeping the K globally largest |w|
    flat = np.concatenate([np.abs(w).reshape(-1) for w in weights])
    top = np.argsort(-flat, kind="stable")[:target]
    assert np.bincount(np.searchsorted([2000, 3200], top, side="right"),
                       minlength=3).tolist() == expected


def test_global_magnitude_ties_break_by_lower_layer_then_index():
    layers = table((4, 5), (4, 5))
    weights = [np.ones((4, 5)), -np.ones((4, 5))]  # every |w| equal
    got = global_magnitude(layers, 0.5, weights)
    assert kept(layers, got) == [19, 1]  # layer 0 first, layer 1 keeps its floor


def test_global_magnitude_flops_uses_one_global_threshold():
    layers = table((8, 3, 3, 3), (16, 8, 3, 3), (10, 256), positions=[64, 16, 1])
    weights = dense_weights(layers, seed=3)
    model = cost_model_from_layers(layers, "flops")
    for fraction in (0.05, 0.4, 0.9):
        target = math.floor(fraction * model.dense_cost)
        got = global_magnitude(layers, fraction, weights, "flops")
        assert_at_target(layers, got, fraction, "flops")
        expected = brute_force_global(layers, weights, target, model.unit_costs)
        if min(expected) > 0:
            assert kept(layers, got) == expected
        # a global threshold: every kept |w| is at least every dropped |w|
        masks = []
        for w, k in zip(weights, kept(layers, got), strict=True):
            flat = np.abs(w).reshape(-1)
            keep = np.zeros(flat.size, dtype=bool)
            keep[np.argsort(-flat, kind="stable")[:k]] = True
            masks.append((flat[keep], flat[~keep]))
        smallest_kept = min(k.min() for k, _ in masks)
        largest_dropped = max((d.max() for _, d in masks if d.size), default=-1.0)
        assert smallest_kept >= largest_dropped or min(expected) == 0


def test_global_magnitude_keeps_one_weight_in_a_layer_of_tiny_weights():
    layers = table((20, 30), (10, 20))
    weights = [np.random.default_rng(0).normal(size=(20, 30)), np.full((10, 20), 1e-6)]
    weights[1][3, 7] = 2e-6  # that layer's largest |w|
    got = global_magnitude(layers, 0.25, weights)
    assert kept(layers, got) == [math.floor(0.25 * 800) - 1, 1]
    assert got[1] == 1 / 200


def test_global_magnitude_takes_weights_by_layer_name():
    layers = table((12, 10), (6, 12))
    weights = dense_weights(layers)
    by_name = {layer["name"]: w for layer, w in zip(layers, weights, strict=True)}
    assert global_magnitude(layers, 0.4, by_name) == global_magnitude(layers, 0.4, weights)


# ---------------------------------------------------------------------------------------
# At a candidate's cost


@pytest.mark.parametrize("resource", ["weights", "flops"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_references_at_a_candidates_cost_match_it(resource, seed):
    rng = np.random.default_rng(seed)
    candidate = rng.uniform(0.02, 0.9, size=len(CNN)).tolist()
    fraction = matching_cost(CNN, candidate, resource)
    model = cost_model_from_layers(CNN, resource)
    assert fraction == model.cost(candidate) / model.dense_cost
    weights = dense_weights(CNN, seed)
    for name in ("uniform", "erk", "global_magnitude"):
        ref = reference_allocation(name, CNN, fraction, resource, weights=weights)
        # never above the candidate's cost, and less by under one weight per layer
        assert 0 <= model.cost(candidate) - model.cost(ref) < sum(model.unit_costs), name
        if resource == "weights":
            assert abs(sum(kept(CNN, ref)) - sum(kept(CNN, candidate))) < len(CNN)


def test_a_candidate_cost_fraction_gives_that_cost_back():
    """cost / dense as a float may land below the cost it came from; the target still
    allows that cost (a uniform candidate is its own uniform reference)."""
    for d in np.linspace(0.013, 0.97, 37):
        candidate = [float(d)] * len(MLP)
        ref = uniform(MLP, matching_cost(MLP, candidate))
        assert cost(MLP, ref) == cost(MLP, candidate)


# ---------------------------------------------------------------------------------------
# Errors


def test_unknown_name_lists_the_choices():
    with pytest.raises(ConfigError) as err:
        reference_allocation("x", MLP, 0.5)
    assert str(err.value) == ("unknown reference allocation 'x'; choose one of dense, erk, "
                              "global_magnitude, uniform")
    assert sorted(ALLOCATIONS) == ["dense", "erk", "global_magnitude", "uniform"]


def test_global_magnitude_without_weights_is_a_config_error():
    with pytest.raises(ConfigError, match="needs the trained dense network's weights"):
        reference_allocation("global_magnitude", MLP, 0.5)


@pytest.mark.parametrize("name", ["uniform", "erk", "global_magnitude"])
@pytest.mark.parametrize("resource", ["weights", "flops"])
def test_a_target_below_the_cheapest_network_is_a_config_error(name, resource):
    model = cost_model_from_layers(CNN, resource)
    cheapest = sum(model.unit_costs) / model.dense_cost
    weights = dense_weights(CNN)
    ref = reference_allocation(name, CNN, cheapest, resource, weights=weights)
    assert kept(CNN, ref) == [1, 1, 1]
    with pytest.raises(ConfigError, match="below the cheapest network") as err:
        reference_allocation(name, CNN, cheapest * 0.99, resource, weights=weights)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, True, "0.5", float("nan")])
def test_target_fraction_must_be_in_range(fraction):
    for name in ALLOCATIONS:
        with pytest.raises(ConfigError, match=r"target_fraction must be a number in \(0, 1\]"):
            reference_allocation(name, MLP, fraction, weights=dense_weights(MLP))


def test_global_magnitude_checks_the_weight_arrays():
    weights = dense_weights(MLP)
    with pytest.raises(ConfigError, match="have shape"):
        global_magnitude(MLP, 0.5, [weights[0].T, weights[1], weights[2]])
    with pytest.raises(ConfigError, match="2 weight arrays for 3 layers"):
        global_magnitude(MLP, 0.5, weights[:2])
    with pytest.raises(ConfigError, match="missing layer2"):
        global_magnitude(MLP, 0.5, {"layer0": weights[0], "layer1": weights[1]})
    weights[2][0, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        global_magnitude(MLP, 0.5, weights)


def test_module_is_torch_free():
    import subprocess
    import sys

    code = ("import sys, snas.core.allocations; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
