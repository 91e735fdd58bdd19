"""The import graph: no circles anywhere; the plugin contract (components.py) at the ground floor."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "connector", *sorted(p for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists())]


def modules() -> dict[str, Path]:
    """Every project module by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in package.rglob("*.py"):
            parts = list(path.relative_to(package.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports (anywhere in the file, TYPE_CHECKING blocks included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_no_import_circles():
    assert circles(graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_plugin_contract_imports_only_records_errors_and_paths():
    assert graph()["connector.components"] <= {"connector.records", "connector.errors", "connector.paths"}


def test_plugins_use_only_the_public_api():
    """A built-in plugin imports ``connector`` and ``connector.testing``, as a third party can."""
    known = modules()
    reaching = {}
    for name, path in known.items():
        if not name.startswith("connector_"):
            continue
        core = {m for m in imports(name, path, known) if m.startswith("connector.") or m == "connector"}
        if core - {"connector", "connector.testing"}:
            reaching[name] = sorted(core - {"connector", "connector.testing"})
    assert reaching == {}


def test_a_config_class_without_build_is_refused_at_registration_naming_it():
    import pytest

    import connector
    from connector.errors import PluginError
    from connector.registry import Registry

    class Forgetful(connector.MapperConfig, tag="forgetful"):
        pass

    with pytest.raises(PluginError, match=r"plugin 'mine': mapper type 'forgetful' \(.*Forgetful\) does not "
                                          r"implement build\(self, ctx\)"):
        Registry().providing("mine", "connector-mine").add(Forgetful)


def test_the_command_line_imports_no_client_library_until_a_command_needs_one():
    """Every ``connector`` command, ``run`` included, builds the whole command line (the plugins'
    commands too) and loads every plugin: none of them may import an HTTP, NATS or jq client at
    that point (each costs a daemon process tens of ms at every start)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "connector", "--help"], capture_output=True,
                            text=True, check=True)
    imported = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert imported & {"httpx", "aiohttp", "nats", "jq"} == set()
