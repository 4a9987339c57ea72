"""uvicorn's httptools protocol, made to ignore an HTTP/2 upgrade offer on a request with a body.

Java's ``java.net.http.HttpClient`` (the default ``HTTP_2`` version) offers every plain-HTTP request as an
upgrade: ``Connection: Upgrade, HTTP2-Settings``, ``Upgrade: h2c``, ``HTTP2-Settings: ...``. RFC 9110 §7.8
lets a server ignore the offer and answer in HTTP/1.1, which the client then keeps using. uvicorn's
httptools protocol does ignore it (it only logs "Unsupported upgrade request"), but httptools tells
llhttp, when the headers are complete, that an upgrading request has no body: the request reaches the
app with an empty body (FastAPI: 422 "Field required") and the real body is taken for the new protocol's
bytes and dropped. h11 handles it, but costs about twice the parsing time on every request.

Here the dropped bytes are put back where they belong: the first ``Content-Length`` of them is handed to
the request still waiting for its body (its ASGI task has not run yet: it was only created during the same
``data_received``), and what follows goes to a fresh parser, so keep-alive and pipelining go on as usual.
A chunked body on such a request is refused with a 400 (no client we know sends that).
"""

from __future__ import annotations

import httptools
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class UpgradeIgnoringProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that serves a non-WebSocket upgrade offer as the plain HTTP/1.1 request it is."""

    _body_left = 0  # bytes of an upgrading request's body still to come

    def data_received(self, data: bytes) -> None:
        if self._body_left:
            data = self._take_body(data)
            if not data:
                return
        try:
            self._feed(data)
        except _IgnoredUpgrade as ignored:
            self._resume_after_upgrade(ignored.rest)

    def _feed(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade as upgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
                return
            offset = upgrade.args[0] if upgrade.args else len(data)
            raise _IgnoredUpgrade(data[offset:]) from None

    def _resume_after_upgrade(self, rest: bytes) -> None:
        headers = dict((name.lower(), value) for name, value in self.headers)
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            self.send_400_response("A chunked body on an HTTP upgrade request is not supported; send Content-Length.")
            return
        length = int(headers.get(b"content-length", b"0") or b"0")
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        if length:
            self.cycle.more_body = True  # reopened: llhttp closed the request when it saw the offer
            self._body_left = length
            rest = self._take_body(rest)
        if rest:
            self.data_received(rest)

    def _take_body(self, data: bytes) -> bytes:
        """Hand the waiting request up to ``_body_left`` bytes of ``data``; return what follows its body."""
        piece, rest = data[: self._body_left], data[self._body_left :]
        self._body_left -= len(piece)
        cycle = self.cycle
        if not cycle.response_complete:
            cycle.body += piece
            if len(cycle.body) > HIGH_WATER_LIMIT:
                self.flow.pause_reading()
            if not self._body_left:
                cycle.more_body = False
            cycle.message_event.set()
        return rest


class _IgnoredUpgrade(Exception):
    def __init__(self, rest: bytes) -> None:
        super().__init__()
        self.rest = rest
