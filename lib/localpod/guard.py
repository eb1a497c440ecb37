"""Refuse requests that a web page, not a client of this machine, made: foreign ``Host`` or ``Origin``.

localpod holds keys and tokens and can wipe its own state, and it listens on loopback, which every
web page the user opens can reach too. Two browser paths lead in, and this middleware closes both
for every route (control routes included; keys are checked by the routes themselves):

- **DNS rebinding**: a page on ``evil.example`` re-resolves its own name to 127.0.0.1 and reads
  localpod's answers as same-origin. Its requests still carry ``Host: evil.example``, so only host
  names this server answers to pass (loopback names, the bind address, ``--allowed-host``).
- **Cross-site requests**: a "simple" POST (no preflight) from any page reaches the server even
  though the page cannot read the answer. Browsers add ``Origin`` to those, so a request whose
  ``Origin`` is not this server itself is refused. Non-browser clients (httpx, the SDKs, curl) send
  no ``Origin``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from localpod.config import Settings
from localpod.http import problem


def _hostname(host_header: str) -> str:
    """``Host`` header -> host name without port (``[::1]:8765`` -> ``::1``)."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class HostOriginGuard:
    """ASGI middleware: 403 problem for a missing or foreign ``Host`` and for a foreign ``Origin``."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def refusal(self, scope: Scope) -> str | None:
        """Why this request is refused, or None when it may proceed."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "").strip()
        if not host:
            return "the request has no Host header"
        if not self.settings.host_allowed(_hostname(host)):
            return (
                f"Host {host!r} is not a name of this localpod (a DNS-rebinding page looks like this); use "
                f"http://127.0.0.1:{self.settings.port}, or start localpod with --allowed-host NAME to serve "
                "another name"
            )
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin.strip())
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                port = -1
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or not self.settings.host_allowed(parts.hostname)
                or port != self.settings.port
            ):
                return (
                    f"Origin {origin!r} is another site: localpod answers no cross-site (browser) requests; "
                    "call it from a program, which sends no Origin header"
                )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            reason = self.refusal(scope)
            if reason is not None:
                response = problem(403, reason)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
