"""The systemd unit in deploy/ is one systemd accepts, and it runs the command this package installs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "deploy" / "connector.service"


def test_the_systemd_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    connector = Path(sys.executable).parent / "connector"  # where the unit's /opt/connector/bin/connector is
    unit = tmp_path / "connector.service"
    unit.write_text(UNIT.read_text().replace("/opt/connector/bin/connector", str(connector)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit.read_text()  # reload: certificates read again
