"""Hostile-input matrix: every user-facing input gets a one-line error, exit code 2, no
traceback, and leaves the results store and the experiment folder exactly as they were.

The store and folder are filled once by a real (tiny) search; every case then runs the CLI
in-process against them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from snas.cli import main

ROOT = Path(__file__).parents[1]
DIGITS = str(ROOT / "search_spaces" / "mlp_digits.yaml")


@pytest.fixture(scope="module")
def filled(ray_address, tmp_path_factory):
    """A store and experiment folder holding one finished search named 'kept'."""
    base = tmp_path_factory.mktemp("hostile")
    db = base / "r.db"
    argv = ["search", DIGITS, "--name", "kept", "--store", f"sqlite:///{db}",
            "--storage-path", str(base / "exp"), "--num-samples", "2", "--quiet",
            "--set", "model.width=16", "--set", "training.epochs=2"]
    assert main(argv) == 0
    export = base / "export.json"
    assert main(["export", "kept", "--store", f"sqlite:///{db}", "--out", str(export)]) == 0
    files = base / "files"
    files.mkdir()
    (files / "malformed.yaml").write_text("model: {width: [\n")
    (files / "list.yaml").write_text("- 1\n- 2\n")
    (files / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage\x80")
    (files / "python_tag.yaml").write_text("model: !!python/object/apply:os.system ['true']\n")
    (files / "bad_json.json").write_text("{not json")
    doc = json.loads(export.read_text())
    doc["trials"][0]["density"] = [float("nan")] * len(doc["trials"][0]["density"])
    (files / "nan_export.json").write_text(json.dumps(doc))
    doc = json.loads(export.read_text())
    doc["trials"][0]["density"] = doc["trials"][0]["density"][:2]
    doc["trials"][0]["layers"] = doc["trials"][0]["layers"][:2]
    (files / "short_export.json").write_text(json.dumps(doc))
    (files / "not_export.json").write_text(json.dumps({"hello": 1}))
    (files / "cifar.yaml").write_text(f"dataset: {{name: cifar10, data_root: {base / 'none'}}}\n")
    return base, db, export, files


def snapshot(base: Path, db: Path) -> tuple:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        rows = tuple((t, tuple(sorted(map(repr, conn.execute(f'select * from "{t}"')))))
                     for t in sorted(tables))
    listing = tuple(sorted((str(p.relative_to(base)), p.stat().st_size if p.is_file() else -1)
                           for p in (base / "exp").rglob("*")))
    return rows, listing


S = "search"


def _cases(db: str, exp: str, export: str, files: str) -> list[tuple[str, list[str], str]]:
    store = ["--store", f"sqlite:///{db}"]
    search = [S, DIGITS, *store, "--storage-path", exp, "--quiet"]
    return [
        # search-space files
        ("missing-file", [S, f"{files}/nope.yaml", *store], "search-space file not found"),
        ("directory", [S, files, *store], "search-space file not found"),
        ("malformed-yaml", [S, f"{files}/malformed.yaml", *store], "malformed YAML"),
        ("top-level-list", [S, f"{files}/list.yaml", *store], "must be a mapping of sections"),
        ("binary-file", [S, f"{files}/binary.yaml", *store], "cannot read search-space file"),
        ("python-tag", [S, f"{files}/python_tag.yaml", *store], "malformed YAML"),
        ("unknown-section", [*search, "--set", "evil.x=1"], "unknown section 'evil'"),
        ("unknown-key", [*search, "--set", "model.widht=3"], "unknown key model.widht"),
        ("wrong-type", [*search, "--set", "model.width=abc"], "model.width must be an integer"),
        ("negative-width", [*search, "--set", "model.width=-3"], "model.width must be"),
        ("enormous-width", [*search, "--set", "model.width=1000000000000"], "model.width must be"),
        ("nan-density-low", [*search, "--set", "density.low=.nan"], "density.low must be a finite"),
        ("inf-lr", [*search, "--set", "training.lr=.inf"], "training.lr must be a finite"),
        ("low-above-high", [*search, "--set", "density.low=0.9", "--set", "density.high=0.2"],
         "density.low must be <= density.high"),
        ("huge-epochs", [*search, "--set", "training.epochs=1000000000"], "training.epochs must be"),
        ("negative-batch", [*search, "--set", "training.batch_size=-1"], "training.batch_size"),
        ("negative-checkpoint-interval",
         [*search, "--set", "resources.checkpoint_every_s=-1"],
         "resources.checkpoint_every_s must be a number in [0.0,"),
        ("missing-data-root", [S, f"{files}/cifar.yaml", *store, "--name", "c"], "cifar10"),
        ("metric-not-reported", [*search, "--set", "search.metric=test_acc"],
         "search.metric 'test_acc' is not reported by every epoch"),
        ("model-too-big", [*search, "--name", "big", "--set", "model.width=60000"],
         "GB for its weights, gradients and optimizer state, more than the"),
        ("model-too-deep", [*search, "--name", "deep", "--set", "model.hidden_layers=8",
                            "--set", "model.width=30000"], "(model.hidden_layers=8, model.width"),
        ("gpu-no-node", [*search, "--name", "gpu", "--set", "resources.gpus_per_trial=1"],
         "resources.gpus_per_trial"),
        ("storage-path-file", [S, DIGITS, *store, "--name", "sp", "--storage-path",
                               f"{files}/list.yaml"], "is not a folder"),
        ("storage-path-uncreatable", [S, DIGITS, *store, "--name", "sp", "--storage-path",
                                      "/proc/nope/exp"], "cannot create the folder"),
        # CLI flags
        ("set-no-equals", [*search, "--set", "training.epochs"], "--set takes section.key=value"),
        ("num-samples-negative", [*search, "--num-samples", "-1"], "search.num_samples must be"),
        ("num-samples-zero", [*search, "--num-samples", "0"], "search.num_samples must be"),
        ("num-samples-text", [*search, "--num-samples", "lots"], "invalid int value"),
        ("max-concurrent-zero", [*search, "--max-concurrent", "0"], "search.max_concurrent"),
        ("unknown-searcher", [*search, "--searcher", "grid"], "search.searcher must be one of"),
        ("name-traversal", [*search, "--name", "../evil"], "search name must be"),
        ("name-slash", [*search, "--name", "a/b"], "search name must be"),
        ("name-sql", [*search, "--name", "x'; DROP TABLE searches;--"], "search name must be"),
        ("name-empty", [*search, "--name", ""], "search name must be"),
        ("name-too-long", [*search, "--name", "n" * 300], "search name must be"),
        ("duplicate-name", [*search, "--name", "kept"], "already exists; add --resume"),
        ("train-density-nan", ["train", DIGITS, "--density", "nan"], "--density entries"),
        ("train-density-negative", ["train", DIGITS, "--density", "-0.5"], "--density entries"),
        ("train-density-big", ["train", DIGITS, "--density", "2"], "--density entries"),
        ("train-density-text", ["train", DIGITS, "--density", "0.5,abc"], "--density takes"),
        ("train-epochs-negative", ["train", DIGITS, "--epochs", "-5"], "training.epochs must be"),
        ("train-device", ["train", DIGITS, "--device", "quantum"], "training.device must be"),
        # store URLs
        ("store-bad-dialect", [S, DIGITS, "--store", "nosuchdb://x"], "cannot open results store"),
        ("store-unreachable", [S, DIGITS, "--store", "postgresql://u:pw@127.0.0.1:1/db"],
         "cannot open results store"),
        ("store-bad-path", [S, DIGITS, "--store", "sqlite:////proc/nope/x.db"],
         "cannot open results store"),
        ("store-not-url", [S, DIGITS, "--store", "not a url"], "cannot open results store"),
        # export files fed back to snas train
        ("export-missing", ["train", DIGITS, "--from-export", f"{files}/none.json"],
         "export file not found"),
        ("export-bad-json", ["train", DIGITS, "--from-export", f"{files}/bad_json.json"],
         "cannot read export file"),
        ("export-not-snas", ["train", DIGITS, "--from-export", f"{files}/not_export.json"],
         "is not a snas export file"),
        ("export-nan-density", ["train", DIGITS, "--from-export", f"{files}/nan_export.json"],
         "no valid density vector"),
        ("export-other-layers", ["train", DIGITS, "--from-export", f"{files}/short_export.json"],
         "density vector has 2 entries"),
        ("export-rank", ["train", DIGITS, "--from-export", export, "--rank", "99"],
         "--rank must be in"),
        ("export-and-density", ["train", DIGITS, "--from-export", export, "--density", "0.5"],
         "either --density or --from-export"),
        # reading commands
        ("show-unknown", ["show", "nope", *store], "no search named 'nope'"),
        ("show-format", ["show", "kept", *store, "--format", "xml"], "invalid choice"),
        ("export-top-negative", ["export", "kept", *store, "--top", "-3"], "--top must be"),
        ("export-out-missing-dir", ["export", "kept", *store, "--out", f"{files}/no/x.json"],
         "folder does not exist"),
        ("resume-unknown", ["resume", "nope", *store], "no search named 'nope'"),
        ("resume-finished", ["resume", "kept", *store], "already finished"),
    ]


CASE_IDS = [c[0] for c in _cases("d", "e", "x", "f")]


@pytest.mark.parametrize("case", CASE_IDS)
def test_hostile_input(case, filled, capsys):
    base, db, export, files = filled
    cases = {c[0]: c for c in _cases(str(db), str(base / "exp"), str(export), str(files))}
    _, argv, message = cases[case]
    before = snapshot(base, db)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors exit through SystemExit
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, (case, err)
    assert message in err, (case, err)
    assert err.count("\n") == 1, err
    assert "Traceback" not in err and "pw@" not in err
    assert snapshot(base, db) == before


def test_matrix_has_at_least_30_cases():
    assert len(CASE_IDS) >= 30 and len(set(CASE_IDS)) == len(CASE_IDS)
