"""The HTTP/1.1 protocol ``facescan serve`` runs uvicorn with: uvicorn's h11 protocol plus a header deadline.

What uvicorn bounds by itself: the size of a request line plus headers (h11's incomplete-event
limit, 16 KiB, ``h11_max_incomplete_event_size``) and how long a connection may idle after a
response (``timeout_keep_alive``). What it does not bound: how long a client may take to send the
request line and headers. Its h11 protocol arms no timer while a request's headers arrive, so a
client that sends one header byte a second, or opens a connection and sends nothing, holds it
forever. This subclass closes such a connection ``header_timeout`` seconds after it opened, or
after the first byte of a later request's headers (with a raw 408 when part of a request came).
The body's own deadline is :class:`~facescan.serve.guard.RequestGuard`'s, an ASGI layer.
"""

from __future__ import annotations

import functools
import json
import os

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_TIMEOUT = 10.0
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                   b"content-length: 37\r\nconnection: close\r\n\r\nrequest headers not received in time\n")


@functools.cache
def _configured_timeout(config_json: str) -> float:
    try:
        return float(json.loads(config_json).get("header_timeout", DEFAULT_HEADER_TIMEOUT))
    except (ValueError, TypeError, AttributeError):
        return DEFAULT_HEADER_TIMEOUT


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's ``H11Protocol`` that closes a connection whose request headers do not arrive in time.

    ``header_timeout`` None: the ``header_timeout`` of the ServeConfig in ``FACESCAN_SERVE_CONFIG``
    (how ``facescan serve`` hands its config to uvicorn's worker processes), else 10 s."""

    header_timeout: float | None = None
    _header_timer = None

    @property
    def _timeout(self) -> float:
        if self.header_timeout is not None:
            return self.header_timeout
        return _configured_timeout(os.environ.get("FACESCAN_SERVE_CONFIG", "{}"))

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm()  # part of a request line / headers: they must be complete by the deadline
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # part of a request arrived: say why the connection ends
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()
