"""Shared test set-up: the test plugins in tests/support are importable by daemons we start."""

from __future__ import annotations

import compileall
import os
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
PROJECT = TESTS.parent


def pytest_configure(config: pytest.Config) -> None:
    """Compile the project's modules once, before the tests start daemons: where
    PYTHONDONTWRITEBYTECODE is set (as on this project's machines), every daemon process would
    otherwise compile each module it imports from source again (~0.1 CPU-s a start)."""
    if not hasattr(config, "workerinput"):  # the controller alone, not each xdist worker
        for folder in ("connector", "plugins", "tests/support"):
            compileall.compile_dir(PROJECT / folder, quiet=1)


@pytest.fixture
def plugin_env() -> dict[str, str]:
    """Environment that makes the daemon load tests/support/plugins_for_tests.py."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return {"PYTHONPATH": path, "CONNECTOR_PLUGINS": "support.plugins_for_tests"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the reliability suites run one at a time, on one worker: each loads
    the machine on purpose, and two at once would each measure the other (the packaging tests,
    slow but measuring nothing, run beside the rest)."""
    for item in items:
        if item.get_closest_marker("reliability") and not item.get_closest_marker("packaging"):
            item.add_marker(pytest.mark.xdist_group("reliability"))
