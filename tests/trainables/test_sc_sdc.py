"""SC-SDC pairs: equal active weights per layer, the dense init distribution, the trainable."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from snas.core.config import load_space
from snas.core.errors import ConfigError
from trainables.kernels import make_kernel
from trainables.models import build_model, maskable_layers
from trainables.sc_sdc import (
    INIT_FAN_IN_KEY,
    SameCapacityTrainable,
    pair_configs,
    reinit_with_fan_in,
    same_capacity_pair,
)
from trainables.tune_trainable import density_from_config

ROOT = Path(__file__).parents[2]
DIGITS = ROOT / "search_spaces" / "compare_mlp_digits.yaml"
INPUT, CLASSES = (1, 8, 8), 10
MAX_WIDTH = 64 + 4


def _sparse_model(space, layers, seed=0):
    """The sparse member as the trainable builds it: masked at the pair's densities, then
    re-initialised with the dense fan-ins."""
    model = build_model(space.model, make_kernel(space.kernel), INPUT, CLASSES,
                        [layer.sparse_density for layer in layers],
                        torch.Generator().manual_seed(seed))
    reinit_with_fan_in(model, [layer.init_fan_in for layer in layers],
                       torch.Generator().manual_seed(seed))
    return model


def _dense_model(space, seed=0):
    return build_model(space.model, make_kernel(space.kernel), INPUT, CLASSES, 1.0,
                       torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("overrides", [
    [],                                                          # 4 hidden, BN, no skip
    ["model.hidden_layers=3", "model.skip=true"],                # cells of 2 with skips
    ["model.hidden_layers=2", "model.batch_norm=false", "model.skip=true"],  # a cell of one
])
def test_equal_active_weights_per_layer_for_every_width(overrides):
    space = load_space(DIGITS, overrides)
    hidden = space.model.options.hidden_layers
    for width in range(1, MAX_WIDTH + 1):
        dense_space, sparse_space, layers = same_capacity_pair(space, INPUT, CLASSES, width,
                                                               MAX_WIDTH)
        dense = [m for _, m in maskable_layers(_dense_model(dense_space))]
        sparse = [m for _, m in maskable_layers(_sparse_model(sparse_space, layers))]
        # first I x N_W, hidden N_W x N_W, last N_W x O (thesis App. A.1)
        expected = [64 * width] + [width * width] * (hidden - 1) + [width * CLASSES]
        assert [m.active_weights for m in dense] == expected, width
        assert [m.active_weights for m in sparse] == expected, width
        assert [layer.active_weights for layer in layers] == expected
        assert [tuple(m.weight.shape) for m in sparse] == (
            [(MAX_WIDTH, 64)] + [(MAX_WIDTH, MAX_WIDTH)] * (hidden - 1) + [(CLASSES, MAX_WIDTH)])
        # inactive weights are exactly zero, active ones are not
        for m in sparse:
            assert int((m.weight != 0).sum()) == m.active_weights
            assert not m.weight[~m.mask].any()


def test_sparse_init_uses_the_dense_fan_in():
    space = load_space(DIGITS)
    width = 20
    dense_space, sparse_space, layers = same_capacity_pair(space, INPUT, CLASSES, width,
                                                           MAX_WIDTH)
    assert [layer.init_fan_in for layer in layers] == [64] + [width] * 4
    dense = [m for _, m in maskable_layers(_dense_model(dense_space, seed=1))]
    sparse = [m for _, m in maskable_layers(_sparse_model(sparse_space, layers, seed=1))]
    for layer, d, s in zip(layers, dense, sparse, strict=True):
        bound = 1 / math.sqrt(layer.init_fan_in)
        active = s.weight[s.mask].detach().numpy()
        assert np.abs(active).max() <= bound
        # U(-bound, bound): the same distribution as the dense layer's weights
        assert stats.ks_2samp(active, d.weight.detach().numpy().ravel()).pvalue > 1e-3
        assert abs(active.std() - bound / math.sqrt(3)) < 0.1 * bound
    # with the sparse layer's own fan-in (68) the hidden bound would be 0.121 < 1/sqrt(20)
    assert np.abs(sparse[1].weight.detach().numpy()).max() > 1 / math.sqrt(MAX_WIDTH)


def test_reinit_keeps_parameters_and_counts():
    space = load_space(DIGITS)
    _, sparse_space, layers = same_capacity_pair(space, INPUT, CLASSES, 10, MAX_WIDTH)
    model = build_model(sparse_space.model, make_kernel(sparse_space.kernel), INPUT, CLASSES,
                        [layer.sparse_density for layer in layers], torch.Generator())
    params = [id(p) for p in model.parameters()]
    reinit_with_fan_in(model, [layer.init_fan_in for layer in layers], torch.Generator())
    assert [id(p) for p in model.parameters()] == params
    with pytest.raises(ConfigError, match="init_fan_in has 2 entries"):
        reinit_with_fan_in(model, [1, 2], torch.Generator())


def test_pair_configs_and_trainable_build_the_pair():
    space = load_space(DIGITS, ["training.epochs=1", "training.device=cpu"])
    dense_space, sparse_space, layers = same_capacity_pair(space, INPUT, CLASSES, 12, MAX_WIDTH)
    dense_cfg, sparse_cfg = pair_configs(dense_space, sparse_space, layers, {"seed": 0})
    assert density_from_config(dense_cfg) == [1.0] * 5
    assert sparse_cfg[INIT_FAN_IN_KEY] == [64, 12, 12, 12, 12]
    assert dense_cfg["sc_sdc"] == {"seed": 0, "width": 12, "max_width": MAX_WIDTH,
                                   "role": "dense"}
    assert dense_cfg["space"]["model"]["bias"] is False
    counts = []
    for cfg in (dense_cfg, sparse_cfg):
        trainable = SameCapacityTrainable(config=cfg)
        try:
            counts.append([layer.active_weights for layer in trainable.trial.layers])
            assert all(layer.bias is None for layer in trainable.trial.layers)
        finally:
            trainable.stop()
    assert counts[0] == counts[1] == [layer.active_weights for layer in layers]


def test_bad_pairs_are_config_errors():
    space = load_space(DIGITS)
    with pytest.raises(ConfigError, match=r"comparison width must be in \[1, 68\]"):
        same_capacity_pair(space, INPUT, CLASSES, 69, MAX_WIDTH)
    cnn = load_space(ROOT / "search_spaces" / "cnn_mnist5k.yaml")
    with pytest.raises(ConfigError, match="model.name must be 'mlp'"):
        same_capacity_pair(cnn, INPUT, CLASSES, 4, MAX_WIDTH)
