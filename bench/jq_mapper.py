"""The jq mapper against the Python Jebbit mapper on the same records: µs a record, in one run.

The jq program makes the same two messages as ``jebbit_to_segment`` (identify with traits, track
with properties and the mapped attributes as ``questions``) except what jq cannot do: the
SHA-256 of the email (it uses the trimmed, lowercased email as ``userId``) and the date format
check. Two jq programs: as one would first write it (``with_entries``/``IN``, ``sub``,
``ascii_downcase``: builtins written in jq itself, slow) and tuned (``del``, ``split``/``join``,
no case folding). Each mapper maps the same 20,000 distinct stored records, three runs.

    python jq_mapper.py
"""

from __future__ import annotations

import time

import msgspec

from common import table
from connector.ids import canonical
from connector.records import Record
from connector.testing import build_context
from connector_jebbit.mapper import JebbitToSegmentConfig
from connector_jq.mapper import JqMapperConfig

PROGRAM = """
.data as $d
| ($d.email | ascii_downcase | ltrimstr(" ") | rtrimstr(" ")) as $user
| ($d | with_entries(select(.key | IN("email", "opt_in", "outcome", "campaign_name", "campaign_id", "session_id",
                                      "channel", "experience_date", "client_user_id", "url_param") | not))) as $q
| ($d.experience_date | sub(" "; "T") + "Z") as $at
| {type: "identify", userId: $user, timestamp: $at,
   traits: ({email: $d.email, opt_in: $d.opt_in, outcome: $d.outcome} + $q)},
  {type: "track", userId: $user, event: "Survey Completed", timestamp: $at,
   properties: {questions: $q, surveyId: $d.campaign_id, surveySessionId: $d.session_id,
                surveyTitle: $d.campaign_name, trafficSource: $d.channel, outcome: $d.outcome}}
"""


TUNED = """
.data as $d
| ($d | del(.email, .opt_in, .outcome, .campaign_name, .campaign_id, .session_id, .channel, .experience_date,
            .client_user_id, .url_param)) as $q
| ($d.experience_date | split(" ") | join("T") + "Z") as $at
| {type: "identify", userId: $d.email, timestamp: $at,
   traits: ({email: $d.email, opt_in: $d.opt_in, outcome: $d.outcome} + $q)},
  {type: "track", userId: $d.email, event: "Survey Completed", timestamp: $at,
   properties: {questions: $q, surveyId: $d.campaign_id, surveySessionId: $d.session_id,
                surveyTitle: $d.campaign_name, trafficSource: $d.channel, outcome: $d.outcome}}
"""


def records(count: int) -> list[Record]:
    made = []
    for i in range(count):
        value = {"data": {"email": f"User{i}@Example.com", "opt_in": "true", "outcome": "example_outcome",
                          "campaign_id": "n3zrik6g", "campaign_name": "New Quiz", "session_id": f"s{i}",
                          "channel": "Owned+Web", "experience_date": "2026-11-20 10:00:00", "favorite_color": "blue",
                          "age_group": "25-34", "tags": ["option 1", "option 4"]}, "event": {"event_number": 0}}
        made.append(Record(i + 1, f"jebbit-{i}", "jebbit", 0.0, canonical(value)))
    return made


def per_record_us(mapper, batch: list[Record]) -> float:
    started = time.perf_counter()
    for record in batch:
        mapper.map(record)
    return (time.perf_counter() - started) * 1e6 / len(batch)


def main() -> None:
    batch = records(20_000)
    python = JebbitToSegmentConfig(inputs=["jebbit"]).build(build_context("jebbit_segment"))
    jq = JqMapperConfig(inputs=["jebbit"], program=PROGRAM).build(build_context("jq_segment"))
    tuned = JqMapperConfig(inputs=["jebbit"], program=TUNED).build(build_context("jq_tuned"))
    assert len(jq.map(batch[0])) == len(tuned.map(batch[0])) == len(python.map(batch[0])) == 2
    print(msgspec.json.encode(tuned.map(batch[0])).decode()[:200], "...")
    rows = []
    for run in range(3):
        rows.append([f"run {run + 1}", per_record_us(python, batch), per_record_us(jq, batch),
                     per_record_us(tuned, batch)])
    print(table(["run", "jebbit_to_segment µs/record", "jq, first draft µs/record", "jq, tuned µs/record"], rows))


if __name__ == "__main__":
    main()
