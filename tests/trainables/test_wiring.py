"""Tests of snas.core.graphs: hand-computed graph statistics, MLP mask summaries, JSON."""

import itertools
import json
import math
from fractions import Fraction

import networkx as nx
import numpy as np
import pytest
import scipy.linalg

from snas.core.errors import SnasError
from snas.core.graphs import (
    GraphTooLarge,
    graph_from_json,
    graph_statistics,
    graph_to_json,
    mlp_layer_summary,
    mlp_neuron_graph,
    remove_dead_paths,
)


def complete_dag(n):
    return nx.DiGraph([(i, j) for i in range(n) for j in range(i + 1, n)])


def diamond_ladder(k):
    """k diamonds in series: 3k + 1 nodes, 2**k paths of length 2k, edge connectivity 2."""
    g = nx.DiGraph()
    for i in range(k):
        a = 3 * i
        g.add_edges_from([(a, a + 1), (a, a + 2), (a + 1, a + 3), (a + 2, a + 3)])
    return g


def brute_force_paths(g, inputs, outputs):
    lengths = [len(p) - 1 for s in inputs for t in outputs
               for p in nx.all_simple_paths(g, s, t)]
    return len(lengths), sum(lengths) / len(lengths), max(lengths)


def expm_log_entry(g, s, t):
    nodes = list(g)
    a = nx.to_numpy_array(g.to_undirected(), nodelist=nodes, weight=None)
    return math.log(scipy.linalg.expm(a)[nodes.index(s), nodes.index(t)])


# Tiny chain MLP: 2 inputs -> 3 hidden -> 2 outputs.
# hidden 0: has input and output; hidden 1: input but no output; hidden 2: no input.
M0 = np.array([[1, 0], [1, 1], [0, 0]], dtype=bool)
M1 = np.array([[1, 0, 1], [0, 0, 1]], dtype=bool)


# ----------------------------------------------------------------------------- paths


def test_diamond():
    g = nx.DiGraph([("s", "a"), ("a", "t"), ("s", "b"), ("b", "t")])
    r = graph_statistics(g)
    assert r["num_paths"] == 2
    assert r["log_num_paths"] == pytest.approx(math.log(2))
    assert r["mean_path_length"] == 2.0 and r["max_path_length"] == 2
    assert r["edge_connectivity"] == 2
    assert r["mean_degree"] == 2.0
    assert r["density"] == pytest.approx(4 / 6)
    assert (r["nodes"], r["edges"]) == (4, 4)
    assert r["virtual_source"] is False and r["virtual_sink"] is False


def test_chain():
    r = graph_statistics(nx.path_graph(5, create_using=nx.DiGraph))
    assert r["num_paths"] == 1 and r["log_num_paths"] == 0.0
    assert r["mean_path_length"] == 4.0 and r["max_path_length"] == 4
    assert r["edge_connectivity"] == 1
    assert r["q1d"] is False  # elongated, but one edge splits it


def test_complete_dag_60_exact_path_count():
    r = graph_statistics(complete_dag(60))
    # 2**58 > 2**53: the exact count travels as a string.
    assert r["num_paths"] == str(2**58)
    assert r["log_num_paths"] == pytest.approx(58 * math.log(2), rel=1e-12)
    # A path = a subset of the 58 inner nodes; mean length = 58 / 2 + 1.
    assert r["mean_path_length"] == pytest.approx(30.0)
    assert r["max_path_length"] == 59
    assert r["edge_connectivity"] == 59
    assert r["mean_degree"] == 59.0 and r["density"] == 1.0


def test_path_count_beyond_float_range():
    k = 1100  # 2**1100 paths: float(2**1100) overflows, the count must stay exact
    r = graph_statistics(diamond_ladder(k))
    assert r["num_paths"] == str(2**k)
    assert r["log_num_paths"] == pytest.approx(k * math.log(2), rel=1e-12)
    assert r["mean_path_length"] == 2 * k and r["max_path_length"] == 2 * k
    assert r["edge_connectivity"] == 2
    assert isinstance(r["log_communicability"], float)
    assert r["elongation"] is None and "elongation" in r["notes"]
    assert r["q1d"] is None  # connectivity 2, elongation unknown


def test_dp_matches_enumeration_complete_dag_5():
    g = complete_dag(5)
    count, mean, longest = brute_force_paths(g, [0], [4])
    r = graph_statistics(g)
    assert r["num_paths"] == count == 8
    assert r["mean_path_length"] == pytest.approx(mean)
    assert r["max_path_length"] == longest


def test_dp_matches_enumeration_random_dag_with_virtual_endpoints():
    rng = np.random.default_rng(3)
    g = nx.DiGraph()
    g.add_edges_from((i, j) for i, j in itertools.combinations(range(14), 2)
                     if rng.random() < 0.3)
    inputs = [v for v in g if g.in_degree(v) == 0]
    outputs = [v for v in g if g.out_degree(v) == 0]
    assert len(inputs) > 1 and len(outputs) > 1
    count, mean, longest = brute_force_paths(g, inputs, outputs)
    r = graph_statistics(g)
    assert r["virtual_source"] and r["virtual_sink"]
    # Lengths count edges of g only, not the edges to and from the virtual nodes.
    assert r["num_paths"] == count
    assert r["mean_path_length"] == pytest.approx(mean)
    assert r["max_path_length"] == longest


def test_virtual_endpoints_and_isolated_nodes():
    g = nx.DiGraph([("a", "c"), ("b", "c"), ("c", "d"), ("c", "e")])
    g.add_node("z")  # isolated: neither input nor output, no fake path
    r = graph_statistics(g)
    assert r["virtual_source"] is True and r["virtual_sink"] is True
    assert (r["inputs"], r["outputs"]) == (2, 2)
    assert (r["nodes"], r["edges"]) == (6, 4)
    assert r["num_paths"] == 4 and r["mean_path_length"] == 2.0
    assert r["edge_connectivity"] == 2
    assert r["mean_degree"] == pytest.approx(8 / 6)


def test_virtual_edges_cannot_be_cut():
    # Every input reaches every output directly: 4 real edges must go. Cutting the two
    # virtual source edges (what plain nx.edge_connectivity would do) is not allowed.
    g = nx.DiGraph([("a", "c"), ("a", "d"), ("b", "c"), ("b", "d")])
    assert graph_statistics(g)["edge_connectivity"] == 4


def test_no_path_between_explicit_endpoints():
    g = nx.DiGraph([("s", "a"), ("b", "t")])
    r = graph_statistics(g, source="s", sink="t")
    assert r["num_paths"] == 0 and r["log_num_paths"] is None
    assert r["mean_path_length"] is None and r["max_path_length"] is None
    assert r["edge_connectivity"] == 0 and r["q1d"] is False
    assert r["log_communicability"] is None
    assert {"log_num_paths", "log_communicability"} <= set(r["notes"])


def test_rejects_cycles_and_unknown_endpoints():
    with pytest.raises(ValueError, match="DAG"):
        graph_statistics(nx.DiGraph([(0, 1), (1, 2), (2, 0)]))
    with pytest.raises(ValueError, match="not a node"):
        graph_statistics(nx.DiGraph([(0, 1)]), source=7)
    with pytest.raises(ValueError, match="DiGraph"):
        graph_statistics(nx.Graph([(0, 1)]))


def test_statistics_are_plain_json():
    for g in (complete_dag(6), diamond_ladder(4), nx.DiGraph([("a", "c"), ("b", "c")])):
        r = graph_statistics(g)
        assert json.loads(json.dumps(r, allow_nan=False)) == r
        assert not any(isinstance(v, np.generic) for v in r.values())


# ----------------------------------------------------------------------------- communicability


@pytest.mark.parametrize("g, s, t", [
    (nx.DiGraph([("s", "a"), ("a", "t"), ("s", "b"), ("b", "t"), ("a", "b")]), "s", "t"),
    (complete_dag(12), 0, 11),
    (diamond_ladder(6), 0, 18),
])
def test_communicability_equals_dense_expm(g, s, t):
    r = graph_statistics(g)
    assert r["log_communicability"] == pytest.approx(expm_log_entry(g, s, t), rel=1e-10)


def test_communicability_with_virtual_nodes_uses_augmented_graph():
    g = nx.DiGraph([("a", "c"), ("b", "c"), ("c", "d")])
    aug = g.copy()
    aug.add_edges_from([("VS", "a"), ("VS", "b")])
    r = graph_statistics(g)
    assert r["virtual_source"] and not r["virtual_sink"]
    assert r["log_communicability"] == pytest.approx(expm_log_entry(aug, "VS", "d"), rel=1e-10)


def test_communicability_tiny_entry_keeps_relative_precision():
    # End to end of a 50-node path: C = sum_k walks_k / k!, first term 1/49!. Dense expm
    # loses this entry in rounding (~1e-16 * |expm(A)|); the exact sum does not.
    n = 50
    walks = [1] + [0] * (n - 1)  # walks of length k from node 0, exact ints
    exact = Fraction(0)
    for k in range(400):
        exact += Fraction(walks[n - 1], math.factorial(k))
        walks = [(walks[i - 1] if i else 0) + (walks[i + 1] if i < n - 1 else 0)
                 for i in range(n)]
    r = graph_statistics(nx.path_graph(n, create_using=nx.DiGraph))
    assert r["log_communicability"] == pytest.approx(math.log(exact), rel=1e-12)


# ----------------------------------------------------------------------------- elongation


def test_elongation_path_high_complete_low():
    path = graph_statistics(nx.path_graph(30, create_using=nx.DiGraph))
    assert path["elongation"] > 0.25
    complete = graph_statistics(complete_dag(20))
    assert abs(complete["elongation"]) < 0.05
    assert complete["q1d"] is False


def test_q1d_needs_elongation_and_connectivity():
    r = graph_statistics(diamond_ladder(10))
    assert r["edge_connectivity"] == 2 and r["elongation"] > 0.25
    assert r["q1d"] is True


def test_elongation_skipped_above_cap():
    r = graph_statistics(diamond_ladder(10), elongation_max_nodes=5)
    assert r["elongation"] is None and "31 nodes" in r["notes"]["elongation"]
    assert r["q1d"] is None


@pytest.mark.parametrize("n", [40, 150])
def test_elongation_layout_is_networkxs_kamada_kawai(n):
    """The cheaper cost function minimises the same energy from the same start: the layout
    (up to networkx's final rescaling) and so the elongation match nx.kamada_kawai_layout."""
    from snas.core.graphs import _kamada_kawai_layout

    g = nx.connected_watts_strogatz_graph(n, 4, 0.1, seed=1)
    theirs = nx.kamada_kawai_layout(g, dist=dict(nx.shortest_path_length(g)))
    ours = _kamada_kawai_layout(g)

    def ratio(xy):
        var = np.linalg.svd(xy - xy.mean(axis=0), compute_uv=False) ** 2
        return var[0] / var.sum()

    expected = np.array([theirs[v] for v in g])
    assert ratio(ours) == pytest.approx(ratio(expected), abs=1e-9)
    rescaled = nx.rescale_layout(ours.copy(), scale=1)
    np.testing.assert_allclose(rescaled, expected, atol=1e-6)


def test_elongation_is_deterministic():
    g = diamond_ladder(5)
    assert graph_statistics(g)["elongation"] == graph_statistics(g)["elongation"]


# ----------------------------------------------------------------------------- MLP masks


def test_mlp_layer_summary_counts():
    s = mlp_layer_summary([M0, M1], ["fc1", "fc2"])
    fc1, fc2 = s["layers"]
    assert fc1 == {"name": "fc1", "shape": [3, 2], "active_weights": 3, "total_weights": 6,
                   "density": 0.5, "dead_inputs": 0, "dead_outputs": 1}
    assert fc2 == {"name": "fc2", "shape": [2, 3], "active_weights": 3, "total_weights": 6,
                   "density": 0.5, "dead_inputs": 1, "dead_outputs": 0}
    assert (s["active_weights"], s["total_weights"]) == (6, 12)
    assert s["hidden_neurons"] == [3]
    assert s["dead_neurons"] == [2]  # hidden 1 (no output) and hidden 2 (no input)
    json.dumps(s)


def test_mlp_layer_summary_rejects_mismatched_layers():
    with pytest.raises(ValueError, match="fc2"):
        mlp_layer_summary([M0, np.ones((2, 4), dtype=bool)], ["fc1", "fc2"])
    with pytest.raises(ValueError, match="same length"):
        mlp_layer_summary([M0], ["fc1", "fc2"])


def test_mlp_neuron_graph_structure():
    g = mlp_neuron_graph([M0, M1], ["fc1", "fc2"])
    assert g.number_of_nodes() == 2 + 3 + 2
    assert g.number_of_edges() == 6
    assert set(g.edges()) == {("L0:0", "L1:0"), ("L0:0", "L1:1"), ("L0:1", "L1:1"),
                              ("L1:0", "L2:0"), ("L1:2", "L2:0"), ("L1:2", "L2:1")}
    assert g.nodes["L1:2"]["layer"] == 1 and g.nodes["L2:1"]["layer"] == 2
    assert g.graph["inputs"] == ["L0:0", "L0:1"]


def test_neuron_graph_statistics_use_declared_inputs():
    g = mlp_neuron_graph([M0, M1], ["fc1", "fc2"])
    r = graph_statistics(g)
    assert (r["inputs"], r["outputs"]) == (2, 2)
    assert r["num_paths"] == 1 and r["mean_path_length"] == 2.0
    # By the degree rule the dead L1:2 (no input) would be an input and the dead-end L1:1 an
    # output: L0:0-L1:1, L0:1-L1:1, L1:2-L2:0, L1:2-L2:1 would join L0:0-L1:0-L2:0.
    del g.graph["inputs"], g.graph["outputs"]
    assert graph_statistics(g)["num_paths"] == 5


def test_mlp_neuron_graph_cap():
    with pytest.raises(GraphTooLarge) as info:
        mlp_neuron_graph([M0, M1], ["fc1", "fc2"], max_nodes=6)
    message = str(info.value)
    assert isinstance(info.value, SnasError)
    assert "\n" not in message and "7 nodes" in message and "max_nodes=6" in message
    mlp_neuron_graph([M0, M1], ["fc1", "fc2"], max_nodes=7)


# ----------------------------------------------------------------------------- dead paths


def test_remove_dead_paths_hand_example():
    g = nx.DiGraph([("s", "a"), ("a", "t"), ("s", "b"),  # b: dead end
                    ("c", "a"),                           # c: not reachable from s
                    ("s", "d"), ("d", "e"), ("e", "t"),
                    ("e", "f"), ("f", "g")])              # f, g: a dead-end chain
    g.nodes["d"]["op"] = "conv"
    out = remove_dead_paths(g, "s", "t")
    assert set(out) == {"s", "a", "t", "d", "e"}
    assert set(out.edges()) == {("s", "a"), ("a", "t"), ("s", "d"), ("d", "e"), ("e", "t")}
    assert out.nodes["d"]["op"] == "conv"
    assert set(g) >= {"b", "c", "f", "g"}  # the input graph is untouched


def test_remove_dead_paths_on_neuron_graph_is_transitive():
    g = mlp_neuron_graph([M0, M1], ["fc1", "fc2"])
    out = remove_dead_paths(g, g.graph["inputs"], g.graph["outputs"])
    assert set(out) == {"L0:0", "L1:0", "L2:0"}
    assert out.graph["inputs"] == ["L0:0"] and out.graph["outputs"] == ["L2:0"]


# ----------------------------------------------------------------------------- JSON


def test_json_round_trip():
    g = mlp_neuron_graph([M0, M1], ["fc1", "fc2"])
    g.nodes["L0:0"]["score"] = np.float32(0.5)
    g.add_edge("L0:1", "L1:0", weight=np.float64(-1.25))
    data = graph_to_json(g)
    back = graph_from_json(json.loads(json.dumps(data)))
    assert isinstance(back, nx.DiGraph)
    assert list(back.nodes(data=True)) == list(g.nodes(data=True))
    assert {(u, v): d for u, v, d in back.edges(data=True)} == {
        (u, v): d for u, v, d in g.edges(data=True)}
    assert back.edges["L0:1", "L1:0"]["weight"] == -1.25
    assert back.graph == g.graph


def test_json_round_trip_int_ids():
    g = complete_dag(5)
    g = nx.relabel_nodes(g, {i: np.int64(i) for i in g})
    back = graph_from_json(graph_to_json(g))
    assert sorted(back.edges()) == sorted((int(u), int(v)) for u, v in g.edges())
    assert graph_statistics(back)["num_paths"] == 8


def test_json_rejects_tuple_ids():
    with pytest.raises(ValueError, match="node ids"):
        graph_to_json(nx.DiGraph([((0, 1), (0, 2))]))
