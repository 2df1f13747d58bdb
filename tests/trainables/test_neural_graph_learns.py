"""The DNW static neural graph starts well scaled and learns (trainables/models/neural_graph.py).

Before the variance-preserving init, the norm inputs sat at std 0.07-0.25 at density 0.5 and
shrank with density; BatchNorm's running variance (starting at 1) then mis-scaled every
eval-mode norm and a short run evaluated at chance (val accuracy 0.100).
"""

from __future__ import annotations

import pytest
import torch

from snas.core.catalog import NeuralGraphOptions
from snas.core.config import KernelConfig, ModelConfig, parse_space_text
from trainables.kernels import make_kernel
from trainables.kernels._topk import kept_count
from trainables.models import build_model


def graph_net(density, random_graph=False, kernel="dnw", seed=0):
    options = NeuralGraphOptions(stages=2, blocks=4, nodes_per_block=16,
                                 random_graph=random_graph, stem_stride=2)
    torch.manual_seed(seed)
    return build_model(ModelConfig(name="neural_graph", options=options),
                       make_kernel(KernelConfig(name=kernel)), (1, 28, 28), 10, density,
                       torch.Generator().manual_seed(seed))


def norm_input_stds(model, x):
    stds = []
    norms = [n for g in model.graphs for n in g.norms] + [model.head_norm]
    hooks = [n.register_forward_hook(lambda mod, inp, out: stds.append(float(inp[0].std())))
             for n in norms]
    model.train()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return stds


@pytest.mark.parametrize("random_graph", [False, True])
@pytest.mark.parametrize("density", [0.05, 0.2, 0.5, 1.0])
def test_norm_inputs_have_unit_scale_at_init(density, random_graph):
    model = graph_net(density, random_graph)
    x = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    stds = norm_input_stds(model, x)
    assert len(stds) == 2 * 3 + 1  # 3 node-op norms per graph (none at output nodes) + head
    assert all(0.4 < s < 2.5 for s in stds), stds


@pytest.mark.parametrize("kernel", ["dnw", "random", "edge_popup"])
def test_init_rescaling_keeps_the_top_k_and_unit_kept_power(kernel):
    model = graph_net(0.3, kernel=kernel)
    for graph in model.graphs:
        edges = graph.edges
        assert edges.active_weights == kept_count(0.3, edges.weight.numel())
        power = edges.kept_input_power()[edges.per_block:]
        assert float(power.mean()) == pytest.approx(1.0, rel=1e-4)
        if kernel == "dnw":  # one positive factor per graph: still the top-k of |w|
            threshold = edges.weight.abs()[edges.mask].min()
            assert bool((edges.weight.abs()[~edges.mask] <= threshold).all())


def test_a_short_run_beats_chance_clearly_in_eval_mode():
    from trainables.training import Trial

    space = parse_space_text("""
dataset: {name: mnist5k, val_fraction: 0.1, test_fraction: 0.2, split_seed: 0,
          max_train: 640}
model: {name: neural_graph, stages: 2, blocks: 3, nodes_per_block: 12, stem_stride: 2}
kernel: {name: dnw}
training: {epochs: 3, batch_size: 32, lr: 0.5, momentum: 0.9, weight_decay: 0.0005,
           schedule: cosine, seed: 0, device: cpu}
""")
    torch.set_num_threads(1)
    trial = Trial(space, 0.5)
    for _ in range(space.training.epochs):  # 60 steps
        record = trial.run_epoch()
    # a smoke test (measured: 0.32 with seed 0; chance is 0.1): the eval-mode network is
    # not collapsed to a constant. The scale test above is the regression test of the fix.
    assert record["val_accuracy"] > 0.2, record
