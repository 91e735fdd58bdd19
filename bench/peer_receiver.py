"""The peer: the receiver users hand-write today, under the same HTTP server connector uses.

Verifies Jebbit's signature, maps with plain dicts, hands the messages to Segment's
analytics-python (its in-memory queue, default size: not durable). Run:
    python peer_receiver.py PORT SEGMENT_URL SECRET
"""

import base64
import hashlib
import hmac
import json
import sys
import time

import uvicorn
from segment.analytics.client import Client

PORT, SEGMENT_URL, SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
STANDARD = {"email", "opt_in", "outcome", "url_param", "campaign_name", "campaign_id", "session_id", "channel",
            "experience_date", "client_user_id"}
client = Client("bench-key", host=SEGMENT_URL, gzip=True)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/healthz":
        return await respond(send, 200, b"{}")
    headers = dict(scope["headers"])
    try:
        t, v1 = (part.split("=", 1)[1] for part in headers[b"x-jebbit-signature"].decode().split(","))
        expected = base64.b64encode(hmac.new(SECRET, f"{t}.".encode() + body, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, v1) or abs(time.time() - int(t)) > 300:
            return await respond(send, 401, b'{"error":"bad signature"}')
        experiences = json.loads(body)
    except (KeyError, ValueError):
        return await respond(send, 400, b'{"error":"bad request"}')
    for experience in experiences:
        data = experience["data"]
        user_id = hashlib.sha256(data["email"].strip().lower().encode()).hexdigest()
        attributes = {k: v for k, v in data.items() if k not in STANDARD}
        client.identify(user_id, {"email": data["email"], "emailSha256Hash": user_id, **attributes})
        client.track(user_id, "Survey Completed", {"questions": attributes, "surveyId": data.get("campaign_id"),
                                                   "surveySessionId": data.get("session_id")})
    await respond(send, 200, b'{"ok":true}')


async def respond(send, status, body):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, http="httptools", loop="uvloop", lifespan="off",
                access_log=False, log_level="warning", interface="asgi3")
