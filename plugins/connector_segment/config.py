"""The ``segment`` sink's settings, with Segment's documented limits as bounds."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

import connector

from .messages import MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES, REGIONS



class SegmentSinkConfig(connector.SinkConfig, tag="segment"):
    """``type = "segment"``.

    ``write_key``: the source's write key (sent as basic-auth user). ``region``: ``us`` or ``eu``;
    ``endpoint`` overrides it (a proxy or a test server). Batches close at ``batch_max_messages``,
    ``batch_max_bytes`` (uncompressed JSON) or ``flush_interval`` seconds after their first message;
    up to ``max_in_flight`` are sent at once, each within ``timeout`` seconds. Retryable failures back off exponentially from
    ``retry_initial_seconds`` to ``retry_max_seconds`` with full jitter, forever unless
    ``max_retry_duration`` (seconds) is set, after which the messages are dead-lettered.
    """

    takes_raw_records = False  # raw records have no Segment type or user: they are dead-lettered

    write_key: connector.Secret
    region: Literal["us", "eu"] = "us"
    endpoint: str | None = None
    batch_max_messages: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH_MESSAGES)] = 500
    batch_max_bytes: Annotated[int, msgspec.Meta(ge=MAX_MESSAGE_BYTES, le=MAX_BATCH_BYTES)] = MAX_BATCH_BYTES
    flush_interval: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    gzip: bool = True
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    retry_initial_seconds: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    retry_max_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    retry_after_max_seconds: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    max_retry_duration: Annotated[float, msgspec.Meta(gt=0)] | None = None

    @property
    def url(self) -> str:
        return (self.endpoint or REGIONS[self.region]).rstrip("/") + "/v1/batch"

    def build(self, ctx: connector.BuildContext) -> connector.Sink:
        try:
            from .sink import SegmentSink  # aiohttp and isal (connector[segment]): only where a Segment sink is
        except ImportError as exc:
            raise connector.ConfigError(f"sinks.{ctx.name}.type: the segment sink needs {exc.name or 'aiohttp'}, "
                                        "which is not installed: pip install 'connector[segment]'") from None
        return SegmentSink(self, ctx.log, ctx.metrics)
