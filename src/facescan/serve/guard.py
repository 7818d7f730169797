"""The service's outermost ASGI layer: upload framing, size and deadline, security headers, metrics.

The upload limit (``max_upload_mb``; on ``POST /v1/analyze``, which also takes clips, the larger of
it and the clips' ``max_video_mb``) is enforced on the bytes actually received, whatever the headers say:

- ``Content-Length`` over the limit → 413 at once, before any of the body is read;
- ``Transfer-Encoding: chunked`` without a ``Content-Length`` is accepted, and counted like any body;
- both headers at once → 400 (RFC 9112 §6.1 allows refusing it: it is how requests are smuggled);
- a POST with neither → 411 (it has no body);
- the body is counted as it arrives: the moment it passes the limit → 413, whatever Content-Length said;
- a body not fully received ``body_timeout`` seconds after its headers → 408.

A 413 or 408 decided mid-body is sent from here with ``Connection: close`` (so the server closes
the connection instead of reading the rest of the upload), and the application then sees the client
as disconnected: what it answers after that is dropped. Every response gets the page's
Content-Security-Policy, ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import asyncio
import json
import time

from facescan.serve.config import ServeConfig

#: The page's policy: its script and styles are static files of this server; no inline script or style,
#: no plug-ins, no <base>, no framing; photos and clips are shown from the user's own file (blob: URLs).
#: Sent on every response (harmless on JSON).
CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
DISCONNECT = {"type": "http.disconnect"}


class RequestGuard:
    """Pure ASGI middleware: ``metrics`` counts and times each request under a label from ``routes``."""

    def __init__(self, app, config: ServeConfig, metrics, routes: tuple[str, ...]):
        self.app, self.config, self.metrics, self.routes = app, config, metrics, routes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = scope["path"] if scope["path"] in self.routes else "other"
        body = BodyGuard(scope, receive, send, self.config)
        try:
            refused = framing_problem(scope, self.config)
            if refused is not None:
                await body.answer(*refused)
            else:
                await self._call_app(scope, body)
        finally:
            self.metrics.requests.labels(route, str(body.status or 500)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)

    async def _call_app(self, scope, body: BodyGuard) -> None:
        try:
            await self.app(scope, body.receive, body.send_from_app)
        except Exception:
            if not body.answered:  # the app's own fault: ServerErrorMiddleware answers 500
                raise
            # the app failed on the disconnect it was shown after the guard's 413/408: nothing to report


def body_headers(scope) -> tuple[list[bytes], bool]:
    """A request's Content-Length values, and whether it has a Transfer-Encoding."""
    lengths, chunked = [], False
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"content-length":
            lengths.append(value.strip())
        chunked = chunked or name == b"transfer-encoding"
    return lengths, chunked


def has_body(scope) -> bool:
    lengths, chunked = body_headers(scope)
    return chunked or any(v != b"0" for v in lengths)


def body_limit(scope, config: ServeConfig) -> tuple[int, float]:
    """The most bytes a request's body may carry, and that limit in MB."""
    return config.body_limit_bytes(scope["method"], scope["path"]), config.body_limit_mb(scope["method"], scope["path"])


def framing_problem(scope, config: ServeConfig) -> tuple[int, str] | None:
    """What is wrong with a request's body headers, as (status, detail), before any of the body is read."""
    lengths, chunked = body_headers(scope)
    max_bytes, mb = body_limit(scope, config)
    limit = f"uploads are limited to {mb:g} MB"
    if lengths and chunked:
        return 400, "send Content-Length or Transfer-Encoding: chunked, not both"
    if lengths:
        if len(set(lengths)) > 1 or not lengths[0].isdigit():
            return 400, f"Content-Length must be one number of bytes ({limit})"
        if int(lengths[0]) > max_bytes:
            return 413, f"upload of {int(lengths[0]) / 1e6:.1f} MB is over the {mb:g} MB limit"
    elif scope["method"] == "POST" and not chunked:
        return 411, f"send a Content-Length header or a chunked body ({limit})"
    return None


class BodyGuard:
    """``receive`` and ``send`` for one request: counts the body, keeps its deadline, adds the headers."""

    def __init__(self, scope, receive, send, config: ServeConfig):
        self._receive, self._send, self.config = receive, send, config
        self.deadline = asyncio.get_running_loop().time() + config.body_timeout
        self.max_bytes, self.max_mb = body_limit(scope, config)
        self.received = 0
        self.body_done = not has_body(scope)
        self.answered = False  # the guard sent the response (413 / 408 / a framing error)
        self.app_started = False
        self.status: int | None = None

    async def receive(self) -> dict:
        if self.answered:
            return DISCONNECT
        if self.body_done:  # later calls wait for a disconnect: no deadline applies
            return await self._receive()
        remaining = self.deadline - asyncio.get_running_loop().time()
        try:
            message = await asyncio.wait_for(self._receive(), timeout=max(remaining, 0.001))
        except TimeoutError:
            return await self._refuse(408, f"the request body was not received within {self.config.body_timeout:g} s")
        if message["type"] != "http.request":
            return message
        self.received += len(message.get("body", b""))
        if self.received > self.max_bytes:
            return await self._refuse(413, f"the upload passed the {self.max_mb:g} MB limit "
                                           f"({self.received:,} bytes received)")
        self.body_done = not message.get("more_body", False)
        return message

    async def _refuse(self, status: int, detail: str) -> dict:
        if not self.app_started:
            await self.answer(status, detail)
        self.answered = True
        return DISCONNECT

    async def answer(self, status: int, detail: str) -> None:
        """Send the guard's own JSON problem response, closing the connection after it."""
        self.answered = True
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def send_from_app(self, message: dict) -> None:
        if self.answered and not self.app_started:
            return  # the guard answered this request; the app's late response is dropped
        if message["type"] == "http.response.start":
            self.app_started = True
        await self.send(message)

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            names = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
            if not self.body_done and b"connection" not in names:
                # answered before the whole body came (401, 415, a malformed form…): close the connection
                # rather than let the server read and discard the rest of the upload, however long it is
                extra.append((b"connection", b"close"))
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await self._send(message)
