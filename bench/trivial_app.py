"""The ceiling: a trivial ASGI app answering every POST with 202, under uvicorn + httptools."""

import sys

import uvicorn


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"14")]})
    await send({"type": "http.response.body", "body": b'{"accepted":1}'})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools", loop="uvloop",
                lifespan="off", access_log=False, log_level="warning", interface="asgi3")
