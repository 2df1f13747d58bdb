"""Channel-level wiring graphs of convolutional models.

A model that hands out its wiring builds a :class:`ChannelGraph`: every activation tensor
that the wiring passes through gets one node per channel (``"{tensor}:{channel}"``), every
Conv/Linear layer adds an edge from input channel u to output channel v when *any* of its
weights between u and v is active (for a conv: any of the k x k taps), and identity
shortcuts add ``u -> u`` edges. Per-channel operations (BatchNorm, ReLU, pooling) keep
channels apart, so they add nothing. Layers that are not masked (dense first/last layers,
depthwise convs) count as fully active.

The edge count is known from the channel masks before the graph is built, so a caller can
refuse a graph that would be too big (:class:`~snas.core.graphs.GraphTooLarge`).
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np
import torch
from torch import nn

from snas.core.graphs import INPUTS_ATTR, OUTPUTS_ATTR, GraphTooLarge
from trainables.kernels import MaskedConv2d, MaskedLayer, MaskedLinear


def channel_mask(layer: nn.Module, in_groups: int = 1) -> np.ndarray:
    """(out_channels, in_channels) bool array: True where any weight from in to out is active.

    ``in_groups`` > 1 folds a Linear's flattened input (channels x positions, channel-major,
    as ``Tensor.flatten(1)`` of an NCHW tensor lays it out) back to channels.
    """
    with torch.no_grad():
        if isinstance(layer, MaskedLayer):
            active = layer.mask.detach().cpu()
        elif isinstance(layer, (nn.Conv2d, nn.Linear)):
            active = torch.ones(layer.weight.shape, dtype=torch.bool)
        else:
            raise TypeError(f"no channel mask for {type(layer).__name__}")
        out = active.shape[0]
        if active.dim() == 4:  # conv: (out, in / groups, k, k)
            per = active.reshape(out, active.shape[1], -1).any(-1)
            groups = layer.groups if isinstance(layer, (MaskedConv2d, nn.Conv2d)) else 1
            if groups == 1:
                return per.numpy()
            in_per, out_per = per.shape[1], out // groups
            full = torch.zeros(out, in_per * groups, dtype=torch.bool)
            for g in range(groups):
                full[g * out_per:(g + 1) * out_per, g * in_per:(g + 1) * in_per] = \
                    per[g * out_per:(g + 1) * out_per]
            return full.numpy()
        if in_groups > 1:
            return active.reshape(out, in_groups, -1).any(-1).numpy()
        return active.numpy()


class ChannelGraph:
    """Collects a channel-level DiGraph; see the module docstring for the conventions."""

    def __init__(self, max_edges: int | None = None) -> None:
        self.g = nx.DiGraph()
        self.max_edges = max_edges
        self.sizes: dict[str, int] = {}
        self.layers: list[tuple[str, str, str, np.ndarray]] = []
        self.identities: list[tuple[str, str]] = []

    def tensor(self, name: str, channels: int, stage: int | None = None) -> str:
        """Declare an activation tensor with ``channels`` channels; returns its name."""
        self.sizes[name] = channels
        self.g.add_nodes_from((f"{name}:{c}" for c in range(channels)), tensor=name,
                              stage=stage)
        return name

    def layer(self, name: str, src: str, dst: str, layer: nn.Module, in_groups: int = 1) -> None:
        """Edges of a Conv/Linear layer from tensor ``src`` to tensor ``dst``."""
        mask = channel_mask(layer, in_groups)
        if mask.shape != (self.sizes[dst], self.sizes[src]):
            raise ValueError(f"layer {name!r} maps {mask.shape[1]} -> {mask.shape[0]} channels "
                             f"but {src!r} has {self.sizes[src]} and {dst!r} {self.sizes[dst]}")
        self.layers.append((name, src, dst, mask))

    def identity(self, src: str, dst: str) -> None:
        """A shortcut: channel c of ``src`` feeds channel c of ``dst`` (zero-padded when
        ``dst`` has more channels)."""
        self.identities.append((src, dst))

    def edge_count(self) -> int:
        return (sum(int(m.sum()) for *_, m in self.layers)
                + sum(min(self.sizes[s], self.sizes[d]) for s, d in self.identities))

    def build(self, inputs: str, outputs: str) -> nx.DiGraph:
        """The graph, with ``inputs``/``outputs`` tensors declared as its endpoints."""
        edges = self.edge_count()
        if self.max_edges is not None and edges > self.max_edges:
            raise GraphTooLarge(f"channel graph would have {edges} edges, over the cap "
                                f"max_edges={self.max_edges}")
        g = self.g
        for name, src, dst, mask in self.layers:
            outs, ins = np.nonzero(mask)
            g.add_edges_from(((f"{src}:{i}", f"{dst}:{o}") for o, i in
                              zip(outs.tolist(), ins.tolist())), layer=name)
        for src, dst in self.identities:
            n = min(self.sizes[src], self.sizes[dst])
            g.add_edges_from(((f"{src}:{c}", f"{dst}:{c}") for c in range(n)), layer="identity")
        g.graph[INPUTS_ATTR] = [f"{inputs}:{c}" for c in range(self.sizes[inputs])]
        g.graph[OUTPUTS_ATTR] = [f"{outputs}:{c}" for c in range(self.sizes[outputs])]
        g.graph["level"] = "channel"
        return g


def make_conv(in_c: int, out_c: int, k: int, *, stride: int = 1, padding: int = 0,
              bias: bool = False, kernel, dense: bool = False) -> nn.Module:
    """A masked conv, or a plain ``nn.Conv2d`` when ``dense`` (not in the density vector).
    Biases only where asked for and the kernel allows them (edge-popup: never)."""
    bias = bias and kernel.allows_bias
    if dense:
        return nn.Conv2d(in_c, out_c, k, stride=stride, padding=padding, bias=bias)
    return MaskedConv2d(in_c, out_c, k, stride=stride, padding=padding, bias=bias, kernel=kernel)


def make_linear(in_f: int, out_f: int, *, kernel, dense: bool = False, bias: bool = True
                ) -> nn.Module:
    """A masked Linear, or a plain ``nn.Linear`` when ``dense``."""
    bias = bias and kernel.allows_bias
    if dense:
        return nn.Linear(in_f, out_f, bias=bias)
    return MaskedLinear(in_f, out_f, bias=bias, kernel=kernel)


def stage_counts(g: nx.DiGraph) -> dict[str, list[int]]:
    """Nodes and edges per stage (an edge belongs to its target node's stage); nodes
    without a stage attribute are left out."""
    stages = sorted({s for _, s in g.nodes(data="stage") if s is not None})
    nodes = {s: 0 for s in stages}
    edges = {s: 0 for s in stages}
    for _, s in g.nodes(data="stage"):
        if s is not None:
            nodes[s] += 1
    for _, v in g.edges():
        s = g.nodes[v].get("stage")
        if s is not None:
            edges[s] += 1
    return {"stages": stages, "nodes_per_stage": [nodes[s] for s in stages],
            "edges_per_stage": [edges[s] for s in stages]}


def walk_resnet(cg: ChannelGraph, stem: Sequence[nn.Module],
                blocks: Sequence[tuple[Sequence[nn.Module], nn.Module | None]],
                head: nn.Module, in_channels: int, stage_of: Sequence[int]) -> nx.DiGraph:
    """Channel graph of a ResNet: ``stem`` convs in a chain, then residual blocks, each given
    as (its main-path convs in order, its shortcut conv or None for an identity), then the
    ``head`` Linear on the pooled channels."""
    cur = cg.tensor("input", in_channels, stage=None)
    for i, conv in enumerate(stem):
        nxt = cg.tensor(f"stem{i}", conv.out_channels, stage=0)
        cg.layer(f"stem{i}", cur, nxt, conv)
        cur = nxt
    for b, ((convs, shortcut), stage) in enumerate(zip(blocks, stage_of, strict=True)):
        x = cur
        h = x
        for j, conv in enumerate(convs):
            out = cg.tensor(f"b{b}.{j}" if j < len(convs) - 1 else f"b{b}",
                            conv.out_channels, stage=stage)
            cg.layer(f"b{b}.conv{j}", h, out, conv)
            h = out
        if shortcut is None:
            cg.identity(x, h)
        else:
            cg.layer(f"b{b}.shortcut", x, h, shortcut)
        cur = h
    out = cg.tensor("output", head.out_features, stage=None)
    cg.layer("head", cur, out, head)
    return cg.build("input", "output")
