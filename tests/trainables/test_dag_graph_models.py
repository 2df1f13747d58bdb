"""Janik-Nowak DAG (batched aggregate, L1 cost, thresholding, paths) and DNW neural graphs
(top-k over allowed edges only, RG baseline), and wiring records of both."""

from __future__ import annotations

import json
import math

import pytest
import torch

from snas.core.catalog import DAGOptions, NeuralGraphOptions
from snas.core.config import KernelConfig, ModelConfig, parse_space_text
from snas.core.graphs import graph_statistics
from trainables.kernels import kept_count, make_kernel
from trainables.models import build_model
from trainables.models.dag import DAGNetwork, rebuild_thresholded
from trainables.models.neural_graph import allowed_edges


def dag(kernel="random", density=1.0, aggregate="batched", **opts):
    options = DAGOptions(**{"nodes": 8, "channels": 3, **opts})
    model = DAGNetwork((1, 8, 8), 4, options, make_kernel(KernelConfig(name=kernel)), aggregate)
    from trainables.models import configure_densities, layer_specs

    configure_densities(model, [density] * len(layer_specs(model)),
                        torch.Generator().manual_seed(0))
    return model


def _pair(kernel="random", **opts):
    """The same network twice: batched aggregate and edge-loop reference, edge weights
    random (not all 0.5) so that a wrong slot or row would show."""
    a, b = dag(kernel, **opts), dag(kernel, aggregate="loop", **opts)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        a.edge_weight.normal_(generator=torch.Generator().manual_seed(1))
        b.edge_weight.copy_(a.edge_weight)
    return a, b


def _assert_close_to_scale(got, want, tol, what):
    """max |got - want| <= tol * max(1, max |want|): agreement to ``tol`` at the tensor's
    scale (the two sums add the same terms in a different order)."""
    got, want = got.detach(), want.detach()
    err = float((got - want).abs().max()) if got.numel() else 0.0
    scale = max(1.0, float(want.abs().max()) if want.numel() else 0.0)
    assert err <= tol * scale, f"{what}: max error {err:.3g} at scale {scale:.3g}"


def _assert_same_step(a, b, x, tol=1e-6):
    """Outputs, input gradient and every parameter gradient of a and b agree to ``tol``."""
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_a, out_b = a(xa), b(xb)
    _assert_close_to_scale(out_a, out_b, tol, "output")
    g = torch.randn(out_a.shape, generator=torch.Generator().manual_seed(2), dtype=out_a.dtype)
    a.zero_grad(set_to_none=True)
    b.zero_grad(set_to_none=True)
    (out_a * g).sum().backward()
    (out_b * g).sum().backward()
    _assert_close_to_scale(xa.grad, xb.grad, tol, "input gradient")
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert (pa.grad is None) == (pb.grad is None), name
        if pa.grad is not None:
            _assert_close_to_scale(pa.grad, pb.grad, tol, name)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 1e-5)])
@pytest.mark.parametrize("opts", [{}, {"nodes": 12, "channels": 2},
                                  {"nodes": 9, "stages": 2, "channels": 2},
                                  {"nodes": 5, "stages": 1, "channels": 2}])
def test_batched_dag_equals_edge_loop_reference(opts, dtype, tol):
    """The batched aggregate (stage buffer, one product per node) gives the edge loop's
    outputs and gradients, on the complete graph and after thresholding (dead nodes,
    missing edges, stages that read only some earlier nodes), over several steps. The two
    add the same terms in a different order: float64 agrees to 1e-6 (the algebra), float32
    to 1e-5 (rounding of long sums such as an edge weight's gradient)."""
    a, b = _pair(**opts)
    a.to(dtype), b.to(dtype)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=dtype)
    _assert_same_step(a, b, x, tol)
    _assert_same_step(a, b, x, tol)  # the second step reuses the stage buffers
    with torch.no_grad():
        a.edge_weight[a.allowed.nonzero()[::3].unbind(1)] = 0.0  # every third edge goes
        a.edge_weight[2] = 0.0  # node 2 loses its inputs: a dead node
        a.edge_weight[1, 0] = a.edge_weight[-1, 1] = 1.0  # a live path 0 -> 1 -> n-1
        b.edge_weight.copy_(a.edge_weight)
    a.apply_threshold(0.1), b.apply_threshold(0.1)
    assert torch.equal(a.edge_mask, b.edge_mask)
    assert 0 < int(a.edge_mask.sum()) < int(a.allowed.sum()) and not a.node_alive[2]
    _assert_same_step(a, b, x, tol)
    a.eval(), b.eval()
    with torch.no_grad():
        _assert_close_to_scale(a(x), b(x), tol, "eval output")


def test_batched_dag_with_frozen_edges_and_weights_matches_loop():
    """Edge-popup: only scores train (edge weights, stem and residual convs frozen), so the
    batched stage sees inputs that need no gradient next to ones that do."""
    from trainables.models import build_model

    def build(aggregate):
        model = build_model(ModelConfig(name="dag", options=DAGOptions(nodes=8, channels=2)),
                            make_kernel(KernelConfig(name="edge_popup")), (1, 8, 8), 4, 0.5,
                            torch.Generator().manual_seed(0))
        model.aggregate = aggregate
        return model

    a, b = build("batched"), build("loop")
    b.load_state_dict(a.state_dict())
    assert not a.edge_weight.requires_grad
    _assert_same_step(a, b, torch.randn(2, 1, 8, 8), 1e-5)
    assert a.nodes[0].conv.scores.grad.abs().sum() > 0


def test_batched_dag_two_forwards_before_backward_and_buffer_reuse():
    """Each graph keeps its own stage buffer until its backward; afterwards the buffer is
    reused (no allocation per step)."""
    a, b = _pair()
    x1 = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    x2 = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    (a(x1).square().sum() + a(x2).square().sum()).backward()
    (b(x1).square().sum() + b(x2).square().sum()).backward()
    _assert_close_to_scale(a.edge_weight.grad, b.edge_weight.grad, 1e-5, "edge weights")
    pointers = set()
    for _ in range(3):
        a(x1).sum().backward()
        pointers.add(a._storage[0].buf.data_ptr())
    assert len(pointers) == 1
    out = a(x1)
    a(x2)  # no backward yet: a second forward must not overwrite the first graph's buffer
    a.zero_grad(), b.zero_grad()
    out.sum().backward()
    b(x1).sum().backward()
    _assert_close_to_scale(a.edge_weight.grad, b.edge_weight.grad, 1e-5, "edge weights")


def test_backward_through_an_overwritten_stage_buffer_fails_loudly():
    model = dag()
    x = torch.randn(2, 1, 8, 8)
    out = model(x)
    out.sum().backward(retain_graph=True)  # the buffer is free again after this backward
    model(x).sum()  # ... so this forward reuses it
    with pytest.raises(RuntimeError, match="stage buffer was reused"):
        out.sum().backward()


def test_dag_starts_complete_at_tanh_half_and_l1_cost_is_exact():
    model = dag(l1_lambda=1e-3)
    n = 8
    assert int(model.edge_mask.sum()) == n * (n - 1) // 2
    strength = model.edge_strength()
    assert torch.allclose(strength[model.edge_mask], torch.tensor(0.5))
    assert model.extra_loss().item() == pytest.approx(1e-3 * 0.5 * 28)
    g = model.wiring_graph(thresholded=False)
    assert g.number_of_edges() == 28 and g.number_of_nodes() == 8
    # density vector: one entry per node Conv3x3 (nodes 1..n-1)
    from trainables.models import layer_specs

    assert [s.name for s in layer_specs(model)] == [f"nodes.{i}.conv" for i in range(7)]


def test_complete_60_node_dag_has_exactly_2_to_the_58_paths():
    model = dag(nodes=60, channels=1)
    stats = graph_statistics(model.wiring_graph())
    assert stats["num_paths"] == str(2 ** 58)
    assert stats["log_num_paths"] == pytest.approx(58 * math.log(2))
    assert stats["edges"] == 60 * 59 // 2
    assert stats["edge_connectivity"] == 59
    assert stats["max_path_length"] == 59


def test_thresholding_removes_exactly_the_weak_edges_and_every_dead_path():
    model = dag(nodes=6, stages=1, tau=0.006)
    t = torch.zeros(6, 6)
    keep = {(1, 0): 0.5, (2, 1): 0.2, (5, 2): 0.9,  # the path 0-1-2-5
            (3, 0): 0.3,                           # 3 is a dead end (no way to 5)
            (5, 4): 0.4,                           # 4 is unreachable from 0
            (4, 3): 0.007}                         # just above tau: kept, but 3,4 dead? no:
    weak = {(5, 0): 0.0059, (3, 1): 0.001}         # below tau: removed
    for (i, j), v in {**keep, **weak}.items():
        t[i, j] = v
    with torch.no_grad():
        model.edge_weight.copy_(torch.atanh(t))
    mask, alive = model.threshold_masks()
    present = {(i, j) for i, j in zip(*torch.nonzero(mask, as_tuple=True))}
    present = {(int(i), int(j)) for i, j in present}
    # 3 <- 0 and 4 <- 3 and 5 <- 4 survive: 0-3-4-5 is a live path through the 0.007 edge
    assert present == {(1, 0), (2, 1), (5, 2), (3, 0), (4, 3), (5, 4)}
    with torch.no_grad():
        model.edge_weight[4, 3] = math.atanh(0.005)  # now below tau: 3 and 4 die
    mask, alive = model.threshold_masks()
    present = {(int(i), int(j)) for i, j in zip(*torch.nonzero(mask, as_tuple=True))}
    assert present == {(1, 0), (2, 1), (5, 2)}
    assert alive.tolist() == [True, True, True, False, False, True]
    counts = model.apply_threshold()
    assert counts == {"edges_before": 15, "edges_after": 3, "nodes_after": 4}
    # the forward skips dead nodes, and only the kept edges carry gradient
    out = model(torch.randn(2, 1, 8, 8))
    out.sum().backward()
    grad = model.edge_weight.grad
    assert set(map(tuple, torch.nonzero(grad).tolist())) <= {(1, 0), (2, 1), (5, 2)}
    g = model.wiring_graph()
    assert set(g.edges) == {(0, 1), (1, 2), (2, 5)} and set(g.nodes) == {0, 1, 2, 5}
    fresh = rebuild_thresholded(model, torch.Generator().manual_seed(3))
    assert torch.equal(fresh.edge_mask, model.edge_mask)
    assert not torch.equal(fresh.nodes[0].conv.weight, model.nodes[0].conv.weight)


def test_threshold_report_measures_before_after_and_leaves_model_unchanged():
    model = dag()
    with torch.no_grad():
        model.edge_weight[3, :3] = 0.0
    before = model.edge_mask.clone()
    calls = []

    def evaluate():
        calls.append(int(model.edge_mask.sum()))
        return 0.0, 0.9 if len(calls) == 1 else 0.8

    report = model.threshold_report(evaluate)
    # node 3 lost its 3 inputs, so it is dead and its 4 outputs go too: 28 - 3 - 4
    assert calls == [28, 21] and torch.equal(model.edge_mask, before)
    assert report["dag_edges_after"] == 21 and report["dag_nodes_after"] == 7
    assert report["dag_accuracy_before"] == 0.9 and report["dag_accuracy_after"] == 0.8
    assert report["dag_edge_fraction_kept"] == pytest.approx(21 / 28)


def test_trial_adds_the_dag_l1_cost_to_the_loss():
    from trainables.training import Trial

    space = parse_space_text("""
dataset: {name: synthetic, synthetic_shape: [1, 8, 8], synthetic_size: 64}
model: {name: dag, nodes: 6, channels: 2, l1_lambda: 0.5}
training: {epochs: 1, batch_size: 32, device: cpu}
""")
    trial = Trial(space, 1.0)
    logits = torch.randn(4, 10)
    y = torch.tensor([0, 1, 2, 3])
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert trial._loss(logits, y).item() == pytest.approx(ce.item() + 0.5 * 0.5 * 15, rel=1e-5)
    trial.run_epoch()
    summary = trial.summary()
    assert summary["dag_edges_total"] == 15 and "dag_accuracy_after" in summary


# ---- DNW neural graph -----------------------------------------------------------------

def neural_graph(kernel="dnw", density=0.3, **opts):
    options = NeuralGraphOptions(**{"stages": 2, "blocks": 3, "nodes_per_block": 4, **opts})
    return build_model(ModelConfig(name="neural_graph", options=options),
                       make_kernel(KernelConfig(name=kernel)), (1, 8, 8), 4, density,
                       torch.Generator().manual_seed(0))


def test_allowed_edges_go_from_earlier_to_later_blocks_only():
    src, dst = allowed_edges(3, 4)
    assert src.numel() == 4 * 4 * 3  # m^2 * B(B-1)/2
    assert bool(((dst // 4) > (src // 4)).all())


@pytest.mark.parametrize("kernel", ["dnw", "edge_popup", "random"])
def test_top_k_never_spends_budget_on_disallowed_edges(kernel):
    model = neural_graph(kernel, density=[0.25, 0.6])
    model.train()
    x = torch.randn(2, 1, 8, 8)
    model(x).sum().backward()
    for graph, d in zip(model.graphs, [0.25, 0.6]):
        allowed = graph.edges.weight.numel()
        k = kept_count(d, allowed)
        assert graph.edges.active_weights == k
        w = graph.edges.matrix().detach()
        n = graph.m * graph.blocks
        block = torch.arange(n) // graph.m
        disallowed = ~(block[:, None] > block[None, :])
        assert int((w != 0).sum()) == k  # all k kept edges are real, allowed ones
        assert bool((w[disallowed] == 0).all())


def test_dnw_graph_straight_through_reaches_all_allowed_edges():
    model = neural_graph("dnw", density=0.2)
    model.train()
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    grad = model.graphs[0].edges.weight.grad
    assert grad is not None and int((grad != 0).sum()) > model.graphs[0].edges.k


def test_random_graph_baseline_is_fixed_top_k_of_random_scores():
    model = neural_graph("dnw", density=0.3, random_graph=True)
    edges = model.graphs[0].edges
    before = edges.mask.clone()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(2, 1, 8, 8)).pow(2).sum().backward()
        opt.step()
    assert torch.equal(edges.mask, before) and edges.active_weights == edges.k
    learned = neural_graph("dnw", density=0.3)
    assert not torch.equal(learned.graphs[0].edges.mask, before)


def test_neural_graph_wiring_graph_counts_stages():
    from trainables.models._wiring import stage_counts

    model = neural_graph(density=[0.5, 0.25])
    g = model.wiring_graph()
    counts = stage_counts(g)
    assert counts["nodes_per_stage"] == [12, 12]
    # stage 1 also receives the 4 identity edges from graph 0's output block
    assert counts["edges_per_stage"] == [kept_count(0.5, 48), kept_count(0.25, 48) + 4]
    stats = graph_statistics(g)
    assert stats["inputs"] == 4 and stats["outputs"] == 4


# ---- wiring records from checkpoints ----------------------------------------------------

@pytest.mark.parametrize("model_yaml,level", [
    ("{name: dag, nodes: 6, channels: 2}", "dag"),
    ("{name: resnet_cifar, depth: 8, base_width: 2}", "channel"),
    ("{name: neural_graph, stages: 1, blocks: 3, nodes_per_block: 3}", "node"),
])
def test_wiring_record_rebuilds_the_model_from_the_trial_folder(tmp_path, model_yaml, level):
    from snas.core.graphs import graph_from_json
    from trainables.training import Trial
    from trainables.tune_trainable import CHECKPOINT_FILE
    from trainables.wiring_record import wiring_record

    space = parse_space_text(f"""
dataset: {{name: synthetic, synthetic_shape: [1, 8, 8], synthetic_size: 64}}
model: {model_yaml}
training: {{epochs: 1, batch_size: 32, device: cpu}}
""")
    trial = Trial(space, 0.5)
    trial.run_epoch()
    ckpt = tmp_path / "checkpoint_000000"
    ckpt.mkdir()
    torch.save(trial.state_dict(), ckpt / CHECKPOINT_FILE)
    graph, stats = wiring_record(str(ckpt))
    # older checkpoints without a space entry fall back to Tune's params.json
    state = trial.state_dict()
    del state["space"]
    torch.save(state, ckpt / CHECKPOINT_FILE)
    with pytest.raises(ValueError, match="need the checkpoint's search space"):
        wiring_record(str(ckpt))
    (tmp_path / "params.json").write_text(json.dumps({"space": space.to_dict(), "density": 0.5}))
    assert wiring_record(str(ckpt)) == (graph, stats)
    g = graph_from_json(json.loads(json.dumps(graph)))
    assert stats["graph_level"] == level
    assert stats["edges"] == g.number_of_edges() and stats["nodes"] == g.number_of_nodes()
    assert sum(stats["edges_per_stage"]) <= stats["edges"]
    assert stats["active_weights"] == sum(layer.active_weights for layer in trial.layers)
    assert stats["log_num_paths"] is not None
    if level == "dag":
        assert stats["edges_present"] == 15 and stats["possible_edges"] == 15
        assert stats["edge_density"] == pytest.approx(stats["edges"] / 15)
    json.dumps(stats)
