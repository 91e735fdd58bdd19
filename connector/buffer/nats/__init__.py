"""``[buffer] type = "nats"``: records in a JetStream stream (``jetstream.py``), imported only when
such a buffer is built: nats-py is the optional extra ``connector[nats]``, and with aiohttp under
it a third of a second of imports that no other command should pay."""

from __future__ import annotations

from ..base import Buffer, BufferConfig
from .settings import NatsSettings


class NatsBufferConfig(BufferConfig, NatsSettings, tag="nats", frozen=True):
    """``type = "nats"`` (the settings: ``NatsSettings``)."""

    def build(self, config_dir: str, appended_elsewhere: bool = False) -> Buffer:
        from .jetstream import NatsBuffer

        return NatsBuffer(self, config_dir)  # every process of every daemon shares the stream alike
