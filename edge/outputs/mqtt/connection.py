"""The paho client and its connection to the broker: login, TLS, CONNACK, publish and flush.

One :class:`Connection` is used by one thread (the output's worker, or the one-off cleanup). It
hides the differences between paho-mqtt 1.6 (Raspberry Pi OS Bookworm's python3-paho-mqtt) and
2.x (PyPI, Trixie): the client is made with ``CallbackAPIVersion.VERSION2`` where that exists,
and the callbacks read only arguments both versions pass. What goes wrong is one line, marked
permanent when retrying cannot fix it (a refused login, a TLS mistake).
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from edge.outputs.base import OutputError
from edge.outputs.mqtt.discovery import Topics
from edge.outputs.mqtt.settings import MqttSettings

CONNACK_WAIT_S = 10.0  # after the TCP/TLS connection: how long the broker may take to answer CONNECT
LOOP_S = 0.05  # the worker's select() timeout: how soon a queued event goes out
# CONNACK return codes of MQTT 3.1.1 (paho 1.6 passes them as ints, 2.x as ReasonCodes 132..136).
CONNACK_TEXT = {
    1: "refused the protocol version",
    2: "rejected the client id",
    3: "is unavailable",
    4: "refused the login (bad user name or password)",
    5: "refused the login (not authorized)",
}
REASON_TO_CONNACK = {132: 1, 133: 2, 136: 3, 134: 4, 135: 5}
PERMANENT_CONNACK = {1, 2, 4, 5}

def import_paho() -> Any:
    """``paho.mqtt.client``, or one line that says how to install it."""
    try:
        import paho.mqtt.client as mqtt  # type: ignore[import-not-found]
    except ImportError:
        raise OutputError("mqtt: paho-mqtt is not installed (pip install 'pi-face-emotion[mqtt]', "
                          "or apt install python3-paho-mqtt)") from None
    return mqtt

def read_password(settings: MqttSettings) -> str | None:
    """The password from the settings or the first line of ``password_file``; None without a user name."""
    if not settings.username:
        return None
    if not settings.password_file:
        return settings.password
    try:
        text = Path(settings.password_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"mqtt: cannot read password_file {settings.password_file} "
                          f"({exc.strerror or exc})") from None
    return text.splitlines()[0] if text else ""


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context the settings ask for (verifying the broker), or one line naming the bad file."""
    if not settings.tls:
        return None
    try:
        context = ssl.create_default_context(cafile=settings.tls_ca or None)
    except FileNotFoundError:
        raise OutputError(f"mqtt: tls_ca {settings.tls_ca} does not exist") from None
    except (OSError, ssl.SSLError) as exc:
        raise OutputError(f"mqtt: tls_ca {settings.tls_ca} is not a PEM CA certificate ({exc})") from None
    if settings.tls_cert:
        try:
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
        except FileNotFoundError as exc:
            raise OutputError(f"mqtt: {exc.filename or settings.tls_cert} does not exist "
                              "(tls_cert/tls_key)") from None
        except (OSError, ssl.SSLError) as exc:
            raise OutputError(f"mqtt: tls_cert {settings.tls_cert} / tls_key {settings.tls_key} cannot be "
                              f"used ({exc})") from None
    return context


def _connack_code(value: Any) -> int:
    """A CONNACK result as MQTT 3.1.1's 0..5, from paho 1.6's int or 2.x's ReasonCode."""
    code = int(getattr(value, "value", value))
    return REASON_TO_CONNACK.get(code, code)

class Connection:
    """One paho client and its connection to the broker; used only by one thread.

    :meth:`open` connects and waits for the broker's answer; it returns None
    when connected, else ``(message, permanent)``: permanent for a refused
    login or a TLS failure, which retrying cannot fix.
    """

    def __init__(self, settings: MqttSettings, topics: Topics, client_id: str, password: str | None,
                 context: ssl.SSLContext | None, will: bool = True):
        mqtt = import_paho()
        self.mqtt = mqtt
        self.settings = settings
        self.where = f"{settings.host}:{settings.port}"
        api = getattr(mqtt, "CallbackAPIVersion", None)
        if api is not None:  # paho 2.x: its first argument is the callback API version
            self.client = mqtt.Client(api.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        else:  # paho 1.x
            self.client = mqtt.Client(client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.max_queued_messages_set(max(settings.queue_size, 100))
        if settings.username:
            self.client.username_pw_set(settings.username, password)
        if context is not None:
            self.client.tls_set_context(context)
        if will:
            self.client.will_set(topics.availability, "offline", qos=settings.qos, retain=True)
        self.connack: int | None = None
        self.unacked: set[int] = set()
        self.acked = 0
        self.largest = 0  # bytes of the largest message handed to paho since the last open()

    def _on_connect(self, *args: Any) -> None:  # 1.6: (client, userdata, flags, rc); 2.x: (..., reason, props)
        self.connack = _connack_code(args[3])

    def _on_publish(self, *args: Any) -> None:  # 1.6: (client, userdata, mid); 2.x: (..., mid, reason, props)
        self.unacked.discard(args[2])
        self.acked += 1

    def open(self, stop: threading.Event, first: bool = True) -> tuple[str, bool] | None:
        """Connect and wait for CONNACK; None when connected, else (one-line reason, permanent).

        A TLS failure before the first successful connection is a configuration
        mistake (permanent); after one, only a certificate that fails
        verification is, other TLS errors may be a broker restarting mid-handshake.
        """
        s = self.settings
        self.connack, self.largest = None, 0
        try:
            self.client.connect(s.host, s.port, keepalive=s.keepalive_s)
        except ssl.SSLCertVerificationError as exc:
            return f"mqtt: the broker {self.where} failed TLS verification ({exc.verify_message}; check tls_ca)", True
        except ssl.SSLError as exc:
            return f"mqtt: TLS handshake with {self.where} failed ({exc.reason or exc}; is it a TLS port?)", first
        except (ConnectionResetError, BrokenPipeError) as exc:
            if s.tls and first:  # a plain MQTT listener hangs up on a TLS hello
                return (f"mqtt: TLS handshake with {self.where} failed (the broker hung up: {exc.strerror}; "
                        "is it a TLS port?)"), True
            return f"mqtt: cannot connect to {self.where} ({exc.strerror or exc})", False
        except socket.gaierror as exc:
            return f"mqtt: cannot resolve {s.host} ({exc.strerror})", False
        except OSError as exc:
            if exc.errno == errno.EPERM:
                return (f"mqtt: connecting to {self.where} is not permitted (the systemd unit's IPAddressAllow= "
                        "must list the broker's address; see config.example.toml)"), False
            return f"mqtt: cannot connect to {self.where} ({exc.strerror or exc})", False
        deadline = time.monotonic() + CONNACK_WAIT_S
        while self.connack is None and time.monotonic() < deadline and not stop.is_set():
            if self.client.loop(timeout=LOOP_S) != 0:
                break
        if self.connack == 0:
            return None
        with contextlib.suppress(Exception):
            self.client.disconnect()
        if self.connack is None:
            return f"mqtt: {self.where} did not answer the MQTT handshake (is it an MQTT broker?)", False
        text = CONNACK_TEXT.get(self.connack, f"refused the connection (code {self.connack})")
        return f"mqtt: the broker {self.where} {text}", self.connack in PERMANENT_CONNACK

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> bool:
        """Hand one message to paho; False when it was not accepted (connection gone, paho's queue full)."""
        info = self.client.publish(topic, payload, qos=self.settings.qos, retain=retain)
        if info.rc != 0:
            return False
        self.largest = max(self.largest, len(topic) + len(payload))
        if self.settings.qos:
            self.unacked.add(info.mid)
        return True

    def loop(self) -> bool:
        """Network I/O for up to LOOP_S; False when the connection is gone."""
        return self.client.loop(timeout=LOOP_S) == 0

    def flush(self, until: float) -> None:
        """Let paho write what it holds (and QoS 1/2 acknowledgements arrive) until ``until``."""
        while (self.unacked or self.client.want_write()) and time.monotonic() < until:
            if not self.loop():
                return

    def quick_drop_cause(self, client_id: str) -> str:
        """The likely cause when the broker closed a connection it had just accepted (MQTT 3.1.1 says nothing)."""
        size = f"a message of up to {self.largest} bytes"
        if self.unacked:  # the broker hung up before acknowledging a message: it refused the message
            return (f"it hung up before acknowledging {size}: a message larger than the broker's max_packet_size "
                    "(raise it in the broker's configuration)")
        too_large = (f"; or {size} over the broker's max_packet_size (raise it in the broker's configuration)"
                     if self.settings.qos == 0 else "")
        return (f"another client with the client id {client_id!r} is connected (each Pi needs its own "
                f"[outputs.mqtt] client_id){too_large}")

    def close(self) -> None:
        """Disconnect (a clean DISCONNECT: the broker does not send the will). Messages not yet acknowledged
        stay with paho and go out again after the next :meth:`open`."""
        with contextlib.suppress(Exception):
            self.client.disconnect()
            self.client.loop(timeout=LOOP_S)
