"""Waiting for a driver subprocess to reach an ``SNAS_FAULT`` point (snas.core.faults)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest


def wait_for_fault(proc: subprocess.Popen, marker: Path, point: str,
                   timeout: float = 240) -> None:
    """Return once the driver wrote ``marker`` at fault point ``point``; fail the test if
    it ended first or never got there within ``timeout`` seconds."""
    deadline = time.time() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"search ended before {point}: "
                        + proc.stdout.read().decode()[-2000:])
        if time.time() > deadline:
            pytest.fail(f"never reached {point}")
        time.sleep(0.2)
