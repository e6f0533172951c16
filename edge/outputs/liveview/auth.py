"""Who may read the live view: the ``Host`` check against DNS rebinding and the optional token.

Bound to the LAN, the server must not be readable by some other web page
through DNS rebinding: requests whose ``Host`` header names anything but an
IP address, ``localhost``, this machine's name (and ``NAME.local``) or one of
``hostnames`` get 421. With ``token`` set, every request also needs it, as
``?token=`` (which sets a cookie for the page's own requests) or as the
password of HTTP basic auth; otherwise 401. Tokens are compared in constant time.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import ipaddress
import socket
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs

from edge.outputs.liveview.settings import LiveViewSettings

COOKIE = "face_emotion_token"


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
