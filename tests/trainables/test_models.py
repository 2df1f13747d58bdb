"""Models: maskable layers in a fixed order, density vectors, dense equivalence."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snas.core.catalog import MLPOptions
from snas.core.config import KernelConfig, ModelConfig
from snas.core.errors import ConfigError
from trainables.kernels import KERNELS, kept_count, make_kernel
from trainables.models import MODELS, build_model, layer_specs


def build(density, kernel="random", **options):
    cfg = ModelConfig(name="mlp", options=MLPOptions(**options))
    return build_model(cfg, make_kernel(KernelConfig(name=kernel)), (1, 8, 8), 10, density,
                       torch.Generator().manual_seed(0))


def test_registry_matches_config_options():
    MODEL_OPTIONS = {name: MODELS.options(name) for name in MODELS}  # each entry has its own
    assert set(MODELS) == set(MODEL_OPTIONS)


@pytest.mark.parametrize("hidden", [1, 2, 3, 4, 7])
def test_mlp_has_hidden_plus_one_maskable_layers_in_order(hidden):
    model = build(1.0, hidden_layers=hidden, width=16)
    specs = layer_specs(model)
    assert len(specs) == hidden + 1
    assert specs[0].shape == (16, 64) and specs[0].fan_in == 64
    assert specs[-1].shape == (10, 16)
    assert all(s.shape == (16, 16) for s in specs[1:-1])
    assert specs[0].name == "stem.linear" and specs[-1].name == "head"
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_non_uniform_density_vector_is_realised_exactly(kernel):
    vector = [0.9, 0.1, 0.33, 0.5, 1.0]
    model = build(vector, kernel=kernel, hidden_layers=4, width=16)
    for spec, layer, d in zip(layer_specs(model),
                              [m for m in model.modules() if hasattr(m, "mask")], vector):
        assert layer.active_weights == kept_count(d, spec.numel)


def test_wrong_vector_length_is_one_line_error():
    with pytest.raises(ConfigError, match="density vector has 2 entries but the model has 5") as e:
        build([0.5, 0.5], hidden_layers=4)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("bad", [0.0, 1.5, float("nan")])
def test_bad_density_rejected(bad):
    with pytest.raises(ConfigError, match=r"density\[0\] must be in \(0, 1\]"):
        build(bad)


@pytest.mark.parametrize("activation", ["relu", "prelu", "swish", "elu", "sigmoid"])
@pytest.mark.parametrize("skip,batch_norm", [(True, True), (False, False)])
def test_mlp_options_build_and_train(activation, skip, batch_norm):
    model = build(0.5, activation=activation, skip=skip, batch_norm=batch_norm, dropout=0.1,
                  width=8, hidden_layers=3)
    assert any(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == batch_norm
    out = model(torch.randn(4, 1, 8, 8))
    out.sum().backward()
    assert torch.isfinite(out).all()


def test_density_one_matches_dense_mlp():
    """A masked MLP at density 1.0 computes the same function as the same net unmasked."""
    model = build(1.0, kernel="dnw", width=16).eval()
    x = torch.randn(5, 1, 8, 8)
    expected = model(x)
    for m in model.modules():
        if hasattr(m, "mask"):
            m.mask.fill_(False)
            m.mask.fill_(True)
            m.invalidate_cache()
    torch.testing.assert_close(model(x), expected)
    # and with a plain nn.Linear in place of each masked layer
    dense = build(1.0, kernel="random", width=16).eval()
    for name, m in list(dense.named_modules()):
        if hasattr(m, "mask"):
            lin = nn.Linear(m.in_features, m.out_features)
            with torch.no_grad():
                lin.weight.copy_(m.weight)
                lin.bias.copy_(m.bias)
            parent = dense.get_submodule(name.rpartition(".")[0]) if "." in name else dense
            setattr(parent, name.rpartition(".")[2], lin)
    ref = build(1.0, kernel="random", width=16).eval()
    torch.testing.assert_close(dense(x), ref(x))
