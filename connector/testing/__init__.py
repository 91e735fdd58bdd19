"""Test helpers for connector and for plugin authors (a pytest plugin, loaded automatically).

For a plugin's unit tests (``kit.py``, ``contracts.py``, ``polling.py``, ``paged_api.py``):
- ``SourceContract`` (a webhook source), ``PollingSourceContract``, ``MapperContract``,
  ``SinkContract``: conformance suites to subclass;
- ``make_record(value)``, ``make_envelope(payload)``, ``build_context(name)``;
- ``WebhookHarness(config)``: a webhook source behind the real ingress, in process;
- ``RecordingAcks``, ``run_sink(sink, envelopes)``, ``eventually(condition)``: a sink run to the end;
- ``FakeSourceContext(crash_at=n)``, ``run_polling_source(config, ctx, until)``: a polling source
  run in process, crashed at a chosen append and restarted; ``FakePagedAPI``: a paginated JSON
  API with a token and failures on demand, to poll (subclass it for a vendor's shapes).

For tests of the running daemon (``daemons.py``):
- ``DaemonProcess`` and fixture ``daemon_factory``: ``connector run`` in a subprocess on a config
  you write (``{port}`` and ``{admin_port}`` become free ports); post to it, stop it with a signal, kill it;
- ``LocalDaemon`` and fixture ``local_daemon_factory``: the same daemon (ingress, buffer, sinks in
  one process) inside the test's process, serving real HTTP on a free port: no process start;
- ``run_command(*args, env=...)``: ``connector ARGS`` in this process, its exit code and output.

Servers and waiting (``servers.py``, ``waiting.py``): ``ThreadedServer`` (an ASGI app in a
thread), ``FakeHTTPDestination`` (a JSON endpoint that records and fails on demand),
``ResettingProxy``, ``free_port()``, ``wait_until(predicate)``, ``metric(text, name, **labels)``.

Vendor fakes live in their plugins' testing modules, each a pytest plugin of its own:
``connector_segment.testing.FakeSegment`` (fixture ``fake_segment``),
``connector_jebbit.testing.FakeJebbitAPI`` (fixture ``fake_jebbit``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .contracts import MapperContract, PollingSourceContract, SinkContract, SourceContract
from .daemons import CommandResult, DaemonProcess, LocalDaemon, run_command
from .kit import (
    RecordingAcks,
    WebhookHarness,
    build_context,
    eventually,
    make_envelope,
    make_record,
    run_sink,
)
from .paged_api import APIRequest, FakePagedAPI
from .polling import FakeSourceContext, SourceCrashed, build_polling_source, run_polling_source
from .servers import FakeHTTPDestination, ResettingProxy, ThreadedServer, read_body
from .waiting import child_pids, free_port, metric, wait_until

__all__ = [
    "APIRequest", "CommandResult", "DaemonProcess", "FakeHTTPDestination", "FakePagedAPI", "FakeSourceContext",
    "LocalDaemon", "MapperContract", "PollingSourceContract", "RecordingAcks", "ResettingProxy", "SinkContract",
    "SourceContract", "SourceCrashed", "ThreadedServer", "WebhookHarness", "build_context", "build_polling_source",
    "child_pids", "daemon_factory", "eventually", "free_port", "local_daemon_factory", "make_envelope",
    "make_record", "metric", "read_body", "run_command", "run_polling_source", "run_sink", "wait_until",
]


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Any]:
    """Make ``DaemonProcess`` objects (``daemon_factory(config, env=..., directory=..., args=...,
    preexec_fn=...)``)."""
    made: list[DaemonProcess] = []

    def make(config: str, env: dict[str, str] | None = None, directory: Path | None = None,
             args: list[str] | None = None, preexec_fn: Any = None) -> DaemonProcess:
        daemon = DaemonProcess(directory or tmp_path, config, env, args, preexec_fn)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.kill()


@pytest.fixture
def local_daemon_factory(tmp_path: Path) -> Iterator[Any]:
    """Make ``LocalDaemon`` objects (``local_daemon_factory(config, env=..., directory=...)``); stopped after."""
    made: list[LocalDaemon] = []

    def make(config: str, env: dict[str, str] | None = None, directory: Path | None = None,
             env_file: str | None = None) -> LocalDaemon:
        daemon = LocalDaemon(directory or tmp_path, config, env, env_file)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.stop()
