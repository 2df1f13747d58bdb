"""The wiring record of a trained trial: its graph and graph statistics.

The trainable computes it from the model it has in memory (:func:`trial_wiring_record`)
whenever it saves a checkpoint at an epoch where the trial may end (the last epoch, ASHA's
rungs) and writes it into the checkpoint folder (:mod:`trainables.checkpoint`); the
controller stores it when the trial ends (finished or stopped early by ASHA). A
checkpoint without one (older, or a trial stopped at another epoch) gets it from
:func:`wiring_record`, which rebuilds it from the checkpoint alone, so every trial gets one
whatever ended it. Both paths give the same record.

MLPs: the record has the layer-level summary (active weights per layer, dead neurons
with no input or no output; :func:`snas.core.graphs.mlp_layer_summary`) and the
statistics of the neuron-level graph (one node per neuron, one edge per active weight) when
it has at most ``max_stat_edges`` edges. The graph itself is stored neuron-level up to
``max_graph_edges`` edges; larger networks store the layer-level chain graph (a node per
layer of neurons, an edge per weight layer carrying its active weights) and say so in
``statistics["graph_level"]``. This needs the masks only.

Every other model (CNNs, the Janik-Nowak DAG, DNW neural graphs) hands out its own wiring
as a networkx DiGraph (``model.wiring_graph(max_edges)``); from a checkpoint the model is
rebuilt: its search space (the checkpoint's ``space`` entry, or for older checkpoints
Tune's ``params.json`` in the trial folder), density vector and weights. Graph levels:
``channel`` (CNNs: an edge where any weight between two channels is active), ``dag`` (DAG
nodes and the edges that survive thresholding at tau and dead-path removal), ``node``
(neural graphs). The statistics are
:func:`snas.core.graphs.graph_statistics` plus ``nodes_per_stage``/``edges_per_stage``
(an edge counts in its target's stage), the weight counts of the maskable layers
(``active_weights``, ``total_weights``, ``weight_density``) and, where the model declares
how many edges were possible, ``edge_density`` (+ per stage; identity shortcuts not
counted). A channel graph over ``max_graph_edges`` edges falls back to the layer chain.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import networkx as nx
import torch

from snas.core.graphs import (
    GraphTooLarge,
    graph_statistics,
    graph_to_json,
    mlp_layer_summary,
    mlp_neuron_graph,
)
from trainables import checkpoint

MAX_STAT_EDGES = 150_000
MAX_GRAPH_EDGES = 20_000
TRIAL_PARAMS_FILE = "params.json"  # written by Ray Tune into every trial folder


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


def trial_space(checkpoint_dir: str | os.PathLike):
    """The SpaceConfig a trial trained: the checkpoint's own, else ``params.json`` of the
    Tune trial folder (older checkpoints; Tune may write it late); ``None`` when neither
    has one."""
    from snas.core.config import SpaceConfig

    space = checkpoint.read_space(checkpoint_dir)
    if space is not None:
        return space
    for folder in (Path(checkpoint_dir), Path(checkpoint_dir).parent):
        path = folder / TRIAL_PARAMS_FILE
        if path.is_file():
            params = json.loads(path.read_text())
            if isinstance(params, dict) and "space" in params:
                return SpaceConfig.from_dict(params["space"])
    return None


@lru_cache(maxsize=8)
def _data_shape(dataset) -> tuple[tuple[int, ...], int]:
    from trainables.data import load_dataset

    data = load_dataset(dataset, "cpu")
    return tuple(data.input_shape), int(data.num_classes)


def model_from_checkpoint(checkpoint_dir: str | os.PathLike, space) -> torch.nn.Module:
    """Rebuild the trial's model on CPU (in eval mode) and load the checkpoint's weights."""
    from trainables.kernels import make_kernel
    from trainables.models import build_model

    state = checkpoint.load_state(checkpoint_dir)
    input_shape, num_classes = _data_shape(space.dataset)
    model = build_model(space.model, make_kernel(space.kernel), input_shape, num_classes,
                        checkpoint.read_density(state), torch.Generator().manual_seed(0))
    model.load_state_dict(checkpoint.read_model_state(state))
    return model.eval()


def _layer_chain(model: torch.nn.Module) -> nx.DiGraph:
    """Fallback graph: the maskable layers in density-vector order, as a chain."""
    from trainables.models import maskable_layers

    g = nx.DiGraph()
    prev = "input"
    g.add_node(prev)
    for name, layer in maskable_layers(model):
        g.add_node(name, shape=list(layer.weight.shape))
        g.add_edge(prev, name, active_weights=layer.active_weights,
                   total_weights=layer.weight.numel())
        prev = name
    g.graph["level"] = "layer"
    return g


def model_wiring_record(model: torch.nn.Module, max_stat_edges: int = MAX_STAT_EDGES,
                        max_graph_edges: int = MAX_GRAPH_EDGES) -> tuple[dict, dict]:
    """(graph as node-link JSON, statistics) of a model with a ``wiring_graph`` method."""
    from trainables.models import maskable_layers
    from trainables.models._wiring import stage_counts

    layers = maskable_layers(model)
    active = sum(layer.active_weights for _, layer in layers)
    total = sum(layer.weight.numel() for _, layer in layers)
    stats: dict[str, Any] = {"active_weights": active, "total_weights": total,
                             "weight_density": active / total if total else None}
    try:
        g = model.wiring_graph(max_edges=max(max_stat_edges, max_graph_edges))
    except GraphTooLarge as exc:
        stats["graph_level"] = "layer"
        stats["notes"] = {"statistics": f"skipped: {exc}"}
        return graph_to_json(_layer_chain(model)), stats
    stats["graph_level"] = g.graph.get("level", "channel")
    for key in ("edges_present", "possible_edges"):
        if key in g.graph:
            stats[key] = g.graph[key]
    stats.update(stage_counts(g))
    real = [(u, v) for u, v, kind in g.edges(data="layer") if kind != "identity"]
    if "possible_edges" in g.graph:
        stats["edge_density"] = len(real) / g.graph["possible_edges"]
    per_stage = g.graph.get("possible_edges_per_stage")
    if per_stage is not None:
        counts = [0] * len(per_stage)
        for _, v in real:
            counts[g.nodes[v]["stage"]] += 1
        stats["edge_density_per_stage"] = [c / p if p else None
                                           for c, p in zip(counts, per_stage)]
    edges = g.number_of_edges()
    if edges <= max_stat_edges:
        stats.update({k: v for k, v in graph_statistics(g).items()
                      if k not in ("nodes_per_stage", "edges_per_stage")})
    else:
        stats["notes"] = {"statistics": f"skipped: {edges} edges > {max_stat_edges}"}
    if edges <= max_graph_edges:
        return graph_to_json(g), stats
    stats["graph_level"] = "layer"
    return graph_to_json(_layer_chain(model)), stats


def mlp_wiring_record(names: list[str], masks: list[Any],
                      max_stat_edges: int = MAX_STAT_EDGES,
                      max_graph_edges: int = MAX_GRAPH_EDGES) -> tuple[dict, dict]:
    """(graph as node-link JSON, statistics) of an MLP from its boolean masks (numpy, model
    order)."""
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


def record_masks(model: torch.nn.Module, model_name: str) -> list[Any] | None:
    """The model's masks (numpy, model order) where its wiring record depends on nothing
    else: an MLP's record is built from its masks alone, so equal masks give an equal
    record (a fixed-mask kernel such as ``random`` keeps them for the whole trial, and the
    trainable then builds one record per trial, not one per ASHA rung it passes). None for
    every other model: each builds its own graph (``model.wiring_graph``), and some depend
    on the weights too (a DAG's edges are thresholded at tau), so their records are built
    every time."""
    if model_name != "mlp":
        return None
    return checkpoint.masks_from_model_state(model.state_dict())[1]


def trial_wiring_record(model: torch.nn.Module, model_name: str,
                        max_stat_edges: int = MAX_STAT_EDGES,
                        max_graph_edges: int = MAX_GRAPH_EDGES) -> tuple[dict, dict]:
    """(graph as node-link JSON, statistics) of a trial's model as it is in memory (any
    device); ``model_name`` is its ``model.name``. Equal to :func:`wiring_record` of a
    checkpoint of that model."""
    if model_name != "mlp":
        return model_wiring_record(model, max_stat_edges, max_graph_edges)
    names, masks = checkpoint.masks_from_model_state(model.state_dict())
    return mlp_wiring_record(names, masks, max_stat_edges, max_graph_edges)


def wiring_record(checkpoint_dir: str, max_stat_edges: int = MAX_STAT_EDGES,
                  max_graph_edges: int = MAX_GRAPH_EDGES) -> tuple[dict, dict]:
    """(graph as node-link JSON, statistics) of the trial checkpoint in ``checkpoint_dir``,
    rebuilt from the checkpoint alone."""
    space = trial_space(checkpoint_dir)
    if space is not None and space.model.name != "mlp":
        model = model_from_checkpoint(checkpoint_dir, space)
        return model_wiring_record(model, max_stat_edges, max_graph_edges)
    names, masks = checkpoint.read_masks(checkpoint_dir)
    if any(m.ndim != 2 for m in masks):
        raise ValueError("wiring records of non-MLP models need the checkpoint's search "
                         "space to rebuild the model; this checkpoint has none")
    return mlp_wiring_record(names, masks, max_stat_edges, max_graph_edges)
