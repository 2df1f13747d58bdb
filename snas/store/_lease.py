"""One driver per search: the lease a running search holds in the store.

A driver (``snas search``, ``resume``, ``confirm``, ``compare``) takes the lease of its
search before it starts Ray, renews it every :data:`HEARTBEAT_S` seconds from a daemon
thread and releases it when the run ends, normally or by an exception. Another driver is
refused (:class:`LeaseHeld`, one line) while the lease is alive; it takes the lease over
when it is stale: no heartbeat for :data:`LEASE_TIMEOUT_S` seconds (a driver on another
host that died or lost the network), or at once when the holder's pid is dead on this
same host (a killed driver). Heartbeats are stamped with the database's clock.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import uuid
from typing import Any

from snas.core.errors import SearchError

#: A lease whose heartbeat is older than this is stale and may be taken over.
LEASE_TIMEOUT_S = 60.0
#: How often the holder renews its lease.
HEARTBEAT_S = 10.0


class LeaseHeld(SearchError):
    """Another live driver runs this search."""


def this_host() -> str:
    return socket.gethostname()


def new_owner() -> str:
    return uuid.uuid4().hex


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a pid we may not signal exists)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's live process
        return True
    return True


def holder_is_alive(lease: dict[str, Any], timeout: float) -> bool:
    """Whether the driver that holds ``lease`` (a :meth:`ResultsStore.lease_of` dict) is
    still running: a fresh heartbeat, and on this host a live pid."""
    if lease["age_s"] >= timeout:
        return False
    return not (lease["host"] == this_host() and not pid_alive(lease["pid"]))


def held_message(name: str, lease: dict[str, Any], timeout: float) -> str:
    return (f"search {name!r} is being run by pid {lease['pid']} on host {lease['host']} "
            f"(heartbeat {lease['age_s']:.0f}s ago); wait for it to end or stop it (a lease "
            f"without a heartbeat for {timeout:g}s is taken over)")


class Lease:
    """A held lease: renewed from a daemon thread until :meth:`release` (or the end of a
    ``with`` block). Made by :meth:`ResultsStore.hold_lease`, which takes it first."""

    def __init__(self, store: Any, search: str, owner: str, heartbeat: float) -> None:
        self.store, self.search, self.owner = store, search, owner
        self.heartbeat = heartbeat
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"snas-lease-{search}",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        warned = False
        while not self._stop.wait(self.heartbeat):
            try:
                held = self.store.renew_lease(self.search, self.owner)
            except Exception as exc:  # noqa: BLE001 - an unreachable store: try again later
                held, why = True, " ".join(str(exc).split())
                if not warned:
                    print(f"snas: warning: cannot renew the lease of search {self.search!r}: "
                          f"{why}", file=sys.stderr, flush=True)
                    warned = True
                continue
            if not held and not self.lost:
                self.lost = True
                print(f"snas: warning: search {self.search!r}: another driver took over its "
                      "lease (this one missed its heartbeats); stop this one",
                      file=sys.stderr, flush=True)

    def release(self) -> None:
        """Stop renewing and give the lease back (no-op the second time)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=self.heartbeat + 5)
        try:
            self.store.release_lease(self.search, self.owner)
        except Exception as exc:  # noqa: BLE001 - it goes stale by itself
            print(f"snas: warning: cannot release the lease of search {self.search!r}: "
                  f"{' '.join(str(exc).split())}", file=sys.stderr, flush=True)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()
