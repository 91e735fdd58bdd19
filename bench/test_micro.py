"""pytest-benchmark micro-benchmarks of the decoders and mappers (not collected by CI's run).

    cd bench && python -m pytest test_micro.py --benchmark-columns=mean,ops
"""

from __future__ import annotations

import json

import pytest

from connector import Record, WebhookRequest
from connector.ids import canonical, record_id
from connector_jebbit.mapper import JebbitToSegment, JebbitToSegmentConfig
from connector_jebbit.signature import sign
from connector_jebbit.source import JebbitSource
from connector_segment.messages import encode_message
from connector_sprig.mapper import SprigToSegment
from connector_sprig.webhook import SprigWebhook

pytest.importorskip("pytest_benchmark")

JEBBIT = json.dumps([{"data": {
    "email": "jane.doe@example.com", "opt_in": "true", "outcome": "o", "campaign_id": "n3zrik6g",
    "campaign_name": "New Quiz", "session_id": "y2P5ks05mqzGsdkIGjbQ", "channel": "Owned+Web",
    "experience_date": "2021-03-12 00:00:00", "favorite_color": "blue", "age_group": "25-34"}}]).encode()
SPRIG = json.dumps({"id": 1, "createdAt": "2026-11-20T10:00:00Z", "responseGroupUid": "rg", "response": "Yes",
                    "surveyId": 1, "surveyName": "NPS", "question": "Q?", "questionType": "likert",
                    "visitorId": "v", "userId": "u", "email": "u@example.com", "attributes": {"plan": "pro"}}).encode()


def record(source: str, value) -> Record:
    body = canonical(value)
    return Record(1, record_id(source, body), source, 0.0, body)


def test_jebbit_verify_and_decode(benchmark):
    source = JebbitSource("/j", [b"secret"], 300)
    request = WebhookRequest({"x-jebbit-signature": sign("secret", JEBBIT)}, JEBBIT)
    benchmark(source.accept, request)


def test_jebbit_map(benchmark):
    experience = JebbitSource("/j", [b"s"], 300).accept(
        WebhookRequest({"x-jebbit-signature": sign("s", JEBBIT)}, JEBBIT)).records[0]
    mapper = JebbitToSegment(JebbitToSegmentConfig(inputs=["jebbit"]))
    benchmark(mapper.map, record("jebbit", experience))


def test_sprig_decode(benchmark):
    source = SprigWebhook("/s", [b"Bearer k"])
    benchmark(source.accept, WebhookRequest({"authorization": "Bearer k"}, SPRIG))


def test_sprig_map(benchmark):
    benchmark(SprigToSegment("E", set()).map, record("sprig", json.loads(SPRIG)))


def test_segment_encode_message(benchmark):
    from connector import Envelope

    message = JebbitToSegment(JebbitToSegmentConfig(inputs=["j"])).map(
        record("jebbit", json.loads(JEBBIT)[0]))[1]
    envelope = Envelope("jebbit-0123456789abcdef-jebbit_segment-1", message, record("jebbit", {}))
    benchmark(encode_message, envelope)
