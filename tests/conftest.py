"""Shared test set-up: the test plugins in tests/support are importable by daemons we start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


@pytest.fixture
def plugin_env() -> dict[str, str]:
    """Environment that makes the daemon load tests/support/test_plugins.py."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return {"PYTHONPATH": path, "CONNECTOR_PLUGINS": "support.test_plugins"}
