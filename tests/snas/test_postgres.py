"""The results store on a real PostgreSQL server (``SNAS_TEST_POSTGRES_URL``; skipped only
when it is unset; `make test` starts a throwaway server, see .ci/with_postgres.sh).

Real tiny searches: one interrupted by SIGKILL and resumed, two at once writing the same
store while the dashboard reads it; readers and refused commands leave the rows identical.
Each module run uses a database of its own, dropped at the end.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from _faults import wait_for_fault

from snas.cli import main
from snas.store import ResultsStore

ROOT = Path(__file__).parents[2]
DIGITS = str(ROOT / "search_spaces" / "mlp_digits.yaml")
TINY = ["--set", "model.width=16", "--set", "training.epochs=2",
        "--set", "scheduler.grace_period=1", "--quiet"]
TABLES = ("searches", "trials", "epochs", "summaries", "graphs", "leases", "snas_meta")

BASE_URL = os.environ.get("SNAS_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not BASE_URL, reason="SNAS_TEST_POSTGRES_URL is not set "
                                "(`make test` starts a PostgreSQL server)")


@pytest.fixture(scope="module")
def pg_url():
    """A fresh database on the test server; dropped afterwards."""
    base = sa.make_url(BASE_URL)
    name = f"snas_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def snapshot(url: str) -> dict[str, list[str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            present = set(sa.inspect(conn).get_table_names())
            return {t: sorted(map(repr, conn.exec_driver_sql(f'SELECT * FROM "{t}"')))
                    for t in TABLES if t in present}
    finally:
        engine.dispose()


def driver(url: str, name: str, tmp_path: Path, address: str, *extra: str,
           env: dict | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "snas.cli", "search", DIGITS, "--name", name, "--store", url,
            "--storage-path", str(tmp_path / "exp"), "--address", address, *TINY, *extra]
    return subprocess.Popen(argv, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_interrupted_search_resumes_and_readers_and_refusals_change_nothing(
        ray_address, pg_url, tmp_path, capsys):
    marker = tmp_path / "marker"
    proc = driver(pg_url, "kill", tmp_path, ray_address, "--num-samples", "3",
                  "--max-concurrent", "2",
                  env={"SNAS_FAULT": "trial_complete:1", "SNAS_FAULT_MARKER": str(marker)})
    try:
        wait_for_fault(proc, marker, "trial_complete:1")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    store = ResultsStore(pg_url)
    assert store.get_search("kill")["status"] == "running"  # the driver died mid-search
    assert store.lease_of("kill")["pid"] == proc.pid
    time.sleep(1)
    capsys.readouterr()
    assert main(["resume", "kill", "--store", pg_url, "--address", ray_address]) == 0
    assert "taking over from pid" in capsys.readouterr().err
    trials = store.trials("kill")
    assert len(trials) == 3 and all(t["status"] in ("terminated", "stopped") for t in trials)
    frame = store.epochs_frame("kill")
    assert not frame.duplicated(["trial_id", "epoch"]).any()
    assert store.count_rows("kill")["epochs"] == len(frame) == sum(t["epochs"] for t in trials)
    assert store.get_search("kill")["status"] == "finished" and store.lease_of("kill") is None

    before = snapshot(pg_url)
    for argv in (["list"], ["show", "kill"], ["show", "kill", "--format", "json"],
                 ["export", "kill"]):
        assert main([*argv, "--store", pg_url]) == 0, argv
    assert snapshot(pg_url) == before  # readers leave it row-identical

    reader = ResultsStore(pg_url, read_only=True)
    with pytest.raises(Exception, match="read-only transaction"):
        reader.set_search_status("kill", "failed")
    reader.close()

    # A search another live driver runs (this test's process stands in for it).
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        store.create_search("held", "x", store.get_search("kill")["space"], "random", 2,
                            str(tmp_path / "exp" / "held"), {})
        store.acquire_lease("held", "driver", pid=sleeper.pid)
        before = snapshot(pg_url)
        refused = [
            (["resume", "held", "--store", pg_url], f"being run by pid {sleeper.pid} on host"),
            (["resume", "kill", "--store", pg_url], "already finished"),
            (["search", DIGITS, "--name", "kill", "--store", pg_url, *TINY],
             "already exists; add --resume"),
            (["search", DIGITS, "--name", "kill", "--resume", "--store", pg_url, *TINY,
              "--set", "model.width=20"], "model.width (stored 16, given 20)"),
        ]
        for argv, message in refused:
            capsys.readouterr()
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert message in err and err.count("\n") == 1, (argv, err)
        assert snapshot(pg_url) == before  # refused: row-identical
    finally:
        sleeper.kill()
        sleeper.wait()
        store.close()


def test_two_searches_at_once_while_the_dashboard_reads(ray_address, pg_url, tmp_path):
    """Search 'two' runs in a driver process while search 'one' runs here; the dashboard
    (read-only) answers every poll meanwhile."""
    import threading

    from snas.dashboard import make_server, serve_in_thread

    proc = driver(pg_url, "two", tmp_path, ray_address, "--num-samples", "2")
    reader = ResultsStore(pg_url, read_only=True)
    server = make_server(reader, "127.0.0.1", 0)
    serve_in_thread(server)
    seen: set[str] = set()
    statuses: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
            conn.request("GET", "/api/searches")
            reply = conn.getresponse()
            body = reply.read()
            conn.close()
            statuses.append(reply.status)
            if reply.status == 200:
                seen.update(s["name"] for s in json.loads(body)["searches"])
            done.wait(0.3)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        assert main(["search", DIGITS, "--name", "one", "--store", pg_url, "--storage-path",
                     str(tmp_path / "exp"), "--address", ray_address, *TINY,
                     "--num-samples", "2"]) == 0
        assert proc.wait(timeout=300) == 0, proc.stdout.read().decode()[-3000:]
    finally:
        done.set()
        poller.join(timeout=60)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        server.shutdown()
        server.server_close()
        reader.close()
    assert statuses and set(statuses) == {200}  # never blocked or broken by the writers
    assert {"one", "two"} <= seen
    store = ResultsStore(pg_url)
    for name in ("one", "two"):
        assert store.get_search(name)["status"] == "finished"
        trials = store.trials(name)
        assert len(trials) == 2 and all(t["has_summary"] for t in trials)
        assert store.lease_of(name) is None
    store.close()
