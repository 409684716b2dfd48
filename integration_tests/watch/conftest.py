"""One headless Chromium for the watch tests (``nox -s watch``): Debian's ``chromium``,
driven by playwright from PyPI (its wheel carries the driver; the browser is the
system's, so nothing is downloaded)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

pytest_plugins = ["pymasep.comm.core.testing.plugin"]

CHROMIUM = os.environ.get("WATCH_CHROMIUM", "/usr/bin/chromium")
# A machine with Python alone skips the browser tests, saying why; CI (.ci/run and the
# workflow, which install a browser) sets this so that a missing one fails the run.
REQUIRE_BROWSER = os.environ.get("PYMASEP_COMM_REQUIRE_BROWSER") == "1"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        missing = f"no Chromium at {CHROMIUM}: apt-get install chromium (or set WATCH_CHROMIUM)"
        if REQUIRE_BROWSER:
            raise pytest.UsageError(missing)
        pytest.skip(missing)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save their screenshots: WATCH_SCREENSHOTS, else a temporary
    directory."""
    directory = os.environ.get("WATCH_SCREENSHOTS")
    path = Path(directory) if directory else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
