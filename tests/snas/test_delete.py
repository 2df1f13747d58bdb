"""`snas delete`: a search's rows and experiment folder go on request, nothing else does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snas.cli import main
from snas.store import ResultsStore


def _search(tmp_path: Path, name: str, folder_files: dict[str, str]) -> tuple[str, Path]:
    url = f"sqlite:///{tmp_path}/r.db"
    folder = tmp_path / "exp" / name
    folder.mkdir(parents=True)
    for file, text in folder_files.items():
        (folder / file).write_text(text)
    store = ResultsStore(url)
    store.create_search(name, "x: 1\n", {}, "random", 2, str(folder), {})
    store.upsert_trial(name, "t1", density=[0.5], config={}, status="terminated")
    store.record_epoch(name, "t1", 1, {"val_accuracy": 0.5})
    store.close()
    return url, folder


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_delete_removes_rows_and_the_experiment_folder(tmp_path, capsys):
    url, folder = _search(tmp_path, "gone", {"experiment_state-x.json": "{}"})
    _search_kept = _search(tmp_path, "kept", {"tuner.pkl": ""})[1]
    code, out, err = _run(["delete", "gone", "--yes", "--store", url], capsys)
    assert code == 0, err
    assert f"deleted search 'gone' (1 trials) and {folder}" in out
    store = ResultsStore(url)
    assert store.get_search("gone") is None and not folder.exists()
    assert store.get_search("kept") is not None and _search_kept.exists()
    assert store.count_rows("kept")["epochs"] == 1


def test_a_folder_snas_did_not_create_is_left_alone(tmp_path, capsys):
    url, folder = _search(tmp_path, "mine", {"notes.txt": "my own file"})
    code, out, err = _run(["delete", "mine", "--yes", "--store", url], capsys)
    assert code == 0
    assert "it does not look like an experiment folder" in err
    assert (folder / "notes.txt").read_text() == "my own file"
    assert ResultsStore(url).get_search("mine") is None


def _db_rows(tmp_path: Path) -> list[str]:
    """Every row of the store (SQLite may move WAL pages into the main file on any close,
    so the rows, not the file's bytes, are what must not change)."""
    import sqlite3

    with sqlite3.connect(tmp_path / "r.db") as conn:
        return list(conn.iterdump())


@pytest.mark.parametrize("case", ["no-yes-off-terminal", "lease-alive", "unknown-name"])
def test_refused_delete_changes_nothing(tmp_path, capsys, monkeypatch, case):
    url, folder = _search(tmp_path, "busy", {"experiment_state-x.json": "{}"})
    argv = ["delete", "busy", "--store", url]
    if case == "lease-alive":
        ResultsStore(url).acquire_lease("busy", "someone", pid=os.getpid())
        argv.append("--yes")
        expected = "is being run by pid"
    elif case == "unknown-name":
        argv = ["delete", "nope", "--yes", "--store", url]
        expected = "no search named 'nope'"
    else:
        monkeypatch.setattr("sys.stdin", open(os.devnull))  # not a terminal
        expected = "needs --yes when not run from a terminal"
    before = _db_rows(tmp_path)
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert expected in err and err.count("\n") == 1, err
    assert _db_rows(tmp_path) == before and folder.exists()


def test_delete_from_a_missing_store_creates_nothing(tmp_path, capsys):
    code, _, err = _run(["delete", "x", "--yes", "--store", f"sqlite:///{tmp_path}/no.db"],
                        capsys)
    assert code == 2 and err.count("\n") == 1
    assert not (tmp_path / "no.db").exists()
