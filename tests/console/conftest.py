"""A real browser for the console's tests: Debian's Chromium driven by Playwright (no browser is
downloaded). Skipped, with the reason, where either is missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium for one test. Not shared: Playwright's sync API holds an event loop on the thread
    while it runs, and the worker's next test may need to run one (``anyio.run``)."""
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[test]')")
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the tests save their screenshots: ``$CONNECTOR_SCREENSHOTS`` (the README's come from
    ``CONNECTOR_SCREENSHOTS=docs/console``), else the test's own folder."""
    folder = Path(os.environ.get("CONNECTOR_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
