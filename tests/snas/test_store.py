"""Tests of snas.store on real SQLite files (no mocks)."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from snas.core.errors import SearchError, SnasError, StoreError
from snas.store import SEARCH_STATUSES, TRIAL_STATUSES, ResultsStore, default_store_url

NAMES = ["plain", "it's \"quoted\"; DROP TABLE searches;--", "a/b\\c%_*?", "ünïcødé 名前"]


def make_search(store: ResultsStore, name: str = "s1", **overrides) -> None:
    args = {"space_text": "search:\n  searcher: random\n", "space": {"search": {"num_samples": 4}},
            "searcher": "random", "num_samples": 4, "storage_path": "/tmp/runs",
            "params": {"seed": 0}}
    store.create_search(name, **{**args, **overrides})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "results.db"


@pytest.fixture
def store(db: Path) -> ResultsStore:
    with ResultsStore(f"sqlite:///{db}") as s:
        yield s


def table_dump(db: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(db)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("searches", "trials", "epochs", "summaries", "graphs")}
    finally:
        con.close()


# -- opening -------------------------------------------------------------------------------


def test_default_store_url_honours_snas_home(tmp_path, monkeypatch):
    home = tmp_path / "home" / "nested"
    monkeypatch.setenv("SNAS_HOME", str(home))
    url = default_store_url()
    assert url == f"sqlite:///{home / 'results.db'}"
    assert home.is_dir()
    ResultsStore(url).close()
    assert (home / "results.db").is_file()


def test_sqlite_file_uses_wal(store, db):
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


@pytest.mark.parametrize(("url", "reason"), [
    ("sqlite:////proc/nope/x.db", "folder /proc/nope does not exist"),
    ("sqlite:////proc/x.db", "unable to open database file"),
    ("nosuchdb://x", "unknown database dialect or driver 'nosuchdb'"),
    ("this is not a url", "not a database URL"),
    ("sqlite:///results.db?timeout=abc", "invalid URL argument"),
])
def test_unusable_url_is_one_line_store_error(url, reason, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError) as info:
        ResultsStore(url)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message and "sqlalche.me" not in message
    assert message.startswith(f"cannot open results store {url}: ")
    assert reason in message
    assert list(tmp_path.iterdir()) == []


def test_unreachable_postgres_masks_password():
    url = "postgresql://u:secret@127.0.0.1:1/db"
    with pytest.raises(StoreError) as info:
        ResultsStore(url)
    message = str(info.value)
    assert "secret" not in message and "\n" not in message
    assert "postgresql://u:***@127.0.0.1:1/db" in message
    # Either the driver is missing here, or it is installed and nothing listens on port 1.
    assert "not installed" in message or "refused" in message.lower() or "failed" in message


def test_failed_open_removes_the_file_it_created(tmp_path):
    (tmp_path / "x.db-wal").mkdir()  # the WAL file cannot be created: fails after x.db exists
    with pytest.raises(StoreError, match="^cannot open results store"):
        ResultsStore(f"sqlite:///{tmp_path / 'x.db'}")
    assert not (tmp_path / "x.db").exists()


def test_failed_open_keeps_an_existing_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a database " * 100)
    with pytest.raises(StoreError, match="not a database"):
        ResultsStore(f"sqlite:///{path}")
    assert path.read_text() == "not a database " * 100


def test_store_errors_belong_to_the_snas_family():
    assert issubclass(StoreError, SnasError) and issubclass(SearchError, SnasError)


def test_in_memory_store_works():
    with ResultsStore("sqlite://") as s:
        make_search(s)
        s.record_epoch("s1", "t", 1, {"val_accuracy": 0.5})
        assert s.count_rows("s1")["epochs"] == 1


# -- searches ------------------------------------------------------------------------------


def test_create_get_list_delete(store, db):
    make_search(store, "old")
    make_search(store, "new", searcher="bayesopt", num_samples=9, params={"metric": "val_loss",
                                                                          "mode": "min"})
    got = store.get_search("new")
    assert set(got) == {"name", "space_text", "space", "searcher", "num_samples",
                        "storage_path", "params", "status", "created_at", "updated_at",
                        "finished_at"}
    assert got["searcher"] == "bayesopt" and got["num_samples"] == 9
    assert got["space"] == {"search": {"num_samples": 4}} and got["status"] == "running"
    assert got["created_at"].utcoffset().total_seconds() == 0 and got["finished_at"] is None
    assert store.get_search("missing") is None

    listed = store.list_searches()
    assert [s["name"] for s in listed] == ["new", "old"]
    assert listed[0]["metric"] == "val_loss" and listed[0]["mode"] == "min"
    assert listed[1]["n_trials"] == 0 and listed[1]["best_value"] is None

    store.upsert_trial("old", "t1")
    store.record_epoch("old", "t1", 1, {"val_accuracy": 0.4})
    store.record_summary("old", "t1", {"test_accuracy": 0.3})
    store.record_graph("old", "t1", {"nodes": []}, {"paths": 1})
    store.delete_search("old")
    assert store.get_search("old") is None
    assert [s["name"] for s in store.list_searches()] == ["new"]
    with pytest.raises(SearchError, match="no search named 'old'"):
        store.count_rows("old")
    dump = table_dump(db)
    assert dump["trials"] == dump["epochs"] == dump["summaries"] == dump["graphs"] == []


def test_list_searches_counts_and_best(store):
    make_search(store)
    store.upsert_trial("s1", "a", status="terminated")
    store.upsert_trial("s1", "b", status="stopped")
    store.upsert_trial("s1", "c", status="stopped")
    for trial, accs in {"a": [0.2, 0.6], "b": [0.7, 0.1], "c": [0.3]}.items():
        for epoch, acc in enumerate(accs, 1):
            store.record_epoch("s1", trial, epoch, {"val_accuracy": acc})
    (row,) = store.list_searches()
    assert row["n_trials"] == 3
    assert row["trial_counts"] == {"pending": 0, "running": 0, "terminated": 1, "stopped": 2,
                                   "error": 0}
    assert (row["metric"], row["best_value"], row["best_trial"]) == ("val_accuracy", 0.7, "b")


def test_duplicate_search_name_is_one_line_and_changes_nothing(store, db):
    make_search(store)
    store.record_epoch("s1", "t", 1, {"val_accuracy": 0.5})
    before = table_dump(db)
    with pytest.raises(SearchError) as info:
        make_search(store, searcher="other", num_samples=99)
    message = str(info.value)
    assert "\n" not in message and "'s1' already exists" in message
    assert "snas resume s1" in message and "--name" in message
    assert table_dump(db) == before


def test_set_search_status(store):
    make_search(store)
    store.set_search_status("s1", "interrupted")
    got = store.get_search("s1")
    assert got["status"] == "interrupted" and got["finished_at"] is not None
    store.set_search_status("s1", "running")  # resumed
    assert store.get_search("s1")["finished_at"] is None
    with pytest.raises(ValueError, match="running, finished, interrupted, failed"):
        store.set_search_status("s1", "done")
    with pytest.raises(SearchError):
        store.set_search_status("missing", "failed")
    assert SEARCH_STATUSES == ("running", "finished", "interrupted", "failed")


@pytest.mark.parametrize("name", NAMES)
def test_names_with_sql_metacharacters_round_trip(store, name):
    make_search(store, name)
    store.upsert_trial(name, name, density=[0.5])
    store.record_epoch(name, name, 1, {"val_accuracy": 0.5})
    store.record_graph(name, name, {"name": name}, {})
    assert store.get_search(name)["name"] == name
    assert [t["trial_id"] for t in store.trials(name)] == [name]
    assert store.graph(name, name) == ({"name": name}, {})
    assert [s["name"] for s in store.list_searches()] == [name]
    store.delete_search(name)
    assert store.list_searches() == []


def test_bad_arguments_name_the_argument(store):
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1, got 0"):
        make_search(store, num_samples=0)
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        make_search(store, "")
    with pytest.raises(ValueError, match="space must be a dict"):
        make_search(store, space=[1])
    assert store.list_searches() == []


# -- trials and epochs ---------------------------------------------------------------------


def test_record_epoch_is_idempotent_and_last_write_wins(store):
    make_search(store)
    store.record_epoch("s1", "t", 1, {"epoch": 1, "val_accuracy": 0.1, "extra": [1, 2]})
    store.record_epoch("s1", "t", 2, {"epoch": 2, "val_accuracy": 0.2})
    store.record_epoch("s1", "t", 1, {"epoch": 1, "val_accuracy": 0.9})  # resumed: re-sent
    assert store.count_rows("s1") == {"trials": 1, "epochs": 2, "summaries": 0, "graphs": 0}
    frame = store.epochs_frame("s1")
    assert frame["val_accuracy"].tolist() == [0.9, 0.2]
    assert "extra" not in frame.columns  # replaced, not merged


def test_summary_and_graph_are_idempotent(store):
    make_search(store)
    for value in (0.1, 0.2):
        store.record_summary("s1", "t", {"test_accuracy": value})
        store.record_graph("s1", "t", {"directed": True, "nodes": [{"id": 0}], "links": []},
                           {"log_paths": value})
    assert store.count_rows("s1") == {"trials": 1, "epochs": 0, "summaries": 1, "graphs": 1}
    assert store.graph("s1", "t") == ({"directed": True, "nodes": [{"id": 0}], "links": []},
                                      {"log_paths": 0.2})
    assert store.graph("s1", "nope") is None
    assert store.trials("s1")[0]["test_accuracy"] == 0.2


def test_upsert_trial_partial_updates(store):
    make_search(store)
    store.upsert_trial("s1", "t", density=[0.5, 0.25], config={"lr": 0.1}, node_id="n1")
    (t,) = store.trials("s1")
    assert (t["status"], t["is_baseline"], t["density"]) == ("pending", False, [0.5, 0.25])
    store.upsert_trial("s1", "t", status="running")
    store.upsert_trial("s1", "t", status="error", error="CUDA out of memory",
                       checkpoint_path="/ckpt/3", is_baseline=True)
    store.upsert_trial("s1", "t")  # nothing given: nothing changes
    (t,) = store.trials("s1")
    assert t["status"] == "error" and t["error"] == "CUDA out of memory"
    assert t["density"] == [0.5, 0.25] and t["config"] == {"lr": 0.1} and t["node_id"] == "n1"
    assert t["checkpoint_path"] == "/ckpt/3" and t["is_baseline"] is True
    assert t["updated_at"] >= t["created_at"]
    assert store.count_rows("s1")["trials"] == 1


def test_trial_writes_validate_before_touching_the_database(store, db):
    make_search(store)
    store.upsert_trial("s1", "t", status="running")
    before = table_dump(db)
    with pytest.raises(ValueError, match="pending, running, terminated, stopped, error"):
        store.upsert_trial("s1", "t", status="done", density=[0.1])
    with pytest.raises(ValueError, match=r"density\[1\] must be a number in \[0, 1\]"):
        store.upsert_trial("s1", "t", density=[0.5, 2.0])
    with pytest.raises(ValueError, match="epoch must be an integer >= 0"):
        store.record_epoch("s1", "t", -1, {})
    with pytest.raises(ValueError, match=r"metrics\['val_accuracy'\] must be a number"):
        store.record_epoch("s1", "t", 1, {"val_accuracy": "high"})
    with pytest.raises(ValueError, match="must be JSON data"):
        store.record_epoch("s1", "t", 1, {"thing": object()})
    with pytest.raises(SearchError, match="no search named 'other'"):
        store.record_epoch("other", "t", 1, {"val_accuracy": 0.1})
    with pytest.raises(SearchError):
        store.upsert_trial("other", "t", status="running")
    assert table_dump(db) == before
    assert TRIAL_STATUSES == ("pending", "running", "terminated", "stopped", "error")


def test_record_epoch_creates_an_unannounced_trial(store):
    make_search(store)
    store.record_epoch("s1", "late", 3, {"val_accuracy": 0.5})
    (t,) = store.trials("s1")
    assert (t["trial_id"], t["status"], t["epochs"], t["epoch"]) == ("late", "running", 1, 3)


def test_non_finite_metrics_are_stored_as_null(store):
    make_search(store)
    store.record_epoch("s1", "t", 1, {"train_loss": float("nan"), "val_loss": float("inf"),
                                      "val_accuracy": 0.1})
    (t,) = store.trials("s1")
    assert t["train_loss"] is None and t["val_loss"] is None and t["val_accuracy"] == 0.1


def test_trials_merges_last_epoch_with_summary(store):
    make_search(store)
    store.upsert_trial("s1", "t", status="terminated", density=[0.5])
    store.record_epoch("s1", "t", 1, {"epoch": 1, "val_accuracy": 0.1, "egf_2": 3.0})
    store.record_epoch("s1", "t", 2, {"epoch": 2, "val_accuracy": 0.2, "egf_2": 2.0})
    store.record_summary("s1", "t", {"test_accuracy": 0.15, "egf_2": 2.5, "status": "x"})
    (t,) = store.trials("s1")
    assert t["epochs"] == 2 and t["epoch"] == 2 and t["val_accuracy"] == 0.2
    assert t["test_accuracy"] == 0.15 and t["egf_2"] == 2.5
    assert t["status"] == "terminated"  # a metric never overwrites a trial field
    assert t["has_summary"] is True and t["has_graph"] is False


# -- frames --------------------------------------------------------------------------------


def test_trials_frame_shape_and_columns(store):
    make_search(store)
    store.upsert_trial("s1", "a", density=[0.5, 0.25, 1.0], status="terminated")
    store.upsert_trial("s1", "b", density=[0.1, 0.2], status="stopped")
    store.upsert_trial("s1", "dense", is_baseline=True)
    store.record_epoch("s1", "a", 1, {"val_accuracy": 0.5, "lr": 0.1})
    store.record_summary("s1", "a", {"test_accuracy": 0.45, "layers": [3, 2]})
    frame = store.trials_frame("s1")
    assert frame.shape[0] == 3
    assert frame["trial_id"].tolist() == ["a", "b", "dense"]
    cols = list(frame.columns)
    assert cols[:6] == ["trial_id", "status", "is_baseline", "node_id", "epochs", "density"]
    assert cols[6:9] == ["d_0", "d_1", "d_2"]
    for col in ("val_accuracy", "val_loss", "train_loss", "train_accuracy", "egf_1", "egf_2",
                "active_weights", "test_accuracy", "lr", "layers", "config", "created_at"):
        assert col in cols
    assert frame["density"][0] == [0.5, 0.25, 1.0]
    assert frame["d_1"].tolist()[:2] == [0.25, 0.2]
    assert math.isnan(frame["d_2"][1]) and math.isnan(frame["d_0"][2])
    assert frame["test_accuracy"][0] == 0.45 and math.isnan(frame["test_accuracy"][1])
    assert frame["is_baseline"].tolist() == [False, False, True]


def test_epochs_frame_shape_and_columns(store):
    make_search(store)
    for trial in ("a", "b"):
        for epoch in (1, 2, 3):
            store.record_epoch("s1", trial, epoch, {"epoch": epoch, "val_accuracy": epoch / 10,
                                                    "grad_norm_2": 1.0})
    store.record_epoch("s1", "a", 2, {"epoch": 2, "val_accuracy": 0.99})
    frame = store.epochs_frame("s1")
    assert frame.shape[0] == 6
    assert list(frame.columns[:2]) == ["trial_id", "epoch"] and frame.columns[-1] == "recorded_at"
    assert {"val_accuracy", "egf_1", "active_weights", "grad_norm_2"} <= set(frame.columns)
    assert frame["trial_id"].tolist() == ["a"] * 3 + ["b"] * 3
    assert frame["epoch"].tolist() == [1, 2, 3] * 2
    assert frame["val_accuracy"].tolist() == [0.1, 0.99, 0.3, 0.1, 0.2, 0.3]


def test_frames_of_an_empty_search(store):
    make_search(store)
    assert store.trials_frame("s1").shape[0] == 0
    assert "val_accuracy" in store.trials_frame("s1").columns
    assert list(store.epochs_frame("s1").columns[:2]) == ["trial_id", "epoch"]


# -- concurrency ---------------------------------------------------------------------------


def test_reader_sees_committed_data_while_a_writer_holds_the_lock(store, db):
    make_search(store)
    store.upsert_trial("s1", "t", status="running")
    store.record_epoch("s1", "t", 1, {"val_accuracy": 0.5})
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # holds the write lock, uncommitted change pending
        writer.execute("UPDATE trials SET status = 'error'")
        start = time.monotonic()
        with ResultsStore(f"sqlite:///{db}") as reader:
            (t,) = reader.trials("s1")
            assert t["status"] == "running" and t["val_accuracy"] == 0.5
            assert reader.count_rows("s1")["epochs"] == 1
            assert reader.epochs_frame("s1").shape[0] == 1
        assert time.monotonic() - start < 5  # did not wait for the writer
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert store.trials("s1")[0]["status"] == "error"


def test_other_process_reads_while_a_search_writes(store, db):
    make_search(store, "live")
    store.record_epoch("live", "t", 1, {"val_accuracy": 0.25})
    code = textwrap.dedent(f"""
        import sys
        from snas.store import ResultsStore
        store = ResultsStore({f"sqlite:///{db}"!r})
        print(store.trials("live")[0]["val_accuracy"])
        print(sorted(m for m in ("torch", "ray") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert out.stdout.split("\n")[:2] == ["0.25", "[]"]
    store.record_epoch("live", "t", 2, {"val_accuracy": 0.5})  # writer unaffected afterwards
    assert store.count_rows("live")["epochs"] == 2
