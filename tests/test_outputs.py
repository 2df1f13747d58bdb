"""Output files never destroy inputs: ``--out``/``--json-out``/``--export`` refuse the
results store, the search-space file, checkpoint files, symlinks and special files in one
line (exit 2), and leave them byte-identical; an ordinary file is still replaced."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from snas.cli import main
from snas.store import ResultsStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    """A store with one search ``s`` holding one finished trial; returns ``(url, db file)``."""
    db = tmp_path / "results.db"
    url = f"sqlite:///{db}"
    results = ResultsStore(url)
    results.create_search("s", "", {}, "random", 1, str(tmp_path), {"layers": []})
    results.upsert_trial("s", "t1", density=[0.5], status="terminated")
    results.record_summary("s", "t1", {"test_accuracy": 0.9, "val_accuracy": 0.9,
                                       "active_weights": 10})
    results.close()
    return url, db


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    shutil.copy(ROOT / "search_spaces" / "mlp_digits.yaml", path)
    return path


def refused(argv, capsys, flag, *kept: Path) -> None:
    """``main(argv)`` exits 2 with one stderr line naming ``flag``; ``kept`` are unchanged."""
    before = [p.read_bytes() for p in kept]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("snas: error: ") and flag in err, err
    assert [p.read_bytes() for p in kept] == before


def test_export_refuses_the_results_store(store, capsys):
    url, db = store
    refused(["export", "s", "--out", str(db), "--store", url], capsys, "--out", db)
    assert ResultsStore(url).get_search("s") is not None


def test_export_refuses_the_store_of_a_relative_url(store, capsys, monkeypatch):
    _, db = store
    monkeypatch.chdir(db.parent)
    refused(["export", "s", "--out", str(db), "--store", "sqlite:///results.db"], capsys,
            "--out", db)


def test_export_refuses_a_symlink(store, tmp_path, capsys):
    url, db = store
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    refused(["export", "s", "--out", str(link), "--store", url], capsys, "--out", target)
    assert link.is_symlink()
    db_link = tmp_path / "db_link.json"
    db_link.symlink_to(db)
    refused(["export", "s", "--out", str(db_link), "--store", url], capsys, "--out", db)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_export_refuses_a_fifo_and_a_device(store, tmp_path, capsys):
    url, _ = store
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    refused(["export", "s", "--out", str(fifo), "--store", url], capsys, "--out")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    if Path("/dev/null").exists():
        refused(["export", "s", "--out", "/dev/null", "--store", url], capsys, "--out")
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_export_refuses_checkpoint_files(store, tmp_path, capsys):
    url, _ = store
    folder = tmp_path / "trial_0" / "checkpoint_000001"
    folder.mkdir(parents=True)
    checkpoint = folder / "trial.pt"
    checkpoint.write_bytes(b"weights")
    wiring = folder / "wiring.json"
    wiring.write_text("{}")
    for out in (checkpoint, wiring, folder / "new.json"):
        refused(["export", "s", "--out", str(out), "--store", url], capsys, "--out",
                checkpoint, wiring)
    assert not (folder / "new.json").exists()


def test_export_still_replaces_an_ordinary_file(store, tmp_path, capsys):
    url, db = store
    out = tmp_path / "old.json"
    out.write_text("old\n")
    before = db.read_bytes()
    assert main(["export", "s", "--out", str(out), "--store", url]) == 0, capsys.readouterr()
    assert json.loads(out.read_text())["trials"][0]["trial_id"] == "t1"
    assert db.read_bytes() == before


def test_confirm_refuses_the_results_store(store, capsys):
    url, db = store
    refused(["confirm", "s", "--json-out", str(db), "--store", url], capsys, "--json-out", db)


def test_search_export_refuses_the_space_file_and_the_store(store, space, tmp_path, capsys):
    url, db = store
    base = ["search", str(space), "--name", "x", "--store", url,
            "--storage-path", str(tmp_path / "exp")]
    refused([*base, "--export", str(space)], capsys, "--export", space, db)
    refused([*base, "--export", str(db)], capsys, "--export", space, db)
    assert ResultsStore(url).get_search("x") is None


def test_train_json_out_refuses_its_inputs(store, space, tmp_path, capsys):
    refused(["train", str(space), "--json-out", str(space)], capsys, "--json-out", space)
    url, _ = store
    exported = tmp_path / "export.json"
    assert main(["export", "s", "--out", str(exported), "--store", url]) == 0
    capsys.readouterr()
    refused(["train", str(space), "--from-export", str(exported), "--json-out",
             str(exported)], capsys, "--json-out", exported)


def test_compare_json_out_refuses_the_space_file(tmp_path, capsys):
    space = tmp_path / "compare.yaml"
    shutil.copy(ROOT / "search_spaces" / "compare_mlp_digits.yaml", space)
    refused(["compare", str(space), "--widths", "50%", "--json-out", str(space), "--store",
             f"sqlite:///{tmp_path}/r.db"], capsys, "--json-out", space)
