"""The HTTP server: daemon threads, no reverse DNS at bind time, and a cap on the connections it serves.

The frame loop must never depend on the viewers, however many connect: the
server serves at most ``MAX_CONNECTIONS`` connections (``MAX_PER_ADDRESS``
from one address) and closes any more at accept with a 503, before reading a
byte or starting a thread; a request line and headers must arrive within
``HEADER_TIMEOUT_S`` however slowly they trickle. A flood of 1,000 connections
once took one thread and one descriptor each until, at 1,024 open files, the
daemon could not reopen its input and exited.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any

from edge.outputs.liveview.hub import Hub
from edge.service.logthrottle import Throttle

log = logging.getLogger(__name__)
MAX_CONNECTIONS = 32  # connections served at once; a browser page uses up to 6
MAX_PER_ADDRESS = 16  # of those, from one client address
HEADER_TIMEOUT_S = 10.0  # the request line and all headers within this, however slowly they trickle
BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class LiveViewServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with daemon threads, no reverse DNS lookup at bind time, and bounded connections.

    See this module's docstring: a capped number of connections (per address too), a deadline for the headers,
    and one throttled log line for failures instead of a traceback per request.
    """

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: accepted and refused quickly, so a burst does not reset viewers

    def __init__(self, address: tuple[str, int], hub: Hub, handler: type[BaseHTTPRequestHandler],
                 host_names: frozenset[str] = frozenset(), token: str = ""):
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
        super().__init__(address, handler)

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
