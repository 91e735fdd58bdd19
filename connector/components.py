"""The three kinds of component a plugin provides, as config classes and runtime contracts.

A plugin declares each component type as a config Struct; the ``tag`` is its ``type`` name:

    class FileSink(SinkConfig, tag="file"):
        path: str
        def build(self, ctx: BuildContext) -> Sink: ...

The core validates a component's TOML table against the class (unknown keys are errors) and
calls ``build`` to make the running component: "the config is the factory". ``build`` checks
and prepares, but opens no file or connection (``connector check`` calls it too, and a process
builds components it may not run): do that when the component starts running.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream
from structlog.typing import FilteringBoundLogger

from .paths import resolve
from .records import Envelope, Record


class ComponentMetrics(Protocol):
    """A component's own metrics; the core labels each with the component's name."""

    def observe_request(self, seconds: float) -> None:
        """One request to the component's destination or API took ``seconds``
        (``connector_sink_request_seconds{sink}``, or for a polling source
        ``connector_source_request_seconds{source}``)."""

    def count(self, name: str, amount: float = 1.0) -> None:
        """Add ``amount`` to the component's counter ``connector_plugin_<name>_total{component}``
        (``name``: lowercase letters, digits and underscores; never a secret or a payload)."""


@dataclass(frozen=True)
class BuildContext:
    """What a config's ``build`` gets: the component's name, its logger (structlog, bound to the
    name; secrets are masked), its metrics, and path resolution."""

    name: str
    config_dir: str
    log: FilteringBoundLogger
    metrics: ComponentMetrics

    def path(self, value: str) -> str:
        """Resolve a configured path relative to the config file's directory."""
        return resolve(self.config_dir, value)


if TYPE_CHECKING:
    # A type checker takes a Struct declared without ``frozen=True`` under a frozen one for an
    # error (PEP 681's dataclass_transform; msgspec#657): it sees the base as not frozen, so that
    # ``class X(connector.SourceConfig, tag="x")`` type-checks. At run time configs are frozen.
    class _ConfigStruct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, tag_field="type"):
        pass
else:
    class _ConfigStruct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, tag_field="type"):
        pass


class ComponentConfig(_ConfigStruct):
    """Base of every component config (frozen). Subclasses set ``tag="<type name>"``."""

    @classmethod
    def type_name(cls) -> str:
        """The ``type`` a config table uses to select this class."""
        tag = cls.__struct_config__.tag
        if not isinstance(tag, str):
            raise TypeError(f"{cls.__qualname__} needs a tag: class {cls.__name__}(..., tag='name')")
        return tag


class SourceConfig(ComponentConfig):
    """Config of a source type; ``build`` returns a ``WebhookSource`` or a ``PollingSource``."""

    @abc.abstractmethod
    def build(self, ctx: BuildContext) -> Source: ...


class MapperConfig(ComponentConfig):
    """Config of a mapper type; ``inputs`` name the sources it maps."""

    inputs: list[str]

    @abc.abstractmethod
    def build(self, ctx: BuildContext) -> Mapper: ...


class SinkConfig(ComponentConfig):
    """Config of a sink type; ``inputs`` name mappers (or sources, for raw records).

    ``takes_raw_records = False`` on a sink type whose destination needs mapped messages:
    ``connector check`` then warns when a source is wired straight to it.
    """

    takes_raw_records: ClassVar[bool] = True
    inputs: list[str]

    @abc.abstractmethod
    def build(self, ctx: BuildContext) -> Sink: ...


class Source:
    """A running source: a ``WebhookSource`` or a ``PollingSource``. ``name`` is its table name."""

    name: str = ""


class WebhookRequest(msgspec.Struct, frozen=True, gc=False):
    """A webhook delivery that passed the ingress checks: lowercase header names, raw body."""

    headers: Mapping[str, str]
    body: bytes


class Accepted(msgspec.Struct, frozen=True):
    """What a webhook source made of a delivery.

    ``records`` are decoded records (msgspec Structs, dicts, lists...), stored canonically;
    ``forward=False`` acknowledges a delivery without storing it (a vendor's test delivery).
    """

    records: Sequence[Any]
    forward: bool = True


class WebhookSource(Source, abc.ABC):
    """A source mounted on the shared HTTP ingress at ``path``."""

    path: str = ""

    @abc.abstractmethod
    def accept(self, request: WebhookRequest) -> Accepted:
        """Authenticate and decode one delivery; raise ``HTTPError`` (401, 400...) to refuse it.

        Runs on the event loop for every request: keep it CPU-light and never block.
        """


class PollingSource(Source, abc.ABC):
    """A source that fetches records itself, in its own task: the contract.

    - **Cursor.** Its position (an API cursor, a time window) is the ``checkpoint`` it passes to
      ``ctx.append`` with the page it belongs to: after the page's records are stored, the source
      resumes *after* them. ``await ctx.checkpoint()`` at the start of ``run`` is the position last
      stored, or None on the first run: then start where the user configured (say in your config
      class what the default is: the API's beginning, or only what comes from now on).
    - **At least once, with idempotent ids.** A record's id is a hash of its source and its
      canonical body: a page fetched twice gives the same ids, and the sinks deduplicate by them
      (Segment's ``messageId``). The checkpoint keeps a restart from fetching a page twice; the
      ids make it harmless if it does.
    - **An empty page.** ``ctx.append([], checkpoint)`` stores only the new position (a window
      moved past, a cursor advanced over nothing); ``ctx.append([])`` does nothing.
    - **Failures.** A page that cannot be fetched for a passing reason (429, 5xx, a timeout) is
      retried with backoff (``connector.full_jitter``), honouring ``Retry-After``
      (``connector.retry_after_seconds``), and reported with ``ctx.error(reason)``. A refusal the
      user must fix (401/403: a wrong key) is ``ctx.pause(reason)``; keep asking with backoff and
      call ``ctx.resume()`` once a request succeeds.
    - **A crash.** An exception out of ``run`` is logged with its traceback, shown in ``/status``,
      and the source is started again, from its last checkpoint, after a backoff (1 s doubling to
      5 min). The rest of the daemon runs on. A crash between a fetch and its ``append`` loses
      nothing: the page is fetched again.
    - **Stopping.** The daemon cancels ``run`` when it stops; whatever was appended is stored.

    ``connector.testing.PollingSourceContract`` holds a polling source to this contract.
    """

    @abc.abstractmethod
    async def run(self, ctx: SourceContext) -> None:
        """Poll until cancelled: fetch a page, ``await ctx.append(records, checkpoint)``, repeat;
        between polls, sleep. Returning ends the source (a one-off backfill); the daemon goes on."""


class Mapper(abc.ABC):
    """A pure function from one raw record to zero or more output messages; never does I/O."""

    @abc.abstractmethod
    def map(self, record: Record) -> Sequence[Any]:
        """Return the messages for ``record``; raise ``RecordRejected`` to dead-letter it.

        Return no messages only for a filter the user configured: the record is then
        acknowledged and counted in ``connector_filtered_records``. A record the mapper cannot
        make sense of (an unknown event type, a missing user) is a ``RecordRejected``, never [].
        """


class SourceContext(Protocol):
    """What ``PollingSource.run`` gets: a durable way in for its records, and a way to say it is failing."""

    async def append(self, records: Sequence[Any], checkpoint: bytes | None = None) -> None:
        """Store decoded records (canonically, with deterministic ids); return once durable.

        ``checkpoint`` (the source's position, e.g. an API cursor) is saved with the records: once
        ``append`` returns, both are stored, so after a crash the source resumes after what was
        stored. (The SQLite buffer writes both in one transaction; the NATS buffer writes the
        checkpoint just after the records, so a crash between the two fetches that page again,
        and its records keep their ids.)
        """

    async def checkpoint(self) -> bytes | None:
        """The checkpoint last stored with ``append``, or None on the first run."""

    def error(self, reason: str) -> None:
        """A fetch failed and will be retried (a 429, a 5xx, a timeout): logged, counted in
        ``connector_source_errors_total{source}`` and shown as the last poll's outcome."""

    def pause(self, reason: str) -> None:
        """The source cannot fetch for a reason the user must fix (a refused API key): the admin
        ``/status`` shows it paused with ``reason`` until ``resume``."""

    def resume(self) -> None:
        """The source fetches again (call it after each fetch that works: when the source was
        not paused, it does nothing)."""


class Acks(Protocol):
    """What ``Sink.run`` gets to answer for each envelope: delivered, refused for good, or paused."""

    sink: str  # the sink's name, for its own metrics labels

    async def ack(self, envelopes: Iterable[Envelope]) -> None:
        """The sink delivered ``envelopes``."""

    async def dead_letter(self, envelope: Envelope, reason: str, attempts: int = 1) -> None:
        """The sink refuses ``envelope`` permanently: its record is kept as a dead letter with ``reason``."""

    def error(self, reason: str, kind: str) -> None:
        """Report a failure that is retried (counted, shown by ``connector status``)."""

    def pause(self, reason: str) -> None:
        """The destination is failing as a whole: the sink is paused and the daemon not ready."""

    def resume(self) -> None:
        """The destination answers again."""


Inbox = MemoryObjectReceiveStream[Envelope]
"""A sink's inbox: an anyio memory object stream of envelopes (``receive`` waits for one,
``receive_nowait`` takes one that is queued or raises ``anyio.WouldBlock``)."""


class Sink(abc.ABC):
    """A running sink: consumes envelopes and acknowledges each one exactly once."""

    @abc.abstractmethod
    async def run(self, inbox: Inbox, acks: Acks) -> None:
        """Deliver envelopes until ``inbox`` is closed and empty, then return.

        Call ``await acks.ack(envelopes)`` once delivered, ``await acks.dead_letter(envelope,
        reason)`` for a permanent refusal, ``acks.pause(reason)`` / ``acks.resume()`` while the
        destination as a whole is failing. An unacknowledged envelope is redelivered after a
        restart, with the same id.
        """

