"""connector: receive survey and quiz data, map it, deliver it to Segment, stdout or files.

The public API for plugin authors.
"""

from __future__ import annotations

from .commands import CommandContext, Commands
from .components import (
    Accepted,
    Acks,
    BuildContext,
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
from .config import Config
from .envfile import read_env_file
from .errors import CommandError, ConfigError, HTTPError, RecordRejected
from .hookspecs import hookimpl
from .records import Envelope, Record
from .registry import Registry
from .secret import Secret

__all__ = [
    "Accepted", "Acks", "BuildContext", "CommandContext", "CommandError", "Commands", "Config", "ConfigError",
    "Envelope", "HTTPError", "Mapper", "MapperConfig",
    "PollingSource", "Record", "RecordRejected", "Registry", "Secret", "Sink", "SinkConfig",
    "Source", "SourceConfig", "SourceContext", "WebhookRequest", "WebhookSource", "hookimpl", "read_env_file",
]
