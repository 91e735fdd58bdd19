"""A fast stand-in for Segment's /v1/batch that only counts messages and distinct ids.

GET /stats answers {"messages": N, "distinct": M, "batches": B}. Run: python fake_segment_fast.py PORT
"""

import gzip
import sys

import msgspec
import uvicorn


class Message(msgspec.Struct):
    messageId: str


class Batch(msgspec.Struct):
    batch: list[Message]


decoder = msgspec.json.Decoder(Batch)
ids: set[str] = set()
stats = {"messages": 0, "distinct": 0, "batches": 0}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "POST":
        if (b"content-encoding", b"gzip") in scope["headers"]:
            body = gzip.decompress(body)
        batch = decoder.decode(body).batch
        stats["messages"] += len(batch)
        stats["batches"] += 1
        ids.update(m.messageId for m in batch)
        stats["distinct"] = len(ids)
        answer = b'{"success":true}'
    else:
        answer = msgspec.json.encode(stats)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools", loop="uvloop",
                lifespan="off", access_log=False, log_level="warning", interface="asgi3")
