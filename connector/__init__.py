"""connector: receive survey and quiz data, map it, deliver it to Segment, stdout or files.

The public API for plugin authors; a plugin needs nothing else of the core (and ``connector.testing``
for its tests):

- declaring components: ``SourceConfig``, ``MapperConfig``, ``SinkConfig`` (msgspec Structs with
  ``tag="<type>"`` and a ``build(ctx)``), ``Secret`` for credentials, ``BuildContext`` (name,
  ``log``, ``metrics: ComponentMetrics``, ``path()``), ``Registry`` and ``hookimpl``;
- running them: ``WebhookSource`` (``accept(WebhookRequest) -> Accepted``), ``PollingSource``
  (``run(SourceContext)``), ``Mapper`` (``map(Record)``), ``Sink`` (``run(Inbox, Acks)``),
  ``Envelope``, ``Record``;
- errors: ``HTTPError`` (a source's refusal), ``RecordRejected`` (dead-letter this record),
  ``ConfigError`` (a setting ``build`` cannot accept), ``CommandError``;
- helpers: ``full_jitter`` and ``retry_after_seconds`` (every retry loop), ``next_batch`` (a
  sink's inbox in batches), ``read_env_file``, ``secret_list`` (a secret or a list while rotating);
- the command line: ``Commands``, ``CommandContext``, ``ConfigView`` (a config, read-only, as
  ``CommandContext.load_config`` gives it).
"""

from __future__ import annotations

from .backoff import full_jitter, retry_after_seconds
from .commands import CommandContext, Commands, ConfigView
from .components import (
    Accepted,
    Acks,
    BuildContext,
    ComponentMetrics,
    Inbox,
    Mapper,
    MapperConfig,
    PollingSource,
    Sink,
    SinkConfig,
    Source,
    SourceConfig,
    SourceContext,
    WebhookRequest,
    WebhookSource,
)
from .delivery.batching import next_batch
from .envfile import read_env_file
from .errors import CommandError, ConfigError, HTTPError, RecordRejected
from .hookspecs import hookimpl
from .records import Envelope, Record
from .registry import Registry
from .secret import Secret, secret_list

__all__ = [
    "Accepted", "Acks", "BuildContext", "CommandContext", "ComponentMetrics", "CommandError", "Commands", "ConfigError", "ConfigView",
    "Envelope", "HTTPError", "Inbox", "Mapper", "MapperConfig",
    "PollingSource", "Record", "RecordRejected", "Registry", "Secret", "Sink", "SinkConfig",
    "Source", "SourceConfig", "SourceContext", "WebhookRequest", "WebhookSource", "full_jitter", "hookimpl", "next_batch",
    "read_env_file", "retry_after_seconds", "secret_list",
]


def __getattr__(name: str) -> object:
    if name == "Config":  # exported until 0.2: commands now get a ``ConfigView``
        import warnings

        from .config import Config

        warnings.warn("connector.Config is the core's own: a command gets a connector.ConfigView from "
                      "ctx.load_config (read-only, components' settings by name)", DeprecationWarning, stacklevel=2)
        return Config
    raise AttributeError(f"module 'connector' has no attribute {name!r}")
