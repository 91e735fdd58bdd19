"""connector-surveymonkey-poll: the conformance suites against a fake of SurveyMonkey's bulk
responses API, the documented example response mapped field by field, and what the suites do not
cover: an edited response, responses saved in the second the last poll stopped at, a refusal's
reason; and a round trip through the daemon to a fake Segment."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import msgspec
import pytest

from connector.testing import (
    FakeSourceContext,
    MapperContract,
    PollingSourceContract,
    build_context,
    make_record,
    run_polling_source,
    wait_until,
)
from connector_surveymonkey_poll.mapper import SurveyMonkeyToSegmentConfig
from connector_surveymonkey_poll.source import SurveyMonkeyResponsesConfig
from fake_surveymonkey import FakeSurveyMonkeyAPI, response

PAGE = json.loads((Path(__file__).parent / "fixtures" / "bulk_responses.json").read_text())
DOCUMENTED = PAGE["data"][0]  # the docs' example: custvar_1/custvar_2, recipient_id "0"
TOKEN = "sm-access-token-0123456789"
SURVEY = "105723396"
BASE = datetime.datetime(2026, 11, 20, 10, 0, 0, tzinfo=datetime.UTC)


def at(second: int) -> str:
    return (BASE + datetime.timedelta(seconds=second)).isoformat()


def config(api: FakeSurveyMonkeyAPI, **overrides) -> SurveyMonkeyResponsesConfig:
    settings = {"access_token": TOKEN, "survey_id": SURVEY, "base_url": api.url, "per_page": 5, "poll_interval": 0.1,
                "retry_max_seconds": 1.0, "start_modified_at": "2026-11-20T00:00:00Z", **overrides}
    return SurveyMonkeyResponsesConfig(**settings)


class TestSource(PollingSourceContract):
    def start_api(self):
        return FakeSurveyMonkeyAPI(access_token=TOKEN, survey_id=SURVEY).start()

    def source_config(self, api):
        return config(api)

    def new_items(self, count, start):
        # three responses a second: pages of 5 end inside a second, and each request's one-second
        # overlap holds more responses than a page
        return [response(str(9000 + start + i), at((start + i) // 3), user_id=f"user-{start + i}")
                for i in range(count)]

    def key(self, value):
        return value["id"]


class TestMapper(MapperContract):
    config = SurveyMonkeyToSegmentConfig(inputs=["surveymonkey"])

    def records(self):
        return [{**DOCUMENTED, "custom_variables": {**DOCUMENTED["custom_variables"], "user_id": "user-8731"}},
                {**DOCUMENTED, "recipient_id": "564728340"}]

    def rejected(self):
        return [DOCUMENTED, {**DOCUMENTED, "recipient_id": ""}, {"custom_variables": {"user_id": "u"}}]


@pytest.fixture
def api():
    api = FakeSurveyMonkeyAPI(access_token=TOKEN, survey_id=SURVEY).start()
    yield api
    api.stop()


def stored(ctx: FakeSourceContext) -> list[tuple[str, str]]:
    return sorted((value["id"], value["date_modified"]) for value in ctx.values())


def test_an_edited_response_comes_again_as_a_new_record(api):
    api.add([response("1", at(0)), response("2", at(1))])
    ctx = FakeSourceContext()
    run_polling_source(config(api), ctx, lambda c: len(c.records) >= 2)
    api.edit("1", date_modified=at(30), response_status="completed",
             pages=[{"id": "103332310", "questions": [{"id": "319352786", "answers": [{"text": "changed"}]}]}])
    run_polling_source(config(api), ctx, lambda c: len(c.records) >= 3)
    assert stored(ctx) == [("1", at(0)), ("1", at(30)), ("2", at(1))]
    assert len(set(ctx.ids())) == 3, "the edit is a record of its own"


@pytest.mark.parametrize("inclusive", [True, False], ids=["inclusive", "exclusive"])
def test_responses_saved_in_the_second_the_last_poll_stopped_at_are_stored_once(api, inclusive):
    api.inclusive = inclusive
    api.add([response(str(n), at(0)) for n in (1, 2, 3)])
    ctx = FakeSourceContext()
    run_polling_source(config(api), ctx, lambda c: len(c.records) >= 3)
    assert json.loads(ctx.saved) == {"after": at(0), "seen": ["1", "2", "3"], "page": 1}
    api.add([response(n, at(0)) for n in ("4", "5", "6", "7")])  # the same second, after the poll
    requests = len(api.requests)
    run_polling_source(config(api), ctx, lambda c: len(c.records) >= 7 and len(api.requests) >= requests + 4)
    assert stored(ctx) == [(str(n), at(0)) for n in range(1, 8)], "each once: none lost, none twice"


def test_it_asks_as_documented_and_its_checkpoint_is_the_position_after_the_last_stored_response(api):
    api.add([response("1", at(0)), response("2", at(5))])
    ctx = FakeSourceContext()
    run_polling_source(config(api, simple=True), ctx, lambda c: len(c.records) >= 2)
    assert api.requests[0].query == {"sort_by": "date_modified", "sort_order": "ASC", "per_page": "5", "page": "1",
                                     "start_modified_at": "2026-11-19T23:59:59+00:00", "simple": "true"}
    assert json.loads(ctx.saved) == {"after": "2026-11-20T10:00:05+00:00", "seen": ["2"], "page": 1}
    assert ctx.values()[0] == response("1", at(0)), "stored whole, as SurveyMonkey sent it"


def test_a_refused_token_pauses_with_the_key_to_fix_never_the_token(api):
    api.add([response("1", at(0))])
    api.refuse()
    ctx = FakeSourceContext()
    run_polling_source(config(api), ctx, lambda c: c.paused is not None)
    assert "access_token" in ctx.paused and "1011" in ctx.paused and TOKEN not in ctx.paused
    assert ctx.records == []


def test_the_first_run_without_start_modified_at_starts_now_and_keeps_that_moment(api):
    api.add([response("old", "2020-01-01T00:00:00+00:00")])
    ctx = FakeSourceContext()
    run_polling_source(config(api, start_modified_at=None), ctx, lambda c: len(api.requests) >= 2)
    assert ctx.records == [] and ctx.saved is not None
    first_run = msgspec.json.decode(ctx.saved)["after"]
    assert abs(datetime.datetime.fromisoformat(first_run) - datetime.datetime.now(datetime.UTC)).total_seconds() < 60


def test_the_documented_example_response_becomes_a_survey_response_submitted_track():
    mapper = SurveyMonkeyToSegmentConfig(inputs=["surveymonkey"], user_id_variable="custvar_1").build(
        build_context("surveymonkey_segment", kind="mapper"))
    [track] = mapper.map(make_record(DOCUMENTED, source="surveymonkey"))
    assert track == {
        "type": "track", "userId": "one", "event": "Survey Response Submitted",
        "timestamp": "1970-01-17T19:07:34+00:00",
        "properties": {
            "surveyId": "105723396", "responseId": "5007154325", "collectorId": "50253586",
            "responseStatus": "completed", "dateCreated": "1970-01-17T19:07:34+00:00",
            "dateModified": "1970-01-17T19:07:34+00:00", "totalTime": 0, "customVariables": {"custvar_2": "two"},
            "answers": {"319352786": [{"choice_id": "3057839051"}]},
        },
        "context": {"integration": {"name": "surveymonkey"}},
    }


DAEMON = """
[server]
port = {port}

[buffer]
type = "memory"

[sources.surveymonkey]
type = "surveymonkey_responses"
access_token = "%s"
survey_id = "%s"
base_url = "%s"
start_modified_at = "2026-11-20T00:00:00Z"
poll_interval = 0.1

[mappers.surveymonkey_segment]
type = "surveymonkey_to_segment"
inputs = ["surveymonkey"]

[sinks.segment]
type = "segment"
inputs = ["surveymonkey_segment"]
write_key = "test-write-key"
endpoint = "%s"
flush_interval = 0.05
"""


def test_a_polled_response_reaches_segment_through_the_daemon(api, local_daemon_factory, fake_segment):
    api.add([response("5007154325", at(0), user_id="user-8731")])
    daemon = local_daemon_factory(DAEMON % (TOKEN, SURVEY, api.url, fake_segment.url),
                                  env={"CONNECTOR_PLUGINS": "connector_surveymonkey_poll"}).start()
    [message] = wait_until(lambda: fake_segment.messages)
    assert message["userId"] == "user-8731" and message["event"] == "Survey Response Submitted"
    assert message["properties"]["responseId"] == "5007154325" and message["timestamp"] == at(0)
    assert fake_segment.violations == []
    assert daemon.stop() == 0
