"""Readers never write: list, show, export, report, dashboard, analyze and topology open the
store read-only; a missing or foreign database is a one-line error and stays byte-identical;
the schema carries a version (newer: refused by readers and writers; none: version 1,
read as it is and migrated by writers)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from snas.cli import main
from snas.core.config import parse_space_text, read_space_text
from snas.core.errors import StoreError
from snas.store import ResultsStore
from snas.store._schema import SCHEMA_VERSION

ROOT = Path(__file__).parents[2]
DIGITS = str(ROOT / "search_spaces" / "mlp_digits.yaml")


def files_of(db: Path) -> dict[str, str | None]:
    """The bytes (hashed) of a SQLite database and of each journal file beside it.

    A reader of a WAL-mode database (a snas store) may leave SQLite's empty -wal/-shm
    coordination files beside it (SQLite creates them for read-only WAL readers); the
    database file itself stays byte-identical. A database not in WAL mode gets none."""
    out = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        f = Path(f"{db}{suffix}")
        out[suffix or "db"] = hashlib.sha256(f.read_bytes()).hexdigest() if f.exists() else None
    return out


def rows(db: Path) -> list:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = sorted(r[0] for r in conn.execute(
            "select name from sqlite_master where type='table'"))
        return [(t, sorted(map(repr, conn.execute(f'select * from "{t}"')))) for t in tables]
    finally:
        conn.close()


def fill(db: Path) -> str:
    """A store (closed again, its WAL checkpointed) with one finished two-trial search."""
    url = f"sqlite:///{db}"
    space = parse_space_text(read_space_text(DIGITS), [], source=DIGITS)
    store = ResultsStore(url)
    store.create_search("s", "text", space.to_dict(), "random", 2, str(db.parent / "s"),
                        {"layers": [{"name": "l0", "shape": [4, 4]}]})
    for i, acc in enumerate((0.5, 0.7)):
        store.upsert_trial("s", f"t{i}", density=[0.5], status="terminated",
                           is_baseline=i == 0)
        store.record_epoch("s", f"t{i}", 1, {"val_accuracy": acc, "active_weights": 8})
        store.record_summary("s", f"t{i}", {"val_accuracy": acc, "test_accuracy": acc,
                                            "active_weights": 8})
    store.set_search_status("s", "finished")
    store.close()
    return url


READERS = [["list"], ["show", "s"], ["show", "s", "--format", "csv"], ["export", "s"],
           ["analyze", "s"]]


@pytest.mark.parametrize("argv", READERS, ids=lambda a: "-".join(a))
def test_readers_leave_the_store_byte_identical(argv, tmp_path, capsys):
    db = tmp_path / "r.db"
    url = fill(db)
    before, before_rows = files_of(db), rows(db)
    assert before["-wal"] is None  # closed: nothing left in a WAL
    code = main([*argv, "--store", url])
    capsys.readouterr()
    assert code in (0, 2)  # analyze may find too few trials: still a reader
    assert files_of(db)["db"] == before["db"] and rows(db) == before_rows


def test_read_only_store_refuses_every_write(tmp_path):
    db = tmp_path / "r.db"
    fill(db)
    before = files_of(db)["db"]
    store = ResultsStore(f"sqlite:///{db}", read_only=True)
    assert store.read_only and store.schema_version == SCHEMA_VERSION
    assert [s["name"] for s in store.list_searches()] == ["s"]
    for write in (lambda: store.set_search_status("s", "failed"),
                  lambda: store.upsert_trial("s", "t9", status="running"),
                  lambda: store.create_search("n", "", {}, "random", 1, "/x", {})):
        with pytest.raises(StoreError, match="readonly|read-only|read only"):
            write()
    store.close()
    assert files_of(db)["db"] == before


def _foreign(tmp_path: Path) -> dict[str, Path]:
    """Databases that are not snas stores, and a path with no file."""
    cases = {}
    f = tmp_path / "foreign.db"  # someone else's table named searches
    with sqlite3.connect(f) as conn:
        conn.execute("create table searches (query text, hits integer)")
        conn.execute("insert into searches values ('cats', 3)")
    conn.close()
    cases["foreign-searches"] = f
    other = tmp_path / "other.db"  # an unrelated application's database
    with sqlite3.connect(other) as conn:
        conn.execute("create table users (id integer primary key, name text)")
    conn.close()
    cases["other-app"] = other
    text = tmp_path / "notes.db"
    text.write_text("not a database at all\n" * 20)
    cases["not-sqlite"] = text
    cases["missing"] = tmp_path / "missing.db"
    return cases


READER_ARGV = [["list"], ["show", "s"], ["export", "s"], ["analyze", "s"], ["topology", "s"],
               ["dashboard", "--port", "0"]]


@pytest.mark.parametrize("kind", ["foreign-searches", "other-app", "not-sqlite", "missing"])
def test_foreign_or_missing_database_is_one_line_and_untouched(kind, tmp_path, capsys):
    db = _foreign(tmp_path)[kind]
    argvs = [*READER_ARGV, ["report", "s", "--out", str(tmp_path / "rep")]]
    if kind != "missing":  # a writer creates a missing store; it refuses a foreign one
        argvs.append(["search", DIGITS, "--name", "n", "--storage-path", str(tmp_path / "e")])
    before = files_of(db)
    listing = sorted(p.name for p in tmp_path.iterdir())
    for argv in argvs:
        capsys.readouterr()
        assert main([*argv, "--store", f"sqlite:///{db}"]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("snas: error: cannot open results store") and (
            err.count("\n") == 1), (argv, err)
        assert files_of(db) == before, argv
        assert sorted(p.name for p in tmp_path.iterdir()) == listing, argv  # no new file
    if kind == "foreign-searches":
        assert "not a snas results store" in err


def test_reader_of_the_default_store_creates_no_home(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("SNAS_HOME", str(home))
    assert main(["list"]) == 2
    assert "no database file" in capsys.readouterr().err
    assert not home.exists()


def test_newer_schema_is_refused_by_readers_and_writers(tmp_path, capsys):
    db = tmp_path / "r.db"
    url = fill(db)
    conn = sqlite3.connect(db)
    conn.execute("update snas_meta set value = ? where key = 'schema_version'",
                 (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    before, before_rows = files_of(db), rows(db)
    for argv in (["list"], ["show", "s"], ["resume", "s"],
                 ["search", DIGITS, "--name", "n", "--storage-path", str(tmp_path / "e")]):
        capsys.readouterr()
        assert main([*argv, "--store", url]) == 2, argv
        err = capsys.readouterr().err
        assert f"schema version {SCHEMA_VERSION + 1}" in err and "newer snas" in err, err
        assert err.count("\n") == 1
        assert files_of(db)["db"] == before["db"] and rows(db) == before_rows, argv


def test_store_without_a_version_is_version_1_read_as_is_and_migrated_by_writers(
        tmp_path, capsys):
    db = tmp_path / "r.db"
    url = fill(db)
    conn = sqlite3.connect(db)
    conn.execute("drop table snas_meta")
    conn.execute("drop table leases")
    conn.commit()
    conn.close()
    before = files_of(db)
    reader = ResultsStore(url, read_only=True)
    assert reader.schema_version == 1 and reader.lease_of("s") is None
    reader.close()
    assert main(["show", "s", "--store", url]) == 0
    assert "search s (finished" in capsys.readouterr().out
    assert files_of(db)["db"] == before["db"]
    writer = ResultsStore(url)  # a writer migrates: the version and the leases table
    assert writer.schema_version == SCHEMA_VERSION
    writer.close()
    tables = dict(rows(db))
    assert tables["snas_meta"] == [repr(("schema_version", str(SCHEMA_VERSION)))]
    assert "leases" in tables and len(tables["trials"]) == 2
