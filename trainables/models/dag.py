"""Janik & Nowak's fully connected DAG network, its L1 edge cost, thresholding and wiring.

Graph: nodes 0..n-1; node 0 is the input node (stem conv3x3(in, C) -> BN on the image),
node n-1 the output node (global average pooling -> Linear). Every forward edge j -> i
(j < i) exists at the start with weight w_ij, initialised so that tanh(w_ij) =
``init_tanh`` (0.5). Nodes are split into ``stages`` equal resolution stages (node i is in
stage ``i * stages // n``); stage s has ``channels * 2**s`` channels at 1/2**s of the
input resolution.

Node i >= 1: ``a_i = sum_j tanh(w_ij) * x_j`` (the *aggregate*), then
``x_i = BN(Conv3x3(ReLU(a_i))) + Conv1x1(a_i)``. The aggregate is one batched op over the
node's inputs, not a loop over edges (``aggregate="loop"`` keeps that loop as a
reference): every output a stage reads lives in one row of a per-stage buffer
``(slots, B*C*H*W)`` (node outputs are computed straight into their row, the outputs of
earlier stages are copied in once), so a node's aggregate is one matrix-vector product
of its weight row with the rows before it, and its backward one product for the edge
weights' gradient. The gradient for a node output, sum over its readers of tanh(w) times
their aggregate's gradient, is one more product over the stage's stored aggregate
gradients, taken once every reader's backward ran (:class:`_Write`). The buffers are
reused from step to step.

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

import bisect
import math
from collections.abc import Callable
from typing import Any

import networkx as nx
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snas.core.catalog import DAGOptions
from snas.core.errors import ConfigError
from snas.core.graphs import INPUTS_ATTR, OUTPUTS_ATTR, remove_dead_paths
from trainables.kernels import MaskedConv2d, MaskKernel


class _StageStorage:
    """A stage's buffers, reused from step to step (a fresh allocation of this size costs
    page faults on every step). A forward that builds a graph holds the storage until that
    graph's backward for the stage finished; a forward meanwhile gets new storage."""

    __slots__ = ("buf", "grad_agg", "owner", "generation")

    def __init__(self) -> None:
        self.buf: Tensor | None = None
        self.grad_agg: Tensor | None = None
        self.owner: _StageState | None = None
        self.generation = 0


class _StageState:
    """One forward's view of a stage for the batched aggregate (see :class:`_Write`).

    ``buf`` holds the stage's node outputs (and the earlier-stage outputs it reads) as rows of
    one ``(slots, B*C*H*W)`` tensor, ``weights`` the stage's edge weights ``(consumers,
    slots)`` (tanh, 0 for absent edges). Backward fills ``grad_agg`` (row r: dC/d aggregate
    of consumer r) and ``grad_w`` (dC/d weights), both allocated on first use.
    """

    __slots__ = ("buf", "weights", "need_w", "grad_agg", "grad_w", "row_after", "shape",
                 "storage", "generation")

    def __init__(self, weights: Tensor, slots: int, shape: tuple[int, ...],
                 row_after: list[int], like: Tensor, storage: _StageStorage):
        self.weights = weights.detach().to(like.dtype)
        self.need_w = weights.requires_grad
        self.shape = shape
        size = (slots, math.prod(shape))
        buf = storage.buf
        if (storage.owner is not None or buf is None or buf.shape != size
                or buf.dtype != like.dtype or buf.device != like.device):
            buf = storage.buf = like.new_empty(size)
            storage.grad_agg = None
        storage.generation += 1
        storage.owner = self if torch.is_grad_enabled() else None
        self.buf, self.storage, self.generation = buf, storage, storage.generation
        self.row_after = row_after  # row_after[s]: first consumer row whose node is after slot s
        self.grad_agg: Tensor | None = None
        self.grad_w: Tensor | None = None

    def row(self, slot: int, shape: tuple[int, ...]) -> Tensor:
        """Row ``slot`` of the buffer as a tensor of ``shape`` that shares the memory but not
        the buffer's version counter (an autograd output that is a *view* of the buffer
        would count every later write into other rows as an in-place change of itself)."""
        n = self.buf.shape[1]
        stride = torch.empty(shape, device="meta").stride()
        return self.buf.new_empty(0).set_(self.buf.untyped_storage(),
                                          self.buf.storage_offset() + slot * n, shape, stride)

    def check(self) -> None:
        """Fail loudly if a later forward overwrote the buffer this graph still needs."""
        if self.storage.buf is self.buf and self.storage.generation != self.generation:
            raise RuntimeError("the DAG's stage buffer was reused by a later forward before "
                               "this backward (a second backward through an old graph)")

    def take_grad_agg(self) -> Tensor:
        if self.grad_agg is None:
            size = (self.weights.shape[0], self.buf.shape[1])
            cached = self.storage.grad_agg
            if self.storage.buf is self.buf and cached is not None and cached.shape == size:
                self.grad_agg = cached.zero_()
            else:
                self.grad_agg = self.buf.new_zeros(size)
                if self.storage.buf is self.buf:
                    self.storage.grad_agg = self.grad_agg
        return self.grad_agg

    def take_grad_w(self) -> Tensor:
        if self.grad_w is None:
            self.grad_w = torch.zeros_like(self.weights)
        return self.grad_w

    def release(self) -> None:
        """The stage's backward is done: the storage may serve the next forward."""
        if self.storage.owner is self:
            self.storage.owner = None


class _Start(torch.autograd.Function):
    """Opens a stage's token chain. Forward: nothing (an empty token); backward (it runs after
    every other op of the chain): hands the accumulated edge-weight gradient to ``weights``."""

    @staticmethod
    def forward(ctx, weights: Tensor, state: _StageState) -> Tensor:  # noqa: D102
        ctx.state = state
        return weights.new_empty(0)

    @staticmethod
    def backward(ctx, token: Tensor) -> tuple[Tensor | None, None]:  # noqa: D102
        state = ctx.state
        grad_w = state.grad_w if ctx.needs_input_grad[0] else None
        state.grad_w = state.grad_agg = None  # a second backward starts afresh
        state.release()
        return grad_w, None


class _Write(torch.autograd.Function):
    """Copies ``x`` into rows ``start : start + count`` of the stage buffer and extends the
    token chain.

    ``x`` is one node output ``(B, C, H, W)`` (count 1) or a reduce block's output
    ``(B, count*C, H, W)``. Every aggregate that reads these rows takes a later token of the
    chain, so autograd runs this backward only after all of them: by then ``grad_agg`` is
    complete and dC/dx = weights[:, rows]^T @ grad_agg is one matrix product over the
    consumers after the rows.
    """

    @staticmethod
    def forward(ctx, token: Tensor, x: Tensor, state: _StageState, start: int,  # noqa: D102
                count: int) -> Tensor:
        rows = state.buf[start:start + count]
        if count == 1:
            rows.view(x.shape).copy_(x)
        else:
            b, _, h, w = x.shape
            rows.view(count, b, -1, h, w).copy_(x.view(b, count, -1, h, w).transpose(0, 1))
        ctx.state, ctx.start, ctx.count, ctx.x_shape = state, start, count, x.shape
        return token.new_empty(0)

    @staticmethod
    def backward(ctx, token: Tensor) -> tuple[Tensor | None, ...]:  # noqa: D102
        grad_x = None
        state, start, count = ctx.state, ctx.start, ctx.count
        state.check()
        first = state.row_after[start]
        if ctx.needs_input_grad[1] and state.grad_agg is not None and first < len(state.weights):
            w = state.weights[first:, start:start + count]
            g = w.t() @ state.grad_agg[first:]  # (count, B*C*H*W)
            b, _, h, wd = ctx.x_shape
            if count == 1:
                grad_x = g.view(ctx.x_shape)
            else:
                grad_x = g.view(count, b, -1, h, wd).transpose(0, 1).reshape(ctx.x_shape)
        return token, grad_x, None, None, None


class _NodeOutput(torch.autograd.Function):
    """A node's output ``main + residual``, computed straight into its buffer row (no copy),
    extending the token chain like :class:`_Write`. Backward adds what the stage's
    aggregates send back (one matrix-vector product) to the gradient from the output's
    other uses (reduce blocks into later stages)."""

    @staticmethod
    def forward(ctx, token: Tensor, main: Tensor, residual: Tensor,  # noqa: D102
                state: _StageState, slot: int) -> tuple[Tensor, Tensor]:
        ctx.set_materialize_grads(False)
        row = state.row(slot, main.shape)
        torch.add(main, residual, out=row)
        ctx.state, ctx.slot = state, slot
        return row, token.new_empty(0)

    @staticmethod
    def backward(ctx, grad_x: Tensor | None, token: Tensor | None  # noqa: D102
                 ) -> tuple[Tensor | None, ...]:
        state, slot = ctx.state, ctx.slot
        state.check()
        first = state.row_after[slot]
        grad = grad_x
        if state.grad_agg is not None and first < len(state.weights):
            w = state.weights[first:, slot].unsqueeze(0)
            agg = state.grad_agg[first:]
            if grad_x is None:
                grad = (w @ agg).view(state.shape)
            else:
                grad = torch.addmm(grad_x.reshape(1, -1), w, agg).view(state.shape)
        if token is None:
            token = state.buf.new_empty(0)
        return token, grad, grad, None, None


class _Aggregate(torch.autograd.Function):
    """A node's aggregate ``sum_s weights[row, s] * buf[s]`` over the slots before it: one
    matrix-vector product. ``token`` (the chain after the last slot it reads) orders the
    backward; backward stores dC/d aggregate in ``grad_agg`` and the row's weight gradient."""

    @staticmethod
    def forward(ctx, token: Tensor, state: _StageState, row: int, count: int) -> Tensor:  # noqa: D102
        ctx.state, ctx.row, ctx.count = state, row, count
        if count == 0:
            return state.buf.new_zeros(state.shape)
        return (state.weights[row, :count] @ state.buf[:count]).view(state.shape)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:  # noqa: D102
        state, row, count = ctx.state, ctx.row, ctx.count
        state.check()
        if count:
            g = grad.reshape(-1)
            state.take_grad_agg()[row].copy_(g)
            if state.need_w:
                state.take_grad_w()[row, :count] = state.buf[:count] @ g
        return grad.new_empty(0), None, None, None


class DAGNode(nn.Module):
    """``BN(Conv3x3(ReLU(a))) + Conv1x1(a)`` on the aggregate ``a``."""

    def __init__(self, channels: int, kernel: MaskKernel):
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, 3, padding=1, bias=False, kernel=kernel)
        self.bn = nn.BatchNorm2d(channels, affine=kernel.affine_norm)
        self.residual = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, a: Tensor) -> Tensor:
        main, residual = self.branches(a)
        return main + residual

    def branches(self, a: Tensor) -> tuple[Tensor, Tensor]:
        """The two summands of the node output: ``BN(Conv3x3(ReLU(a)))`` and ``Conv1x1(a)``."""
        return self.bn(self.conv(F.relu(a))), self.residual(a)


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
        self._storage = [_StageStorage() for _ in self.channels]

    # ---- structure -------------------------------------------------------------------
    def stage_members(self, stage: int) -> list[int]:
        return [i for i in range(self.n) if self.stage_of[i] == stage]

    def edge_strength(self) -> Tensor:
        """|tanh w_ij| of present edges, 0 elsewhere, (n, n) with [i, j] = edge j -> i."""
        return self.edge_weight.detach().tanh().abs() * self.edge_mask

    def _get_plan(self) -> dict[str, Any]:
        """Which sources each alive node reads, and which nodes each stage reduces."""
        device = self.edge_weight.device
        key = (self.edge_mask._version, self.node_alive._version, self.edge_mask.data_ptr(),
               self.node_alive.data_ptr(), device, self.edge_weight.dtype)
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
                      "stages": [self._stage_plan(b, sources, reduce_src, mask, device)
                                 for b in range(len(self.channels))]}
        self._plan_key = key
        return self._plan

    def _stage_plan(self, b: int, sources: dict[int, list[int]],
                    reduce_src: dict[tuple[int, int], list[int]], mask: Tensor,
                    device: torch.device) -> dict[str, Any]:
        """Stage b's buffer layout for the batched aggregate: *slots* (the node outputs the
        stage reads, in node order: the used outputs of earlier stages, then its own alive
        nodes) and *consumers* (its nodes that aggregate), with the (consumers, slots) edge
        mask; node i reads the slots before its own (all earlier nodes)."""
        slots = [self.stage_members(a)[k] for a in range(b) for k in reduce_src.get((a, b), [])]
        consumers = [i for i in self.stage_members(b) if i in sources]
        slots += [i for i in self.stage_members(b) if i == 0 or i in sources]
        row_after = [bisect.bisect_right(consumers, j) for j in slots]
        rows = torch.tensor(consumers, dtype=torch.long)
        cols = torch.tensor(slots, dtype=torch.long)
        edges = mask[rows[:, None], cols[None, :]] if consumers and slots else \
            torch.zeros(len(consumers), len(slots), dtype=torch.bool)
        return {"slots": slots, "consumers": consumers, "row_after": row_after,
                "slot_of": {j: s for s, j in enumerate(slots)},
                "rows": rows.to(device), "cols": cols.to(device),
                "mask": edges.to(device=device, dtype=self.edge_weight.dtype)}

    # ---- forward -------------------------------------------------------------------
    def _reduce(self, a: int, b: int, xs: list[Tensor], used: list[int]) -> Tensor:
        """The stage-a outputs ``xs`` (already filtered to ``used``) in stage b, one grouped
        op: ReLU -> AvgPool(2**(b-a)) -> per-node Conv1x1; ``(B, len(used) * C_b, H_b,
        W_b)``, node after node along the channels."""
        k, c_b, c_a = len(used), self.channels[b], self.channels[a]
        h = F.avg_pool2d(F.relu(torch.cat(xs, 1)), 2 ** (b - a))
        w = self.reduce[f"{a}_{b}"][used].reshape(k * c_b, c_a, 1, 1)
        return F.conv2d(h, w, groups=k)

    def forward(self, x: Tensor) -> Tensor:
        plan = self._get_plan()
        t = self.edge_weight.tanh()
        out: dict[int, Tensor] = {0: self.stem(x)}
        size0 = out[0].shape[-2:]
        for b in range(len(self.channels)):
            shape = (x.shape[0], self.channels[b], size0[0] >> b, size0[1] >> b)
            if self.aggregate == "batched":
                self._stage_batched(b, plan, t, out, shape)
            else:
                self._stage_loop(b, plan, t, out, shape)
        last = out.get(self.n - 1)
        if last is None:  # the output node is dead: no path carries information
            last = x.new_zeros(x.shape[0], self.channels[-1], 1, 1)
        return self.head(F.adaptive_avg_pool2d(last, 1).flatten(1))

    def _stage_batched(self, b: int, plan: dict[str, Any], t: Tensor, out: dict[int, Tensor],
                       shape: tuple[int, ...]) -> None:
        """Stage b with one matrix-vector product per node aggregate: every output the stage
        reads is copied once into a row of a per-forward buffer (:class:`_StageState`)."""
        stage = plan["stages"][b]
        consumers = stage["consumers"]
        if not consumers:
            return
        weights = t[stage["rows"][:, None], stage["cols"][None, :]] * stage["mask"]
        state = _StageState(weights, len(stage["slots"]), shape, stage["row_after"], out[0],
                            self._storage[b])
        token = _Start.apply(weights, state)
        slot = 0
        for a in range(b):
            used = plan["reduce"].get((a, b))
            if used:
                members = self.stage_members(a)
                reduced = self._reduce(a, b, [out[members[k]] for k in used], used)
                token = _Write.apply(token, reduced, state, slot, len(used))
                slot += len(used)
        n_rows = len(consumers)
        for row, i in enumerate(consumers):
            while stage["slots"][slot] != i:  # node 0: written, never aggregated
                token = _Write.apply(token, out[stage["slots"][slot]], state, slot, 1)
                slot += 1
            agg = _Aggregate.apply(token, state, row, slot)
            if row + 1 < n_rows:  # the output goes straight into its buffer row
                main, residual = self.nodes[i - 1].branches(agg)
                out[i], token = _NodeOutput.apply(token, main, residual, state, slot)
            else:  # the stage's last node is read by no aggregate
                out[i] = self.nodes[i - 1](agg)
            slot += 1

    def _stage_loop(self, b: int, plan: dict[str, Any], t: Tensor, out: dict[int, Tensor],
                    shape: tuple[int, ...]) -> None:
        """Stage b with one multiply-add per edge (the reference the batched stage is tested
        and timed against)."""
        rep: dict[int, Tensor] = {j: out[j] for j in self.stage_members(b) if j in out}
        for a in range(b):
            used = plan["reduce"].get((a, b))
            if used:
                members = self.stage_members(a)
                reduced = self._reduce(a, b, [out[members[k]] for k in used], used)
                rep.update({members[k]: r for k, r in
                            zip(used, reduced.split(self.channels[b], 1))})
        for i in self.stage_members(b):
            if i == 0 or i not in plan["sources"]:
                continue
            src = plan["sources"][i]
            if not src:
                agg = out[0].new_zeros(shape)
            else:
                agg = t[i, src[0]] * rep[src[0]]
                for j in src[1:]:
                    agg = agg + t[i, j] * rep[j]
            out[i] = rep[i] = self.nodes[i - 1](agg)

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
