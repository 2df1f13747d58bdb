"""NNSTD between the masks of two sparse MLPs, and the neuron groups it matches.

**NNSTD** (Neural Network Sparse Topology Distance, Liu et al. 2020, Algorithm 1; see
docs/definitions.md) compares two same-shape sparse MLPs layer by layer, from their masks
only. For every pair of output neurons (one per network) the normalised edit distance of
their input-neuron sets is NED = |A xor B| / |A or B| (0 when both sets are empty). The
Hungarian method (``scipy.optimize.linear_sum_assignment``) matches the second network's
neurons to the first's at minimum total NED; the layer distance is that minimum divided by
the number of output neurons; the second network's next layer is then read with its input
side permuted by the matching (greedy: a layer's matching is fixed before the next layer is
looked at); the network distance is the mean over layers. 0 = the same topology up to a
relabelling of hidden neurons, 1 = no neuron shares an input with the neuron it is matched
to. Like Algorithm 1 and the authors' code, every layer is matched, the output layer too;
the network inputs are labelled (never permuted). The NED matrix of a layer comes from two
matrix products of the 0/1 masks (|A and B| = A @ B.T; |A or B| = |A| + |B| - |A and B|).
When the identity matching costs as little as the Hungarian one (to rounding), the identity
is kept, so a network is always at distance 0 from itself, even with neurons whose input
sets are equal (dead neurons, dense layers).

**Skip connections.** The MLP cells of this project add their input to their output
(``act(BN(Linear(...)) + x)``), so the stem's output neurons, every cell's output neurons
and the head's inputs are one set of neurons: the residual stream. Relabelling a stream
neuron relabels it at both ends of every skip, so a valid relabelling uses *one*
permutation for the whole stream. NNSTD here therefore works on *neuron groups*: each
maskable layer reads one group and writes one group; the first layer that writes a group
chooses its matching with the Hungarian method, and every later layer that writes the same
group (the last layer of each cell) is scored with that matching kept (mean NED of the
matched pairs, no new assignment). Neurons inside a cell are a group of their own. Without
skips (``model.skip: false``) every layer writes a new group, which is Algorithm 1 as
published; ``--chain`` forces that reading on a skip model too (it then ignores the skip
edges and can match two networks that compute differently).

**Ties.** A layer whose optimum is not unique (e.g. a first layer where every pair has NED
1, or two neurons with equal input sets) has several equally good matchings; the greedy
procedure keeps one (the identity when it is optimal, else scipy's), and later layers can
depend on that choice. NNSTD is then symmetric and invariant to relabelling hidden neurons
only up to such ties; with random sparse masks of a few inputs per neuron they are rare.

numpy at import, scipy inside :func:`match_neurons`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

INPUT_GROUP = "input"
OUTPUT_GROUP = "output"
STREAM_GROUP = "stream"
_TIE_TOLERANCE = 1e-12

Group = tuple[str, str]  # (group the layer reads, group the layer writes)


def ned_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise normalised edit distance between the rows of two 0/1 masks.

    ``a`` (n x m) and ``b`` (k x m): row i is output neuron i's set of input neurons.
    Returns the n x k matrix NED[i, j] = |a_i xor b_j| / |a_i or b_j|, 0 where both sets
    are empty. Computed with one matrix product (no Python loop over neurons).
    """
    a, b = _as_mask(a, "a"), _as_mask(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"masks must have the same number of inputs, got {a.shape} and "
                         f"{b.shape}")
    # float32 products are exact for counts below 2**24
    dtype = np.float32 if a.shape[1] < 2**24 else np.float64
    inter = (a.astype(dtype) @ b.astype(dtype).T).astype(np.int64)
    size_a = a.sum(axis=1, dtype=np.int64)[:, None]
    size_b = b.sum(axis=1, dtype=np.int64)[None, :]
    union = size_a + size_b - inter
    xor = union - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, xor / np.maximum(union, 1), 0.0)


def _paired_ned(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """NED between row i of ``a`` and row i of ``b`` for every i."""
    inter = np.logical_and(a, b).sum(axis=1)
    union = np.logical_or(a, b).sum(axis=1)
    return np.where(union > 0, (union - inter) / np.maximum(union, 1), 0.0)


def _as_mask(value: Any, what: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D mask (outputs x inputs), got shape "
                         f"{arr.shape}")
    return arr.astype(bool, copy=False)


def match_neurons(cost: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-cost matching of a square cost matrix: ``(assignment, total cost)``.

    ``assignment[i]`` is the column matched to row i (Hungarian method). When the identity
    is optimal too (its cost equals the minimum to rounding), the identity is returned.
    """
    from scipy.optimize import linear_sum_assignment

    cost = np.asarray(cost, dtype=float)
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"cost must be a square matrix, got shape {cost.shape}")
    n = cost.shape[0]
    identity_cost = float(np.trace(cost))
    rows, cols = linear_sum_assignment(cost)
    best = float(cost[rows, cols].sum())
    if identity_cost <= best + _TIE_TOLERANCE * max(n, 1):
        return np.arange(n), identity_cost
    return cols, best


@dataclass(frozen=True)
class NNSTDResult:
    """NNSTD of two networks: ``distance`` (mean of ``layer_distances``), one distance per
    maskable layer, and per neuron group the matching used (``assignments[g][i]`` = the
    second network's neuron matched to the first network's neuron i)."""

    distance: float
    layer_distances: tuple[float, ...]
    assignments: Mapping[str, np.ndarray]


def chain_groups(n_layers: int) -> list[Group]:
    """Neuron groups of a plain chain of ``n_layers`` layers (Algorithm 1 as published):
    layer i reads what layer i - 1 writes; the last layer writes the outputs."""
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be an int >= 1, got {n_layers!r}")
    names = [INPUT_GROUP, *(f"hidden{i}" for i in range(n_layers - 1)), OUTPUT_GROUP]
    return [(names[i], names[i + 1]) for i in range(n_layers)]


def mlp_groups(hidden_layers: int, skip: bool) -> list[Group]:
    """Neuron groups of the project's MLP (:mod:`trainables.models.mlp`), in mask order.

    Layers: stem, the hidden layers in cells of two (a last cell of one when
    ``hidden_layers - 1`` is odd), head. With ``skip`` the stem, the last layer of every
    cell and the head's input share the group ``"stream"`` (the residual stream); a cell's
    first layer of two writes a group of its own. Without ``skip`` it is a plain chain.
    """
    if isinstance(hidden_layers, bool) or not isinstance(hidden_layers, int) or hidden_layers < 1:
        raise ValueError(f"hidden_layers must be an int >= 1, got {hidden_layers!r}")
    if not skip:
        return chain_groups(hidden_layers + 1)
    n_hidden = hidden_layers - 1
    cells = [2] * (n_hidden // 2) + [1] * (n_hidden % 2)
    groups: list[Group] = [(INPUT_GROUP, STREAM_GROUP)]
    for c, size in enumerate(cells):
        if size == 2:
            inner = f"cell{c}"
            groups += [(STREAM_GROUP, inner), (inner, STREAM_GROUP)]
        else:
            groups.append((STREAM_GROUP, STREAM_GROUP))
    groups.append((STREAM_GROUP, OUTPUT_GROUP))
    return groups


def has_skips(groups: Sequence[Group]) -> bool:
    """Whether some layer writes a group that an earlier layer wrote (a skip ties them)."""
    written: set[str] = set()
    for _, gout in groups:
        if gout in written:
            return True
        written.add(gout)
    return False


def _check_groups(groups: Sequence[Group], masks: Sequence[np.ndarray]) -> None:
    if len(groups) != len(masks):
        raise ValueError(f"groups must have one entry per mask ({len(masks)}), got "
                         f"{len(groups)}")
    sizes: dict[str, int] = {}
    for i, ((gin, gout), mask) in enumerate(zip(groups, masks, strict=True)):
        if gin != INPUT_GROUP and gin not in sizes:
            raise ValueError(f"layer {i} reads group {gin!r} before any layer writes it")
        for group, size in ((gin, mask.shape[1]), (gout, mask.shape[0])):
            if sizes.setdefault(group, size) != size:
                raise ValueError(f"layer {i}: group {group!r} has {sizes[group]} neurons "
                                 f"elsewhere, {size} here")


def nnstd(masks_a: Sequence[Any], masks_b: Sequence[Any],
          groups: Sequence[Group] | None = None) -> NNSTDResult:
    """NNSTD between two networks given as lists of 2-D masks (outputs x inputs), in
    forward order; ``groups`` (default: a plain chain) says which neuron group each layer
    reads and writes (:func:`mlp_groups`). See the module docstring for the procedure."""
    a_list = [_as_mask(m, f"masks_a[{i}]") for i, m in enumerate(masks_a)]
    b_list = [_as_mask(m, f"masks_b[{i}]") for i, m in enumerate(masks_b)]
    if not a_list or len(a_list) != len(b_list):
        raise ValueError(f"both networks need the same number (>= 1) of masks, got "
                         f"{len(a_list)} and {len(b_list)}")
    for i, (a, b) in enumerate(zip(a_list, b_list, strict=True)):
        if a.shape != b.shape:
            raise ValueError(f"layer {i} has shape {a.shape} in one network and {b.shape} "
                             "in the other; NNSTD compares networks of the same shape")
    groups = list(groups) if groups is not None else chain_groups(len(a_list))
    _check_groups(groups, a_list)
    assignment: dict[str, np.ndarray] = {INPUT_GROUP: np.arange(a_list[0].shape[1])}
    distances = []
    for (gin, gout), a, b in zip(groups, a_list, b_list, strict=True):
        b = b[:, assignment[gin]]  # column i of b: the neuron matched to a's input i
        n_out = a.shape[0]
        if gout in assignment:  # written before (a skip): keep that matching
            distances.append(float(_paired_ned(a, b[assignment[gout]]).sum()) / n_out)
        else:
            matched, cost = match_neurons(ned_matrix(a, b))
            assignment[gout] = matched
            distances.append(cost / n_out)
    return NNSTDResult(float(np.mean(distances)), tuple(distances), assignment)


def unmatched_distance(masks_a: Sequence[Any], masks_b: Sequence[Any]) -> float:
    """Mean over layers of the mean NED between equal-index neurons (no matching): how much
    the masks changed in place, e.g. between epochs of one SET trial."""
    values = [float(_paired_ned(_as_mask(a, "a"), _as_mask(b, "b")).mean())
              for a, b in zip(masks_a, masks_b, strict=True)]
    return float(np.mean(values))


def nnstd_matrix(networks: Sequence[Sequence[Any]], groups: Sequence[Group] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(distances, layer_distances)`` between every pair of networks: an n x n matrix
    (zero diagonal) and an n x n x layers array. Each pair is computed once (first network
    of the pair = the one listed first) and mirrored."""
    n = len(networks)
    n_layers = len(networks[0]) if n else 0
    dist = np.zeros((n, n))
    layers = np.zeros((n, n, n_layers))
    for i in range(n):
        for j in range(i + 1, n):
            result = nnstd(networks[i], networks[j], groups)
            dist[i, j] = dist[j, i] = result.distance
            layers[i, j] = layers[j, i] = result.layer_distances
    return dist, layers

