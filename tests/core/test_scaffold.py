"""Plugins kept as third parties keep them: ``connector new-plugin``'s package passes its own tests
as generated; so do the worked examples in ``examples/``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connector.testing import run_command


@pytest.mark.parametrize(("name", "parts"), [("acme_forms", []), ("acme-forms", ["--mapper"]),  # pip-style too
                                             ("acme_forms", ["--source", "--sink"]), ("acme-forms", ["--polling"])])
@pytest.mark.reliability  # runs a package's own tests, as its author would: slow
@pytest.mark.packaging
def test_the_generated_plugin_passes_its_tests_and_registers(tmp_path, name, parts):
    done = run_command("new-plugin", name, *parts, "--directory", str(tmp_path))
    assert done.returncode == 0, done.stderr
    root = tmp_path / "connector-acme-forms"
    assert done.stdout.startswith(f"wrote {root}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=root, env=env, capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    wanted = {"--source": "source", "--mapper": "mapper", "--sink": "sink"}
    kinds = {"source", "mapper"} if parts == ["--polling"] else {wanted[p] for p in parts} or set(wanted.values())
    readme = (root / "README.md").read_text()
    assert ("[sinks." in readme) == ("sink" in kinds) and ("[mappers." in readme) == ("mapper" in kinds)
    assert ("poll_interval" in readme) == (parts == ["--polling"]) and ("[sources." in readme) == ("source" in kinds)
    for module in root.rglob("*.py"):
        assert not unused_imports(module), (module, unused_imports(module))
    listed = subprocess.run([sys.executable, "-m", "connector", "plugins"], capture_output=True, text=True,
                            env={**env, "CONNECTOR_PLUGINS": "connector_acme_forms"})
    types = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines() if "connector_acme_forms" in line}
    assert set(types) == kinds
    assert {"source": "acme_forms", "mapper": "acme_forms_to_segment", "sink": "acme_forms"}.items() >= types.items()


def unused_imports(module: Path) -> set[str]:
    """Names a module imports (``__future__`` aside) and never uses."""
    tree = ast.parse(module.read_text())
    imported = {(alias.asname or alias.name).split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import | ast.ImportFrom) and getattr(node, "module", "") != "__future__"
                for alias in node.names}
    return imported - {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def test_a_name_that_cannot_be_a_package_is_refused(tmp_path):
    done = run_command("new-plugin", "Acme-Forms", "--directory", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr == ("connector: error: plugin name 'Acme-Forms': use lowercase letters, digits, "
                           "underscores and hyphens, starting with a letter (e.g. typeform, surveymonkey-poll)\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.reliability  # runs a package's own tests, as its author would: slow
@pytest.mark.packaging
@pytest.mark.parametrize("example", ["connector-typeform", "connector-surveymonkey-poll"])
def test_each_worked_example_passes_its_own_tests(example):
    root = Path(__file__).resolve().parents[2] / "examples" / example
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=root, env=env, capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout.splitlines()[-1]
