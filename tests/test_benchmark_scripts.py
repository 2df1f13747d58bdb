"""The fidelity and GPU-table benchmark scripts: their refusals, and a tiny real run each."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(BENCH))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_gpu_tables_refuses_without_cuda_in_one_line(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = subprocess.run([sys.executable, str(BENCH / "gpu_tables.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0
    assert "needs a CUDA device" in proc.stderr


def test_gpu_tables_refuses_missing_data_and_unknown_rows(tmp_path, capsys):
    gpu = _load("gpu_tables")
    (tmp_path / "cifar-10-batches-py").mkdir()
    gpu.check_data(tmp_path, [gpu.BY_ID["dnw"]])  # CIFAR-10 present: fine
    with pytest.raises(SystemExit) as err:
        gpu.check_data(tmp_path, [gpu.BY_ID["dnw"], gpu.BY_ID["resnet32_dense"]])
    assert err.value.code == 2
    assert "cifar100 not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu.parse_rows("dnw,conv9")
    assert "unknown row 'conv9'; choose from edge_popup_conv4" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_tables_smoke_runs_every_row_on_cpu(tmp_path, capsys):
    gpu = _load("gpu_tables")
    out = tmp_path / "rows.json"
    assert gpu.main(["--smoke", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["id"] for r in rows] == [row.id for row in gpu.ROWS]
    for r in rows:
        assert 0.0 <= r["ours"] <= 1.0 and r["epochs"] == 1
    dag = rows[-1]
    assert dag["dag_edges_total"] >= dag["dag_edges_after"] > 0
    table = capsys.readouterr().out
    assert table.count("\n| ") == len(rows)  # one table line per row


def test_fidelity_rejects_unknown_claims():
    fid = _load("fidelity")
    assert fid.parse_claims(None) == list(fid.CLAIMS)
    with pytest.raises(SystemExit, match="unknown claim 'egf3'; choose from edge_popup"):
        fid.parse_claims("egf,egf3")


def test_fidelity_table_reports_claims_that_fail():
    fid = _load("fidelity")
    rows = [fid.Result("a", "claim a", "paper a", "0.9 vs 0.8", True),
            fid.Result("b", "claim b", "paper b", "0.7 vs 0.8", False),
            fid.Result("c", "claim c", "paper c", "could not be measured: x", None)]
    table = fid.format_table(rows).splitlines()
    assert table[0] == "| claim | paper's figure | snas on shipped data | holds? |"
    assert [line.rsplit("|", 2)[1].strip() for line in table[2:]] == ["yes", "NO",
                                                                       "not measured"]


def test_fidelity_set_drift_starts_near_identical_and_drifts():
    """Networks whose initial masks differ in 1 % of the connections start at a small NNSTD;
    SET's rewiring then moves them apart."""
    fid = _load("fidelity")
    out = fid.set_drift_job(str(ROOT / "search_spaces" / "mlp_digits.yaml"), 2, 2, 0.01,
                            ["model.width=32", "model.hidden_layers=2"])
    start, end = out["curve"][0]["mean_nnstd"], out["curve"][-1]["mean_nnstd"]
    assert [p["epoch"] for p in out["curve"]] == [0, 1, 2]
    assert 0.0 < start < 0.1
    assert end > start + 0.05
    assert len(out["test_accuracy"]) == 2
