"""A headless live view: annotated MJPEG stream, JSON statistics and one HTML page over HTTP.

For a Pi without a screen: open ``http://<pi>:8080/`` (after an ssh tunnel,
since it binds 127.0.0.1 by default) and watch the annotated camera with
fps, per-stage latency and the labels of every track, updating live.

* ``/`` the page: a heading, the annotated picture across the page, a legend
  of the overlay's colours, what is running (source, model files, detector;
  from :meth:`LiveViewOutput.describe`), a table of the faces in the picture
  and statistics refreshed from ``/status.json`` every 500 ms.
* ``/frame.jpg?after=SEQ`` the next annotated frame newer than ``SEQ`` (waits
  for it; 204 after ``FRAME_WAIT_S``), with ``X-Frame-Seq`` and, in
  ``X-Frame-Faces``, the JSON of the faces drawn on it. The page fetches
  frames this way, so its table always lists the faces of the picture it shows.
* ``/stream.mjpg`` ``multipart/x-mixed-replace`` JPEGs of annotated frames, at
  most ``max_fps`` a second, for players and other pages.
* ``/status.json`` fps, median latency per stage over the last
  ``stats_window`` frames, faces with track/labels/box, frame index, uptime,
  what is running.

The page's table and the picture's labels show the same number for a face:
both come from the one frame the JPEG was drawn from, and both are the smoothed
probability of the shown class (``FaceResult.emotion_scores`` after the
tracker). The table used to list the newest frame from ``/status.json``
beside an MJPEG picture sent at most ``max_fps`` times a second, so the two
disagreed (0.18 against 0.30 for one face).

The frame loop never waits for the network: :meth:`LiveViewOutput.update`
records statistics and, only while someone watches and at most ``max_fps``
times a second, hands a copy of the frame to the server threads; drawing and
JPEG encoding happen there, once per frame however many viewers there are.
A viewer that does not read only blocks its own thread, and newer frames
simply replace older ones.

Bound to the LAN, the server must not be readable by some other web page
through DNS rebinding: requests whose ``Host`` header names anything but an
IP address, ``localhost``, this machine's name (and ``NAME.local``) or one of
``hostnames`` get 421. With ``token`` set, every request also needs it, as
``?token=`` (which sets a cookie for the page's own requests) or as the
password of HTTP basic auth; otherwise 401.

The frame loop must never depend on the viewers, however many connect: the
server serves at most ``MAX_CONNECTIONS`` connections (``MAX_PER_ADDRESS``
from one address) and closes any more at accept with a 503, before reading a
byte or starting a thread; a request line and headers must arrive within
``HEADER_TIMEOUT_S`` however slowly they trickle. A flood of 1,000 connections
once took one thread and one descriptor each until, at 1,024 open files, the
daemon could not reopen its input and exited.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hmac
import ipaddress
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import parse_qs

import cv2
import numpy as np

from edge.annotate import BOLD_FROM, GENDER_COLORS_BGR, UNKNOWN_COLOR_BGR, annotate
from edge.logthrottle import Throttle
from edge.outputs.base import Output, OutputError
from edge.outputs.display import stats_text
from edge.results import FaceResult, FrameResult
from edge.settings import ConfigError
from edge.stats import LatencyStats


@dataclass(frozen=True)
class LiveViewSettings:
    """``[outputs.live_view]``: a small HTTP server with an MJPEG stream and live statistics (off by default)."""

    enabled: bool = False
    host: str = "127.0.0.1"  # "0.0.0.0" makes it reachable from the network: anyone there can watch
    port: int = 8080  # 0 = any free port (logged)
    max_fps: float = 5.0  # the stream's frame-rate ceiling; JPEG encoding costs CPU only while someone watches
    jpeg_quality: int = 80
    stats_window: int = 100  # frames the median latencies and fps are computed over
    hostnames: list[str] = field(default_factory=list)  # names the browser may use besides IPs, localhost, ours
    token: str = ""  # required as ?token=, or as the basic-auth password, when set (for host = "0.0.0.0")

    def validate(self) -> None:
        if not self.host:
            raise ConfigError("host: must not be empty")
        for name in self.hostnames:
            if not name or any(c in name for c in " /:@?#[]"):
                raise ConfigError(f"hostnames: {name!r} is not a host name")
        if self.token and (len(self.token) < 16 or not self.token.isascii() or not self.token.isprintable()):
            raise ConfigError("token: use at least 16 printable ASCII characters (e.g. `openssl rand -hex 16`)")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port} is outside 0..65535")
        if not 0 < self.max_fps <= 60:
            raise ConfigError(f"max_fps: {self.max_fps} is outside 0..60")
        if not 10 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality: {self.jpeg_quality} is outside 10..100")
        if not 2 <= self.stats_window <= 10000:
            raise ConfigError(f"stats_window: {self.stats_window} is outside 2..10000")

log = logging.getLogger(__name__)
BOUNDARY = "FRAME"
WAIT_S = 0.25  # how often a waiting stream thread checks whether the server is closing
FRAME_WAIT_S = 10.0  # /frame.jpg answers 204 when no new frame came for this long (the page asks again)
COOKIE = "face_emotion_token"
MAX_CONNECTIONS = 32  # connections served at once; a browser page uses up to 6
MAX_PER_ADDRESS = 16  # of those, from one client address
HEADER_TIMEOUT_S = 10.0  # the request line and all headers within this, however slowly they trickle
BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def host_names(settings: LiveViewSettings) -> frozenset[str]:
    """Host header names accepted besides IP literals: localhost, the bind name, ours, the configured ones."""
    own = socket.gethostname().lower()
    names = {"localhost", own, own.split(".")[0] + ".local", settings.host.lower(), *settings.hostnames}
    return frozenset(n.lower().rstrip(".") for n in names if n)


def host_allowed(header: str | None, names: frozenset[str]) -> bool:
    """True for a Host header that cannot come from DNS rebinding: an IP address or a name we know."""
    if header is None:  # HTTP/1.0 clients; a browser always sends Host
        return True
    host = header.strip().lower()
    if host.startswith("["):  # [v6]:port
        host = host[1:host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.rstrip(".")
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host in names


def token_given(handler: BaseHTTPRequestHandler, token: str) -> str | None:
    """How the request proved the token: "query", "cookie", "basic", or None."""
    query = parse_qs(handler.path.split("?", 1)[1]) if "?" in handler.path else {}
    if any(hmac.compare_digest(v.encode(), token.encode()) for v in query.get("token", [])):
        return "query"
    for part in (handler.headers.get("Cookie") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and hmac.compare_digest(value.encode(), token.encode()):
            return "cookie"
    auth = handler.headers.get("Authorization") or ""
    if auth[:6].lower() == "basic ":
        with contextlib.suppress(ValueError):
            _, _, password = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
            if hmac.compare_digest(password.encode(), token.encode()):
                return "basic"
    return None

def legend_html() -> str:
    """The overlay's colours and label style, from the constants :mod:`edge.annotate` draws with."""
    def swatch(bgr: tuple[int, int, int], text: str) -> str:
        b, g, r = bgr
        return f'<span class="swatch" style="background: rgb({r},{g},{b})"></span>{text}'

    genders = [swatch(GENDER_COLORS_BGR[name], name) for name in ("woman", "man")]
    genders.append(swatch(UNKNOWN_COLOR_BGR, "gender not known yet"))
    return ("box and label colour = gender: " + " &nbsp; ".join(genders) +
            f"<br>label = track, emotion, its smoothed probability / gender; the label's background is"
            f" fainter the less sure the emotion, and its text bold from {BOLD_FROM:.1f}")


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>face-emotion live view</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; background: #111; color: #eee; margin: 1em; }
h1 { font-size: 1.3em; margin: 0 0 .4em 0; }
img { width: 100%; height: auto; background: #000; display: block; margin-bottom: .5em; min-height: 60px; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left; }
th { border-bottom: 1px solid #555; } .dim { color: #999; }
.swatch { display: inline-block; width: 1.4em; height: .9em; margin: 0 .3em -.1em 0; }
</style></head>
<body>
<h1>face-emotion live view</h1>
<p id="running" class="dim">running: waiting for the first status...</p>
<img id="stream" alt="annotated camera picture">
<p id="legend" class="dim">__LEGEND__</p>
<p id="summary">waiting for the first status...</p>
<table><thead><tr><th>track</th>
<th>emotion, smoothed probability (as on the picture)</th><th>gender, smoothed probability</th>
<th>box (x, y, w, h)</th></tr></thead>
<tbody id="faces"></tbody></table>
<p id="table-note" class="dim"></p>
<p id="latency" class="dim"></p>
<script>
"use strict";
window.statusUpdates = 0;  // read by the tests; not shown
const $ = (id) => document.getElementById(id);
const img = $("stream");
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const RUNNING = [["source", "source"], ["emotion_model", "emotion model"], ["gender_model", "gender model"],
                 ["detector", "detector"]];
function cell(row, text) { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); }
function num(value, digits) { return typeof value === "number" ? value.toFixed(digits) : "?"; }
function show(s) {  // the statistics, from /status.json
  const run = s.running || {};
  $("running").textContent = RUNNING.map(([key, name]) => `${name}: ${run[key] || "not reported"}`).join(" | ");
  const frame = s.frame === null || s.frame === undefined ? "-" : s.frame;
  $("summary").textContent = `frame ${frame} | ${num(s.fps, 1)} fps | ${s.faces} face(s) | ` +
    `${s.viewers} viewer(s) | up ${num(s.uptime_s, 0)} s`;
  $("latency").textContent = "median latency (ms): " +
    Object.entries(s.latency_ms || {}).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ");
  window.statusUpdates += 1;
  window.lastStatus = s;
}
function showFaces(f) {  // the table, from the headers of the picture it describes
  const body = $("faces"); body.replaceChildren();
  for (const t of f.tracks) {
    const row = document.createElement("tr");
    cell(row, t.track === null ? "-" : "#" + t.track);
    cell(row, `${t.emotion} ${num(t.confidence, 2)}`);
    cell(row, `${t.gender} ${num(t.gender_confidence, 2)}`);
    cell(row, t.box.join(", "));
    body.appendChild(row);
  }
  $("table-note").textContent = `faces of frame ${f.frame}, the frame in the picture: the same numbers as its labels`;
  window.lastFrame = f;
}
async function frames() {
  let seq = 0, shown = null;
  for (;;) {
    try {
      const response = await fetch(`/frame.jpg?after=${seq}`, { cache: "no-store" });
      if (response.status !== 200) { await pause(response.status === 204 ? 0 : 2000); continue; }
      seq = Number(response.headers.get("X-Frame-Seq"));
      const faces = JSON.parse(response.headers.get("X-Frame-Faces"));
      const url = URL.createObjectURL(await response.blob());
      await new Promise((resolve) => { img.onload = img.onerror = resolve; img.src = url; });
      if (shown) URL.revokeObjectURL(shown);
      shown = url;
      showFaces(faces);
    } catch (err) {
      await pause(2000);
    }
  }
}
async function refresh() {
  try {
    const response = await fetch("/status.json", { cache: "no-store" });
    show(await response.json());
  } catch (err) {
    $("summary").textContent = "no connection to the Pi (" + err + ")";
  }
  setTimeout(refresh, 500);
}
refresh();
frames();
</script>
</body></html>
""".replace("__LEGEND__", legend_html())


def tracks(faces: list[FaceResult]) -> list[dict[str, Any]]:
    """Faces as the page's table shows them: the numbers the overlay's labels show (see the module doc)."""
    return [{"track": f.track, "emotion": f.emotion, "confidence": round(f.emotion_confidence, 4),
             "gender": f.gender, "gender_confidence": round(f.gender_confidence, 4),
             "box": [int(v) for v in f.box]} for f in faces]


class Hub:
    """What the frame loop hands to the server threads: statistics, the latest result and frame."""

    def __init__(self, stats_window: int, jpeg_quality: int, clock: Callable[[], float]):
        self.cond = threading.Condition()
        self.encode_lock = threading.Lock()
        self.clock = clock
        self.started = clock()
        self.stats = LatencyStats(stats_window)
        self.jpeg_quality = jpeg_quality
        self.result: FrameResult | None = None
        self.frame: np.ndarray | None = None
        self.frame_result: FrameResult | None = None
        self.frame_text = ""
        self.jpeg_result: FrameResult | None = None  # the result drawn on ``jpeg``
        self.running: dict[str, str] = {}  # what the service runs (LiveViewOutput.describe)
        self.seq = 0  # increments with every frame handed over
        self.jpeg = b""
        self.jpeg_seq = 0
        self.encoded = 0  # JPEGs encoded so far (stays 0 while nobody watches)
        self.viewers = 0
        self.connections: set[socket.socket] = set()
        self.closed = False

    def record(self, result: FrameResult, now: float, frame: np.ndarray | None) -> None:
        """Called by the frame loop: statistics always, the frame only when someone watches."""
        with self.cond:
            self.stats.add(result.timings_ms, stamp=now)
            self.result = result
            if frame is not None:
                self.frame, self.frame_result, self.frame_text = frame, result, stats_text(self.stats)
                self.seq += 1
                self.cond.notify_all()

    def next_jpeg(self, after: int) -> tuple[int, bytes, FrameResult] | None:
        """The first frame newer than ``after`` as JPEG, or None after a short wait (check ``closed``)."""
        with self.cond:
            if not self.cond.wait_for(lambda: self.closed or self.seq > after, timeout=WAIT_S) or self.closed:
                return None
            seq, frame, result, text = self.seq, self.frame, self.frame_result, self.frame_text
        with self.encode_lock:  # several viewers: the first one encodes, the others reuse it
            if self.jpeg_seq != seq:
                assert frame is not None and result is not None
                ok, data = cv2.imencode(".jpg", annotate(frame, result, text),
                                        [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                if not ok:
                    return None
                self.jpeg, self.jpeg_seq, self.jpeg_result = data.tobytes(), seq, result
                self.encoded += 1
            assert self.jpeg_result is not None
            return self.jpeg_seq, self.jpeg, self.jpeg_result

    def status(self) -> dict[str, Any]:
        """The ``/status.json`` document (``tracks``: the newest frame's faces)."""
        with self.cond:
            result = self.result
            latency = {stage: round(value, 2) for stage in sorted(self.stats.samples)
                       if (value := self.stats.median(stage)) is not None}
            faces = list(result.faces) if result is not None else []
            return {
                "frame": result.index if result is not None else None,
                "frames": self.stats.frames,
                "fps": round(self.stats.fps(), 2),
                "latency_ms": latency,
                "faces": len(faces),
                "tracks": tracks(faces),
                "width": result.width if result is not None else None,
                "height": result.height if result is not None else None,
                "uptime_s": round(self.clock() - self.started, 2),
                "viewers": self.viewers,
                "running": dict(self.running),
            }

    def join(self, connection: socket.socket) -> int:
        with self.cond:
            self.viewers += 1
            self.connections.add(connection)
            return self.seq  # a new viewer waits for a fresh frame, not the one a previous viewer saw

    def leave(self, connection: socket.socket) -> None:
        with self.cond:
            self.viewers -= 1
            self.connections.discard(connection)

    def close(self) -> None:
        """Wake every stream thread and cut their connections, so none lingers after close()."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


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
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", PAGE.encode())
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


class LiveViewServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with daemon threads, no reverse DNS lookup at bind time, and bounded connections.

    See the module docstring: a capped number of connections (per address too), a deadline for the headers,
    and one throttled log line for failures instead of a traceback per request.
    """

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: accepted and refused quickly, so a burst does not reset viewers

    def __init__(self, address: tuple[str, int], hub: Hub, host_names: frozenset[str] = frozenset(),
                 token: str = ""):
        self.hub = hub
        self.host_names, self.token = host_names, token
        self.guard = threading.Lock()
        self.per_address: dict[str, int] = {}
        self.open = 0  # connections being served
        self.refused = 0  # connections closed at accept because of the caps
        self.header_deadlines: dict[socket.socket, float] = {}
        self.refusals = Throttle(log, logging.WARNING)
        self.failures = Throttle(log, logging.WARNING)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # HTTPServer's version calls getfqdn(), which can hang without DNS
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread, or refuse it at once (503, closed) when over a cap."""
        address = str(client_address[0])
        with self.guard:
            busy = self.open >= MAX_CONNECTIONS or self.per_address.get(address, 0) >= MAX_PER_ADDRESS
            if busy:
                self.refused += 1
            else:
                self.open += 1
                self.per_address[address] = self.per_address.get(address, 0) + 1
        if busy:
            with contextlib.suppress(OSError):
                request.setblocking(False)  # never let the accepting thread wait on a client
                request.send(BUSY)
            self.shutdown_request(request)
            self.refusals.log(f"live view: refused a connection from {address}: {MAX_CONNECTIONS} connections "
                              f"({MAX_PER_ADDRESS} per address) are served at most")
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread could be started: give the slot back
            self._release(address)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.guard:
                self.header_deadlines.pop(request, None)
            self._release(str(client_address[0]))

    def _release(self, address: str) -> None:
        with self.guard:
            self.open -= 1
            left = self.per_address.get(address, 1) - 1
            if left:
                self.per_address[address] = left
            else:
                self.per_address.pop(address, None)

    def expect_headers(self, connection: socket.socket) -> None:
        with self.guard:
            self.header_deadlines[connection] = time.monotonic() + HEADER_TIMEOUT_S

    def headers_read(self, connection: socket.socket) -> bool:
        """Lift the connection's header deadline; False when it had already passed (and the socket was cut)."""
        with self.guard:
            return self.header_deadlines.pop(connection, None) is not None

    def service_actions(self) -> None:
        """Called by serve_forever at least every poll interval: cut connections whose headers are late."""
        now = time.monotonic()
        with self.guard:
            late = [c for c, deadline in self.header_deadlines.items() if deadline <= now]
            for connection in late:
                del self.header_deadlines[connection]
        for connection in late:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One throttled line, not a traceback on stderr per failed request."""
        exc = sys.exc_info()[1]
        self.failures.log(f"live view: a request from {client_address[0]} failed: {type(exc).__name__}: {exc}")


class LiveViewOutput(Output):
    """Serves the live view; see the module docstring."""

    name = "live view"

    def __init__(self, settings: LiveViewSettings | None = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings or LiveViewSettings()
        self.clock = clock
        self.hub = Hub(self.settings.stats_window, self.settings.jpeg_quality, clock)
        self.server: LiveViewServer | None = None
        self.thread: threading.Thread | None = None
        self._interval = 1.0 / self.settings.max_fps
        self._last_handed: float | None = None

    @property
    def port(self) -> int:
        """The port actually bound (differs from the setting when that is 0)."""
        return self.server.server_port if self.server is not None else self.settings.port

    @property
    def url(self) -> str:
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        host, port = self.settings.host, self.settings.port
        try:
            self.server = LiveViewServer((host, port), self.hub, host_names(self.settings), self.settings.token)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OutputError(f"live view: port {port} on {host} is in use") from None
            raise OutputError(f"live view: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": WAIT_S},
                                       name="live-view", daemon=True)
        self.thread.start()
        log.info("live view on %s", self.url)
        loopback = ipaddress.ip_address(host).is_loopback if _is_ip(host) else host == "localhost"
        if not loopback and not self.settings.token:
            log.warning("live view: reachable from the network without a token; anyone there can watch "
                        "(set [outputs.live_view] token)")

    def describe(self, running: Mapping[str, str]) -> None:
        """Show what the service runs: ``source``, ``emotion_model``, ``gender_model``, ``detector`` (any missing)."""
        with self.hub.cond:
            self.hub.running = {str(k): str(v) for k, v in running.items() if v}

    def update(self, frame: np.ndarray, result: FrameResult) -> None:
        now = self.clock()
        hand = self.hub.viewers > 0 and (self._last_handed is None or now - self._last_handed >= self._interval)
        if hand:
            self._last_handed = now
        self.hub.record(result, now, frame.copy() if hand else None)

    def close(self) -> None:
        """Stop serving: stream threads woken and cut, listener closed, server thread joined. Safe twice."""
        self.hub.close()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.thread is not None:
            self.thread.join(timeout=5)
            self.thread = None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
