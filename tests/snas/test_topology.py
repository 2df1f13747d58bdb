"""NNSTD, SET mask traces, graph-statistic similarity and ``snas topology``."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from snas.cli import main
from snas.topology import (
    chain_groups,
    graph_feature_matrix,
    match_neurons,
    mlp_groups,
    ned_matrix,
    nnstd,
    nnstd_matrix,
    rbf_similarity,
    trace_distances,
    unmatched_distance,
)

# ---------------------------------------------------------------------------------------
# Helpers: random networks, relabelling, and a loop-and-set reference implementation


def random_net(rng, sizes, density):
    """Masks of a chain with neuron counts ``sizes`` (input first)."""
    return [rng.random((sizes[i + 1], sizes[i])) < density for i in range(len(sizes) - 1)]


def mlp_net(rng, n_in, width, n_out, groups, density):
    sizes = {"input": n_in, "output": n_out}
    return [rng.random((sizes.get(gout, width), sizes.get(gin, width))) < density
            for gin, gout in groups]


def relabel(masks, groups, perms):
    """The same network with the hidden neurons of group g renamed by ``perms[g]``: new
    neuron i is old neuron perms[g][i] (rows of writers, columns of readers)."""
    out = []
    for m, (gin, gout) in zip(masks, groups):
        m = m[perms[gout]] if gout in perms else m
        m = m[:, perms[gin]] if gin in perms else m
        out.append(m)
    return out


def ned_sets(a: set, b: set) -> float:
    union = a | b
    return len(a ^ b) / len(union) if union else 0.0


def reference_nnstd(masks_a, masks_b, groups):
    """Algorithm 1 with Python sets and every permutation enumerated (tiny networks only).

    Returns (distance, per-layer distances, unique): ``unique`` is False when some layer's
    minimum is reached by several matchings (then the greedy result may depend on which
    one is kept, and the reference cannot tell which).
    """
    assign = {"input": list(range(masks_a[0].shape[1]))}
    dists, unique = [], True
    for (gin, gout), a, b in zip(groups, masks_a, masks_b):
        pin = assign[gin]
        # B's neuron j reads B-inputs; B-input pin[i] is matched to A-input i
        inv = {pin[i]: i for i in range(len(pin))}
        sets_a = [set(np.flatnonzero(row).tolist()) for row in a]
        sets_b = [{inv[k] for k in np.flatnonzero(row).tolist()} for row in b]
        n = a.shape[0]
        if gout in assign:
            p = assign[gout]
            dists.append(sum(ned_sets(sets_a[i], sets_b[p[i]]) for i in range(n)) / n)
            continue
        costs = {p: sum(ned_sets(sets_a[i], sets_b[p[i]]) for i in range(n))
                 for p in itertools.permutations(range(n))}
        best = min(costs.values())
        winners = [p for p, c in costs.items() if c <= best + 1e-12]
        unique &= len(winners) == 1
        assign[gout] = list(winners[0])
        dists.append(best / n)
    return sum(dists) / len(dists), dists, unique


# ---------------------------------------------------------------------------------------
# NED and matching


def test_ned_matrix_equals_set_definition():
    rng = np.random.default_rng(0)
    a = rng.random((7, 9)) < 0.3
    b = rng.random((5, 9)) < 0.3
    a[0] = False  # an empty input set
    b[0] = False
    got = ned_matrix(a, b)
    for i, j in itertools.product(range(7), range(5)):
        want = ned_sets(set(np.flatnonzero(a[i])), set(np.flatnonzero(b[j])))
        assert got[i, j] == pytest.approx(want, abs=1e-15)
    assert got[0, 0] == 0.0  # both empty
    assert got.shape == (7, 5)


def test_match_neurons_keeps_identity_on_ties_and_finds_the_minimum():
    assignment, cost = match_neurons(np.ones((4, 4)))
    assert assignment.tolist() == [0, 1, 2, 3] and cost == 4.0
    cost_matrix = np.array([[1.0, 0.0], [0.0, 1.0]])
    assignment, cost = match_neurons(cost_matrix)
    assert assignment.tolist() == [1, 0] and cost == 0.0


# ---------------------------------------------------------------------------------------
# Acceptance: identical -> 0, disjoint -> 1, hidden permutations, brute force


@pytest.mark.parametrize("structure", ["chain", "skip"])
def test_identical_networks_are_at_distance_zero(structure):
    rng = np.random.default_rng(1)
    groups = chain_groups(4) if structure == "chain" else mlp_groups(4, True)
    net = mlp_net(rng, 20, 12, 5, groups, 0.3)
    net[1][3] = False  # a dead neuron and a duplicated input set do not matter
    net[1][4] = net[1][5]
    result = nnstd(net, [m.copy() for m in net], groups)
    assert result.distance == 0.0 and all(d == 0.0 for d in result.layer_distances)
    dense = [np.ones_like(m) for m in net]
    assert nnstd(dense, dense, groups).distance == 0.0


def test_disjoint_networks_are_at_distance_one():
    # Every layer: the two networks' neurons read disjoint input sets (inputs 0-9 vs
    # 10-19, hidden 0-5 vs 6-11, ...). Each first-layer pair has NED 1, every matching ties
    # there and the identity is kept, so the later layers stay disjoint too.
    a = [np.zeros((12, 20), bool), np.zeros((12, 12), bool), np.zeros((4, 12), bool)]
    b = [m.copy() for m in a]
    a[0][:, :10] = True
    b[0][:, 10:] = True
    a[1][:, :6] = True
    b[1][:, 6:] = True
    a[2][:, :6] = True
    b[2][:, 6:] = True
    result = nnstd(a, b)
    assert result.distance == 1.0 and result.layer_distances == (1.0, 1.0, 1.0)
    # one layer: disjoint inputs give 1 whatever matching is chosen
    assert nnstd([a[0]], [b[0]]).distance == 1.0


def test_invariant_to_permuting_hidden_neurons_chain():
    rng = np.random.default_rng(2)
    sizes = [24, 16, 16, 16, 6]
    groups = chain_groups(4)
    a, b = random_net(rng, sizes, 0.3), random_net(rng, sizes, 0.3)
    perms = {g: rng.permutation(16) for g in ("hidden0", "hidden1", "hidden2")}
    assert nnstd(a, relabel(a, groups, perms), groups).distance == 0.0
    base = nnstd(a, b, groups)
    assert 0.2 < base.distance < 1.0
    assert nnstd(a, relabel(b, groups, perms), groups).distance == pytest.approx(base.distance)
    assert nnstd(relabel(a, groups, perms), b, groups).distance == pytest.approx(base.distance)
    assert nnstd(b, a, groups).distance == pytest.approx(base.distance)  # symmetric


def test_skip_connections_force_one_matching_on_the_residual_stream():
    rng = np.random.default_rng(3)
    groups = mlp_groups(4, True)  # stem, cell of two, cell of one, head
    assert groups == [("input", "stream"), ("stream", "cell0"), ("cell0", "stream"),
                      ("stream", "stream"), ("stream", "output")]
    a = mlp_net(rng, 24, 16, 6, groups, 0.3)
    # A valid relabelling: one permutation of the stream (both ends of every skip) and
    # one of the cell's inner neurons: the same network, distance 0.
    valid = {"stream": rng.permutation(16), "cell0": rng.permutation(16)}
    assert nnstd(a, relabel(a, groups, valid), groups).distance == 0.0
    b = mlp_net(rng, 24, 16, 6, groups, 0.3)
    base = nnstd(a, b, groups).distance
    assert nnstd(a, relabel(b, groups, valid), groups).distance == pytest.approx(base)
    # An invalid one: relabel only the neurons the cell's last layer writes (its rows and
    # the next layer's columns), as if they were a layer of their own. Without the skips
    # that is the same network; with them the skip now adds stem neuron i to another
    # neuron: a different network. The chain reading (which ignores skips) cannot see it,
    # the skip-aware one can.
    broken = relabel(a, chain_groups(5), {"hidden2": rng.permutation(16)})
    assert nnstd(a, broken, chain_groups(5)).distance == 0.0
    assert nnstd(a, broken, groups).distance > 0.1


def test_greedy_equals_brute_force_on_tiny_networks():
    """Hungarian vs every permutation, layer by layer (Algorithm 1 is greedy: each layer's
    matching is the exact minimum given the earlier layers' matchings). Compared where
    every layer's minimum is unique, for plain chains and for the skip structure."""
    rng = np.random.default_rng(4)
    compared = 0
    for trial in range(200):
        if trial % 2 == 0:
            groups = chain_groups(3)
            sizes = {"input": 5, "hidden0": 5, "hidden1": 4, "output": 3}
            dims = [(sizes[go], sizes[gi]) for gi, go in groups]
        else:
            groups = mlp_groups(2, True)  # stem, one-layer cell, head
            dims = [(5, 6), (5, 5), (3, 5)]
        a = [rng.random(d) < 0.5 for d in dims]
        b = [rng.random(d) < 0.5 for d in dims]
        want, want_layers, unique = reference_nnstd(a, b, groups)
        if not unique:
            continue
        got = nnstd(a, b, groups)
        assert got.distance == pytest.approx(want, abs=1e-12)
        assert got.layer_distances == pytest.approx(want_layers, abs=1e-12)
        compared += 1
    assert compared >= 30


def test_one_hidden_layer_first_layer_is_the_exact_minimum_and_network_bounds_joint_minimum():
    """One hidden layer: the hidden neurons are the only unlabelled ones before the head.
    The first layer's distance is the minimum over all hidden permutations (Hungarian is
    exact), and the greedy network distance is never below the joint minimum over the
    hidden and output permutations taken together (it is one of the candidates)."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        a = [rng.random((5, 6)) < 0.4, rng.random((3, 5)) < 0.5]
        b = [rng.random((5, 6)) < 0.4, rng.random((3, 5)) < 0.5]
        got = nnstd(a, b)
        first = min(sum(ned_sets(set(np.flatnonzero(a[0][i])), set(np.flatnonzero(b[0][p[i]])))
                        for i in range(5)) / 5 for p in itertools.permutations(range(5)))
        assert got.layer_distances[0] == pytest.approx(first, abs=1e-12)
        joint = min((nnstd([a[0]], [b[0][list(p)]]).layer_distances[0]
                     + nnstd([a[1]], [b[1][:, list(p)]]).distance) / 2
                    for p in itertools.permutations(range(5)))
        assert got.distance >= joint - 1e-12


def test_distance_matrix_is_symmetric_with_zero_diagonal():
    rng = np.random.default_rng(6)
    nets = [random_net(rng, [10, 8, 4], 0.4) for _ in range(4)]
    dist, layers = nnstd_matrix(nets)
    assert dist.shape == (4, 4) and layers.shape == (4, 4, 2)
    assert np.all(np.diag(dist) == 0) and np.array_equal(dist, dist.T)
    assert dist[1, 3] == pytest.approx(nnstd(nets[1], nets[3]).distance)
    assert np.all((dist >= 0) & (dist <= 1))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        nnstd([np.ones((3, 4), bool)], [np.ones((3, 5), bool)])
    with pytest.raises(ValueError, match="one entry per mask"):
        nnstd([np.ones((3, 4), bool)] * 2, [np.ones((3, 4), bool)] * 2, chain_groups(3))


# ---------------------------------------------------------------------------------------
# Graph-statistic similarity


def test_rbf_similarity_matches_scikit_learn_on_standardised_features():
    from sklearn.metrics.pairwise import rbf_kernel
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(7)
    stats = [{"log_num_paths": float(rng.normal(10, 2)), "mean_degree": float(rng.normal(5)),
              "elongation": float(rng.random()), "nodes": 202, "edge_connectivity": int(i),
              "nodes_per_stage": [3 + i, 4], "log_communicability": None,
              "layer_summary": {"hidden_neurons": [8, 8], "dead_neurons": [i % 2, 0]}}
             for i in range(5)]
    x, features, dropped = graph_feature_matrix(stats)
    assert features == ["log_num_paths", "edge_connectivity", "mean_degree", "elongation",
                        "live_hidden_neurons", "nodes_per_stage[0]"]
    assert set(dropped) == {"nodes", "nodes_per_stage[1]"}  # constant
    raw = np.array([[s["log_num_paths"], s["edge_connectivity"], s["mean_degree"],
                     s["elongation"], 16 - s["layer_summary"]["dead_neurons"][0],
                     s["nodes_per_stage"][0]] for s in stats])
    standard = StandardScaler().fit_transform(raw)
    np.testing.assert_allclose(x, standard, atol=1e-12)
    sim, gamma = rbf_similarity(x)
    assert gamma == pytest.approx(1 / 6)
    np.testing.assert_allclose(sim, rbf_kernel(standard), atol=1e-12)
    assert np.allclose(np.diag(sim), 1) and np.allclose(sim, sim.T)
    sim2, _ = rbf_similarity(x, gamma=2.0)
    np.testing.assert_allclose(sim2, rbf_kernel(standard, gamma=2.0), atol=1e-12)
    with pytest.raises(ValueError, match="gamma"):
        rbf_similarity(x, gamma=0.0)


# ---------------------------------------------------------------------------------------
# SET traces on a real short run


@pytest.fixture(scope="module")
def set_trial_state():
    """A real 3-epoch SET trial on digits (width 16) and its state dict."""
    from snas.core.config import load_space
    from trainables.training import Trial

    space = load_space("search_spaces/mlp_digits.yaml",
                       ["kernel.name=set", "model.width=16", "training.epochs=3",
                        "training.device=cpu"])
    trial = Trial(space, 0.3)
    initial = [layer.mask.clone().numpy() for layer in trial.layers]
    for _ in range(3):
        trial.run_epoch()
    return space, trial, initial, trial.state_dict()


def test_set_trial_keeps_its_mask_after_every_epoch(set_trial_state):
    from trainables.training import Trial, unpack_mask_trace

    space, trial, initial, state = set_trial_state
    names, epochs, masks = unpack_mask_trace(state["mask_trace"])
    assert names == [s.name for s in trial.specs] and epochs == [0, 1, 2, 3]
    for layer, m0, traced in zip(trial.layers, initial, masks[0]):
        assert np.array_equal(traced, m0)
        assert traced.sum() == layer.k  # SET keeps the count
    for layer, last in zip(trial.layers, masks[-1]):
        assert np.array_equal(last, layer.mask.numpy())
    # SET rewired: the masks moved away from the initial ones
    rows = trace_distances(masks, epochs, mlp_groups(4, True))
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["nnstd"] == 0.0 and rows[0]["unmatched"] == 0.0
    assert rows[-1]["unmatched"] > 0.1 and 0.0 < rows[-1]["nnstd"] <= 1.0
    assert rows[1]["unmatched"] == pytest.approx(unmatched_distance(masks[0], masks[1]))
    # the trace survives a checkpoint round trip and grows from there
    again = Trial(space, 0.3)
    again.load_state_dict(state)
    again.run_epoch()
    names2, epochs2, masks2 = unpack_mask_trace(again.state_dict()["mask_trace"])
    assert epochs2 == [0, 1, 2, 3, 4]
    assert all(np.array_equal(x, y) for x, y in zip(masks2[3], masks[3]))
    # a checkpoint from before traces existed: the trace restarts at the next epoch
    old = {k: v for k, v in state.items() if k != "mask_trace"}
    again = Trial(space, 0.3)
    again.load_state_dict(old)
    again.run_epoch()
    assert unpack_mask_trace(again.state_dict()["mask_trace"])[1] == [4]


def test_kernels_that_keep_their_masks_keep_no_trace():
    from snas.core.config import load_space
    from trainables.training import Trial

    space = load_space("search_spaces/mlp_digits.yaml",
                       ["model.width=8", "training.epochs=1", "training.device=cpu"])
    trial = Trial(space, 0.5)
    trial.run_epoch()
    state = trial.state_dict()
    assert "mask_trace" not in state and trial.mask_trace is None
    del state["space"]  # an older checkpoint: still loads
    Trial(space, 0.5).load_state_dict(state)


def test_topology_trace_command_on_a_real_set_checkpoint(set_trial_state, tmp_path, capsys):
    import torch

    from snas.store import ResultsStore

    space, trial, _, state = set_trial_state
    url = f"sqlite:///{tmp_path}/results.db"
    store = ResultsStore(url)
    store.create_search("set-run", "", space.to_dict(), "random", 1, str(tmp_path), {})
    ckpt = tmp_path / "checkpoint_000003"
    ckpt.mkdir()
    torch.save(state, ckpt / "trial.pt")
    store.upsert_trial("set-run", "t1", density=trial.density, status="terminated",
                       checkpoint_path=str(ckpt))
    assert main(["topology", "set-run", "--store", url, "--trace", "t1",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["epoch"] for r in doc["epochs"]] == [0, 1, 2, 3]
    assert doc["epochs"][0]["nnstd"] == 0.0 and doc["epochs"][-1]["nnstd"] > 0
    assert main(["topology", "set-run", "--store", url, "--trace", "t1"]) == 0
    table = capsys.readouterr().out
    assert "to the mask of epoch 0" in table and len(table.strip().splitlines()) == 6
    assert main(["topology", "set-run", "--store", url, "--trace", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no trial 'nope'" in err and "t1" in err and len(err.splitlines()) == 1


# ---------------------------------------------------------------------------------------
# End to end on a real search


def test_topology_on_digits_search(digits_search, capsys):
    from snas.results import ranked_trials
    from snas.store import ResultsStore
    from trainables.tune_trainable import masks_from_checkpoint

    url, name, _ = digits_search
    assert main(["topology", name, "--store", url, "--top", "4", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    matrix = np.array(doc["matrix"])
    assert matrix.shape == (4, 4) and np.all(np.diag(matrix) == 0)
    assert np.allclose(matrix, matrix.T) and np.all((matrix >= 0) & (matrix <= 1))
    assert doc["structure"] == "skip"
    ranked, _, metric, _ = ranked_trials(ResultsStore(url), name)
    assert [t["trial_id"] for t in doc["trials"]] == [t["trial_id"] for t in ranked[:4]]
    # one entry recomputed from the checkpoints' masks
    a = masks_from_checkpoint(ranked[0]["checkpoint_path"])[1]
    b = masks_from_checkpoint(ranked[1]["checkpoint_path"])[1]
    assert matrix[0, 1] == pytest.approx(nnstd(a, b, mlp_groups(4, True)).distance)
    sparse = [i for i, t in enumerate(doc["trials"]) if not t["is_baseline"]]
    assert any(matrix[i, j] > 0 for i in sparse for j in sparse if i != j)

    assert main(["topology", name, "--store", url, "--top", "3"]) == 0
    table = capsys.readouterr().out
    assert "NNSTD between the masks of the top 3 trials" in table
    assert main(["topology", name, "--store", url, "--top", "3", "--format", "csv"]) == 0
    csv_lines = capsys.readouterr().out.strip().splitlines()
    assert len(csv_lines) == 4 and csv_lines[0].startswith("trial_id,")

    assert main(["topology", name, "--store", url, "--graph-similarity", "--top", "all",
                 "--format", "json"]) == 0
    sim = json.loads(capsys.readouterr().out)
    k = np.array(sim["matrix"])
    assert k.shape[0] >= 2 and np.allclose(np.diag(k), 1) and np.allclose(k, k.T)
    assert sim["gamma"] == pytest.approx(1 / len(sim["features"]))
    assert np.all((k > 0) & (k <= 1))

    for argv, message in ((["--trace", ranked[0]["trial_id"]], "no mask trace"),
                          (["--top", "1"], "--top"),
                          (["--gamma", "2"], "--gamma applies to --graph-similarity")):
        code = None
        try:
            code = main(["topology", name, "--store", url, *argv])
        except SystemExit as exc:  # argparse errors
            code = exc.code
        assert code == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


def test_topology_copies_of_one_checkpoint_are_at_distance_zero(digits_search, tmp_path, capsys):
    """Two trials whose checkpoints hold the same masks: NNSTD 0 end to end."""
    from snas.store import ResultsStore

    url, name, _ = digits_search
    db = tmp_path / "copy.db"
    for suffix in ("", "-wal", "-shm"):  # the WAL may hold rows not yet in the main file
        source = url.removeprefix("sqlite:///") + suffix
        if Path(source).exists():
            shutil.copy(source, f"{db}{suffix}")
    store = ResultsStore(f"sqlite:///{db}")
    trials = [t for t in store.trials(name) if t["status"] == "terminated"]
    store.upsert_trial(name, trials[1]["trial_id"],
                       checkpoint_path=trials[0]["checkpoint_path"])
    assert main(["topology", name, "--store", f"sqlite:///{db}", "--top", "all",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    ids = [t["trial_id"] for t in doc["trials"]]
    i, j = ids.index(trials[0]["trial_id"]), ids.index(trials[1]["trial_id"])
    assert doc["matrix"][i][j] == 0.0
    assert not math.isnan(doc["matrix"][i][j])
