"""CNN, DAG and neural-graph models: maskable layers in order, exact counts, dense
equivalence, edge-popup variants, one training step, channel wiring graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _small_models import SMALL_CNN
from torch import nn

from snas.core.catalog import MODELS
from snas.core.config import KernelConfig, ModelConfig
from trainables.kernels import (
    KERNELS,
    MaskedConv2d,
    MaskedLayer,
    MaskedLinear,
    kept_count,
    make_kernel,
)
from trainables.models import build_model, layer_specs, maskable_layers
from trainables.models._wiring import ChannelGraph, channel_mask

# (model, options, input shape, number of maskable layers)
SMALL = SMALL_CNN
SLOW_BUILDS = {"resnet18": 21, "resnet50": 54, "wide_resnet50_2": 54}


def build(name, density, kernel="random", shape=None, seed=0, **extra):
    opts, default_shape, _ = SMALL.get(name, ({}, (3, 32, 32), None))
    cfg = ModelConfig(name=name, options=MODELS.options(name)(**{**opts, **extra}))
    return build_model(cfg, make_kernel(KernelConfig(name=kernel)), shape or default_shape, 5,
                       density, torch.Generator().manual_seed(seed))


def densify(model: nn.Module) -> nn.Module:
    """Replace every masked layer by a plain layer holding its effective weight."""
    for name, layer in list(maskable_layers(model)):
        if not isinstance(layer, (MaskedConv2d, MaskedLinear)):
            continue
        eff = (layer.weight * layer.mask).detach()
        if isinstance(layer, MaskedConv2d):
            plain = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                              stride=layer.stride, padding=layer.padding, groups=layer.groups,
                              bias=layer.bias is not None)
        else:
            plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
        with torch.no_grad():
            plain.weight.copy_(eff)
            if layer.bias is not None:
                plain.bias.copy_(layer.bias)
        parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
        setattr(parent, name.rpartition(".")[2], plain)
    return model


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_builds_trains_one_step_with_exact_counts(name, kernel):
    n_layers = SMALL[name][2]
    model = build(name, 1.0, kernel)
    assert len(layer_specs(model)) == n_layers
    vector = [0.1 + 0.8 * i / max(1, n_layers - 1) for i in range(n_layers)]
    model = build(name, vector, kernel)
    for (_, layer), d in zip(maskable_layers(model), vector):
        assert layer.active_weights == kept_count(d, layer.weight.numel())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x = torch.randn(4, *SMALL[name][1])
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    if hasattr(model, "extra_loss"):
        loss = loss + model.extra_loss()
    loss.backward()
    opt.step()
    out = model(x)
    assert out.shape == (4, 5) and torch.isfinite(out).all()
    for (_, layer), d in zip(maskable_layers(model), vector):  # still exact after a step
        assert layer.active_weights == kept_count(d, layer.weight.numel())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_density_one_matches_dense_model(name):
    model = build(name, 1.0, "dnw").eval()
    x = torch.randn(3, *SMALL[name][1])
    expected = model(x)
    assert all(bool(layer.mask.all()) for _, layer in maskable_layers(model))
    torch.testing.assert_close(densify(model)(x), expected)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_edge_popup_variant_has_no_affine_norm_no_bias_and_trains_scores_only(name):
    model = build(name, 0.5, "edge_popup")
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)):
            assert not m.affine
        if isinstance(m, (nn.Conv2d, nn.Linear, MaskedLayer)):
            assert getattr(m, "bias", None) is None
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith("scores") for n in trainable)


@pytest.mark.parametrize("name", ["resnet_cifar", "wide_resnet", "conv4"])
def test_first_and_last_layer_dense_leave_the_density_vector(name):
    n_layers = SMALL[name][2]
    model = build(name, 0.5, first_layer_dense=True, last_layer_dense=True)
    specs = layer_specs(model)
    assert len(specs) == n_layers - 2
    plain = [m for m in model.modules() if type(m) in (nn.Conv2d, nn.Linear)]
    assert len(plain) == 2
    assert model(torch.randn(2, *SMALL[name][1])).shape == (2, 5)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW_BUILDS))
def test_torchvision_resnets_mask_every_conv_and_fc(name):
    model = build(name, 0.5, shape=(3, 32, 32))
    specs = layer_specs(model)
    assert len(specs) == SLOW_BUILDS[name]
    assert specs[0].name == "net.conv1" and specs[-1].name == "net.fc"
    assert not any(type(m) in (nn.Conv2d, nn.Linear) for m in model.modules())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def test_resnet18_builds_without_download_and_matches_dense():
    model = build("resnet18", 1.0, "dnw", shape=(1, 16, 16)).eval()
    assert len(layer_specs(model)) == 21
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(densify(model)(x), model(x))


def test_resnet_cifar_depth_32_has_32_maskable_layers():
    model = build("resnet_cifar", 0.5, base_width=2, depth=32)
    assert len(layer_specs(model)) == 32


# ---- channel wiring -----------------------------------------------------------------

def test_channel_mask_any_active_tap():
    conv = MaskedConv2d(2, 3, 3, padding=1, bias=False, kernel=make_kernel(KernelConfig()))
    conv.mask.zero_()
    conv.mask[0, 1, 2, 2] = True
    conv.mask[2, 0, 0, 1] = True
    np.testing.assert_array_equal(channel_mask(conv), [[0, 1], [0, 0], [1, 0]])
    dw = nn.Conv2d(3, 3, 3, groups=3)
    np.testing.assert_array_equal(channel_mask(dw), np.eye(3, dtype=bool))


def test_channel_graph_edges_are_hand_counted():
    model = build("resnet_cifar", 0.3, depth=8, base_width=2)
    g = model.wiring_graph()
    expected = sum(int(channel_mask(layer).sum()) for _, layer in maskable_layers(model))
    # identity shortcuts: min(in, out) channels per block: 2, 2, 4
    assert g.number_of_edges() == expected + 2 + 2 + 4
    assert len(g.graph["inputs"]) == 1 and len(g.graph["outputs"]) == 5
    # tensors: input 1, stem 2, blocks 2+2 (stage 0), 4+4, 8+8, output 5
    assert g.number_of_nodes() == 1 + 2 + 4 + 8 + 16 + 5


def test_channel_graph_refuses_too_many_edges():
    from snas.core.graphs import GraphTooLarge

    model = build("conv4", 1.0)
    with pytest.raises(GraphTooLarge, match="over the cap max_edges=10"):
        model.wiring_graph(max_edges=10)
    cg = ChannelGraph()
    cg.tensor("a", 2)
    cg.tensor("b", 3)
    with pytest.raises(ValueError, match="maps 2 -> 3 channels but 'b' has 3 and 'a' 2"):
        cg.layer("x", "b", "a", nn.Conv2d(2, 3, 1))
