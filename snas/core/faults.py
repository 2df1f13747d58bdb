"""Named fault-injection points for the kill-at-any-moment tests. Inert in normal use.

With ``SNAS_FAULT=POINT[:N]`` in the environment, the N-th time (default 1st) a process
passes :func:`point` ``POINT``, it writes ``POINT`` to the file named by
``SNAS_FAULT_MARKER`` and sleeps ``SNAS_FAULT_SLEEP`` seconds (default 120), so a test can
SIGKILL the driver exactly there. Points: ``search_created`` (store row written, Tune not
started), ``epoch_recorded`` (after an epoch row), ``store_write`` (inside an uncommitted
store transaction), ``checkpoint_write`` (in a trial worker, checkpoint file half-written),
``trial_complete`` (summary written, trial status not yet), ``search_end`` (every trial
done, search status not yet ``finished``).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

ENV = "SNAS_FAULT"
ENV_VARS = (ENV, "SNAS_FAULT_MARKER", "SNAS_FAULT_SLEEP")
_passes: Counter[str] = Counter()


def point(name: str) -> None:
    """Pause here if ``SNAS_FAULT`` names this point (see the module docstring)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    wanted, _, count = spec.partition(":")
    if wanted != name:
        return
    _passes[name] += 1
    if _passes[name] != int(count or 1):
        return
    marker = os.environ.get("SNAS_FAULT_MARKER")
    if marker:
        Path(marker).write_text(name)
    time.sleep(float(os.environ.get("SNAS_FAULT_SLEEP", "120")))


def runtime_env() -> dict | None:
    """Ray ``runtime_env`` carrying the fault settings to trial workers (None when unset)."""
    env = {k: os.environ[k] for k in ENV_VARS if k in os.environ}
    return {"env_vars": env} if env else None
