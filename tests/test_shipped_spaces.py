"""Every shipped search space that runs on CPU learns at its default settings.

A space that ships with the install is a promise that searching it means something: each
one on the shipped data (digits, mnist5k) is trained once at density 0.5 with
``snas train`` and must reach a floor a little below the accuracy its header states.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"
SHIPPED_DATA = {"digits", "mnist5k"}

#: Test-accuracy floors at density 0.5, below each header's figure by about 2 points.
FLOORS = {
    "cnn_mnist5k.yaml": 0.94,
    "dag_mnist5k.yaml": 0.93,
    "neural_graph_mnist5k.yaml": 0.93,
    "mlp_mnist5k.yaml": 0.93,
    "mlp_mnist5k_budget.yaml": 0.93,
    "mlp_mnist5k_pareto.yaml": 0.93,
    "compare_mlp_mnist5k.yaml": 0.92,
    "mlp_digits.yaml": 0.96,
    "compare_mlp_digits.yaml": 0.95,
}


def cpu_spaces() -> list[str]:
    """The shipped spaces whose data ships with the install."""
    out = []
    for path in sorted(SPACES.glob("*.yaml")):
        dataset = (yaml.safe_load(path.read_text()) or {}).get("dataset") or {}
        if dataset.get("name", "digits") in SHIPPED_DATA:
            out.append(path.name)
    return out


def test_every_cpu_space_has_a_floor():
    assert set(cpu_spaces()) == set(FLOORS)


def _train(name: str, tmp: Path) -> dict:
    out = tmp / f"{name}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "snas.cli", "train", str(SPACES / name), "--density", "0.5",
         "--quiet", "--json-out", str(out)],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text())


def _trained_as(name: str) -> str:
    """What decides a `snas train` result: the dataset, model, kernel and training
    sections (files that differ only in their search settings train the same network)."""
    data = yaml.safe_load((SPACES / name).read_text()) or {}
    return json.dumps({k: data.get(k) for k in ("dataset", "model", "kernel", "training")},
                      sort_keys=True)


@pytest.mark.slow
def test_shipped_cpu_spaces_learn_at_their_defaults(tmp_path):
    names = cpu_spaces()
    first: dict[str, str] = {}
    for n in names:
        first.setdefault(_trained_as(n), n)
    distinct = list(first.values())
    with ThreadPoolExecutor(2) as pool:  # two one-thread trainings on the two cores
        trained = dict(zip(distinct, pool.map(lambda n: _train(n, tmp_path), distinct),
                           strict=True))
    results = {n: trained[first[_trained_as(n)]] for n in names}
    report = {n: (round(r["test_accuracy"], 4), round(r["seconds"], 1))
              for n, r in results.items()}
    print("\nshipped space: (test accuracy, training seconds) at density 0.5:", report)
    low = {n: acc for n, (acc, _) in report.items() if acc < FLOORS[n]}
    assert not low, f"below the floor: {low} (floors {FLOORS})"
