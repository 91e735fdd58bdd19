"""Micro-benchmark: verify + decode + map of one signed Jebbit experience, operations/s.

Beside the same work done the way a hand-written receiver does it (stdlib json, dicts), in the
same run. Also reports each step of connector's path alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import msgspec
import time
import resource

from common import table
from connector import Record, WebhookRequest
from connector.ids import canonical, record_id
from connector_jebbit.mapper import JebbitToSegment, JebbitToSegmentConfig
from connector_jebbit.signature import sign
from connector_jebbit.source import JebbitSource

encode = msgspec.json.Encoder().encode
SECRET = "Qq6niUmvrO320lYbBGKha6cdy22Bz8BVBd"
BODY = json.dumps([{"data": {
    "email": "jane.doe@example.com", "opt_in": "true", "outcome": "example_outcome", "campaign_id": "n3zrik6g",
    "campaign_name": "New Quiz", "session_id": "y2P5ks05mqzGsdkIGjbQ", "channel": "Owned+Web",
    "experience_date": "2021-03-12 00:00:00", "favorite_color": "blue", "age_group": "25-34",
    "test_sata_attribute": ["option 1", "option 4"]}, "event": {"event_number": 0}}]).encode()


def rate(fn, seconds: float = 1.5) -> float:
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            fn()
        count += 200
    return count / elapsed


def main() -> None:
    source = JebbitSource("/j", [SECRET.encode()], 300)
    mapper = JebbitToSegment(JebbitToSegmentConfig(inputs=["jebbit"]))
    request = WebhookRequest({"x-jebbit-signature": sign(SECRET, BODY)}, BODY)
    body = canonical(source.accept(request).records[0])
    record = Record(1, record_id("jebbit", body), "jebbit", 0.0, body)

    def connector_path() -> None:
        (experience,) = source.accept(request).records
        content = canonical(experience)
        for message in mapper.map(Record(1, record_id("jebbit", content), "jebbit", 0.0, content)):
            encode(message)

    def hand_written() -> None:
        header = request.headers["x-jebbit-signature"]
        t, v1 = (part.split("=", 1)[1] for part in header.split(","))
        expected = base64.b64encode(hmac.new(SECRET.encode(), f"{t}.".encode() + BODY, hashlib.sha256).digest())
        assert hmac.compare_digest(expected, v1.encode())
        for item in json.loads(BODY):
            data = item["data"]
            user_id = hashlib.sha256(data["email"].strip().lower().encode()).hexdigest()
            questions = {k: v for k, v in data.items() if k not in ("email", "opt_in", "outcome", "campaign_id",
                                                                   "campaign_name", "session_id", "channel",
                                                                   "experience_date")}
            json.dumps({"type": "identify", "userId": user_id, "traits": {"email": data["email"], **questions}})
            json.dumps({"type": "track", "userId": user_id, "event": "Survey Completed",
                        "properties": {"questions": questions, "surveyId": data["campaign_id"]}})

    rows = [
        ["connector: verify + decode + canonical id + map + encode", rate(connector_path)],
        ["  verify + decode (source.accept)", rate(lambda: source.accept(request))],
        ["  map (record -> identify + track)", rate(lambda: mapper.map(record))],
        ["hand-written receiver: hmac + json + dicts + json.dumps", rate(hand_written)],
    ]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(table(["operation (one experience)", "ops/s"], rows))
    print(f"ratio connector / hand-written: {rows[0][1] / rows[3][1]:.2f}x; peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
