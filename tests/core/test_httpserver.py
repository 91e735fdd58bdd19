"""The ingress's HTTP/1.1 layer (``connector/ingress/httpserver.py``) on raw sockets: pipelining, chunked
bodies, 100-continue, HEAD, closing, malformed requests, an app that fails, and the same answers
whether a delivery's body arrives with its headers (answered whole) or after them (through ASGI)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from connector.ingress.httpserver import HTTPServer

CONFIG = """
[server]
port = {port}

max_body_bytes = 1000

[buffer]
type = "memory"

[sources.events]
type = "webhook"
path = "/in"

[sinks.archive]
type = "file"
inputs = ["events"]
path = "out/events.ndjson"
"""


@pytest.fixture
def daemon(local_daemon_factory):
    return local_daemon_factory(CONFIG).start()


def exchange(daemon, data: bytes, until: bytes, expect_close: bool = False) -> bytes:
    """Send ``data`` on one connection; read until ``until`` has been seen (or the server closes)."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while until not in received or expect_close:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def exchange_in_two(daemon, head: bytes, body: bytes) -> bytes:
    """Send ``head``, then (once the server has surely started on it) ``body``; read to the close."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as sock:
        sock.sendall(head)
        time.sleep(0.1)
        if body:
            try:
                sock.sendall(body)
            except OSError:  # the server answered and closed before the body: that is the answer
                pass
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def served_alone(app, whole_body, request: bytes) -> bytes:
    """What ``HTTPServer`` alone (no daemon) answers ``request`` with, read to the close."""
    async def main() -> bytes:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        server = HTTPServer(app, listener, whole_body=whole_body)
        serving = asyncio.create_task(server.serve())
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        writer.write(request)
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await server.shutdown()
        await serving
        return answer

    return asyncio.run(main())


def post(body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST /in HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
            % (len(body), extra, body))


def test_pipelined_requests_are_answered_in_order_on_one_connection(daemon):
    received = exchange(daemon, post(b'{"n": 1}') + post(b'[{"n": 2}, {"n": 3}]') + post(b'[]'),
                        until=b'"accepted":0}')
    first, second, third = received.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 OK") and first.endswith(b'{"accepted":1}')
    assert second.startswith(b"200 OK") and second.endswith(b'{"accepted":2}')
    assert third.startswith(b"200 OK") and third.endswith(b'{"accepted":0}')


def test_a_chunked_body_is_read_whole(daemon):
    body = json.dumps([{"n": i} for i in range(50)]).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 100]), body[i:i + 100]) for i in range(0, len(body), 100))
    request = (b"POST /in HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
               + chunks + b"0\r\n\r\n")
    assert exchange(daemon, request, until=b"}").endswith(b'{"accepted":50}')


def test_expect_100_continue_is_answered_before_the_body_is_sent(daemon):
    body = b'{"n": 1}'
    head = (b"POST /in HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"expect: 100-continue\r\n\r\n" % len(body))
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        answer = b""
        while not answer.endswith(b"}"):
            answer += sock.recv(1024)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'{"accepted":1}')


def test_head_answers_headers_only_and_a_malformed_request_is_400_and_closed(daemon):
    head = exchange(daemon, b"HEAD /healthz HTTP/1.1\r\nhost: x\r\n\r\n", until=b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and head.endswith(b"\r\n\r\n")
    refused = exchange(daemon, b"NOT HTTP AT ALL\r\n\r\n", until=b"}", expect_close=True)
    assert refused.startswith(b"HTTP/1.1 400 Bad Request") and b"connection: close" in refused


def test_a_client_that_asks_to_close_is_closed_after_its_answer(daemon):
    answer = exchange(daemon, post(b'{"n": 1}', b"connection: close\r\n"), until=b"}", expect_close=True)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in answer


def test_an_app_that_fails_before_answering_gets_500_and_the_connection_closes():
    async def failing(scope, receive, send):
        raise RuntimeError("boom")

    answer = served_alone(failing, None, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 500 Internal Server Error") and b"connection: close" in answer
    assert answer.endswith(b'nothing was stored"}')


@pytest.mark.parametrize("method, body, status, detail", [
    (b"POST", b'[{"n": 1}, {"n": 2}]', b"200 OK", b'{"accepted":2}'),
    (b"POST", b'{"n": ', b"400 Bad Request", b'"malformed JSON"'),
    (b"POST", b'[' + b'{"n": 1},' * 150 + b'{"n": 1}]', b"413 ", b'max_body_bytes (1000 bytes)'),
    (b"PUT", b'{"n": 1}', b"405 Method Not Allowed", b'accepts POST only'),
])
def test_a_delivery_gets_the_same_answer_whether_its_body_comes_with_its_headers_or_after(
        daemon, method, body, status, detail):
    head = (b"%s /in HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (method, len(body)))
    whole = exchange(daemon, head + body, until=b"}", expect_close=True)
    streamed = exchange_in_two(daemon, head, body)
    for answer in (whole, streamed):
        assert answer.startswith(b"HTTP/1.1 " + status), answer
        assert detail in answer and answer.endswith(b"}")
    assert whole.split(b"\r\n\r\n", 1)[1] == streamed.split(b"\r\n\r\n", 1)[1]


def test_thousands_of_pipelined_deliveries_answered_on_the_spot_come_back_in_order(daemon):
    refused = b"POST /in HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nhi"
    received = exchange(daemon, refused * 3000 + post(b'{"n": 1}'), until=b'{"accepted":1}')
    answers = received.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == 3001
    assert all(answer.startswith(b"415 ") for answer in answers[:-1]) and answers[-1].startswith(b"200 OK")


def test_head_on_a_delivery_path_answers_405_without_a_body(daemon):
    answer = exchange(daemon, b"HEAD /in HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", until=b"\r\n\r\n",
                      expect_close=True)
    assert answer.startswith(b"HTTP/1.1 405") and answer.endswith(b"\r\n\r\n") and b"content-length: " in answer


def test_a_whole_body_answerer_that_fails_gets_500_and_the_connection_closes():
    class Failing:
        def takes(self, path):
            return True

        def answer(self, scope, body, reply):
            raise RuntimeError("boom")

    async def unused(scope, receive, send):
        raise AssertionError("a whole body goes to the answerer")

    answer = served_alone(unused, Failing(), post(b'{"n": 1}'))
    assert answer.startswith(b"HTTP/1.1 500 Internal Server Error") and b"connection: close" in answer
    assert answer.endswith(b'nothing was stored"}')
