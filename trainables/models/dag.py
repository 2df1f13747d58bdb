"""Janik & Nowak's fully connected DAG network, its L1 edge cost, thresholding and wiring.

Graph: nodes 0..n-1; node 0 is the input node (stem conv3x3(in, C) -> BN on the image),
node n-1 the output node (global average pooling -> Linear). Every forward edge j -> i
(j < i) exists at the start with weight w_ij, initialised so that tanh(w_ij) =
``init_tanh`` (0.5). Nodes are split into ``stages`` equal resolution stages (node i is in
stage ``i * stages // n``); stage s has ``channels * 2**s`` channels at 1/2**s of the
input resolution.

Node i >= 1: ``a_i = sum_j tanh(w_ij) * x_j`` (the *aggregate*), then
``x_i = BN(Conv3x3(ReLU(a_i))) + Conv1x1(a_i)``. The aggregate is one batched op over the
node's inputs (:class:`WeightedSum`: stack + tensordot, backward without storing the
stack), not a loop over edges (``aggregate="loop"`` keeps that loop as a reference).

Stage transitions: a node's output enters a later stage through a *reduce block*
ReLU -> AvgPool(2**d) -> Conv1x1(C_a -> C_b). Janik & Nowak put one reduce block on every
edge between stages; here each source node has one reduce block per later stage, shared
by all its edges into that stage (the weighted sum is linear, so this is the per-edge
block with tied weights), and the reduce blocks of all nodes of one stage run as one
grouped convolution. This keeps the number of parameters and ops linear in n.

Loss: the model's :meth:`DAGNetwork.extra_loss` is ``l1_lambda * sum_e |tanh w_e|`` over
the present edges; :class:`~trainables.training.Trial` adds it to the cross-entropy.

Density vector: the maskable layers are the node Conv3x3 layers of nodes 1..n-1 (one
entry each, in node order); the stem, 1x1 residual, reduce and head layers are dense.
The edges are not masked by the kernel: the L1 cost and thresholding govern them. With
edge-popup (nothing but scores trains) the edge weights stay at their initial value.

After training, :meth:`DAGNetwork.apply_threshold` drops every edge with |tanh w| < tau
and then every node (with its edges) not on an input -> output path; the ``edge_mask`` and
``node_alive`` buffers hold the result (so checkpoints carry it), and the forward skips
dead nodes and absent edges. :meth:`DAGNetwork.threshold_report` measures accuracy
before/after without changing the model; :func:`rebuild_thresholded` gives a freshly
initialised network with the thresholded graph (retraining from scratch).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import networkx as nx
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snas.config import DAGOptions
from snas.errors import ConfigError
from trainables.kernels import MaskedConv2d, MaskKernel
from trainables.wiring import INPUTS_ATTR, OUTPUTS_ATTR, remove_dead_paths


class WeightedSum(torch.autograd.Function):
    """``sum_k weights[k] * xs[k]`` as one stack + tensordot.

    Backward recomputes the stack for the weights' gradient instead of saving it, so the
    memory a node keeps for backward is its inputs (alive anyway), not a copy of them.
    """

    @staticmethod
    def forward(ctx, weights: Tensor, *xs: Tensor) -> Tensor:  # noqa: D102
        ctx.save_for_backward(weights, *xs)
        return torch.tensordot(weights, torch.stack(xs), dims=1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # noqa: D102
        weights, *xs = ctx.saved_tensors
        grad_w = None
        if ctx.needs_input_grad[0]:
            grad_w = torch.stack(xs).reshape(len(xs), -1) @ grad.reshape(-1)
        grad_xs: Sequence[Tensor | None] = [None] * len(xs)
        if any(ctx.needs_input_grad[1:]):
            # One batched product, then one contiguous copy per input: views into a single
            # (k, ...) tensor sit at odd storage offsets, which sends the oneDNN conv
            # backward upstream down a slow path (measured 200x slower on CPU).
            stacked = weights.view(-1, *([1] * grad.dim())) * grad.unsqueeze(0)
            grad_xs = [g.clone() for g in stacked.unbind(0)]
        return (grad_w, *grad_xs)


def weighted_sum(weights: Tensor, xs: Sequence[Tensor]) -> Tensor:
    """``sum_k weights[k] * xs[k]``, one batched op (see :class:`WeightedSum`)."""
    return WeightedSum.apply(weights, *xs)


class DAGNode(nn.Module):
    """``BN(Conv3x3(ReLU(a))) + Conv1x1(a)`` on the aggregate ``a``."""

    def __init__(self, channels: int, kernel: MaskKernel):
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, 3, padding=1, bias=False, kernel=kernel)
        self.bn = nn.BatchNorm2d(channels, affine=kernel.affine_norm)
        self.residual = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, a: Tensor) -> Tensor:
        return self.bn(self.conv(F.relu(a))) + self.residual(a)


class DAGNetwork(nn.Module):
    """See the module docstring. ``aggregate`` is ``"batched"`` (default) or ``"loop"``
    (one multiply-add per edge: the reference the batched op is tested and timed against).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, options: DAGOptions,
                 kernel: MaskKernel, aggregate: str = "batched"):
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(f"model dag needs image input (channels, height, width), got "
                              f"input shape {list(input_shape)}")
        if aggregate not in ("batched", "loop"):
            raise ValueError(f"aggregate must be 'batched' or 'loop', got {aggregate!r}")
        self.options = options
        self.kernel_ref = kernel
        self.aggregate = aggregate
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        n, s, c = options.nodes, options.stages, options.channels
        self.n = n
        self.stage_of = [i * s // n for i in range(n)]
        self.channels = [c * 2 ** k for k in range(s)]
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c, affine=kernel.affine_norm))
        self.nodes = nn.ModuleList(
            DAGNode(self.channels[self.stage_of[i]], kernel) for i in range(1, n))
        # reduce[a][b]: one 1x1 conv weight per node of stage a into stage b, (k, C_b, C_a)
        self.reduce = nn.ParameterDict()
        for a in range(s):
            members = self.stage_members(a)
            for b in range(a + 1, s):
                w = torch.empty(len(members), self.channels[b], self.channels[a])
                nn.init.kaiming_uniform_(w.view(-1, self.channels[a], 1, 1), a=math.sqrt(5))
                self.reduce[f"{a}_{b}"] = nn.Parameter(w)
        self.head = nn.Linear(self.channels[-1], num_classes, bias=kernel.allows_bias)
        init = math.atanh(options.init_tanh)
        allowed = torch.ones(n, n, dtype=torch.bool).tril(-1)  # [i, j]: edge j -> i
        self.edge_weight = nn.Parameter(torch.full((n, n), init) * allowed)
        self.register_buffer("allowed", allowed, persistent=False)
        self.register_buffer("edge_mask", allowed.clone())
        self.register_buffer("node_alive", torch.ones(n, dtype=torch.bool))
        self._plan_key: Any = None
        self._plan: Any = None

    # ---- structure -------------------------------------------------------------------
    def stage_members(self, stage: int) -> list[int]:
        return [i for i in range(self.n) if self.stage_of[i] == stage]

    def edge_strength(self) -> Tensor:
        """|tanh w_ij| of present edges, 0 elsewhere, (n, n) with [i, j] = edge j -> i."""
        return self.edge_weight.detach().tanh().abs() * self.edge_mask

    def _get_plan(self) -> dict[str, Any]:
        """Which sources each alive node reads, and which nodes each stage reduces."""
        key = (self.edge_mask._version, self.node_alive._version, self.edge_mask.data_ptr(),
               self.node_alive.data_ptr())
        if key == self._plan_key:
            return self._plan
        mask = (self.edge_mask & self.node_alive[:, None] & self.node_alive[None, :]).cpu()
        sources = {i: torch.nonzero(mask[i]).flatten().tolist() for i in range(1, self.n)
                   if bool(self.node_alive[i])}
        # reduce_src[(a, b)]: indices (within stage a) of stage-a nodes read by stage b
        reduce_src = {}
        for a in range(len(self.channels)):
            members = self.stage_members(a)
            for b in range(a + 1, len(self.channels)):
                readers = [i for i in sources if self.stage_of[i] == b]
                used = [k for k, j in enumerate(members)
                        if any(j in sources[i] for i in readers)]
                if used:
                    reduce_src[(a, b)] = used
        self._plan = {"sources": sources, "reduce": reduce_src,
                      "index": {(i, j): k for i, src in sources.items()
                                for k, j in enumerate(src)}}
        self._plan_key = key
        return self._plan

    # ---- forward -------------------------------------------------------------------
    def _reduce(self, a: int, b: int, xs: list[Tensor], used: list[int]) -> list[Tensor]:
        """The stage-a outputs ``xs`` (already filtered to ``used``) in stage b, one grouped
        op: ReLU -> AvgPool(2**(b-a)) -> per-node Conv1x1."""
        k, c_b, c_a = len(used), self.channels[b], self.channels[a]
        h = F.avg_pool2d(F.relu(torch.cat(xs, 1)), 2 ** (b - a))
        w = self.reduce[f"{a}_{b}"][used].reshape(k * c_b, c_a, 1, 1)
        out = F.conv2d(h, w, groups=k)
        return list(out.split(c_b, 1))

    def forward(self, x: Tensor) -> Tensor:
        plan = self._get_plan()
        t = self.edge_weight.tanh()
        out: dict[int, Tensor] = {0: self.stem(x)}
        # rep[b][j]: node j's output as seen by stage b
        rep: list[dict[int, Tensor]] = [dict() for _ in self.channels]
        rep[0][0] = out[0]
        size0 = out[0].shape[-2:]
        for b in range(len(self.channels)):
            for a in range(b):
                used = plan["reduce"].get((a, b))
                if used:
                    members = self.stage_members(a)
                    reduced = self._reduce(a, b, [out[members[k]] for k in used], used)
                    rep[b].update({members[k]: r for k, r in zip(used, reduced)})
            for i in self.stage_members(b):
                if i == 0 or i not in plan["sources"]:
                    continue
                src = plan["sources"][i]
                if not src:
                    h, w = size0[0] >> b, size0[1] >> b  # what AvgPool(2**b) gives
                    agg = x.new_zeros(x.shape[0], self.channels[b], h, w)
                elif self.aggregate == "batched":
                    agg = weighted_sum(t[i, src], [rep[b][j] for j in src])
                else:
                    agg = t[i, src[0]] * rep[b][src[0]]
                    for j in src[1:]:
                        agg = agg + t[i, j] * rep[b][j]
                out[i] = self.nodes[i - 1](agg)
                rep[b][i] = out[i]
        last = out.get(self.n - 1)
        if last is None:  # the output node is dead: no path carries information
            last = x.new_zeros(x.shape[0], self.channels[-1], 1, 1)
        return self.head(F.adaptive_avg_pool2d(last, 1).flatten(1))

    def extra_loss(self) -> Tensor:
        """``l1_lambda * sum |tanh w_e|`` over the present edges (the resource loss)."""
        return self.options.l1_lambda * (self.edge_weight.tanh().abs() * self.edge_mask).sum()

    # ---- thresholding ----------------------------------------------------------------
    def threshold_masks(self, tau: float | None = None) -> tuple[Tensor, Tensor]:
        """(edge_mask, node_alive) after dropping edges with |tanh w| < tau (default
        ``options.tau``) and then every node not on a path from node 0 to node n-1."""
        tau = self.options.tau if tau is None else tau
        with torch.no_grad():
            keep = self.edge_mask & self.node_alive[:, None] & self.node_alive[None, :] \
                & (self.edge_weight.tanh().abs() >= tau)
        g = self._graph(keep)
        live = remove_dead_paths(g, 0, self.n - 1) if nx.has_path(g, 0, self.n - 1) else None
        alive = torch.zeros(self.n, dtype=torch.bool)
        if live is not None:
            alive[list(live.nodes)] = True
        alive = alive.to(keep.device)
        return keep & alive[:, None] & alive[None, :], alive

    def apply_threshold(self, tau: float | None = None) -> dict[str, int]:
        """Threshold in place (see :meth:`threshold_masks`); returns edge/node counts."""
        before = int(self.edge_mask.sum())
        mask, alive = self.threshold_masks(tau)
        with torch.no_grad():
            self.edge_mask.copy_(mask)
            self.node_alive.copy_(alive)
        return {"edges_before": before, "edges_after": int(mask.sum()),
                "nodes_after": int(alive.sum())}

    def threshold_report(self, evaluate: Callable[[], tuple[float, float]],
                         tau: float | None = None) -> dict[str, Any]:
        """Accuracy before and after thresholding at tau; the model is left unchanged.

        ``evaluate()`` returns (loss, accuracy) of the current model (e.g. on the test
        split). Keys: ``dag_edges_total`` (all forward edges), ``dag_edges_before``,
        ``dag_edges_after``, ``dag_edge_fraction_kept`` (after / total),
        ``dag_nodes_after``, ``dag_accuracy_before``, ``dag_accuracy_after``, ``dag_tau``.
        """
        saved = self.edge_mask.clone(), self.node_alive.clone()
        _, acc_before = evaluate()
        counts = self.apply_threshold(tau)
        try:
            _, acc_after = evaluate()
        finally:
            with torch.no_grad():
                self.edge_mask.copy_(saved[0])
                self.node_alive.copy_(saved[1])
        total = self.n * (self.n - 1) // 2
        return {"dag_tau": self.options.tau if tau is None else tau, "dag_edges_total": total,
                "dag_edges_before": counts["edges_before"],
                "dag_edges_after": counts["edges_after"],
                "dag_edge_fraction_kept": counts["edges_after"] / total,
                "dag_nodes_after": counts["nodes_after"],
                "dag_accuracy_before": acc_before, "dag_accuracy_after": acc_after}

    def summary_extras(self, evaluate: Callable[[str], tuple[float, float]]) -> dict[str, Any]:
        """What a trial summary adds for this model: the thresholding report on test."""
        return self.threshold_report(lambda: evaluate("test"))

    # ---- wiring ----------------------------------------------------------------------
    def _graph(self, mask: Tensor) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from((i, {"stage": self.stage_of[i]}) for i in range(self.n))
        strength = self.edge_weight.detach().tanh().abs().cpu()
        dst, src = torch.nonzero(mask.cpu(), as_tuple=True)
        g.add_edges_from((j, i, {"weight": float(strength[i, j])})
                         for i, j in zip(dst.tolist(), src.tolist()))
        g.graph[INPUTS_ATTR], g.graph[OUTPUTS_ATTR] = [0], [self.n - 1]
        return g

    def wiring_graph(self, max_edges: int | None = None, thresholded: bool = True
                     ) -> nx.DiGraph:
        """The DAG's nodes and edges: by default the graph that survives thresholding at
        ``options.tau`` and dead-path removal;
        ``thresholded=False`` gives the present edges as they are. Edge attribute
        ``weight`` = |tanh w|. Dead nodes are left out, except the input node 0 and the output
        node n-1. ``g.graph["edges_present"]``: the edges before thresholding. ``max_edges`` is accepted for the common interface (a DAG
        has at most n(n-1)/2 edges)."""
        present = self.edge_mask & self.node_alive[:, None] & self.node_alive[None, :]
        if thresholded:
            mask, alive = self.threshold_masks()
        else:
            mask, alive = present, self.node_alive
        g = self._graph(mask)
        dead = [i for i in range(1, self.n - 1) if not bool(alive[i])]
        g.remove_nodes_from(dead)
        g.graph["level"] = "dag"
        g.graph["edges_present"] = int(present.sum())
        g.graph["possible_edges"] = self.n * (self.n - 1) // 2
        g.graph["possible_edges_per_stage"] = [
            sum(i for i in range(self.n) if self.stage_of[i] == s) for s in
            range(len(self.channels))]
        return g


def rebuild_thresholded(model: DAGNetwork, generator: torch.Generator,
                        tau: float | None = None) -> DAGNetwork:
    """A freshly initialised network of the same options, kernel and densities whose graph
    is ``model``'s thresholded graph (retraining from scratch, Janik & Nowak section 4)."""
    from trainables.models._base import configure_densities, maskable_layers

    new = DAGNetwork(model.input_shape, model.num_classes, model.options, model.kernel_ref,
                     model.aggregate)
    configure_densities(new, [layer.density for _, layer in maskable_layers(model)], generator)
    mask, alive = model.threshold_masks(tau)
    with torch.no_grad():
        new.edge_mask.copy_(mask.cpu())
        new.node_alive.copy_(alive.cpu())
    return new.to(model.edge_weight.device)


def build_dag(options: DAGOptions, kernel: MaskKernel, input_shape: tuple[int, ...],
              num_classes: int) -> DAGNetwork:
    return DAGNetwork(input_shape, num_classes, options, kernel)
