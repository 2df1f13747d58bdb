"""Wiring graphs of sparse networks and their topology statistics.

This module turns the masks of a trained sparse network into networkx graphs and measures
them the way Janik & Nowak (2020, 2021) measure their learned DAGs: number and length of
input->output paths, ln communicability, edge connectivity, mean degree, PCA elongation and
the Q1D criterion. It also summarises chain MLP masks layer by layer (active weights, dead
neurons) without building a graph.

It takes numpy arrays (or anything ``np.asarray`` accepts) and never imports torch, so the
results store and the export can use it. scipy is imported only when communicability is
computed.

Conventions, written once here:
- A path's length is its number of edges.
- Neuron-graph node ids are ``"L{layer}:{index}"``; layer 0 is the input of the first
  masked layer, layer i+1 is the output of ``masks[i]``.
- Graph statistics are always numbers, strings, bools, ``None`` or lists/dicts of those, so
  ``json.dumps`` works on them. Every ``None`` caused by a limit or a degenerate graph has
  a one-line reason in ``result["notes"][key]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import networkx as nx
import numpy as np

from snas.core.errors import SnasError

__all__ = [
    "GraphTooLarge",
    "mlp_layer_summary",
    "mlp_neuron_graph",
    "graph_statistics",
    "remove_dead_paths",
    "graph_to_json",
    "graph_from_json",
]

# Kamada-Kawai builds an n x n distance matrix and optimises 2n coordinates with L-BFGS
# whose every step costs O(n^2). Measured on the 2-core machines here with networkx's cost
# function: 60 nodes 0.05 s, 300 nodes 2-8 s, 500 nodes 18-45 s, 1000 nodes 45-80 s;
# snas's (_KamadaKawaiCost) takes 4-15x less from 150 nodes (300 nodes: 2.0 s -> 0.45 s).
ELONGATION_MAX_NODES = 500
# The communicability series costs about (lambda_max + distance) sparse mat-vecs.
COMMUNICABILITY_MAX_NODES = 50_000
_MAX_EXACT_FLOAT_INT = 2**53
# Graph attributes through which a graph declares its input and output nodes.
INPUTS_ATTR = "inputs"
OUTPUTS_ATTR = "outputs"


class GraphTooLarge(SnasError):
    """A graph would have more nodes than the caller allowed."""


# --------------------------------------------------------------------------------------
# MLP masks
# --------------------------------------------------------------------------------------


def _check_masks(masks: Sequence, names: Sequence[str]) -> list[np.ndarray]:
    """Validate a chain of Linear masks; nonzero entries are active weights."""
    if len(masks) != len(names):
        raise ValueError(f"masks and names must have the same length, got {len(masks)} masks "
                         f"and {len(names)} names")
    if len(masks) == 0:
        raise ValueError("masks must hold at least one layer, got none")
    arrays = []
    for i, (mask, name) in enumerate(zip(masks, names)):
        arr = np.asarray(mask)
        if arr.ndim != 2:
            raise ValueError(f"mask of layer {name!r} must be 2-D (out_features, in_features), "
                             f"got shape {arr.shape}")
        arr = arr.astype(bool, copy=False)
        if i > 0 and arr.shape[1] != arrays[-1].shape[0]:
            raise ValueError(f"layer {name!r} has {arr.shape[1]} inputs but the previous layer "
                             f"{names[i - 1]!r} has {arrays[-1].shape[0]} outputs")
        arrays.append(arr)
    return arrays


def mlp_layer_summary(masks: Sequence[np.ndarray], names: Sequence[str]) -> dict:
    """Count active weights and dead neurons of a chain MLP's masks.

    ``masks[i]`` has shape ``(out_features, in_features)`` (nonzero = active weight) and
    layer i's outputs feed layer i+1's inputs. Skip/residual connections are ignored: a
    hidden neuron that only a skip connection keeps alive is still reported dead.

    Returns a JSON-able dict:

    - ``layers``: per layer ``{name, shape: [out, in], active_weights, total_weights,
      density, dead_inputs, dead_outputs}``. ``dead_inputs`` counts input neurons with no
      active outgoing weight in this layer, ``dead_outputs`` output neurons with no active
      incoming weight.
    - ``active_weights``, ``total_weights``, ``density``: over all layers.
    - ``hidden_neurons``, ``dead_neurons``: one entry per hidden layer (the outputs of
      ``masks[i]`` = inputs of ``masks[i+1]``), in order. A hidden neuron is dead when it has
      no active input or no active output. The rule looks one layer each way only; a neuron
      fed solely by dead neurons is not counted (``remove_dead_paths`` on
      ``mlp_neuron_graph`` gives the transitive answer).
    """
    arrays = _check_masks(masks, names)
    layers = []
    for arr, name in zip(arrays, names):
        active = int(arr.sum())
        total = int(arr.size)
        layers.append({
            "name": str(name),
            "shape": [int(arr.shape[0]), int(arr.shape[1])],
            "active_weights": active,
            "total_weights": total,
            "density": active / total if total else 0.0,
            "dead_inputs": int((~arr.any(axis=0)).sum()),
            "dead_outputs": int((~arr.any(axis=1)).sum()),
        })
    hidden_neurons = []
    dead_neurons = []
    for before, after in zip(arrays[:-1], arrays[1:]):
        has_input = before.any(axis=1)
        has_output = after.any(axis=0)
        hidden_neurons.append(int(before.shape[0]))
        dead_neurons.append(int((~(has_input & has_output)).sum()))
    active = sum(layer["active_weights"] for layer in layers)
    total = sum(layer["total_weights"] for layer in layers)
    return {
        "layers": layers,
        "active_weights": active,
        "total_weights": total,
        "density": active / total if total else 0.0,
        "hidden_neurons": hidden_neurons,
        "dead_neurons": dead_neurons,
    }


def mlp_neuron_graph(masks: Sequence[np.ndarray], names: Sequence[str],
                     max_nodes: int = 20000) -> nx.DiGraph:
    """Build the neuron-level DAG of a chain MLP: one edge per active weight.

    Every neuron is a node, dead ones included (they show up isolated or as dead ends);
    node ``"L{i}:{j}"`` has attribute ``layer=i``. ``masks[i][o, j]`` active gives the edge
    ``L{i}:j -> L{i+1}:o``. Skip connections are ignored. The graph declares its input
    layer and output layer as ``g.graph["inputs"]`` / ``g.graph["outputs"]`` (lists of node
    ids), which ``graph_statistics`` uses instead of the degree rule, so a hidden neuron
    without inputs is not mistaken for a network input. ``g.graph["layer_names"]`` keeps
    ``names``.

    Raises ``GraphTooLarge`` before building anything when the neuron count exceeds
    ``max_nodes``.
    """
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"max_nodes must be a positive int, got {max_nodes!r}")
    arrays = _check_masks(masks, names)
    sizes = [arrays[0].shape[1]] + [arr.shape[0] for arr in arrays]
    n_nodes = int(sum(sizes))
    if n_nodes > max_nodes:
        raise GraphTooLarge(f"neuron graph would have {n_nodes} nodes, over the cap "
                            f"max_nodes={max_nodes}; raise max_nodes or use mlp_layer_summary")
    g = nx.DiGraph()
    ids = [[f"L{layer}:{j}" for j in range(size)] for layer, size in enumerate(sizes)]
    for layer, names_of_layer in enumerate(ids):
        g.add_nodes_from(names_of_layer, layer=layer)
    for layer, arr in enumerate(arrays):
        outs, ins = np.nonzero(arr)
        g.add_edges_from(zip(map(ids[layer].__getitem__, ins.tolist()),
                             map(ids[layer + 1].__getitem__, outs.tolist())))
    g.graph["layer_names"] = [str(name) for name in names]
    g.graph[INPUTS_ATTR] = [f"L0:{j}" for j in range(sizes[0])]
    g.graph[OUTPUTS_ATTR] = [f"L{len(arrays)}:{o}" for o in range(sizes[-1])]
    return g


# --------------------------------------------------------------------------------------
# Dead paths
# --------------------------------------------------------------------------------------


def _as_node_list(g: nx.DiGraph, spec, what: str) -> list:
    """A node, or a list/set/frozenset of nodes (tuples are node ids, not collections)."""
    nodes = list(spec) if isinstance(spec, (list, set, frozenset)) else [spec]
    if not nodes:
        raise ValueError(f"{what} must name at least one node, got an empty collection")
    for node in nodes:
        if node not in g:
            raise ValueError(f"{what} {node!r} is not a node of the graph")
    return nodes


def remove_dead_paths(g: nx.DiGraph, source, sink) -> nx.DiGraph:
    """Keep only the nodes that lie on some source -> sink path.

    A node survives when it is reachable from ``source`` AND reaches ``sink`` (the
    reachability form of the Kahn-style pass in Janik & Nowak: it also handles dead ends
    whose removal creates new dead ends, in one go). ``source``/``sink`` are a node or a
    list/set of nodes (e.g. all input neurons); a source with no path to any sink is
    removed too. Returns a new graph with node, edge and graph attributes kept;
    ``g.graph["inputs"]``/``["outputs"]``, when present, are filtered to surviving nodes.
    """
    sources = _as_node_list(g, source, "source")
    sinks = _as_node_list(g, sink, "sink")
    forward = set()
    for s in sources:
        if s not in forward:
            forward.add(s)
            forward |= nx.descendants(g, s)
    backward = set()
    for t in sinks:
        if t not in backward:
            backward.add(t)
            backward |= nx.ancestors(g, t)
    keep = forward & backward
    out = g.subgraph([n for n in g if n in keep]).copy()
    for attr in (INPUTS_ATTR, OUTPUTS_ATTR):
        if attr in out.graph:
            out.graph[attr] = [n for n in out.graph[attr] if n in keep]
    return out


# --------------------------------------------------------------------------------------
# Graph statistics
# --------------------------------------------------------------------------------------


def _endpoints(g: nx.DiGraph, node, attr: str, degree, what: str) -> list:
    """The input (or output) nodes: explicit node, declared list, or the degree rule."""
    if node is not None:
        return _as_node_list(g, node, what)
    declared = g.graph.get(attr)
    if declared is not None:
        return _as_node_list(g, list(declared), f"declared {attr} node") if declared else []
    # Isolated nodes are neither inputs nor outputs: with virtual endpoints each one would
    # otherwise add a fake two-edge path source -> x -> sink.
    return [n for n in g if degree(n) == 0 and g.degree(n) > 0]


def _count_paths(g: nx.DiGraph, sources: Sequence, sinks: Sequence
                 ) -> tuple[int, int, int | None]:
    """Number of paths from any of ``sources`` to any of ``sinks``, their summed length
    and the longest, exactly (what a virtual source joined to every source and a virtual
    sink joined from every sink would count, less those two edges per path).

    One pass in topological order with Python ints: count[v] = sum of count[u] over
    predecessors u (1 more at a source), lsum[v] = sum of (lsum[u] + count[u]). No
    enumeration, no overflow.
    """
    count = dict.fromkeys(sources, 1)
    lsum = dict.fromkeys(sources, 0)
    lmax = dict.fromkeys(sources, 0)
    for u in nx.topological_sort(g):
        c = count.get(u)
        if not c:
            continue
        lu, mu = lsum[u], lmax[u] + 1
        for v in g.successors(u):
            count[v] = count.get(v, 0) + c
            lsum[v] = lsum.get(v, 0) + lu + c
            if mu > lmax.get(v, -1):
                lmax[v] = mu
    reached = [v for v in sinks if count.get(v)]
    if not reached:
        return 0, 0, None
    return (sum(count[v] for v in reached), sum(lsum[v] for v in reached),
            max(lmax[v] for v in reached))


def _edge_index(aug: nx.DiGraph) -> tuple[dict, np.ndarray, np.ndarray]:
    """``(index, src, dst)``: node -> row number, and every edge of ``aug`` as two int
    arrays of row numbers (what the SciPy-based statistics take, built once)."""
    index = {node: k for k, node in enumerate(aug)}
    flat = np.fromiter((index[x] for edge in aug.edges() for x in edge), dtype=np.int64,
                       count=2 * aug.number_of_edges())
    return index, flat[0::2], flat[1::2]


def _undirected_adjacency(n: int, src: np.ndarray, dst: np.ndarray):
    """The 0/1 CSR adjacency of the undirected graph of a DAG's edges (a DAG has no
    antiparallel pair or self-loop, so every undirected edge appears once)."""
    from scipy.sparse import csr_array

    ones = np.ones(2 * src.size)
    return csr_array((ones, (np.concatenate([src, dst]), np.concatenate([dst, src]))),
                     shape=(n, n))


def _log_communicability(n: int, src: np.ndarray, dst: np.ndarray, i: int, j: int
                         ) -> tuple[float | None, str | None]:
    """ln [expm(A)]_{i, j} for the undirected adjacency A of the ``n``-node DAG whose edges
    are ``src -> dst`` (row numbers from :func:`_edge_index`).

    Not ``scipy.linalg.expm``: its error is about 1e-16 * |expm(A)| in absolute terms, so a
    small entry comes out wrong (source to sink of a 50-node path: ln C = -144.5, dense expm
    gives -115) and exp(lambda_max) overflows from lambda_max ~ 709. The series in
    ``_log_communicability_series`` has no cancellation and lives in log space; the tests
    check it against dense expm where that is accurate.
    """
    from scipy.sparse.csgraph import connected_components

    if n > COMMUNICABILITY_MAX_NODES:
        return None, f"skipped: {n} nodes > {COMMUNICABILITY_MAX_NODES}"
    a = _undirected_adjacency(n, src, dst)
    _, label = connected_components(a, directed=False)
    if label[i] != label[j]:
        return None, "source and sink are disconnected (communicability is 0, ln undefined)"
    degree = np.asarray(a.sum(axis=1)).ravel()
    # lambda_max(A) <= max over edges uv of sqrt(d_u d_v): much tighter than the maximum
    # degree when a hub (a virtual source) meets low-degree nodes.
    rho = float(np.sqrt(degree[src] * degree[dst]).max())
    return _log_communicability_series(a, i, j, rho)


def _log_communicability_series(a, i: int, j: int, rho: float) -> tuple[float | None, str | None]:
    """ln sum_k (A^k)_{ij} / k! for a nonnegative symmetric A, summed in log space.

    Every term is >= 0, so there is no cancellation; the vector A^k e_j / k! is renormalised
    each step and its scale kept as a log, so nothing under- or overflows. ``rho`` bounds
    the spectral norm of A; with q = rho / (k + 1) < 1 the rest of
    the series is at most |u_k| q / (1 - q), and the sum stops once that is below 1e-17 of
    the partial sum. Cost: about max(distance(i, j), rho + sqrt(80 rho)) sparse mat-vecs.
    """
    n = a.shape[0]
    v = np.zeros(n)
    v[j] = 1.0
    log_scale = 0.0  # the true term vector is v * exp(log_scale), |v| = 1
    log_sum = -math.inf
    max_terms = 4 * n + int(4 * rho) + 100
    for k in range(max_terms):
        if v[i] > 0.0:
            log_sum = np.logaddexp(log_sum, math.log(v[i]) + log_scale)
        q = rho / (k + 1)
        if q < 0.5 and log_scale + math.log(q / (1.0 - q)) < log_sum - 40.0:
            return float(log_sum), None
        v = a @ v
        norm = float(np.linalg.norm(v))
        if norm == 0.0:  # j has no neighbours: the series ends
            break
        v /= norm
        log_scale += math.log(norm) - math.log(k + 1)
    if log_sum == -math.inf:
        return None, "communicability series found no walk from source to sink"
    if k + 1 >= max_terms:
        return None, f"communicability series did not converge in {max_terms} terms"
    return float(log_sum), None


def _hop_matrix(g: nx.Graph) -> np.ndarray:
    """All-pairs shortest-path lengths in hops of a connected undirected graph, in the
    order of ``list(g)`` (SciPy's C BFS: ~20x faster than networkx's on neuron graphs; the
    sparse matrix is built from the edge list, 10x faster than ``nx.to_scipy_sparse_array``
    on a digits MLP's 138 nodes)."""
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import shortest_path

    index, src, dst = _edge_index(g)
    n = len(index)
    matrix = csr_array((np.ones(src.size), (src, dst)), shape=(n, n))
    return shortest_path(matrix, method="D", directed=False, unweighted=True)


class _KamadaKawaiCost:
    """networkx's Kamada-Kawai energy and gradient (``_kamada_kawai_costfn``, 2-D) as a
    callable for ``scipy.optimize.minimize``, in fewer, cheaper array passes: the same
    terms, no n x n x 2 direction array, the gradient's two einsums folded into matrix
    products (the pair weights ``invdist * offset / nodesep`` are symmetric, so the two sums
    are one, twice), and the n x n temporaries written into three buffers reused by every
    call (L-BFGS calls it a few hundred times; fresh arrays cost as much as the arithmetic
    at these sizes: ~1.8x per call on 150 nodes). Distances are Euclidean by SciPy's
    ``cdist`` (one C pass; 2x faster than five NumPy passes forming ``sqrt(dx^2 + dy^2)``,
    and ~9x faster than ``np.hypot``, whose guard against overflow is moot for layout
    coordinates of order one): a digits MLP's wiring record (138 nodes) 0.28 s with
    ``np.hypot`` -> 0.16 s -> ~0.09 s; the layout still matches networkx's (tests)."""

    def __init__(self, invdist: np.ndarray, meanweight: float):
        from scipy.spatial.distance import cdist

        n = invdist.shape[0]
        self._cdist = cdist  # imported once per layout, not once per call
        self.invdist, self.meanweight = invdist, meanweight
        self._a, self._b, self._c = (np.empty((n, n)) for _ in range(3))
        self._diagonal = np.arange(n) * (n + 1)  # flat indices of the diagonal

    def __call__(self, pos_vec: np.ndarray) -> tuple[float, np.ndarray]:
        n = self.invdist.shape[0]
        pos = pos_vec.reshape((n, 2))
        nodesep, offset = self._a, self._b
        self._cdist(pos, pos, out=nodesep)
        np.multiply(nodesep, self.invdist, out=offset)
        offset -= 1.0
        offset.flat[self._diagonal] = 0.0
        cost = 0.5 * float(np.multiply(offset, offset, out=self._c).sum())  # not BLAS:
        # a threaded ddot at this size costs more than it saves
        nodesep.flat[self._diagonal] = 1e-3  # networkx: nodesep + eye * 1e-3
        weights = np.divide(offset, nodesep, out=offset)
        weights *= self.invdist
        grad = 2.0 * (pos * weights.sum(axis=1)[:, np.newaxis] - weights @ pos)
        sumpos = pos.sum(axis=0)
        cost += 0.5 * self.meanweight * float(np.dot(sumpos, sumpos))
        grad += self.meanweight * sumpos
        return cost, grad.ravel()


def _kamada_kawai_layout(g: nx.Graph) -> np.ndarray:
    """Node positions (rows in ``list(g)`` order) of ``nx.kamada_kawai_layout(g)`` before
    its final rescaling, for a connected undirected graph: the same start (networkx's
    circular layout), hop distances, energy and L-BFGS-B minimisation as networkx, with a
    cheaper cost function (:class:`_KamadaKawaiCost`). Rescaling
    and centring leave the PCA variance ratios unchanged, so they are skipped."""
    from scipy.optimize import minimize

    n = g.number_of_nodes()
    start = nx.circular_layout(g)
    pos = np.array([start[v] for v in g], dtype=float)
    invdist = 1.0 / (_hop_matrix(g) + np.eye(n) * 1e-3)
    result = minimize(_KamadaKawaiCost(invdist, 1e-3), pos.ravel(), method="L-BFGS-B",
                      jac=True)
    return result.x.reshape((n, 2))


def _elongation(g: nx.DiGraph, max_nodes: int) -> tuple[float | None, str | None]:
    """2 * (first PCA explained-variance ratio of the Kamada-Kawai layout - 0.5).

    Janik & Nowak's appendix prints ``2 V_1 - 0.5``; their main text says the complete DAG
    has elongation 0, which holds for ``2 (V_1 - 0.5)`` only, so that is used. The layout
    runs on the undirected graph (directed shortest paths would leave most pairs at the
    layout's 1e6 "unreachable" distance) from networkx's deterministic circular start. A
    disconnected graph is measured on its largest component: the 1e6 distance between
    components would otherwise make any disconnected graph look elongated. PCA is done
    with an SVD of the centred positions (the same numbers as sklearn's PCA).
    """
    n = g.number_of_nodes()
    if n > max_nodes:
        return None, (f"skipped: {n} nodes > elongation_max_nodes={max_nodes} (Kamada-Kawai "
                      "is O(n^2) in memory and in time per step)")
    und = g.to_undirected(as_view=True)
    note = None
    if n and not nx.is_connected(und):
        component = max(nx.connected_components(und), key=len)
        note = f"measured on the largest connected component ({len(component)} of {n} nodes)"
        und = und.subgraph(component)
    if und.number_of_nodes() < 2:
        return None, "needs at least 2 connected nodes"
    xy = _kamada_kawai_layout(und)
    xy -= xy.mean(axis=0)
    var = np.linalg.svd(xy, compute_uv=False) ** 2
    if var.sum() <= 0.0:
        return None, "layout collapsed to a point"
    return float(2.0 * (var[0] / var.sum() - 0.5)), note


def _edge_connectivity(n: int, src: np.ndarray, dst: np.ndarray, i: int, j: int,
                       virtual: Sequence[int]) -> int:
    """Minimum number of REAL edges whose removal disconnects row ``i`` from row ``j`` of
    the ``n``-node DAG whose edges are ``src -> dst``; ``virtual`` are the rows of the
    virtual source/sink, whose edges cannot be cut.

    The maximum flow with capacity 1 on every real edge and an uncuttable capacity on the
    edges of the virtual source/sink (an all-virtual path cannot exist because inputs and
    outputs are disjoint), by SciPy's max-flow on a sparse matrix: the same value as
    networkx's ``edge_connectivity``/``maximum_flow_value``, 10-100x faster on neuron
    graphs of tens of thousands of edges.
    """
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import maximum_flow

    if i == j:
        raise ValueError("source and sink must differ")
    if src.size == 0:
        return 0
    is_virtual = np.isin(src, virtual) | np.isin(dst, virtual)
    real = int(src.size - is_virtual.sum())
    uncuttable = real + 1  # more than any cut of real edges can hold
    caps = np.where(is_virtual, uncuttable, 1).astype(np.int32)
    graph = csr_array((caps, (src, dst)), shape=(n, n))
    graph.sum_duplicates()
    return int(maximum_flow(graph, i, j).flow_value)


def graph_statistics(g: nx.DiGraph, source=None, sink=None, *,
                     elongation_max_nodes: int = ELONGATION_MAX_NODES) -> dict:
    """Topology statistics of a DAG between its input(s) and output(s).

    Endpoints: ``source``/``sink`` given (a node, or a list/set of nodes) are used as
    they are. Otherwise the graph's declared ``g.graph["inputs"]``/``["outputs"]`` are used
    (``mlp_neuron_graph`` sets them), else nodes with in-degree 0 are inputs and nodes with
    out-degree 0 are outputs, isolated nodes excluded. With several inputs (outputs) a
    virtual source (sink) joined to all of them is added. The statistics describe the graph
    as given: run ``remove_dead_paths`` first to measure only the live part.

    Returned keys (all JSON-able):

    - ``nodes``, ``edges``: of ``g``, without virtual nodes. ``inputs``, ``outputs``: how
      many endpoint nodes; ``virtual_source``, ``virtual_sink``: whether one was added.
    - ``num_paths``: exact number of input->output paths; an int up to 2**53, above that
      the exact decimal string (JSON numbers are doubles).
    - ``log_num_paths``: ``math.log`` of that exact int; ``None`` when there is no path.
    - ``mean_path_length``, ``max_path_length``: over all input->output paths (each path
      counted once), in edges of ``g``: the edges to and from virtual nodes are not
      counted. Computed by dynamic programming. ``None`` when there is no path.
    - ``log_communicability``: ln [expm(A)]_{source, sink}, A the undirected adjacency
      (with virtual nodes when added), summed as a nonnegative series in log space, so it
      neither overflows nor underflows and keeps full relative precision;
      ``None`` (reason in ``notes``) when source and sink are disconnected or the graph has
      more than ``COMMUNICABILITY_MAX_NODES`` nodes.
    - ``edge_connectivity``: minimum number of edges of ``g`` whose removal disconnects
      source from sink (``nx.edge_connectivity`` on the directed graph; edges to and from
      virtual nodes cannot be cut). 0 when there is no path.
    - ``mean_degree``: mean in+out degree = 2E/N. ``density``: E / (N(N-1)/2), the share of
      possible forward edges of a DAG; ``None`` for N < 2.
    - ``elongation``: PCA elongation of the Kamada-Kawai layout (see ``_elongation``);
      ``None`` above ``elongation_max_nodes`` nodes (default ``ELONGATION_MAX_NODES`` =
      500): the layout is O(n^2) in memory and time per step, ~1 min at 1000 nodes here.
    - ``q1d``: elongation > 0.25 and edge_connectivity > 1. ``False`` whenever
      edge_connectivity <= 1; ``None`` when it depends on an unknown elongation.
    - ``notes``: {key: one-line reason} for every ``None`` above (and for elongation on a
      disconnected graph).
    """
    if not isinstance(g, nx.DiGraph) or g.is_multigraph():
        raise ValueError(f"graph must be a networkx DiGraph, got {type(g).__name__}")
    if (isinstance(elongation_max_nodes, bool) or not isinstance(elongation_max_nodes, int)
            or elongation_max_nodes < 0):
        raise ValueError("elongation_max_nodes must be an int >= 0, got "
                         f"{elongation_max_nodes!r}")
    if g.number_of_nodes() == 0:
        raise ValueError("graph must have at least one node, got an empty graph")
    if not nx.is_directed_acyclic_graph(g):
        raise ValueError("graph must be a DAG, got a graph with a directed cycle")
    inputs = _endpoints(g, source, INPUTS_ATTR, g.in_degree, "source")
    outputs = _endpoints(g, sink, OUTPUTS_ATTR, g.out_degree, "sink")
    if not inputs:
        raise ValueError("graph has no input node (in-degree 0 and at least one edge); "
                         "pass source=")
    if not outputs:
        raise ValueError("graph has no output node (out-degree 0 and at least one edge); "
                         "pass sink=")
    overlap = set(inputs) & set(outputs)
    if overlap:
        shown = sorted(map(repr, overlap))[:3]
        raise ValueError(f"source and sink must be different nodes, got {shown} in both")

    notes: dict[str, str] = {}
    n_nodes, n_edges = g.number_of_nodes(), g.number_of_edges()
    n_paths, total_length, max_length = _count_paths(g, inputs, outputs)
    if n_paths:
        log_paths = math.log(n_paths)
        mean_length = total_length / n_paths
    else:
        log_paths = mean_length = max_length = None
        for key in ("log_num_paths", "mean_path_length", "max_path_length"):
            notes[key] = "no path from source to sink"

    # Communicability and connectivity run on sparse matrices of g's edges plus a virtual
    # source (sink) row joined to every input (output) when there are several.
    index, src, dst = _edge_index(g)
    n_aug, virtual = n_nodes, []
    endpoints = []
    for nodes, outward in ((inputs, True), (outputs, False)):
        if len(nodes) == 1:
            endpoints.append(index[nodes[0]])
            continue
        row, rows = n_aug, np.array([index[v] for v in nodes], dtype=np.int64)
        n_aug += 1
        virtual.append(row)
        endpoints.append(row)
        fixed = np.full(rows.size, row, dtype=np.int64)
        src, dst = ((np.concatenate([src, fixed]), np.concatenate([dst, rows])) if outward
                    else (np.concatenate([src, rows]), np.concatenate([dst, fixed])))
    s, t = endpoints
    log_comm, why = _log_communicability(n_aug, src, dst, s, t)
    if why:
        notes["log_communicability"] = why
    connectivity = _edge_connectivity(n_aug, src, dst, s, t, virtual)
    elongation, why = _elongation(g, elongation_max_nodes)
    if why:
        notes["elongation"] = why
    if connectivity <= 1:
        q1d = False
    elif elongation is None:
        q1d = None
        notes["q1d"] = "elongation unknown"
    else:
        q1d = elongation > 0.25
    density = n_edges / (n_nodes * (n_nodes - 1) / 2) if n_nodes > 1 else None
    if density is None:
        notes["density"] = "needs at least 2 nodes"

    return {
        "nodes": n_nodes,
        "edges": n_edges,
        "inputs": len(inputs),
        "outputs": len(outputs),
        "virtual_source": len(inputs) > 1,
        "virtual_sink": len(outputs) > 1,
        "num_paths": n_paths if n_paths <= _MAX_EXACT_FLOAT_INT else str(n_paths),
        "log_num_paths": log_paths,
        "mean_path_length": mean_length,
        "max_path_length": max_length,
        "log_communicability": log_comm,
        "edge_connectivity": connectivity,
        "mean_degree": 2.0 * n_edges / n_nodes,
        "density": density,
        "elongation": elongation,
        "q1d": q1d,
        "notes": notes,
    }


# --------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------


def _plain(value):
    """numpy scalars/arrays and tuples -> JSON types; anything else json can't take fails."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def graph_to_json(g: nx.DiGraph) -> dict:
    """networkx node-link data (``"nodes"``/``"edges"`` keys) that ``json.dumps`` accepts.

    Node ids must be str or int (numpy ints are converted): JSON has no tuples, so other
    ids would not come back as the same, hashable node. Attribute values that are numpy
    scalars or arrays become Python numbers and lists.
    """
    if not isinstance(g, nx.DiGraph) or g.is_multigraph():
        raise ValueError(f"graph must be a networkx DiGraph, got {type(g).__name__}")
    mapping = {}
    for node in g:
        if isinstance(node, np.integer):
            mapping[node] = int(node)
        elif isinstance(node, bool) or not isinstance(node, (str, int)):
            raise ValueError(f"node ids must be str or int to survive JSON, got {node!r}")
    if mapping:
        g = nx.relabel_nodes(g, mapping, copy=True)
    data = nx.node_link_data(g, edges="edges")
    return _plain(data)


def graph_from_json(d: dict) -> nx.DiGraph:
    """Inverse of ``graph_to_json``; the result is always a ``DiGraph``."""
    if not isinstance(d, dict) or "nodes" not in d or "edges" not in d:
        raise ValueError("graph data must be a dict with 'nodes' and 'edges' (from graph_to_json)")
    if not d.get("directed", True) or d.get("multigraph", False):
        raise ValueError("graph data must describe a directed, non-multi graph, got "
                         f"directed={d.get('directed')!r}, multigraph={d.get('multigraph')!r}")
    return nx.node_link_graph(d, directed=True, multigraph=False, edges="edges")
