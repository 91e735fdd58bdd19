"""The web console in a real browser, against a real daemon (two processes, the SQLite buffer) and
the fake Segment: what it shows matches ``/status``, refusals and dead letters appear, Replay and
Purge act, the live tap shows a delivery, a token is asked for, and nothing leaves the admin origin."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from connector.testing import wait_until
from connector_jebbit.signature import sign

pytestmark = [pytest.mark.browser, pytest.mark.reliability]

SECRET = "console-test-shared-secret-0123456789"
TOKEN = "console-admin-token-0123456789abcdef"
FORMS = "console-forms-token-0123456789abcdef"
CONFIG = """
[server]
port = {port}

[admin]
port = {admin_port}
%(admin)s

[buffer]
type = "sqlite"
path = "data/connector.db"

[sources.jebbit]
type = "jebbit"
shared_secret = "${JEBBIT_SECRET}"

[sources.forms]
type = "webhook"
path = "/webhooks/forms"
bearer_token = "${FORMS_TOKEN}"

[mappers.jebbit_segment]
type = "jebbit_to_segment"
inputs = ["jebbit"]

[mappers.forms_segment]
type = "jq"
inputs = ["forms"]
program = '{type: "track", event: "Form Submitted", userId: .user}'

[sinks.segment]
type = "segment"
inputs = ["jebbit_segment", "forms_segment"]
write_key = "test-write-key"
endpoint = "${SEGMENT_ENDPOINT}"
flush_interval = 0.05
retry_initial_seconds = 0.05

[sinks.archive]
type = "file"
inputs = ["jebbit_segment"]
path = "out/events.ndjson"
"""
COMPONENTS = ["jebbit", "forms", "jebbit_segment", "forms_segment", "segment", "archive"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def jebbit(daemon: Any, email: str) -> None:
    body = json.dumps([{"data": {"email": email, "session_id": email, "campaign_id": "c1",
                                 "experience_date": "2026-12-01 10:00:00"}}]).encode()
    answer = daemon.post("/webhooks/jebbit", body, {"x-jebbit-signature": sign(SECRET, body)})
    assert answer.status_code == 200, answer.text


class Console:
    """A browser page on the daemon's console that records what would make a test fail anyway:
    script errors, and requests to anywhere but the admin listener."""

    def __init__(self, browser: Any, daemon: Any, viewport: dict[str, int] = DESKTOP):
        self.origin = daemon.admin_url
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.elsewhere: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("request", self._request)

    def _request(self, request: Any) -> None:
        if not request.url.startswith(self.origin + "/") and not request.url.startswith("data:"):
            self.elsewhere.append(request.url)

    def open(self, view: str = "overview") -> Any:
        self.page.goto(f"{self.origin}/#{view}")
        return self.page

    def shot(self, folder: Path, name: str) -> None:
        self.page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], self.errors
        assert self.elsewhere == [], self.elsewhere


@pytest.fixture
def daemon(daemon_factory: Any, fake_segment: Any) -> Any:
    env = {"JEBBIT_SECRET": SECRET, "FORMS_TOKEN": FORMS, "SEGMENT_ENDPOINT": fake_segment.url}
    return daemon_factory(CONFIG % {"admin": ""}, env=env).start()


def test_the_console_shows_the_pipeline_refusals_dead_letters_and_the_tap(browser, daemon, fake_segment,
                                                                         screenshots):
    from playwright.sync_api import expect

    for index in range(3):
        jebbit(daemon, f"reader{index}@example.com")
    assert daemon.post("/webhooks/forms", json.dumps({"user": "u1"}),
                       {"authorization": f"Bearer {FORMS}"}).status_code == 200
    wait_until(lambda: len(fake_segment.messages) == 7)  # an identify and a track per Jebbit record, one track
    wait_until(lambda: daemon.admin_get("/status").json()["sinks"]["archive"]["delivered"] == 6)
    refused = daemon.post("/webhooks/jebbit", b"[]", {"x-jebbit-signature": sign("not-the-secret-at-all", b"[]")})
    assert refused.status_code == 401

    console = Console(browser, daemon)
    page = console.open()
    graph = page.get_by_role("group", name=re.compile("^The pipeline"))
    for name in COMPONENTS:
        expect(graph.get_by_role("group", name=re.compile(f"^(source|mapper|sink) {name}:"))).to_be_visible()
    status = daemon.admin_get("/status").json()
    for sink in ("segment", "archive"):
        row = page.locator(f'tr[data-sink="{sink}"]')
        expect(row.locator('[data-field="delivered"]')).to_have_text(f"{int(status['sinks'][sink]['delivered']):,}")
        expect(row.locator('[data-field="lag"]')).to_have_text(str(status["sinks"][sink]["lag"]))
        expect(row.locator('[data-field="dead_letters"]')).to_have_text("0")
    console.shot(screenshots, "overview")

    page.get_by_role("link", name="Sources").click()
    jebbit_card = page.get_by_role("region", name="source jebbit")
    expect(jebbit_card.get_by_role("table", name=re.compile("Recent refusals of jebbit"))).to_contain_text("401")
    expect(jebbit_card).to_contain_text("signature")
    expect(page.get_by_role("region", name="source forms")).to_contain_text("No refused deliveries")
    console.shot(screenshots, "sources")

    # a message Segment refuses: a dead letter with Segment's reason; Replay brings it through once fixed
    fake_segment.poison = "poisoned@example.com"
    jebbit(daemon, "poisoned@example.com")
    letters = wait_until(lambda: daemon.admin_get("/dead-letters").json()["dead_letters"])
    page.get_by_role("link", name="Dead letters").click()
    first = letters[0]["id"]
    expect(page.locator(f'tr[data-letter="{first}"]')).to_contain_text("Segment refused the message")
    page.get_by_role("button", name=f"Show the payload of dead letter {first}").click()
    payload = page.get_by_label(f"Payload of dead letter {first}", exact=True)
    expect(payload).to_contain_text('"email": "poisoned@example.com"')
    console.shot(screenshots, "dead-letters")
    fake_segment.poison = None
    for letter in letters:
        page.get_by_role("checkbox", name=f"Select dead letter {letter['id']}").check()
    page.get_by_role("button", name="Replay selected").click()
    expect(page.get_by_role("status").filter(has_text="Delivered")).to_be_visible(timeout=20_000)
    assert any(m.get("traits", {}).get("email") == "poisoned@example.com" for m in fake_segment.messages)
    expect(page.get_by_text("No dead letters.")).to_be_visible()

    fake_segment.poison = "purged@example.com"
    jebbit(daemon, "purged@example.com")
    (letter,) = wait_until(lambda: daemon.admin_get("/dead-letters").json()["dead_letters"])
    page.get_by_role("button", name=f"Replay dead letter {letter['id']}").click()  # still refused: it comes back
    again = page.get_by_role("status").filter(has_text="Dead-lettered again: Segment refused the message")
    expect(again).to_be_visible(timeout=20_000)
    letters = daemon.admin_get("/dead-letters").json()["dead_letters"]
    assert [again["record_id"] for again in letters] == [letter["record_id"]]
    for letter in letters:
        page.get_by_role("button", name=f"Purge dead letter {letter['id']}").click()
        expect(page.get_by_role("status").filter(has_text="Purged 1 dead letter")).to_be_visible()
    expect(page.get_by_text("No dead letters.")).to_be_visible()
    assert daemon.admin_get("/dead-letters").json() == {"dead_letters": [], "total": 0}
    assert not any(m.get("traits", {}).get("email") == "purged@example.com" for m in fake_segment.messages)

    # the live tap shows a delivery posted while it is open
    page.get_by_role("link", name="Live tap").click()
    page.get_by_label("Component").select_option("jebbit_segment")
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("status").filter(has_text="Watching jebbit_segment")).to_be_visible()
    wait_until(lambda: page.get_by_role("button", name="Pause").is_enabled())
    page.wait_for_timeout(300)  # the tap request is on its way to the daemon
    jebbit(daemon, "tapped@example.com")
    expect(page.get_by_role("list", name=re.compile("Tapped records")).get_by_role("listitem").first).to_contain_text(
        "tapped@example.com", timeout=10_000)
    console.shot(screenshots, "tap")
    page.get_by_role("button", name="Pause").click()
    page.get_by_role("button", name="Clear").click()
    expect(page.get_by_role("list", name=re.compile("Tapped records")).get_by_role("listitem")).to_have_count(0)
    console.close()


def test_the_console_is_usable_by_keyboard_and_on_a_phone(browser, daemon, screenshots):
    from playwright.sync_api import expect

    console = Console(browser, daemon, PHONE)
    page = console.open()
    expect(page.get_by_role("group", name=re.compile("source jebbit"))).to_be_visible()
    wider = page.evaluate("""() => [...document.querySelectorAll("body *")]
        .filter((node) => !node.closest(".scroll, .graph")
                && node.getBoundingClientRect().right > window.innerWidth + 0.5)
        .map((node) => `${node.tagName}#${node.id}: ${node.getBoundingClientRect().right}`)""")
    assert wider == [], f"wider than the phone (the page scrolls sideways): {wider}"
    console.shot(screenshots, "overview-phone")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the content")).to_be_focused()
    for _ in range(3):  # the nav's third link, by keyboard alone
        page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Dead letters")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    expect(page.get_by_role("link", name="Dead letters")).to_have_attribute("aria-current", "page")
    for name in ("Replay selected", "Purge selected", "Replay all shown", "Purge all shown"):
        expect(page.get_by_role("button", name=name)).to_be_visible()
    console.close()


def test_with_a_token_the_console_asks_for_it_and_works_after(browser, daemon_factory, fake_segment):
    from playwright.sync_api import expect

    env = {"JEBBIT_SECRET": SECRET, "FORMS_TOKEN": FORMS, "SEGMENT_ENDPOINT": fake_segment.url, "TOKEN": TOKEN}
    daemon = daemon_factory(CONFIG % {"admin": 'token = "${TOKEN}"'}, env=env).start()
    console = Console(browser, daemon)
    page = console.open()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("heading", name="Overview")).to_be_hidden()
    page.get_by_label("Admin token").fill("wrong-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("The daemon refused that token.")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("group", name=re.compile("^sink segment:"))).to_be_visible()
    expect(page.get_by_role("heading", name="Sign in")).to_be_hidden()
    console.context.close()
    assert console.elsewhere == []
    # the refused tries are the only errors the browser logged (its own line for each 401)
    assert all("401" in error for error in console.errors), console.errors
