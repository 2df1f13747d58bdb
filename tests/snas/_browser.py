"""Headless Chromium for the page tests: Debian's /usr/bin/chromium through the playwright
package (never ``playwright install``); skipped where either is absent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def launch_chromium() -> Iterator[Any]:
    """Yield a launched playwright Browser, closed afterwards (use from a fixture)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (Debian: apt-get install chromium; `make test` "
                    "installs it when run as root)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def watch_problems(page: Any) -> list[str]:
    """A list that fills with the page's errors: uncaught exceptions, console errors and
    failed requests (assert it stays empty)."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("requestfailed", lambda req: problems.append(
        f"request failed: {req.url} ({req.failure})"))
    return problems
