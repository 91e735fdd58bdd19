"""connector: receive survey and quiz data, map it, deliver it to Segment, stdout or files.

The public API for plugin authors.
"""

from __future__ import annotations

from .commands import CommandContext, Commands
from .components import (
    Accepted,
    BuildContext,
    Mapper,
    MapperConfig,
    PollingSource,
    Secret,
    Sink,
    SinkConfig,
    Source,
    SourceConfig,
    WebhookRequest,
    WebhookSource,
)
from .config import Config
from .envfile import read_env_file
from .errors import CommandError, ConfigError, HTTPError, RecordRejected
from .hookspecs import hookimpl
from .pipeline import Acks
from .records import Envelope, Record
from .registry import Registry
from .sources import SourceContext

__all__ = [
    "Accepted", "Acks", "BuildContext", "CommandContext", "CommandError", "Commands", "Config", "ConfigError",
    "Envelope", "HTTPError", "Mapper", "MapperConfig",
    "PollingSource", "Record", "RecordRejected", "Registry", "Secret", "Sink", "SinkConfig",
    "Source", "SourceConfig", "SourceContext", "WebhookRequest", "WebhookSource", "hookimpl", "read_env_file",
]
