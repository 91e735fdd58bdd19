"""Config errors name the file, the line, the component and the key; secrets are redacted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connector.config import load_config
from connector.errors import ConfigError
from connector.graph import check_graph
from connector.plugins import load_registry

GOOD = """
[sources.events]
type = "webhook"
path = "/in"
bearer_token = "${TOKEN}"

[sinks.archive]
type = "file"
inputs = ["events"]
path = "out/events.ndjson"
"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    config = load_config(str(path), load_registry())
    check_graph(config)
    return config


def error_of(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert str(tmp_path / "bad.toml") in message
    return message


def test_good_config_resolves_env_and_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "s3cret")
    config = load(tmp_path, GOOD)
    assert config.sources["events"].config.bearer_token == "s3cret"
    assert config.secrets == {"s3cret"}
    assert config.buffer.path == "data/connector.db"


def test_unknown_key_names_component_key_and_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "x")
    message = error_of(tmp_path, GOOD.replace('path = "/in"', 'path = "/in"\nbearer_tokn = "x"'))
    assert "bad.toml:5: sources.events.bearer_tokn: unknown key" in message


def test_wrong_type_names_key(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "x")
    message = error_of(tmp_path, GOOD.replace('path = "/in"', "path = 42"))
    assert "bad.toml:4: sources.events.path: Expected `str`, got `int`" in message


def test_missing_required_key(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "x")
    message = error_of(tmp_path, GOOD.replace('path = "out/events.ndjson"', ""))
    assert "sinks.archive.path: required key is missing" in message


def test_unknown_type_lists_installed_types(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "x")
    message = error_of(tmp_path, GOOD.replace('type = "file"', 'type = "fiel"'))
    assert "bad.toml:8: sinks.archive.type: unknown sink type 'fiel'" in message
    assert "file" in message and "stdout" in message


def test_dangling_input(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "x")
    message = error_of(tmp_path, GOOD.replace('inputs = ["events"]', 'inputs = ["evnts"]'))
    assert "bad.toml:9: sinks.archive.inputs: unknown input 'evnts' (known: events)" in message


def test_cyclic_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "x")
    cyclic = GOOD + """
[mappers.a]
type = "jebbit_to_segment"
inputs = ["b"]

[mappers.b]
type = "jebbit_to_segment"
inputs = ["a"]
"""
    message = error_of(tmp_path, cyclic)
    line = cyclic.splitlines().index('inputs = ["b"]') + 1
    assert f"bad.toml:{line}: mappers.a.inputs: 'b' leads back to 'a': inputs must not form a cycle" in message


def test_unset_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("TOKEN", raising=False)
    message = error_of(tmp_path, GOOD)
    assert "bad.toml:5: sources.events.bearer_token: environment variable TOKEN is not set" in message


def test_default_for_unset_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("TOKEN", raising=False)
    config = load(tmp_path, GOOD.replace("${TOKEN}", "${TOKEN:-fallback}"))
    assert config.sources["events"].config.bearer_token == "fallback"


def test_toml_syntax_error_gives_line(tmp_path):
    message = error_of(tmp_path, GOOD.replace('path = "/in"', 'path = "/in'))
    assert "invalid TOML" in message and "line 4" in message


def test_unknown_section(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "x")
    message = error_of(tmp_path, GOOD + "\n[sinkz.x]\ntype = 'file'\n")
    assert "sinkz: unknown section" in message


def test_cli_check_exits_1_without_traceback(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace('type = "file"', 'type = "fiel"'))
    result = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(path)],
                            capture_output=True, text=True, env={"TOKEN": "x", "PATH": ""})
    assert result.returncode == 1
    assert "sinks.archive.type: unknown sink type 'fiel'" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_check_redacts_secrets(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    result = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(path)],
                            capture_output=True, text=True, env={"TOKEN": "hunter2-secret", "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert "hunter2-secret" not in result.stdout + result.stderr
    assert '"bearer_token":"***"' in result.stdout
    assert "sink archive (files)" in result.stdout


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(str(tmp_path / "nope.toml"), load_registry())


def test_cli_check_warns_about_a_memory_buffer(tmp_path):
    path = tmp_path / "memory.toml"
    path.write_text('[buffer]\ntype = "memory"\n' + GOOD)
    result = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(path)],
                            capture_output=True, text=True, env={"TOKEN": "x", "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert "warning: the memory buffer keeps records in memory only" in result.stdout


@pytest.mark.parametrize(("setting", "buffer", "cpus", "expected"), [
    ("", "", 2, True), ("", "", 1, False), ('delivery_process = "auto"', "", 4, True),
    ("", '[buffer]\ntype = "memory"\n', 4, False), ("delivery_process = false", "", 4, False),
    ("delivery_process = true", "", 1, True), ("", '[buffer]\ntype = "nats"\n', 2, True),
    ("", '[buffer]\ntype = "nats"\n', 1, False)])
def test_delivery_process_auto_needs_a_shared_buffer_and_two_cores(tmp_path, monkeypatch, setting, buffer, cpus, expected):
    import connector.config

    monkeypatch.setenv("TOKEN", "x")
    monkeypatch.setattr(connector.config, "_usable_cpus", lambda: cpus)
    assert load(tmp_path, f"[service]\n{setting}\n{buffer}{GOOD}").delivery_process is expected


def test_delivery_process_true_needs_the_sqlite_buffer(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "x")
    message = error_of(tmp_path, '[service]\ndelivery_process = true\n[buffer]\ntype = "memory"\n' + GOOD)
    assert "service.delivery_process" in message and "sqlite" in message
    assert "bad.toml:2: service.delivery_process: Invalid enum value 'sometimes'" in error_of(
        tmp_path, '[service]\ndelivery_process = "sometimes"\n' + GOOD)


@pytest.mark.parametrize("change, expected", [
    (('path = "/in"', 'path = "/healthz"'), "sources.events.path: '/healthz' must start with / and not be one of"),
    (('path = "/in"', 'path = "/readyz"'), "sources.events.path: '/readyz' must start with / and not be one of"),
])
def test_cli_check_rejects_what_run_rejects(tmp_path, change, expected):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(*change))
    for command in (["check"], ["run"]):
        result = subprocess.run([sys.executable, "-m", "connector", *command, "-c", str(path)],
                                capture_output=True, text=True, env={"TOKEN": "x", "PATH": ""}, cwd=tmp_path)
        assert result.returncode == 1
        assert f"bad.toml:4: {expected}" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing was created on the way


def test_read_only_commands_need_no_secrets(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    listed = subprocess.run([sys.executable, "-m", "connector", "dlq", "list", "-c", str(path)],
                            capture_output=True, text=True, env={"PATH": ""}, cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout == "", listed.stderr
    checked = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(path)],
                             capture_output=True, text=True, env={"PATH": ""}, cwd=tmp_path)
    assert checked.returncode == 1 and "environment variable TOKEN is not set" in checked.stderr
