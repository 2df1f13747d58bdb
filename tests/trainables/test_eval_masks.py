"""Eval-mode masks of the selecting kernels (DNW, edge-popup) follow the current values.

A training forward selects the mask *before* the optimizer step; the network evaluated
afterwards must be the top-k of the values after it (once per eval phase, then cached).
"""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from snas.core.config import KernelConfig
from trainables.kernels import MaskedConv2d, MaskedLayer, MaskedLinear, make_kernel
from trainables.kernels import reference_topk_mask as reference_mask

SELECTING = ["dnw", "edge_popup"]
INPUTS = {"mlp": (16, 20), "conv": (8, 3, 8, 8)}


def build(kernel_name: str, kind: str, seed: int = 0) -> nn.Sequential:
    kernel = make_kernel(KernelConfig(name=kernel_name))
    if kind == "mlp":
        model = nn.Sequential(MaskedLinear(20, 32, bias=True, kernel=kernel), nn.ReLU(),
                              MaskedLinear(32, 24, bias=True, kernel=kernel), nn.ReLU(),
                              MaskedLinear(24, 10, bias=True, kernel=kernel))
    elif kind == "conv":
        model = nn.Sequential(MaskedConv2d(3, 8, 3, padding=1, bias=True, kernel=kernel),
                              nn.ReLU(),
                              MaskedConv2d(8, 8, 3, stride=2, padding=1, bias=True, kernel=kernel),
                              nn.ReLU(), nn.Flatten(),
                              MaskedLinear(8 * 4 * 4, 10, bias=True, kernel=kernel))
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    for density, layer in zip((0.3, 0.5, 0.7), masked(model), strict=True):
        layer.configure(density, gen)
    return model


def masked(model: nn.Module) -> list[MaskedLayer]:
    return [m for m in model.modules() if isinstance(m, MaskedLayer)]


def selected_values(layer: MaskedLayer) -> torch.Tensor:
    return (layer.scores if layer.kernel.name == "edge_popup" else layer.weight).detach()


def expected_mask(layer: MaskedLayer) -> torch.Tensor:
    return reference_mask(selected_values(layer).abs(), layer.k)


def train(model: nn.Module, kind: str, steps: int, seed: int = 1) -> None:
    """SGD at lr 0.1; every step is a training forward, backward and update, so the masks
    the layers hold afterwards are those of the values before the last update."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        x = torch.randn(INPUTS[kind], generator=gen)
        target = torch.randint(0, 10, (x.shape[0],), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), target).backward()
        opt.step()


def reference_forward(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The model's eval forward with every mask taken from the reference sort."""
    for module in model:
        if isinstance(module, MaskedLinear):
            x = nn.functional.linear(x, module.weight * expected_mask(module), module.bias)
        elif isinstance(module, MaskedConv2d):
            x = nn.functional.conv2d(x, module.weight * expected_mask(module), module.bias,
                                     module.stride, module.padding)
        else:
            x = module(x)
    return x


def assert_eval_masks_current(model: nn.Sequential) -> None:
    for layer in masked(model):
        expected = expected_mask(layer)
        assert torch.equal(layer.mask, expected)
        assert layer.active_weights == layer.k
        assert torch.equal(layer._cached_eff, layer.weight.detach() * expected)


@pytest.mark.parametrize("kind", sorted(INPUTS))
@pytest.mark.parametrize("name", SELECTING)
def test_eval_mask_is_topk_of_the_values_after_the_last_step(name, kind):
    model = build(name, kind)
    train(model, kind, steps=40)
    stale = [not torch.equal(layer.mask, expected_mask(layer)) for layer in masked(model)]
    assert any(stale)  # the training masks lag one step: what the eval phase must fix
    model.eval()
    x = torch.randn(INPUTS[kind], generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        out = model(x)
    assert_eval_masks_current(model)
    torch.testing.assert_close(out, reference_forward(model, x), rtol=0, atol=0)


@pytest.mark.parametrize("name", SELECTING)
def test_eval_selects_once_per_phase(name):
    model = build(name, "mlp")
    train(model, "mlp", steps=20)
    model.eval()
    x = torch.randn(INPUTS["mlp"])
    with torch.no_grad():
        model(x)
        generations = [layer.selector.generation for layer in masked(model)]
        cached = [layer._cached_eff for layer in masked(model)]
        for _ in range(3):
            model(x)
    assert [layer.selector.generation for layer in masked(model)] == generations
    assert all(layer._cached_eff is c for layer, c in zip(masked(model), cached, strict=True))
    # a new eval phase after more training selects again, on the new values
    train(model, "mlp", steps=20, seed=2)
    model.eval()
    with torch.no_grad():
        model(x)
    assert all(layer.selector.generation == g + 21
               for layer, g in zip(masked(model), generations, strict=True))
    assert_eval_masks_current(model)


@pytest.mark.parametrize("name", SELECTING)
def test_a_step_taken_in_eval_mode_is_seen(name):
    """The cache is keyed on the values' version counters: optimizer steps without a
    ``train()`` call still make the next eval forward select again."""
    model = build(name, "mlp")
    train(model, "mlp", steps=20)
    model.eval()
    x = torch.randn(INPUTS["mlp"])
    with torch.no_grad():
        before = model(x)
    params = [layer.scores if name == "edge_popup" else layer.weight for layer in masked(model)]
    opt = torch.optim.SGD(params, lr=0.1)
    gen = torch.Generator().manual_seed(4)
    for _ in range(20):
        for param in params:
            param.grad = torch.randn(param.shape, generator=gen)
        opt.step()
    with torch.no_grad():
        out = model(x)
    assert not torch.equal(out, before)
    assert_eval_masks_current(model)
    torch.testing.assert_close(out, reference_forward(model, x), rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(INPUTS))
@pytest.mark.parametrize("name", SELECTING)
def test_eval_masks_after_loading_a_checkpoint(name, kind):
    model = build(name, kind)
    train(model, kind, steps=30)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)  # holds the training masks (one step old)
    model.eval()
    x = torch.randn(INPUTS[kind], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(x)
    fresh = build(name, kind, seed=42)
    fresh.eval()
    with torch.no_grad():
        fresh(x)  # an eval phase on other values before the load: its cache must go
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer))
    with torch.no_grad():
        loaded = fresh(x)
    assert_eval_masks_current(fresh)
    torch.testing.assert_close(loaded, out, rtol=0, atol=0)
    for a, b in zip(masked(model), masked(fresh), strict=True):
        assert torch.equal(a.mask, b.mask)


@pytest.mark.parametrize("name", SELECTING)
def test_eval_phases_leave_training_unchanged(name):
    """Training with eval phases in between gives bitwise the same parameters and masks as
    training without them (the training forward selects exactly whatever the selector
    state)."""
    plain, probed = build(name, "conv"), build(name, "conv")
    x = torch.randn(INPUTS["conv"], generator=torch.Generator().manual_seed(5))
    for round_ in range(4):
        train(plain, "conv", steps=10, seed=round_)
        train(probed, "conv", steps=10, seed=round_)
        probed.eval()
        with torch.no_grad():
            probed(x)
    for a, b in zip(plain.parameters(), probed.parameters(), strict=True):
        assert torch.equal(a, b)
    plain.train()
    probed.train()
    torch.testing.assert_close(plain(x), probed(x), rtol=0, atol=0)
    for a, b in zip(masked(plain), masked(probed), strict=True):
        assert torch.equal(a.mask, b.mask)
        assert torch.equal(a.mask, expected_mask(a))
