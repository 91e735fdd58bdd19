"""The web console's files (``connector/console/``), served by the admin app as they are in the
package: no build step, nothing fetched from elsewhere. A strict Content-Security-Policy keeps every
request the page makes on the admin listener's own origin."""

from __future__ import annotations

from importlib import resources

from .asgi import Send, respond

FILES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/console.js": ("console.js", "text/javascript; charset=utf-8"),
         "/console.css": ("console.css", "text/css; charset=utf-8")}
HEADERS = {"content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                      "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
           "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "cache-control": "no-cache"}


class ConsoleFiles:
    """The console's files, read once from the package."""

    def __init__(self) -> None:
        folder = resources.files("connector.console")
        self.files = {path: (folder.joinpath(name).read_bytes(), kind) for path, (name, kind) in FILES.items()}

    async def serve(self, path: str, send: Send) -> None:
        body, kind = self.files[path]
        await respond(send, 200, body, {**HEADERS, "content-type": kind})
