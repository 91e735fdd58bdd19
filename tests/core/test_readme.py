"""The README's "Writing a plugin" tutorial works as written: each code block is written to the
file its first line names, and the plugin they make registers, checks and passes its tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def tutorial_files() -> dict[str, str]:
    text = README.read_text()
    section = text[text.index("## Writing a plugin"):text.index("## Layout")]
    files = {}
    for block in re.findall(r"```(?:python|toml)\n(.*?)```", section, re.S):
        first, _, rest = block.partition("\n")
        name = re.fullmatch(r"# (\S+\.(?:py|toml))", first.strip())
        assert name, f"a tutorial block must start with the file it is: {first!r}"
        files[name.group(1)] = block
    return files


@pytest.mark.reliability  # runs the tutorial plugin's own tests, as its author would: slow
@pytest.mark.packaging
def test_the_tutorial_makes_a_plugin_that_registers_checks_and_passes_its_tests(tmp_path):
    files = tutorial_files()
    assert set(files) == {"connector_acme/source.py", "connector_acme/poller.py", "connector_acme/mapper.py",
                          "connector_acme/sink.py", "connector_acme/__init__.py", "pyproject.toml", "connector.toml",
                          "tests/test_acme.py"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           "CONNECTOR_PLUGINS": "connector_acme", "ACME_TOKEN": "a-token-of-sixteen-chars-or-more"}
    listed = subprocess.run([sys.executable, "-m", "connector", "plugins"], env=env, capture_output=True, text=True)
    assert {"acme", "acme_poll", "acme_to_segment", "acme_file"} <= {line.split()[1]
                                                                     for line in listed.stdout.splitlines()[1:]}
    checked = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(tmp_path / "connector.toml")],
                             env=env, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert '"token":"***"' in checked.stdout
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=tmp_path,
                           env=env, capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    # what the README says the run gives
    said = re.search(r"runs them: (\d+) pass, and the two failure tests", README.read_text())
    assert said and tests.stdout.splitlines()[-1].startswith(f"{said.group(1)} passed, 2 skipped"), tests.stdout
