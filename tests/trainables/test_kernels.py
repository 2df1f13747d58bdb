"""Masking kernels: exact counts, gradient semantics, caching, state_dict round trips.

Every test parametrised over ``KERNELS`` runs against every registered kernel.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from snas.core.config import KernelConfig
from trainables.kernels import (
    KERNELS,
    DeviceTopK,
    IncrementalTopK,
    MaskedConv2d,
    MaskedLinear,
    kept_count,
    make_kernel,
    reference_topk_mask,
    selector_class,
)


def kernel(name: str):
    return make_kernel(KernelConfig(name=name))


def linear(name: str, density: float, shape=(12, 20), seed=0) -> MaskedLinear:
    layer = MaskedLinear(shape[1], shape[0], bias=True, kernel=kernel(name))
    layer.configure(density, torch.Generator().manual_seed(seed))
    return layer


def sgd_steps(layer: nn.Module, steps: int = 5, lr: float = 0.5) -> None:
    opt = torch.optim.SGD([p for p in layer.parameters() if p.requires_grad], lr=lr,
                          momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(1)
    layer.train()
    for _ in range(steps):
        x = torch.randn(16, layer.weight.shape[1], generator=gen)
        opt.zero_grad()
        layer(x).square().mean().backward()
        opt.step()


def test_registry_matches_config_options():
    KERNEL_OPTIONS = {name: KERNELS.options(name) for name in KERNELS}  # each entry has its own
    assert set(KERNELS) == set(KERNEL_OPTIONS)


@pytest.mark.parametrize("density,numel,expected", [
    (0.5, 10, 5), (0.01, 10, 1), (1.0, 7, 7), (0.25, 6, 2), (0.35, 10, 4), (1e-9, 100, 1),
])
def test_kept_count(density, numel, expected):
    assert kept_count(density, numel) == expected == min(numel, max(1, round(density * numel)))


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_kept_count_rejects_bad_density(bad):
    with pytest.raises(ValueError, match="density must be in"):
        kept_count(bad, 10)


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("density", [0.05, 0.3, 0.5, 0.77, 1.0])
def test_realized_count_is_exact(name, density):
    layer = linear(name, density)
    assert layer.active_weights == kept_count(density, layer.weight.numel())
    sgd_steps(layer)
    layer(torch.randn(3, 20))  # one more training forward: dnw/edge_popup re-select
    assert layer.active_weights == kept_count(density, layer.weight.numel())
    if hasattr(layer.kernel, "epoch_end"):
        layer.kernel.epoch_end(layer, torch.Generator().manual_seed(3))
        assert layer.active_weights == kept_count(density, layer.weight.numel())


def test_topk_exact_with_ties_matches_reference_sort():
    gen = torch.Generator().manual_seed(0)
    for trial in range(20):
        n = int(torch.randint(5, 400, (1,), generator=gen))
        values = torch.randint(0, 4, (n,), generator=gen).float()  # heavy ties
        k = int(torch.randint(1, n + 1, (1,), generator=gen))
        sel = IncrementalTopK(k, n)
        for _ in range(3):
            mask = sel.select(values)
            assert int(mask.sum()) == k
            assert torch.equal(mask, reference_topk_mask(values, k))
            values = values + torch.randint(-1, 2, (n,), generator=gen).float() * 0.5


def test_topk_constant_tensor_and_tie_rule():
    values = torch.zeros(10)
    mask = IncrementalTopK(4, 10).select(values)
    assert mask.tolist() == [True] * 4 + [False] * 6  # ties: lower flat index first


def test_incremental_topk_tracks_drifting_values_exactly():
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(5000, generator=gen).abs()
    sel = IncrementalTopK(1234, 5000)
    for _ in range(40):
        values = (values + 0.01 * torch.randn(5000, generator=gen)).abs()
        assert torch.equal(sel.select(values), reference_topk_mask(values, 1234))
    assert sel.hits > sel.rebuilds  # the band usually holds: the fast path is the common one


@pytest.mark.parametrize("name", ["dnw", "edge_popup"])
def test_topk_kernels_masks_equal_reference_sort(name):
    layer = linear(name, 0.4, shape=(30, 40))
    sgd_steps(layer, steps=3)
    layer.train()
    layer(torch.randn(2, 40))
    magnitude = (layer.scores if name == "edge_popup" else layer.weight).detach().abs()
    assert torch.equal(layer.mask, reference_topk_mask(magnitude, layer.k))


def test_dnw_gradient_reaches_pruned_weights():
    layer = linear("dnw", 0.3)
    layer.train()
    x = torch.randn(8, 20)
    layer(x).sum().backward()
    pruned = ~layer.mask
    assert pruned.any()
    assert (layer.weight.grad[pruned] != 0).any()
    # straight-through: weight.grad equals dC/dW_eff everywhere (as if unmasked) ...
    expected = torch.ones(8, 12).T @ x
    torch.testing.assert_close(layer.weight.grad, expected)
    # ... but nothing flows through pruned edges to the input.
    x2 = x.clone().requires_grad_(True)
    layer.zero_grad()
    layer(x2).sum().backward()
    eff = layer.weight.detach() * layer.mask
    torch.testing.assert_close(x2.grad, torch.ones(8, 12) @ eff)


def test_edge_popup_trains_only_scores():
    from snas.core.config import ModelConfig
    from trainables.models import build_model

    k = kernel("edge_popup")
    model = build_model(ModelConfig(), k, (1, 8, 8), 10, 0.5, torch.Generator().manual_seed(0))
    before = {n: t.clone() for n, t in model.state_dict().items()}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith("scores") for n in trainable)
    assert not any(isinstance(m, nn.BatchNorm1d) and m.affine for m in model.modules())
    assert all(getattr(m, "bias", None) is None for m in model.modules()
               if isinstance(m, MaskedLinear))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1,
                          momentum=0.9, weight_decay=1e-4)
    model.train()
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(torch.randn(32, 1, 8, 8)),
                                    torch.randint(0, 10, (32,))).backward()
        opt.step()
    after = model.state_dict()
    for name, value in before.items():
        if name.endswith("scores"):
            assert not torch.equal(value, after[name]), name
        elif name.endswith("weight") or "prelu" in name.lower():
            assert torch.equal(value, after[name]), name  # frozen random weights, PReLU
    # BN running stats are kept (they are statistics, not trained parameters)
    assert any(n.endswith("running_mean") and not torch.equal(before[n], after[n])
               for n in before)


@pytest.mark.parametrize("init", ["signed_constant", "kaiming_normal", "scaled_signed_constant",
                                  "scaled_kaiming_normal"])
def test_edge_popup_weight_inits(init):
    from snas.core.catalog import EdgePopupKernelOptions
    from trainables.kernels import EdgePopupKernel

    density = 0.25
    layer = MaskedLinear(400, 300, bias=False, kernel=EdgePopupKernel(EdgePopupKernelOptions(init)))
    layer.configure(density, torch.Generator().manual_seed(0))
    sigma = (2 / 400) ** 0.5 / (density ** 0.5 if init.startswith("scaled") else 1.0)
    w = layer.weight.detach()
    if init.endswith("signed_constant"):
        torch.testing.assert_close(w.abs(), torch.full_like(w, sigma))
        assert 0.45 < (w > 0).float().mean() < 0.55
    else:
        assert abs(w.std().item() - sigma) / sigma < 0.02
    bound = 1 / 400 ** 0.5  # scores: kaiming uniform a=sqrt(5)
    assert layer.scores.abs().max() <= bound and layer.scores.abs().max() > 0.9 * bound


@pytest.mark.parametrize("name", ["random", "set"])
def test_random_masks_unchanged_by_training(name):
    layer = linear(name, 0.4)
    mask = layer.mask.clone()
    sgd_steps(layer, steps=10)
    assert torch.equal(layer.mask, mask)
    assert (layer.weight.detach()[~mask] == 0).all()  # inactive weights stay exactly zero


def test_set_rewires_after_epoch_and_keeps_density():
    layer = linear("set", 0.5, shape=(20, 30))
    sgd_steps(layer, steps=5)
    before = layer.mask.clone()
    w = layer.weight.detach().clone()
    layer.kernel.epoch_end(layer, torch.Generator().manual_seed(0))
    after = layer.mask
    n_drop = round(0.3 * int(before.sum()))
    assert int((before & ~after).sum()) == n_drop  # dropped exactly zeta of active
    assert int((after & ~before).sum()) == n_drop  # regrown as many elsewhere
    dropped_mag = w[before & ~after].abs()
    kept_mag = w[before & after].abs()
    assert dropped_mag.max() <= kept_mag.min()  # the smallest magnitudes were dropped
    assert (layer.weight.detach()[after & ~before] == 0).all()  # regrown start at zero


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_density_one_equals_dense_layer(name):
    layer = linear(name, 1.0)
    dense = nn.Linear(20, 12, bias=layer.bias is not None)
    with torch.no_grad():
        dense.weight.copy_(layer.weight)
        if layer.bias is not None:
            dense.bias.copy_(layer.bias)
    x = torch.randn(5, 20)
    for mode in (True, False):
        layer.train(mode)
        torch.testing.assert_close(layer(x), dense(x))


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_state_dict_round_trip_gives_same_outputs(name):
    layer = linear(name, 0.4)
    sgd_steps(layer, steps=3)
    layer.eval()
    x = torch.randn(6, 20)
    out = layer(x)
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    assert "mask" in layer.state_dict()
    if name == "edge_popup":
        assert "scores" in layer.state_dict()
    fresh = linear(name, 0.4, seed=99)  # different init
    assert not torch.equal(fresh.eval()(x), out)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer))
    fresh.eval()
    torch.testing.assert_close(fresh(x), out)
    assert torch.equal(fresh.mask, layer.mask)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_eval_mask_is_computed_once_and_invalidated(name):
    layer = linear(name, 0.5)
    sgd_steps(layer, steps=2)
    layer.eval()
    x = torch.randn(4, 20)
    first = layer(x)
    cached = layer._cached_eff
    assert cached is not None
    layer(x)
    assert layer._cached_eff is cached  # no recomputation per forward
    layer.train()
    assert layer._cached_eff is None
    sgd_steps(layer, steps=2)
    layer.eval()
    assert not torch.equal(layer(x), first)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_conv_layers_mask_exactly(name):
    conv = MaskedConv2d(3, 8, 3, padding=1, bias=True, kernel=kernel(name))
    conv.configure(0.3, torch.Generator().manual_seed(0))
    out = conv.train()(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 8, 8, 8)
    out.sum().backward()
    assert conv.active_weights == kept_count(0.3, 8 * 3 * 3 * 3)


def test_unknown_kernel_is_config_error():
    from snas.core.errors import ConfigError

    with pytest.raises(ConfigError, match="one of dnw, edge_popup, random, set"):
        make_kernel(KernelConfig.__new__(KernelConfig)) if False else make_kernel(
            type("C", (), {"name": "nope", "options": None})())


# ---- fast-path mechanisms (float masks, reused effective-weight storage) -------------------


def test_incremental_topk_float_mask_and_changed_indices():
    """select_abs on signed drifting values: mask exact, float copy equal, ``changed`` exact."""
    gen = torch.Generator().manual_seed(2)
    values = torch.randn(4000, generator=gen)
    sel = IncrementalTopK(1500, 4000)
    previous = None
    for step in range(60):
        values = values + (0.05 if step % 10 == 9 else 0.005) * torch.randn(4000, generator=gen)
        mask = sel.select_abs(values)
        expected = reference_topk_mask(values.abs(), 1500)
        assert torch.equal(mask, expected)
        assert torch.equal(sel.float_mask, expected.float())
        if previous is not None and sel.changed is not None:
            flipped = (previous != expected).nonzero().squeeze(1)
            assert torch.equal(sel.changed.sort().values, flipped)
        previous = expected.clone()
    assert sel.hits > 0 and sel.rebuilds + sel.repairs > 1  # the slow paths ran too


def test_incremental_topk_negative_values_and_outside_edits():
    gen = torch.Generator().manual_seed(3)
    values = torch.randn(3000, generator=gen) - 5.0  # all negative: no magnitude shortcut
    sel = IncrementalTopK(700, 3000)
    for step in range(30):
        values = values + 0.01 * torch.randn(3000, generator=gen)
        mask = sel.select(values)
        assert torch.equal(mask, reference_topk_mask(values, 700))
        if step == 10:
            mask[:50] = ~mask[:50]  # someone writes into the returned mask: detected, rebuilt
    assert sel.hits > 0


@pytest.mark.parametrize("name", ["dnw", "edge_popup"])
def test_reused_effective_weight_stays_exact(name):
    """The effective weight (reused storage; edge-popup updates it only where the mask
    changed) equals weight * mask after every forward, through many steps and rebuilds, a
    weight edit and a state_dict load."""
    layer = linear(name, 0.4, shape=(40, 50))
    opt = torch.optim.SGD([p for p in layer.parameters() if p.requires_grad], lr=2.0, momentum=0.9)
    gen = torch.Generator().manual_seed(5)
    layer.train()
    storages = set()
    for step in range(80):
        x = torch.randn(8, 50, generator=gen)
        opt.zero_grad()
        layer(x).square().mean().backward()
        eff = layer._eff
        storages.add(eff.untyped_storage().data_ptr())
        assert torch.equal(eff.detach(), layer.weight.detach() * layer.mask)
        magnitude = (layer.scores if name == "edge_popup" else layer.weight).detach().abs()
        assert torch.equal(layer.mask, reference_topk_mask(magnitude, layer.k))
        opt.step()
        if step == 30:
            with torch.no_grad():
                layer.weight.mul_(-1.5)  # an in-place edit (version counter) is seen
        if step == 50:
            layer.load_state_dict(linear(name, 0.4, shape=(40, 50), seed=7).state_dict())
    assert len(storages) <= 2  # the storage is reused, not reallocated every step
    assert layer.selector.hits > 0 and layer.selector.rebuilds + layer.selector.repairs > 1


@pytest.mark.parametrize("name", ["dnw", "edge_popup"])
def test_two_forwards_before_one_backward(name):
    """A second forward before the backward must not overwrite the first effective weight."""
    layer = linear(name, 0.5)
    layer.train()
    x1, x2 = torch.randn(4, 20), torch.randn(4, 20)
    out1 = layer(x1)
    eff1 = layer._eff.detach().clone()
    out2 = layer(x2)
    (out1.square().sum() + out2.square().sum()).backward()
    param = layer.scores if name == "edge_popup" else layer.weight
    got = param.grad.clone()
    # the same gradient, computed from two separate graphs
    param.grad = None
    layer(x1).square().sum().backward()
    layer(x2).square().sum().backward()
    torch.testing.assert_close(got, param.grad)
    assert torch.equal(eff1, layer.weight.detach() * layer.mask)


def test_edge_popup_score_gradient_is_public_chain_rule():
    """dC/ds = dC/dW_eff * w * sgn(s), exactly as autograd through scores.abs() gives it,
    including sgn(0) = 0 for a zero score."""
    layer = linear("edge_popup", 0.5)
    with torch.no_grad():
        layer.scores[0, 0] = 0.0
        layer.scores[1, :5] *= -1
    layer.selector.reset()
    layer.train()
    x = torch.randn(6, 20)
    layer(x).sin().sum().backward()
    scores = layer.scores.detach().clone().requires_grad_(True)
    magnitude = scores.abs()
    mask = reference_topk_mask(magnitude.detach(), layer.k)
    assert torch.equal(mask, layer.mask)
    subnet = magnitude + (mask.float() - magnitude).detach()  # straight-through, value = mask
    nn.functional.linear(x, layer.weight.detach() * subnet).sin().sum().backward()
    torch.testing.assert_close(layer.scores.grad, scores.grad)
    assert layer.scores.grad[0, 0] == 0


def test_set_gradient_mask_follows_rewiring():
    """The cached float mask of random/SET is refreshed when epoch_end rewires the mask."""
    layer = linear("set", 0.5, shape=(20, 30))
    sgd_steps(layer, steps=3)
    layer.kernel.epoch_end(layer, torch.Generator().manual_seed(0))
    sgd_steps(layer, steps=3)
    assert (layer.weight.detach()[~layer.mask] == 0).all()
    assert (layer.weight.detach()[layer.mask] != 0).any()


@pytest.mark.parametrize("family", ["incremental", "device"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_both_selector_families_agree_with_reference(family, dtype):
    """The CPU selector (incremental, NumPy band) and the one CUDA uses (DeviceTopK, run here
    on CPU tensors) give the reference sort's mask, with exactly k entries, through both entry
    points on drifting values with many magnitude ties (+v and -v tie in select_abs, whose
    incremental check works on x * x)."""
    cls = IncrementalTopK if family == "incremental" else DeviceTopK
    gen = torch.Generator().manual_seed(11)
    values = torch.randint(-40, 41, (3000,), generator=gen).to(dtype) / 8  # heavy ties
    by_abs, by_value = cls(1100, 3000), cls(1100, 3000)
    for step in range(50):
        values = values + torch.randint(-1, 2, (3000,), generator=gen).to(dtype) / 64
        if step % 7 == 6:  # a few exact sign flips: magnitudes unchanged, signs swapped
            values[:20] = -values[:20]
        for sel, mask, magnitude in ((by_abs, by_abs.select_abs(values), values.abs()),
                                     (by_value, by_value.select(values), values)):
            expected = reference_topk_mask(magnitude, 1100)
            assert torch.equal(mask, expected)
            assert int(mask.sum()) == 1100
            assert torch.equal(sel.float_mask, expected.to(dtype))
    if family == "incremental":
        for sel in (by_abs, by_value):
            assert sel.hits > 0 and sel.rebuilds + sel.repairs > 1


@pytest.mark.parametrize("k", [1, 2, 7, 10, 11, 50, 99, 100])
def test_device_selector_exact_k_with_ties(k):
    """DeviceTopK (the CUDA selector, run on CPU): exactly k kept whatever the ties, lower
    flat index first at the k-th value; all-equal, signed, 2-D, int and NaN inputs."""
    cases = [torch.zeros(100), torch.ones(10, 10), torch.arange(100).remainder(3).float(),
             torch.tensor([1.0, -1.0] * 50), torch.arange(100).remainder(4) - 2]
    nan = torch.arange(100.0).remainder(5)
    nan[[3, 40]] = float("nan")
    for values in cases:
        sel = DeviceTopK(k, 100)
        magnitude = values.abs().float()
        mask = sel.select_abs(values)
        assert mask.shape == values.shape and int(mask.sum()) == k
        assert torch.equal(mask, reference_topk_mask(magnitude, k))
        assert torch.equal(sel.select(values), reference_topk_mask(values.float(), k))
        assert sel.changed is None and sel.generation == 2
    mask = DeviceTopK(k, 100).select_abs(nan)  # NaN ranks first, like the reference sort
    assert int(mask.sum()) == k and torch.equal(mask, reference_topk_mask(nan, k))


def test_selector_family_follows_the_device():
    """CPU float32/float64 tensors get the incremental selector, everything else DeviceTopK;
    a DNW layer switches family with its weights (here: to float16 on CPU, which takes the
    device path) and stays exact."""
    assert selector_class(torch.zeros(3)) is IncrementalTopK
    assert selector_class(torch.zeros(3, dtype=torch.float64)) is IncrementalTopK
    assert selector_class(torch.zeros(3, dtype=torch.float16)) is DeviceTopK
    assert selector_class(torch.zeros(3, device="meta")) is DeviceTopK
    layer = linear("dnw", 0.4, shape=(30, 40))
    assert isinstance(layer.selector, IncrementalTopK)
    layer.half().train()
    layer(torch.randn(2, 40).half())
    assert isinstance(layer.selector, DeviceTopK)
    assert torch.equal(layer.mask, reference_topk_mask(layer.weight.detach().abs().float(),
                                                       layer.k))


def test_incremental_topk_abs_check_catches_small_entries_growing_past_the_threshold():
    """An entry far below the threshold that changes sign and grows past it between two
    calls (the x * x key has no sign to lose) must be picked up."""
    values = torch.linspace(-1.0, 1.0, 2001)
    sel = IncrementalTopK(100, 2001)
    assert torch.equal(sel.select_abs(values), reference_topk_mask(values.abs(), 100))
    sel.select_abs(values)
    values = values.clone()
    values[1000] = 5.0  # was 0.0: now the largest magnitude
    values[1001] = -4.0  # was +0.001
    mask = sel.select_abs(values)
    assert mask[1000] and mask[1001]
    assert torch.equal(mask, reference_topk_mask(values.abs(), 100))


def test_dnw_eval_mask_sees_updates_written_through_numpy():
    """The CPU selector writes mask changes through NumPy views; the eval-mode cache (keyed
    on the mask's version counter) must still see every change."""
    layer = linear("dnw", 0.4, shape=(40, 50))
    opt = torch.optim.SGD([layer.weight], lr=1.0, momentum=0.9)
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(4, 50, generator=gen)
    for _ in range(30):
        layer.train()
        opt.zero_grad()
        layer(torch.randn(8, 50, generator=gen)).square().mean().backward()
        opt.step()
        layer(torch.randn(8, 50, generator=gen))  # re-select for the moved weights
        layer.eval()
        expected = reference_topk_mask(layer.weight.detach().abs(), layer.k)
        assert torch.equal(layer.mask, expected)
        with torch.no_grad():
            torch.testing.assert_close(layer(x), x @ (layer.weight * expected).T + layer.bias)
    assert layer.selector.hits > 0


@pytest.mark.parametrize("kernel", ["random", "dnw", "edge_popup", "set"])
def test_a_no_grad_forward_in_train_mode_leaves_training_intact(kernel):
    # A kernel may return the weight Parameter itself under no_grad; the layer must not
    # keep it (it would become a parameter named _eff and break the next forward).
    torch.manual_seed(0)
    layer = MaskedLinear(16, 8, bias=False, kernel=make_kernel(KernelConfig(name=kernel)))
    layer.configure(0.5, torch.Generator().manual_seed(0))
    layer.train()
    x = torch.randn(4, 16)
    with torch.no_grad():
        layer(x)
    names = [name for name, _ in layer.named_parameters()]
    assert "_eff" not in names
    layer(x).sum().backward()
    assert layer.masked_gradient() is not None


# ---- band repairs (CPU): entries that cross the band's edges join it without a rebuild ------


def _drive_selector(sel, values, k, steps, gen, absolute, check_changed=True):
    """Drift ``values`` for ``steps`` calls with forced crossings, comparing every mask (and
    the float copy and ``changed``) with the reference sort."""
    n = values.numel()
    previous = None
    for step in range(steps):
        values = values + 0.002 * torch.randn(n, generator=gen, dtype=values.dtype)
        magnitude = values.abs() if absolute else values
        kth = float(magnitude.kthvalue(n - k + 1).values)
        if step % 3 == 1:  # a few kept entries fall just below the k-th value, a few
            order = magnitude.argsort(descending=True)  # pruned ones rise just above it
            drop, rise = order[:5], order[-5:]
            values[drop] = torch.sign(values[drop]) * (abs(kth) * 0.999) if absolute else kth - 1e-3
            values[rise] = kth * 1.001 + 1e-4 if absolute else kth + 1e-3
        if step % 7 == 3:  # exact ties at the k-th value
            idx = torch.randint(0, n, (20,), generator=gen)
            values[idx] = kth
        if absolute and step % 5 == 4:  # sign flips: magnitudes unchanged
            values[: n // 10] = -values[: n // 10]
        if step % 11 == 10:  # a big jump of the threshold: everything scales
            values = values * 1.3
        mask = sel.select_abs(values) if absolute else sel.select(values)
        expected = reference_topk_mask(values.abs() if absolute else values, k)
        assert torch.equal(mask, expected), step
        assert torch.equal(sel.float_mask, expected.reshape(-1).to(values.dtype)), step
        if check_changed and previous is not None and sel.changed is not None:
            flipped = (previous != expected).nonzero().squeeze(1)
            assert torch.equal(sel.changed.sort().values, flipped), step
        previous = expected.clone()
    return values


@pytest.mark.parametrize("absolute", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_incremental_topk_repairs_stay_exact_under_forced_crossings(absolute, dtype):
    """Randomised drift with entries pushed across the band's edges, ties at the k-th value,
    sign flips and threshold jumps: every step equals the reference sort, and the repair path
    (not only rebuilds) ran."""
    gen = torch.Generator().manual_seed(21)
    for trial in range(3):
        n = int(torch.randint(3000, 9000, (1,), generator=gen))
        k = int(torch.randint(1, n, (1,), generator=gen))
        values = torch.randn(n, generator=gen, dtype=dtype) * 0.05
        if not absolute:
            values = values - 0.2  # mostly negative: no magnitude shortcut
        sel = IncrementalTopK(k, n)
        _drive_selector(sel, values, k, 40, gen, absolute)
        assert sel.hits > 0 and sel.repairs > 0


def test_incremental_topk_repair_declines_when_the_threshold_jumps():
    """A jump far outside the band cannot be repaired: the selector rebuilds, exactly."""
    gen = torch.Generator().manual_seed(4)
    values = torch.randn(5000, generator=gen)
    sel = IncrementalTopK(2000, 5000)
    for _ in range(5):
        values = values + 0.001 * torch.randn(5000, generator=gen)
        sel.select_abs(values)
    rebuilds = sel.rebuilds
    values = values.clone()
    values[:3000] *= 10.0  # the k-th magnitude moves far out of the band
    assert torch.equal(sel.select_abs(values), reference_topk_mask(values.abs(), 2000))
    assert sel.rebuilds == rebuilds + 1


def test_incremental_topk_constant_and_nan_inputs_after_repairs():
    """After repairs, a constant tensor (all ties: lower index first) and a tensor with a NaN
    (repairs decline; the reference sort ranks NaN first) still give the reference mask;
    finite values afterwards recover."""
    gen = torch.Generator().manual_seed(8)
    values = torch.randn(4000, generator=gen)
    sel = IncrementalTopK(1500, 4000)
    values = _drive_selector(sel, values, 1500, 15, gen, absolute=True)
    assert sel.repairs > 0
    constant = torch.full((4000,), 0.25)
    assert torch.equal(sel.select_abs(constant), reference_topk_mask(constant, 1500))
    assert torch.equal(sel.select_abs(-constant), reference_topk_mask(constant, 1500))
    nan = values.clone()
    nan[7] = float("nan")
    repairs = sel.repairs
    assert torch.equal(sel.select_abs(nan), reference_topk_mask(nan.abs(), 1500))
    assert sel.repairs == repairs
    assert torch.equal(IncrementalTopK(1500, 4000).select(nan), reference_topk_mask(nan, 1500))
    _drive_selector(sel, values, 1500, 10, gen, absolute=True)


def test_choose_host_breaks_ties_by_index_in_any_order():
    from trainables.kernels._topk import _choose_host

    values = np.array([3.0, 1.0, 2.0, 2.0, 2.0, 0.5], dtype=np.float32)
    index = np.array([50, 10, 40, 20, 30, 0])
    chosen, c_in, _ = _choose_host(values, 3, True, index)
    # 3.0 wins, then two of the 2.0 ties: the ones with the lowest flat indices (20, 30)
    assert chosen.tolist() == [True, False, False, True, True, False] and c_in == 2.0
    chosen, _, _ = _choose_host(values, 3)  # no index: lower positions win
    assert chosen.tolist() == [True, False, True, True, False, False]


def test_select_abs_scratch_is_only_a_temporary():
    """A caller's scratch buffer (DNW's effective-weight storage) changes nothing in the
    result; a mismatched one is ignored."""
    gen = torch.Generator().manual_seed(10)
    values = torch.randn(40, 50, generator=gen)
    a, b = IncrementalTopK(700, 2000), IncrementalTopK(700, 2000)
    for step in range(30):
        values = values + 0.01 * torch.randn(40, 50, generator=gen)
        scratch = torch.full((40, 50), float("nan")) if step % 2 else torch.empty(7)
        expected = reference_topk_mask(values.abs(), 700)
        assert torch.equal(a.select_abs(values, scratch=scratch), expected)
        assert torch.equal(b.select_abs(values), expected)
