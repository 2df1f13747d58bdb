"""`snas search` over a CNN space and a DAG space on the shipped MNIST subset (CPU): every
trial ends with its wiring graph and graph statistics in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from snas.cli import main
from snas.store import ResultsStore

ROOT = Path(__file__).parents[2]
TINY = ["--set", "training.epochs=2", "--set", "dataset.max_train=200",
        "--set", "scheduler.grace_period=1", "--set", "scheduler.reduction_factor=2",
        "--num-samples", "3"]


@pytest.mark.parametrize("space,extra,level", [
    ("cnn_mnist5k.yaml", ["--set", "model.base_width=2"], "channel"),
    ("dag_mnist5k.yaml", ["--set", "model.nodes=6", "--set", "model.channels=2"], "dag"),
])
def test_search_stores_wiring_graph_and_statistics(ray_address, tmp_path, space, extra, level,
                                                   capsys):
    db = f"sqlite:///{tmp_path}/r.db"
    name = space.split("_")[0]
    code = main(["search", str(ROOT / "search_spaces" / space), "--name", name, "--store", db,
                 "--storage-path", str(tmp_path / "exp"), "--quiet", *TINY, *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no wiring record" not in out, out
    store = ResultsStore(db)
    trials = store.trials(name)
    assert len(trials) == 3
    for t in trials:
        assert t["has_summary"] and t["has_graph"]
        graph, stats = store.graph(name, t["trial_id"])
        assert stats["graph_level"] == level
        assert stats["edges"] == len(graph["edges"]) and graph["nodes"]
        assert stats["active_weights"] == t["active_weights"]
        assert len(stats["nodes_per_stage"]) == 3 and stats["log_num_paths"] is not None
