"""The command line: snas train end to end, one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from snas.cli import main

ROOT = Path(__file__).parents[2]
DIGITS = str(ROOT / "search_spaces" / "mlp_digits.yaml")


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snas.cli", *argv], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_train_writes_summary_json(tmp_path, capsys):
    out = tmp_path / "trial.json"
    code = main(["train", DIGITS, "--density", "0.5,0.3,0.7,0.4,1.0", "--epochs", "2",
                 "--set", "model.width=32", "--json-out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "epoch   1/2" in printed and "epoch   2/2" in printed and "test_accuracy" in printed
    data = json.loads(out.read_text())
    for key in ("density", "realized_density", "layers", "active_weights", "total_weights",
                "val_accuracy", "test_accuracy", "egf_1", "egf_2", "history", "epochs",
                "seconds"):
        assert key in data, key
    assert data["density"] == [0.5, 0.3, 0.7, 0.4, 1.0]
    assert len(data["history"]) == data["epochs"] == 2
    assert [layer["shape"] for layer in data["layers"]][0] == [32, 64]
    realized_counts = [round(r * l["shape"][0] * l["shape"][1])
                       for r, l in zip(data["realized_density"], data["layers"])]
    asked_counts = [max(1, round(d * l["shape"][0] * l["shape"][1]))
                    for d, l in zip(data["density"], data["layers"])]
    assert realized_counts == asked_counts


@pytest.mark.parametrize("argv,message", [
    (["train", "missing.yaml"], "search-space file not found"),
    (["train", DIGITS, "--density", "1.5"], "--density entries must be in (0, 1]"),
    (["train", DIGITS, "--density", "nan"], "--density entries must be in (0, 1]"),
    (["train", DIGITS, "--density", "abc"], "--density takes a number"),
    (["train", DIGITS, "--set", "model.width=-1"], "model.width must be an integer"),
    (["train", DIGITS, "--set", "kernel.name=foo"], "kernel.name must be one of"),
    (["train", DIGITS, "--epochs", "0"], "training.epochs must be an integer in [1, 100000]"),
    (["train", DIGITS, "--density", "0.5,0.5"], "density vector has 2 entries"),
    (["train", DIGITS, "--device", "cuda:7"], "training.device"),
])
def test_bad_input_one_line_exit_2(argv, message, capsys, tmp_path):
    out = tmp_path / "x.json"
    code = main([*argv, "--json-out", str(out)] if argv[0] == "train" else argv)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err, err
    assert err.count("\n") == 1 and err.startswith("snas: error: ")
    assert not out.exists()  # nothing half-written


def test_json_out_into_missing_folder_fails_before_training(tmp_path, capsys):
    code = main(["train", DIGITS, "--epochs", "1", "--json-out", str(tmp_path / "no" / "x.json")])
    assert code == 2
    captured = capsys.readouterr()
    assert "folder does not exist" in captured.err
    assert "epoch" not in captured.out  # refused before any training


def test_usage_errors_are_one_line_exit_2():
    proc = run_cli("train")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "error:" in proc.stderr
    proc = run_cli("train", DIGITS, "--epochs", "x")
    assert proc.returncode == 2 and "invalid int value" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_error_from_subprocess_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: mlp, width: 0}\n")
    proc = run_cli("train", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"snas: error: {bad}: model.width must be an integer in [1, 65536], got 0"
