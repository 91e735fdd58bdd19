"""Plugin discovery: entry points, disabling by name, duplicates, documented hooks."""

from __future__ import annotations

import inspect
import os
import socket
import subprocess
import sys
import time

import pytest

from connector import hookspecs
from connector.errors import PluginError
from connector.plugins import load_registry
from connector.testing import ThreadedServer


def test_every_hook_is_documented_with_its_parameters():
    hooks = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("connector_")]
    assert hooks, "no hook specs found"
    for hook in hooks:
        doc = inspect.getdoc(hook) or ""
        assert len(doc) > 80, f"{hook.__name__} needs a docstring for plugin authors"
        for parameter in inspect.signature(hook).parameters:
            assert f":param {parameter}:" in doc, f"{hook.__name__} does not document {parameter}"
        assert ":return:" in doc


def test_builtin_plugins_come_through_entry_points():
    registry = load_registry()
    file_sink = registry.get("sink", "file")
    assert file_sink is not None and file_sink.plugin == "files" and file_sink.distribution == "connector"
    assert registry.get("source", "webhook") is not None


def test_disabling_a_plugin_by_name(monkeypatch):
    monkeypatch.setenv("CONNECTOR_DISABLE_PLUGINS", "files")
    registry = load_registry()
    assert registry.get("sink", "file") is None
    assert registry.get("source", "webhook") is not None


def test_duplicate_type_names_both_plugins(monkeypatch, plugin_env):
    monkeypatch.syspath_prepend(plugin_env["PYTHONPATH"].split(":")[0])
    monkeypatch.setenv("CONNECTOR_PLUGINS", "support.clashing_plugin")
    with pytest.raises(PluginError) as info:
        load_registry()
    message = str(info.value)
    assert "sink type 'file' is registered twice" in message
    assert "'files'" in message and "'support.clashing_plugin'" in message


def test_plugins_command_lists_types_with_their_package():
    result = subprocess.run([sys.executable, "-m", "connector", "plugins"], capture_output=True, text=True)
    assert result.returncode == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["sink", "file", "files", "connector"] in rows
    assert ["source", "webhook", "webhook", "connector"] in rows


def test_version():
    result = subprocess.run([sys.executable, "-m", "connector", "--version"], capture_output=True, text=True)
    assert result.stdout.startswith("connector 0.1")


def test_a_closed_pipe_is_not_a_traceback():
    with subprocess.Popen([sys.executable, "-m", "connector", "plugins"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as process:
        process.stdout.close()  # like `connector plugins | head -0`
        error = process.stderr.read().decode()
        assert process.wait() == 0
    assert "Traceback" not in error


def test_naming_an_installed_plugin_in_connector_plugins_loads_it_once(monkeypatch):
    monkeypatch.setenv("CONNECTOR_PLUGINS", "connector_files")  # also installed, as entry point "files"
    registry = load_registry()
    assert registry.get("sink", "file").plugin == "files"


def test_a_source_that_is_neither_a_webhook_nor_a_polling_source_is_a_config_error(tmp_path, plugin_env):
    config = tmp_path / "connector.toml"
    config.write_text('[sources.odd]\ntype = "nowhere"\n\n[sinks.out]\ntype = "stdout"\ninputs = ["odd"]\n')
    result = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(config)], capture_output=True,
                            text=True, env={**os.environ, **plugin_env})
    assert result.returncode == 1
    assert "sources.odd.type" in result.stderr and "neither a connector.WebhookSource nor" in result.stderr


def test_a_fake_server_on_a_port_in_use_says_so_at_once():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        started = time.monotonic()
        with pytest.raises(OSError, match="cannot serve on 127.0.0.1"):
            ThreadedServer(lambda scope, receive, send: None, port=taken.getsockname()[1]).start()
        assert time.monotonic() - started < 2


def test_a_plugin_without_its_extra_registers_and_says_which_to_install(tmp_path):
    """connector[segment] and connector[jq]: without them the types are listed, and a config that
    uses one is refused naming the component and the pip command (aiohttp and jq made unimportable)."""
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for module in ("aiohttp", "jq"):
        (blocked / f"{module}.py").write_text(f"raise ImportError('not installed', name='{module}')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked), os.environ.get("PYTHONPATH", "")])}
    listed = subprocess.run([sys.executable, "-m", "connector", "plugins"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert {"segment", "jq"} <= {line.split()[1] for line in listed.stdout.splitlines()[1:]}
    config = tmp_path / "connector.toml"
    config.write_text('[sources.in]\ntype = "webhook"\npath = "/in"\nbearer_token = "t0ken-t0ken-t0ken"\n\n'
                      '[mappers.m]\ntype = "jq"\ninputs = ["in"]\nprogram = "."\n\n'
                      '[sinks.out]\ntype = "segment"\ninputs = ["m"]\nwrite_key = "k"\n')
    checked = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(config)], env=env,
                             capture_output=True, text=True)
    assert checked.returncode == 1
    assert "pip install 'connector[" in checked.stderr and "which is not installed" in checked.stderr, checked.stderr
