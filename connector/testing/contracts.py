"""Conformance suites: what every source (webhook or polling), mapper and sink must do, as test
classes to subclass.

A plugin's tests get the standard tests for free (as the Singer SDK's ``get_tap_test_class``
does)::

    class TestMySource(connector.testing.SourceContract):
        config = MySourceConfig(token="t0ken")

        def valid_delivery(self):
            return b'{"a": 1}', {"authorization": "Bearer t0ken"}
        ...

Every built-in plugin runs them (``tests/plugins/test_contracts.py``).
"""

from __future__ import annotations

import traceback
from typing import Any, ClassVar

import msgspec
import pytest

from ..components import MapperConfig, SinkConfig, SourceConfig
from ..errors import RecordRejected
from .kit import RecordingAcks, WebhookHarness, build_context, eventually, make_envelope, make_record, run_sink
from .paged_api import FakePagedAPI
from .polling import FakeSourceContext, SourceCrashed, run_polling_source

SEGMENT_TYPES = {"identify": None, "track": "event", "page": None, "screen": None, "group": "groupId",
                 "alias": "previousId"}
JUNK: list[Any] = [None, 0, 1.5, "text", [], [1, 2], {}, {"data": None}, {"data": []}, {"event": 5},
                   {"nested": {"deeply": [{"x": None}]}}, "é\u2028", [{}], {"": ""}]


class SourceContract:
    """A webhook source: a valid delivery is stored (the same ids when sent again); bad credentials
    are 401 and malformed JSON 400, and then nothing is stored.

    Define ``config`` (the source's config), ``valid_delivery()`` -> (body, headers with good
    credentials), ``credentials(body)`` -> good credential headers for any body, and
    ``bad_credentials(body)`` -> a list of header sets the source must refuse.
    """

    config: ClassVar[SourceConfig]

    def valid_delivery(self) -> tuple[bytes, dict[str, str]]:
        raise NotImplementedError

    def credentials(self, body: bytes) -> dict[str, str]:
        raise NotImplementedError

    def bad_credentials(self, body: bytes) -> list[dict[str, str]]:
        raise NotImplementedError

    @pytest.fixture
    def harness(self) -> Any:
        with WebhookHarness(self.config, name="source") as harness:
            yield harness

    def test_a_valid_delivery_is_stored(self, harness: WebhookHarness) -> None:
        body, headers = self.valid_delivery()
        response = harness.post(body, headers)
        assert response.status_code == 200, response.text
        stored = harness.stored()
        assert stored and response.json() == {"accepted": len(stored)}
        assert all(r.id.startswith("source-") and r.source == "source" for r in stored)

    def test_a_redelivery_gets_the_same_record_ids(self, harness: WebhookHarness) -> None:
        body, headers = self.valid_delivery()
        assert harness.post(body, headers).status_code == 200
        first = [r.id for r in harness.stored()]
        assert harness.post(body, self.credentials(body)).status_code == 200
        assert [r.id for r in harness.stored()] == first + first

    def test_bad_credentials_are_401_and_store_nothing(self, harness: WebhookHarness) -> None:
        body, _ = self.valid_delivery()
        refusals = self.bad_credentials(body)
        assert refusals, "bad_credentials() must give at least one set of headers"
        for headers in refusals:
            response = harness.post(body, headers)
            assert response.status_code == 401, (headers, response.text)
            assert response.json()["error"] and response.json()["detail"]
        assert harness.stored() == []

    def test_malformed_json_is_400_and_stores_nothing(self, harness: WebhookHarness) -> None:
        body = b'{"not": json'
        response = harness.post(body, self.credentials(body))
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "malformed JSON"
        assert harness.stored() == []


class MapperContract:
    """A mapper: pure and deterministic; refuses only with ``RecordRejected`` (with a reason), on
    anything; messages meant for Segment carry a known type, its field and a user.

    Define ``config`` (the mapper's config), ``records()`` (values it maps to messages) and
    ``rejected()`` (values it must dead-letter); ``for_segment = False`` for a mapper whose
    messages are not Segment's.
    """

    config: ClassVar[MapperConfig]
    for_segment: ClassVar[bool] = True

    def records(self) -> list[Any]:
        raise NotImplementedError

    def rejected(self) -> list[Any]:
        return []

    def mapper(self) -> Any:
        return self.config.build(build_context("mapper", kind="mapper"))

    def test_maps_records_deterministically_sharing_nothing_between_calls(self) -> None:
        mapper = self.mapper()
        assert self.records(), "records() must give at least one value the mapper maps"
        for value in self.records():
            record = make_record(value)
            messages = mapper.map(record)
            first = msgspec.json.encode(messages)
            assert msgspec.json.decode(first), f"no messages for {value!r}: [] is only for a configured filter"
            _scribble(messages)  # what a sink may do to the messages it is given
            assert msgspec.json.encode(mapper.map(record)) == first, \
                "the same record, the same messages, whatever became of the messages made before"
            assert msgspec.json.encode(self.mapper().map(record)) == first, "another instance, the same messages"

    def test_rejects_with_a_reason(self) -> None:
        mapper = self.mapper()
        for value in self.rejected():
            with pytest.raises(RecordRejected) as refused:
                mapper.map(make_record(value))
            assert refused.value.reason.strip()

    def test_anything_else_is_a_record_rejected_never_a_crash(self) -> None:
        mapper = self.mapper()
        for value in JUNK:
            try:
                mapper.map(make_record(value))
            except RecordRejected as exc:
                assert exc.reason.strip()

    def test_segment_messages_carry_a_type_and_a_user(self) -> None:
        if not self.for_segment:
            pytest.skip("the mapper's messages are not Segment's")
        mapper = self.mapper()
        for value in self.records():
            for message in msgspec.to_builtins(mapper.map(make_record(value))):
                kind = message.get("type")
                assert kind in SEGMENT_TYPES, message
                assert message.get("userId") or message.get("anonymousId"), message
                assert SEGMENT_TYPES[kind] is None or message.get(SEGMENT_TYPES[kind]), message


def _ran(raised: BaseException | None) -> None:
    """A polling source's run ended without raising (else: fail with its traceback)."""
    if raised is not None:
        trace = "".join(traceback.format_exception(raised))
        raise AssertionError(f"the source's run raised {raised!r}:\n{trace}")


def _scribble(value: Any) -> None:
    """Change every dict and list in ``value`` in place (a mapper that hands out a shared one, e.g.
    a module-level ``context``, then gives changed messages next time)."""
    if isinstance(value, dict):
        for item in value.values():
            _scribble(item)
        value["scribbled by the test"] = True
    elif isinstance(value, list):
        for item in value:
            _scribble(item)
        value.append("scribbled by the test")


class SinkContract:
    """A sink: answers for each envelope exactly once (acknowledged or dead-lettered) and delivers
    each once; retries through a failing destination; pauses while its credentials are refused
    and resumes after.

    Define ``start_destination()`` -> a started destination, ``stop_destination(d)``,
    ``sink_config(d)`` -> the sink's config pointing at it, ``messages()`` -> payloads to deliver,
    ``delivered(d)`` -> the payloads that arrived, as they were handed to the sink; and, when the
    destination can fail, ``break_destination(d)``, ``refuse_credentials(d)`` and
    ``repair_destination(d)`` (the failure tests are skipped without them).
    """

    def start_destination(self) -> Any:
        raise NotImplementedError

    def stop_destination(self, destination: Any) -> None:
        raise NotImplementedError

    def sink_config(self, destination: Any) -> SinkConfig:
        raise NotImplementedError

    def messages(self) -> list[Any]:
        raise NotImplementedError

    def delivered(self, destination: Any) -> list[Any]:
        raise NotImplementedError

    def break_destination(self, destination: Any) -> None:
        pytest.skip("this destination cannot be made to fail")

    def refuse_credentials(self, destination: Any) -> None:
        pytest.skip("this destination has no credentials to refuse")

    def repair_destination(self, destination: Any) -> None:
        raise NotImplementedError

    @pytest.fixture
    def destination(self) -> Any:
        destination = self.start_destination()
        yield destination
        self.stop_destination(destination)

    def _run(self, destination: Any, meanwhile: Any = None) -> RecordingAcks:
        envelopes = [make_envelope(message, index) for index, message in enumerate(self.messages())]
        sink = self.sink_config(destination).build(build_context("sink"))
        acks = run_sink(sink, envelopes, meanwhile=meanwhile)
        assert sorted(acks.answers().items()) == sorted((e.id, 1) for e in envelopes), "each answered once"
        return acks

    def _sent_once(self, destination: Any) -> None:
        arrived = sorted(msgspec.json.encode(p) for p in self.delivered(destination))
        assert arrived == sorted(msgspec.json.encode(m) for m in self.messages())

    def test_each_envelope_is_answered_once_and_delivered_once(self, destination: Any) -> None:
        acks = self._run(destination)
        assert not acks.dead, acks.dead
        self._sent_once(destination)

    def test_it_retries_through_a_failing_destination(self, destination: Any) -> None:
        self.break_destination(destination)

        async def meanwhile(acks: RecordingAcks) -> None:
            await eventually(lambda: acks.errors, failing="the sink never reported acks.error(...) while the destination failed")
            self.repair_destination(destination)

        acks = self._run(destination, meanwhile)
        assert not acks.dead and acks.errors
        self._sent_once(destination)

    def test_it_pauses_while_its_credentials_are_refused_and_resumes(self, destination: Any) -> None:
        self.refuse_credentials(destination)

        async def meanwhile(acks: RecordingAcks) -> None:
            await eventually(lambda: acks.paused, failing="the sink never called acks.pause(reason) while refused")
            self.repair_destination(destination)
            await eventually(lambda: acks.paused is None,
                             failing="the sink never called acks.resume() once the destination took it again")

        acks = self._run(destination, meanwhile)
        assert acks.pauses and acks.paused is None and not acks.dead
        self._sent_once(destination)


class PollingSourceContract:
    """A polling source: stores every item once, across restarts and a crash at any append (before
    or after the page is stored); finds items published later; waits as a 429's ``Retry-After``
    asks; retries through 5xx; pauses while its key is refused and resumes after (see
    ``connector.PollingSource`` for the contract in words).

    Define ``start_api()`` -> a started ``FakePagedAPI`` (or a subclass speaking your vendor's
    documented shapes), ``source_config(api)`` -> the source's config pointing at it: starting at
    the beginning of what the API holds (set its configured start before the first item, if its
    default is "from now"), with small pages (``item_count`` items must span at least 3 pages), a
    short poll interval (~0.1 s) and a retry cap of 1 to 2 s (the cap also bounds ``Retry-After``:
    the 429 test asks for 1 s); ``new_items(count, start)`` -> ``count`` new items as the API
    holds them (``start`` counts the items made before); ``key(value)`` -> what identifies an
    item, for an item and for the value of a stored record alike (e.g. ``value["id"]``).
    """

    item_count: ClassVar[int] = 12

    def start_api(self) -> FakePagedAPI:
        raise NotImplementedError

    def source_config(self, api: Any) -> SourceConfig:
        raise NotImplementedError

    def new_items(self, count: int, start: int) -> list[Any]:
        raise NotImplementedError

    def key(self, value: Any) -> Any:
        raise NotImplementedError

    @pytest.fixture
    def api(self) -> Any:
        api = self.start_api()
        yield api
        api.stop()

    def _publish(self, api: FakePagedAPI, count: int, start: int = 0) -> list[Any]:
        items = self.new_items(count, start)
        api.add(items)
        return sorted(self.key(item) for item in items)

    def _keys(self, ctx: FakeSourceContext) -> list[Any]:
        return sorted(self.key(value) for value in ctx.values())

    def _run(self, api: FakePagedAPI, ctx: FakeSourceContext, expected: list[Any], **kwargs: Any) -> Any:
        """Run until every expected item is stored and two more polls found nothing new."""
        seen_all_at: list[int] = []

        def done(ctx: FakeSourceContext) -> bool:
            if not seen_all_at and set(self._keys(ctx)) >= set(expected):
                seen_all_at.append(len(api.requests))
            return bool(seen_all_at) and len(api.requests) >= seen_all_at[0] + 2

        return _ran(run_polling_source(self.source_config(api), ctx, done, **kwargs))

    def test_stores_every_item_once_and_keeps_its_position(self, api: FakePagedAPI) -> None:
        expected = self._publish(api, self.item_count)
        ctx = FakeSourceContext()
        self._run(api, ctx, expected)
        assert self._keys(ctx) == expected, "every item stored, none twice"
        assert len(set(ctx.ids())) == len(ctx.ids())
        assert ctx.saved is not None, "append(records, checkpoint): the position is stored with its page"
        assert not ctx.paused and not ctx.pauses

    def test_items_published_later_are_stored_on_a_later_poll(self, api: FakePagedAPI) -> None:
        first = self._publish(api, 3)
        ctx = FakeSourceContext()
        later: list[Any] = []

        async def publish_later(ctx: FakeSourceContext) -> None:
            await eventually(lambda: set(self._keys(ctx)) >= set(first),
                             failing=f"the first items were never all stored (stored: {self._keys(ctx)})")
            later.extend(self._publish(api, 4, start=3))

        _ran(run_polling_source(self.source_config(api), ctx, lambda c: later and set(self._keys(c)) >= set(later),
                                meanwhile=publish_later))
        assert self._keys(ctx) == sorted(first + later)

    @pytest.mark.parametrize(("crash", "at"), [("before", 1), ("before", 2), ("after", 2)])
    def test_a_crash_at_an_append_loses_nothing_and_stores_nothing_twice(self, api: FakePagedAPI, crash: Any,
                                                                         at: int) -> None:
        expected = self._publish(api, self.item_count)
        ctx = FakeSourceContext(crash_at=at, crash=crash)
        crashed = run_polling_source(self.source_config(api), ctx, lambda c: False)
        assert isinstance(crashed, SourceCrashed), f"the run should have crashed at append #{at}: {crashed!r}"
        self._run(api, ctx, expected)  # restarted from its checkpoint, it runs on
        assert self._keys(ctx) == expected, "every item stored once, across the crash and the restart"

    def test_a_429_waits_as_retry_after_asks(self, api: FakePagedAPI) -> None:
        expected = self._publish(api, self.item_count)
        api.fail(429, retry_after=1)
        ctx = FakeSourceContext()
        self._run(api, ctx, expected)
        statuses = [r.status for r in api.requests]
        assert 429 in statuses, statuses
        refused = statuses.index(429)
        waited = api.requests[refused + 1].at - api.requests[refused].at
        assert waited >= 0.9, f"asked again {waited:.2f} s after a 429 with Retry-After: 1"
        assert self._keys(ctx) == expected
        assert ctx.errors, "a failed fetch is reported with ctx.error(reason)"

    def test_5xx_is_retried_without_pausing(self, api: FakePagedAPI) -> None:
        expected = self._publish(api, self.item_count)
        api.fail(503, times=2)
        ctx = FakeSourceContext()
        self._run(api, ctx, expected)
        assert self._keys(ctx) == expected
        assert len(ctx.errors) >= 2 and not ctx.pauses, (ctx.errors, ctx.pauses)

    def test_a_refused_key_pauses_the_source_until_it_is_accepted(self, api: FakePagedAPI) -> None:
        expected = self._publish(api, self.item_count)
        api.refuse()

        async def repair(ctx: FakeSourceContext) -> None:
            await eventually(lambda: ctx.paused, failing="the source never called ctx.pause(reason) while the API "
                                                         "refused its key (401)")
            assert not ctx.records, "nothing is stored while the key is refused"
            api.accept()

        ctx = FakeSourceContext()
        _ran(run_polling_source(self.source_config(api), ctx,
                                lambda c: c.pauses and c.paused is None and set(self._keys(c)) >= set(expected),
                                meanwhile=repair))
        assert ctx.pauses and ctx.pauses[0].strip(), "pause(reason) names what to fix"
        assert self._keys(ctx) == expected

    def test_an_api_with_nothing_new_stores_nothing(self, api: FakePagedAPI) -> None:
        ctx = FakeSourceContext()
        _ran(run_polling_source(self.source_config(api), ctx, lambda c: len(api.requests) >= 3))
        assert ctx.records == [] and not ctx.pauses and not ctx.errors
