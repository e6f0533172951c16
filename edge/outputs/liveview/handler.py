"""The routes: ``/`` (the page), ``/frame.jpg``, ``/stream.mjpg``, ``/status.json``; anything else is 404.

Every request passes the ``Host`` and token checks (:mod:`edge.outputs.liveview.auth`)
first. See the package docstring for what each route returns.
"""

from __future__ import annotations

import json
import logging
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from edge.outputs.liveview.auth import COOKIE, host_allowed, token_given
from edge.outputs.liveview.hub import Hub, tracks
from edge.outputs.liveview.page import page
from edge.outputs.liveview.server import LiveViewServer

log = logging.getLogger(__name__)
BOUNDARY = "FRAME"
FRAME_WAIT_S = 10.0  # /frame.jpg answers 204 when no new frame came for this long (the page asks again)


class Handler(BaseHTTPRequestHandler):
    """The three routes; everything else is 404."""

    server: LiveViewServer
    server_version = "face-emotion-live-view"
    timeout = 30  # a viewer that stops reading for this long is dropped

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("live view %s: " + fmt, self.address_string(), *args)

    def setup(self) -> None:
        super().setup()
        self.server.expect_headers(self.connection)

    def parse_request(self) -> bool:
        """Read the headers, then lift the header deadline (a stream may run for hours after it)."""
        ok = super().parse_request()
        if not self.server.headers_read(self.connection):  # the deadline passed: the socket is already cut
            self.close_connection = True
            return False
        return ok

    def do_GET(self) -> None:
        route = self.path.split("?", 1)[0]
        hub = self.server.hub
        if not host_allowed(self.headers.get("Host"), self.server.host_names):
            self._send(HTTPStatus.MISDIRECTED_REQUEST, "text/plain; charset=utf-8",
                       b"unknown Host; add it to [outputs.live_view] hostnames\n")
            return
        proof = token_given(self, self.server.token) if self.server.token else "none needed"
        if proof is None:
            self.send_response(HTTPStatus.UNAUTHORIZED)
            self.send_header("WWW-Authenticate", 'Basic realm="face-emotion live view"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._cookie = proof == "query"  # later requests from the page (img, fetch) carry it as a cookie
        if route in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", page())
        elif route == "/status.json":
            self._send(HTTPStatus.OK, "application/json", json.dumps(hub.status()).encode())
        elif route == "/frame.jpg":
            self._frame(hub)
        elif route == "/stream.mjpg":
            self._stream(hub)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self._send_body(content_type, body)

    def _send_body(self, content_type: str, body: bytes) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if getattr(self, "_cookie", False):
            self.send_header("Set-Cookie", f"{COOKIE}={self.server.token}; Path=/; HttpOnly; SameSite=Strict")
        self.end_headers()
        self.wfile.write(body)

    def _frame(self, hub: Hub) -> None:
        """One JPEG newer than ``?after=``, with the faces drawn on it in a header; 204 when none comes."""
        query = parse_qs(self.path.split("?", 1)[1]) if "?" in self.path else {}
        try:
            after = int(query.get("after", ["0"])[0])
        except ValueError:
            after = -1
        if after < 0:
            self._send(HTTPStatus.BAD_REQUEST, "text/plain; charset=utf-8", b"after: not a whole number >= 0\n")
            return
        fresh = hub.join(self.connection)  # a waiting page counts as a viewer, so the frame loop hands it frames
        if after == 0 or after > fresh:
            # A new page waits for a fresh frame, not a cached old one; a page from before a restart (its
            # numbers ahead of this server's) would otherwise wait until the new server caught up with them.
            after = fresh
        try:
            deadline = time.monotonic() + FRAME_WAIT_S
            got = None
            while got is None and not hub.closed and time.monotonic() < deadline:
                got = hub.next_jpeg(after)
        finally:
            hub.leave(self.connection)
        try:
            if got is None:
                self.send_response(HTTPStatus.NO_CONTENT)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            seq, jpeg, result = got
            faces = {"frame": result.index, "width": result.width, "height": result.height,
                     "tracks": tracks(list(result.faces))}
            self.send_response(HTTPStatus.OK)
            self.send_header("X-Frame-Seq", str(seq))
            self.send_header("X-Frame-Faces", json.dumps(faces))
            self._send_body("image/jpeg", jpeg)
        except (OSError, ValueError):  # the page went away (or close() cut it) while waiting
            self.close_connection = True

    def _stream(self, hub: Hub) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        seq = hub.join(self.connection)
        try:
            while not hub.closed:
                got = hub.next_jpeg(seq)
                if got is None:
                    continue
                seq, jpeg, _ = got
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                 .encode() + jpeg + b"\r\n")
                self.wfile.flush()
        except (OSError, ValueError):  # viewer gone, connection cut by close(), or timed out
            pass
        finally:
            hub.leave(self.connection)
            self.close_connection = True
