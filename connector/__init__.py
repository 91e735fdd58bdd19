"""connector: receive survey and quiz data, map it, deliver it to Segment, stdout or files.

The public API for plugin authors.
"""

from __future__ import annotations

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
from .errors import HTTPError, RecordRejected
from .hookspecs import hookimpl
from .pipeline import Acks
from .records import Envelope, Record
from .registry import Registry
from .sources import SourceContext

__all__ = [
    "Accepted", "Acks", "BuildContext", "Envelope", "HTTPError", "Mapper", "MapperConfig",
    "PollingSource", "Record", "RecordRejected", "Registry", "Secret", "Sink", "SinkConfig",
    "Source", "SourceConfig", "SourceContext", "WebhookRequest", "WebhookSource", "hookimpl",
]
