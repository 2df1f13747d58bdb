"""One driver per search: the lease a running search holds in the store (refused while
alive, taken over when stale or when its pid died on this host, released at the end), and
`snas resume NAME --store B` writing to B only."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from _faults import wait_for_fault

from snas.cli import main
from snas.core.config import parse_space_text, read_space_text
from snas.store import ResultsStore
from snas.store._lease import LEASE_TIMEOUT_S, LeaseHeld
from snas.store._schema import leases

ROOT = Path(__file__).parents[2]
DIGITS = str(ROOT / "search_spaces" / "mlp_digits.yaml")
TINY = ["--set", "model.width=16", "--set", "training.epochs=2",
        "--set", "scheduler.grace_period=1"]


def digest(db: Path) -> dict[str, str | None]:
    """The database file's bytes (hashed) and its WAL's (None: absent or empty, as SQLite
    leaves it while a connection is open)."""
    out = {}
    for suffix in ("", "-wal"):
        f = Path(f"{db}{suffix}")
        data = f.read_bytes() if f.exists() else b""
        out[suffix or "db"] = hashlib.sha256(data).hexdigest() if data else None
    return out


def rows(db: Path, skip: tuple[str, ...] = ()) -> list:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = sorted(r[0] for r in conn.execute(
            "select name from sqlite_master where type='table'") if r[0] not in skip)
        return [(t, sorted(map(repr, conn.execute(f'select * from "{t}"')))) for t in tables]
    finally:
        conn.close()


@pytest.fixture
def store(tmp_path):
    space = parse_space_text(read_space_text(DIGITS), TINY[1::2], source=DIGITS)
    store = ResultsStore(f"sqlite:///{tmp_path}/r.db")
    store.create_search("s", read_space_text(DIGITS), space.to_dict(), "random", 2,
                        str(tmp_path / "exp" / "s"), {"store_url": "sqlite:///elsewhere.db"})
    store.set_search_status("s", "interrupted")
    yield store
    store.close()


@pytest.fixture
def sleeper():
    """A live process that is not a driver (its pid holds leases in the tests)."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


def _age(store, seconds: float) -> None:
    """Make the lease of search 's' look ``seconds`` old."""
    with store._engine.begin() as conn:
        conn.execute(sa.update(leases).values(
            heartbeat_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)))


def test_lease_is_exclusive_renewed_and_released(store):
    assert store.lease_of("s") is None
    with store.hold_lease("s", heartbeat=0.3) as lease:
        first = store.lease_of("s")
        assert first["pid"] == os.getpid() and first["owner"] == lease.owner
        with pytest.raises(LeaseHeld, match=rf"search 's' is being run by pid {os.getpid()} "
                           r"on host \S+ \(heartbeat \d+s ago\)"):
            store.acquire_lease("s", "someone-else")
        time.sleep(1.6)  # heartbeats are stamped by the database (SQLite: whole seconds)
        assert store.lease_of("s")["heartbeat_at"] > first["heartbeat_at"]
    assert store.lease_of("s") is None
    with pytest.raises(RuntimeError), store.hold_lease("s"):  # released by an exception too
        raise RuntimeError("boom")
    assert store.lease_of("s") is None


def test_stale_or_dead_lease_is_taken_over(store, sleeper, capsys):
    store.acquire_lease("s", "old", pid=sleeper.pid)
    with pytest.raises(LeaseHeld):
        store.acquire_lease("s", "new")
    _age(store, LEASE_TIMEOUT_S + 1)  # no heartbeat for longer than the timeout
    assert store.acquire_lease("s", "new")["owner"] == "old"
    assert store.lease_of("s")["owner"] == "new"
    dead = subprocess.Popen(["true"])
    dead.wait()
    store.release_lease("s", "new")
    store.acquire_lease("s", "gone", pid=dead.pid)
    assert store.acquire_lease("s", "next", timeout=1e9)["pid"] == dead.pid  # pid dead: at once
    assert not store.renew_lease("s", "gone") and store.renew_lease("s", "next")
    store.release_lease("s", "next")
    assert store.lease_of("s") is None


def test_a_lease_on_another_host_is_judged_by_its_heartbeat(store):
    store.acquire_lease("s", "remote", pid=1)
    with store._engine.begin() as conn:
        conn.execute(sa.update(leases).values(host="some-other-host", pid=999999))
    with pytest.raises(LeaseHeld, match="pid 999999 on host some-other-host"):
        store.acquire_lease("s", "local")
    _age(store, LEASE_TIMEOUT_S + 5)
    assert store.acquire_lease("s", "local")["host"] == "some-other-host"


def test_second_driver_is_refused_in_one_line_and_changes_nothing(store, sleeper, tmp_path,
                                                                  capsys):
    """While a live driver holds the lease: `snas resume` and `snas search --resume` exit 2
    with one line naming its pid and host; the store stays byte-identical."""
    store.acquire_lease("s", "driver", pid=sleeper.pid)
    store.close()
    db = tmp_path / "r.db"
    before = digest(db)
    url = f"sqlite:///{db}"
    search = ["search", DIGITS, "--name", "s", "--resume", "--store", url, "--storage-path",
              str(tmp_path / "exp"), "--quiet", *TINY]
    for argv in (["resume", "s", "--store", url], search):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"snas: error: search 's' is being run by pid {sleeper.pid} "
                              "on host "), err
        assert "heartbeat" in err and err.count("\n") == 1
        assert digest(db) == before


def test_search_resume_with_other_settings_names_the_keys(store, tmp_path, capsys):
    store.close()
    db = tmp_path / "r.db"
    before = digest(db)
    base = ["search", DIGITS, "--name", "s", "--resume", "--store", f"sqlite:///{db}",
            "--quiet", *TINY]
    cases = [
        (["--num-samples", "9"], ["search.num_samples (stored"]),
        (["--seed", "77", "--set", "model.width=24"], ["search.seed", "model.width"]),
        (["--storage-path", str(tmp_path / "other")], ["--storage-path"]),
    ]
    for extra, keys in cases:
        capsys.readouterr()
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert "was started with other settings" in err and err.count("\n") == 1, err
        for key in keys:
            assert key in err, (key, err)
        assert "training.epochs" not in err  # equal keys are not named
        assert digest(db) == before


def test_resume_into_another_store_writes_there_only(ray_address, tmp_path, capsys):
    """A driver dies mid-search; its store A is copied to B; `snas resume --store B` takes
    the dead driver's lease over and finishes in B, and A stays byte-identical. While the
    driver lived, a second driver of the search was refused."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SNAS_FAULT": "trial_complete:2",
           "SNAS_FAULT_MARKER": str(marker), "SNAS_FAULT_SLEEP": "120"}
    argv = [sys.executable, "-m", "snas.cli", "search", DIGITS, "--name", "kill", "--store",
            f"sqlite:///{a}", "--storage-path", str(tmp_path / "exp"), "--quiet",
            "--num-samples", "4", "--max-concurrent", "2", "--address", ray_address, *TINY]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for_fault(proc, marker, "trial_complete:2")
        before = rows(a, skip=("leases",))
        capsys.readouterr()
        assert main(["resume", "kill", "--store", f"sqlite:///{a}"]) == 2
        err = capsys.readouterr().err
        assert f"is being run by pid {proc.pid} on host" in err and err.count("\n") == 1, err
        assert rows(a, skip=("leases",)) == before
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    source = sqlite3.connect(f"file:{a}?mode=ro", uri=True)  # reads A's WAL, changes nothing
    target = sqlite3.connect(b)
    source.backup(target)
    source.close()
    target.close()
    a_before = digest(a)
    time.sleep(2)  # let the killed driver's workers go
    capsys.readouterr()
    assert main(["resume", "kill", "--store", f"sqlite:///{b}", "--address", ray_address]) == 0
    assert "taking over from pid" in capsys.readouterr().err
    assert digest(a) == a_before  # A byte-for-byte as the killed driver left it
    store = ResultsStore(f"sqlite:///{b}")
    trials = store.trials("kill")
    assert len(trials) == 4 and all(t["status"] in ("terminated", "stopped") for t in trials)
    assert store.get_search("kill")["status"] == "finished"
    assert store.lease_of("kill") is None  # released at the end
    store.close()
