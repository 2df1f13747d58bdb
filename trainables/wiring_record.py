"""The wiring record of a trained trial: its graph and graph statistics, from a checkpoint.

The controller calls :func:`wiring_record` when a trial ends (finished or stopped early by
ASHA), on the trial's last checkpoint, so every trial gets one whatever ended it.

For MLPs the record has the layer-level summary (active weights per layer, dead neurons
with no input or no output; :func:`trainables.wiring.mlp_layer_summary`) and the
statistics of the neuron-level graph (one node per neuron, one edge per active weight) when
it has at most ``max_stat_edges`` edges. The graph itself is stored neuron-level up to
``max_graph_edges`` edges; larger networks store the layer-level chain graph (a node per
layer of neurons, an edge per weight layer carrying its active weights) and say so in
``statistics["graph_level"]``.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from trainables.tune_trainable import masks_from_checkpoint
from trainables.wiring import (
    graph_statistics,
    graph_to_json,
    mlp_layer_summary,
    mlp_neuron_graph,
)

MAX_STAT_EDGES = 150_000
MAX_GRAPH_EDGES = 20_000


def layer_graph(summary: dict[str, Any]) -> nx.DiGraph:
    """Chain graph: node i = the neurons between weight layers i-1 and i."""
    g = nx.DiGraph()
    layers = summary["layers"]
    g.add_node("input", neurons=layers[0]["shape"][1])
    prev = "input"
    for i, layer in enumerate(layers):
        node = "output" if i == len(layers) - 1 else f"hidden{i}"
        g.add_node(node, neurons=layer["shape"][0])
        g.add_edge(prev, node, layer=layer["name"], active_weights=layer["active_weights"],
                   density=layer["density"])
        prev = node
    return g


def wiring_record(checkpoint_dir: str, max_stat_edges: int = MAX_STAT_EDGES,
                  max_graph_edges: int = MAX_GRAPH_EDGES) -> tuple[dict, dict]:
    """(graph as node-link JSON, statistics) of the trial checkpoint in ``checkpoint_dir``."""
    names, masks = masks_from_checkpoint(checkpoint_dir)
    if any(m.ndim != 2 for m in masks):
        raise ValueError("wiring records are implemented for MLP (Linear) layers only")
    summary = mlp_layer_summary(masks, names)
    edges = summary["active_weights"]
    stats: dict[str, Any] = {"layer_summary": summary}
    neuron_graph = None
    if edges <= max(max_stat_edges, max_graph_edges):
        neuron_graph = mlp_neuron_graph(masks, names, max_nodes=200_000)
    if neuron_graph is not None and edges <= max_stat_edges:
        stats.update(graph_statistics(neuron_graph))
    else:
        stats["notes"] = {"statistics": f"skipped: {edges} active weights > {max_stat_edges}"}
    if neuron_graph is not None and edges <= max_graph_edges:
        stats["graph_level"] = "neuron"
        return graph_to_json(neuron_graph), stats
    stats["graph_level"] = "layer"
    return graph_to_json(layer_graph(summary)), stats
