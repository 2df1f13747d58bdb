"""DNW static neural graph (Wortsman et al. 2019, sections 2.1, 3 and appendix A): channels
are nodes and the wiring between them is learned.

Layout. A stem conv3x3(in, m, stride ``stem_stride``) is the input function g_phi
(m = ``nodes_per_block``); then ``stages`` neural graphs run in sequence, one per spatial
resolution (the output of graph s is the input of graph s+1); the read-out h_psi is
norm -> ReLU -> global average pooling -> Linear(m, classes) (MobileNetV1-DNW's head; with
``norm: instance`` the output nodes are pooled directly, as in the paper's tiny
classifiers). Graph s has ``blocks`` blocks of m nodes: block 0 holds its input nodes
(input node v reads channel v of the graph's input), the last block its output nodes. An
edge u -> v may only go from an earlier block to a later one (the *allowed* edges,
E = m^2 * B(B-1)/2 of them).

Nodes. A node's input is the weighted sum of its parents' states,
``I_v = sum_u w_uv Z_u``, computed for a whole block at once as a 1x1 conv over the
concatenated states of the earlier blocks. Every node except the output nodes applies
norm -> ReLU -> 3x3 depthwise conv to its input (the paper's "batch-norm, ReLU, 3x3
convolution triplet"; the public code uses the same order); the input nodes of graphs
s >= 1 use stride 2 (one resolution per graph). Output nodes have no operation: a graph's
output is the plain weighted sum ``I_v`` of its output nodes, which the next graph's input
nodes (or the head) normalise. Applying the node op at the output nodes too, as an earlier
version did, put two per-channel convs with nothing mixing them at every graph boundary and
left the output nodes' norm gains with zero gradient (the next norm undoes any rescaling).

Initialisation (variance preserving, for any density). Every norm sees an input of about
unit variance at init, in every block and at every density: the depthwise and stem convs
use a Kaiming-normal init (a unit-variance input stays unit variance), and after the
kernel has initialised the edge weights and chosen the first k edges, the edge weights of
each graph are scaled by one common factor so that a node's *kept* incoming weights have a
mean squared sum of 1 over the non-input nodes (then ``I_v`` has unit variance). One factor
per graph keeps the ranking of |w| that DNW selects by. The earlier init (a uniform init
with the fan-in of all allowed inputs, not of the kept ones, and default conv inits that
shrink the variance about threefold per conv) left the norm inputs at std 0.07-0.25 at
density 0.5; BatchNorm's running variance (which starts at 1) then over-estimated the
variance 2.5-8x after the few hundred steps of a short run, and as the error multiplies
over the ~10 norms of the network the eval-mode logits collapsed to a constant
(validation accuracy at chance while train-mode accuracy rose). An explicit ``init_fan_in``
(SC-SDC) is honoured as given, without the rescaling.

Edges and top-k. The allowed edges of a graph are ONE maskable layer (:class:`GraphEdges`)
whose weight is the flat vector of its E allowed edges, so the kernel's top-k (DNW: the
k = density * E largest |w|, straight-through to all of them) ranges over allowed edges
only and never spends budget on a disallowed matrix entry (the public code's dense matrix
does). The density vector has one entry per graph. ``random_graph: true`` is the paper's RG
baseline: the k edges with the largest fixed uniform random scores, drawn once; the edge
weights still train (gradient masked).
"""

from __future__ import annotations

import networkx as nx
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snas.core.catalog import NeuralGraphOptions
from snas.core.graphs import INPUTS_ATTR, OUTPUTS_ATTR
from trainables.kernels import MaskedLayer, MaskKernel, reference_topk_mask
from trainables.kernels._base import float_mask


def allowed_edges(blocks: int, per_block: int) -> tuple[Tensor, Tensor]:
    """(src, dst) node indices of every allowed edge, ordered by dst then src."""
    n = blocks * per_block
    block = torch.arange(n) // per_block
    dst, src = torch.nonzero(block[:, None] > block[None, :], as_tuple=True)
    return src, dst


class GraphEdges(MaskedLayer):
    """The allowed edges of one static neural graph as a maskable layer of E weights."""

    def __init__(self, blocks: int, per_block: int, kernel: MaskKernel, random_graph: bool):
        src, dst = allowed_edges(blocks, per_block)
        n_edges = src.numel()
        # fan-in of the dense graph: a node's mean number of allowed inputs (blocks 1..B-1)
        fan_in = max(1, round(n_edges / ((blocks - 1) * per_block)))
        super().__init__((n_edges,), fan_in, False, kernel)
        self.blocks, self.per_block = blocks, per_block
        self.random_graph = random_graph
        self.register_buffer("src", src, persistent=False)
        self.register_buffer("dst", dst, persistent=False)

    def configure(self, density: float, generator: torch.Generator,
                  init_fan_in: int | None = None) -> None:
        super().configure(density, generator, init_fan_in)
        if self.random_graph:
            scores = torch.rand(self.weight.shape, generator=generator)
            with torch.no_grad():
                self.mask.copy_(reference_topk_mask(scores, self.k))
                if self.kernel.name in ("random", "set"):  # these keep inactive weights at 0
                    self.weight.mul_(float_mask(self))
        if init_fan_in is None:
            self._scale_to_unit_input()
        self.invalidate_cache()

    def kept_input_power(self) -> Tensor:
        """Per node, the sum of its kept incoming squared weights (0 for input nodes)."""
        with torch.no_grad():
            eff = self.weight * float_mask(self)
            n = self.blocks * self.per_block
            return eff.new_zeros(n).index_add_(0, self.dst, eff.square())

    def _scale_to_unit_input(self) -> None:
        """Scale all edge weights by one factor so that the non-input nodes' kept incoming
        squared weights sum to 1 on average (unit-variance node inputs; module docstring)."""
        power = self.kept_input_power()[self.per_block:].mean()
        if power > 0:
            with torch.no_grad():
                self.weight.mul_(power.rsqrt())

    def effective_weight(self) -> Tensor:
        if not self.random_graph:
            return super().effective_weight()
        eff = self.weight * float_mask(self)  # fixed RG mask whatever the kernel
        if self.training and self.track_gradient and eff.requires_grad:
            eff.retain_grad()
            self._eff = eff
        return eff

    def matrix(self) -> Tensor:
        """Dense (n, n) adjacency, [v, u] = effective weight of u -> v (0 if not allowed)."""
        n = self.blocks * self.per_block
        eff = self.effective_weight()
        return eff.new_zeros(n, n).index_put((self.dst, self.src), eff)


def _norm(kind: str, channels: int, affine: bool) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=affine)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=affine)
    raise ValueError(f"unknown norm {kind!r}")


def _depthwise(channels: int, stride: int) -> nn.Conv2d:
    """A node's 3x3 single-channel conv for a block of nodes, Kaiming-normal (ReLU input)."""
    conv = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels,
                     bias=False)
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    return conv


class NeuralGraph(nn.Module):
    """One static neural graph; block b's nodes run as one depthwise conv over m channels.

    ``norms[b]`` and ``convs[b]`` are the node ops of block b < B-1; the output block has
    none, and :meth:`forward` returns its nodes' inputs."""

    def __init__(self, options: NeuralGraphOptions, kernel: MaskKernel, stride: int):
        super().__init__()
        m, blocks = options.nodes_per_block, options.blocks
        self.m, self.blocks = m, blocks
        self.edges = GraphEdges(blocks, m, kernel, options.random_graph)
        self.norms = nn.ModuleList(_norm(options.norm, m, kernel.affine_norm)
                                   for _ in range(blocks - 1))
        self.convs = nn.ModuleList(_depthwise(m, stride if b == 0 else 1)
                                   for b in range(blocks - 1))

    def _op(self, b: int, x: Tensor) -> Tensor:
        return self.convs[b](F.relu(self.norms[b](x)))

    def forward(self, x: Tensor) -> Tensor:
        m = self.m
        w = self.edges.matrix()
        states = [self._op(0, x)]  # the input nodes
        for b in range(1, self.blocks):
            mix = w[b * m:(b + 1) * m, :b * m]  # inputs from every earlier block
            z = torch.cat(states, 1) if len(states) > 1 else states[0]
            inputs = F.conv2d(z, mix[:, :, None, None])
            if b == self.blocks - 1:
                return inputs  # output nodes: no operation
            states.append(self._op(b, inputs))
        raise AssertionError("unreachable: a graph has at least 2 blocks")


class NeuralGraphNet(nn.Module):
    """Stem -> ``stages`` neural graphs -> head; see the module docstring."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int,
                 options: NeuralGraphOptions, kernel: MaskKernel):
        super().__init__()
        from snas.core.errors import ConfigError

        if len(input_shape) != 3:
            raise ConfigError(f"model neural_graph needs image input (channels, height, "
                              f"width), got input shape {list(input_shape)}")
        m = options.nodes_per_block
        self.stem = nn.Conv2d(input_shape[0], m, 3, stride=options.stem_stride, padding=1,
                              bias=False)
        nn.init.kaiming_normal_(self.stem.weight, nonlinearity="linear")
        self.graphs = nn.ModuleList(NeuralGraph(options, kernel, 1 if s == 0 else 2)
                                    for s in range(options.stages))
        # h_psi: BN -> ReLU -> pool -> FC; instance norm pools the output nodes directly
        self.head_norm = (nn.BatchNorm2d(m, affine=kernel.affine_norm)
                          if options.norm == "batch" else None)
        self.head = nn.Linear(m, num_classes, bias=kernel.allows_bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)
        for graph in self.graphs:
            h = graph(h)
        if self.head_norm is not None:
            h = F.relu(self.head_norm(h))
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))

    def wiring_graph(self, max_edges: int | None = None) -> nx.DiGraph:
        """Node-level wiring: node ``"g{s}:{v}"`` (attribute ``stage=s``, ``block``) per node
        of graph s, an edge per active edge; the output node v of graph s feeds input node v
        of graph s+1 (edge attribute ``layer="identity"``)."""
        from snas.core.graphs import GraphTooLarge

        total = sum(int(gr.edges.mask.sum()) for gr in self.graphs)
        if max_edges is not None and total > max_edges:
            raise GraphTooLarge(f"neural graph has {total} edges, over the cap "
                                f"max_edges={max_edges}")
        g = nx.DiGraph()
        possible = []
        for s, gr in enumerate(self.graphs):
            m, blocks = gr.m, gr.blocks
            g.add_nodes_from((f"g{s}:{v}", {"stage": s, "block": v // m})
                             for v in range(m * blocks))
            active = gr.edges.mask.cpu()
            src, dst = gr.edges.src[active].tolist(), gr.edges.dst[active].tolist()
            g.add_edges_from((f"g{s}:{u}", f"g{s}:{v}") for u, v in zip(src, dst))
            possible.append(int(gr.edges.weight.numel()))
            if s > 0:
                prev = self.graphs[s - 1]
                base = (prev.blocks - 1) * prev.m
                g.add_edges_from(((f"g{s - 1}:{base + v}", f"g{s}:{v}") for v in range(m)),
                                 layer="identity")
        first, last = self.graphs[0], self.graphs[-1]
        g.graph[INPUTS_ATTR] = [f"g0:{v}" for v in range(first.m)]
        g.graph[OUTPUTS_ATTR] = [f"g{len(self.graphs) - 1}:{(last.blocks - 1) * last.m + v}"
                                 for v in range(last.m)]
        g.graph["level"] = "node"
        g.graph["possible_edges"] = sum(possible)
        g.graph["possible_edges_per_stage"] = possible
        return g


def build_neural_graph(options: NeuralGraphOptions, kernel: MaskKernel,
                       input_shape: tuple[int, ...], num_classes: int) -> NeuralGraphNet:
    return NeuralGraphNet(input_shape, num_classes, options, kernel)
