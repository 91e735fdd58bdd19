"""Every built-in plugin passes the conformance suites a third-party plugin runs."""

from __future__ import annotations

import datetime
import json
import tempfile
from pathlib import Path

import msgspec

from connector.testing import MapperContract, PollingSourceContract, SinkContract, SourceContract
from connector_files.sinks import FileSinkConfig
from connector_jebbit.mapper import JebbitToSegmentConfig
from connector_jebbit.signature import sign
from connector_jebbit.source import JebbitSourceConfig
from connector_segment.config import SegmentSinkConfig
from connector_segment.testing import FakeSegment
from connector_sprig.export import SprigExportConfig
from connector_sprig.mapper import SprigToSegmentConfig
from connector_sprig.webhook import SprigWebhookConfig
from connector_webhook.source import WebhookSourceConfig
from support.fake_sprig import FakeSprigAPI

FIXTURES = Path(__file__).parent.parent / "fixtures"
JEBBIT_SECRET = "contract-jebbit-shared-secret"
SPRIG_SECRET = "contract-sprig-api-secret"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


class TestJebbitSource(SourceContract):
    config = JebbitSourceConfig(shared_secret=JEBBIT_SECRET)

    def valid_delivery(self):
        body = fixture("jebbit/webhook.json")
        return body, self.credentials(body)

    def credentials(self, body):
        return {"x-jebbit-signature": sign(JEBBIT_SECRET, body)}

    def bad_credentials(self, body):
        return [{}, {"x-jebbit-signature": sign("another-secret", body)},
                {"x-jebbit-signature": sign(JEBBIT_SECRET, body, timestamp=1_000_000)}]


class TestSprigSource(SourceContract):
    config = SprigWebhookConfig(api_secret=SPRIG_SECRET)

    def valid_delivery(self):
        return fixture("sprig/webhook_answer_submitted.json"), {"authorization": f"Bearer {SPRIG_SECRET}"}

    def credentials(self, body):
        return {"authorization": f"Bearer {SPRIG_SECRET}"}

    def bad_credentials(self, body):
        return [{}, {"authorization": "Bearer wrong"}, {"authorization": SPRIG_SECRET}]


class TestSprigExportSource(PollingSourceContract):
    def start_api(self):
        return FakeSprigAPI([], api_key="contract-sprig-export-key").start()

    def source_config(self, api):
        return SprigExportConfig(api_key="contract-sprig-export-key", base_url=api.url, start=1577836800000,
                                 limit=5, poll_interval=0.1, retry_max_seconds=1.0)

    def new_items(self, count, start):
        row = json.loads(fixture("sprig/responses_page.json"))["data"][0]
        now = datetime.datetime.now(datetime.UTC)
        return [{**row, "responseGroupUid": f"group-{start + i}",
                 "createdAt": (now + datetime.timedelta(milliseconds=i)).isoformat(timespec="milliseconds")
                 .replace("+00:00", "Z")} for i in range(count)]

    def key(self, value):
        return value["responseGroupUid"]


class TestWebhookSource(SourceContract):
    config = WebhookSourceConfig(path="/in", bearer_token="contract-token")

    def valid_delivery(self):
        return b'[{"a": 1}, {"b": 2}]', self.credentials(b"")

    def credentials(self, body):
        return {"authorization": "Bearer contract-token"}

    def bad_credentials(self, body):
        return [{}, {"authorization": "Bearer nope"}]


class TestJebbitMapper(MapperContract):
    config = JebbitToSegmentConfig(inputs=["jebbit"])

    def records(self):
        return json.loads(fixture("jebbit/webhook.json"))

    def rejected(self):
        return [{"data": {"opt_in": "true"}, "event": {}}, {"data": {"email": "a@b.c", "experience_date": "soon"}}]


class TestSprigMapper(MapperContract):
    config = SprigToSegmentConfig(inputs=["sprig"])

    def records(self):
        return [json.loads(fixture("sprig/webhook_answer_submitted.json"))]

    def rejected(self):
        return [json.loads(fixture("sprig/webhook_study_sent.json")),
                {**json.loads(fixture("sprig/webhook_answer_submitted.json")), "userId": None}]


def track(i: int) -> dict:
    return {"type": "track", "userId": f"u{i}", "event": "Contract Tested", "properties": {"i": i}}


class TestSegmentSink(SinkContract):
    def start_destination(self):
        return FakeSegment().start()

    def stop_destination(self, destination):
        destination.stop()

    def sink_config(self, destination):
        return SegmentSinkConfig(inputs=["m"], write_key=destination.write_key, endpoint=destination.url,
                                 flush_interval=0.02, retry_initial_seconds=0.02, retry_max_seconds=0.2)

    def messages(self):
        return [track(i) for i in range(25)]

    def delivered(self, destination):
        stamped = ("messageId", "context")
        return [{k: v for k, v in m.items() if k not in stamped} for m in destination.messages]

    def break_destination(self, destination):
        destination.fail(503)

    def refuse_credentials(self, destination):
        destination.fail(401)

    def repair_destination(self, destination):
        destination.heal()


class TestFileSink(SinkContract):
    def start_destination(self):
        return Path(tempfile.mkdtemp()) / "out" / "messages.ndjson"

    def stop_destination(self, destination):
        pass

    def sink_config(self, destination):
        return FileSinkConfig(inputs=["m"], path=str(destination))

    def messages(self):
        return [track(i) for i in range(25)] + [{"not": "a segment message"}]

    def delivered(self, destination):
        return [msgspec.json.decode(line) for line in destination.read_bytes().splitlines()]
