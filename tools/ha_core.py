"""A throwaway Home Assistant core and Mosquitto on loopback, for ``make ha-check`` (tools/ha_check.py).

Home Assistant needs Python 3.13 (``homeassistant`` 2025.4.4 requires it,
our own venv runs 3.11), so it lives in its own venv under a cache folder
(``HA_CHECK_CACHE``, default ``~/.cache/face-emotion/ha-check``), created once
with pyenv's 3.13 and reused: a cold run pays the install, a warm one only
the start. The requirements of the integrations we use (MQTT, the frontend
for the screenshot) are installed with it, under Home Assistant's own
constraints, so the first start does not pip-install behind our back.

No onboarding: the config folder is new on every run and gets, before the
first start, ``.storage/auth`` with one owner user and one long-lived access
token whose key we chose, so we sign the token (HS256, as Home Assistant's
``async_create_access_token`` does) and call the REST and websocket APIs with
it; ``.storage/onboarding`` marks onboarding done, and the ``trusted_networks``
auth provider on 127.0.0.1 with ``allow_bypass_login`` lets a browser in
without a password (the screenshot). The MQTT broker is added through the
config-flow REST API, as a user does in the UI.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HA_VERSION = "2025.4.4"
DEFAULT_CACHE = Path.home() / ".cache" / "face-emotion" / "ha-check"
INTEGRATIONS = ("mqtt", "frontend")  # their requirements (and their dependencies') go into the venv up front
TOKEN_LIFETIME_S = 10 * 365 * 86400  # a long-lived token, as the profile page makes them


class CheckError(Exception):
    """A step of the check that failed; the message is one line for the user."""


def wait_for(condition: Callable[[], Any], what: str, timeout: float, every: float = 0.5) -> Any:
    """Poll ``condition`` until it returns something true; CheckError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_python313() -> str:
    """``HA_PYTHON``, else pyenv's newest 3.13, else python3.13 on PATH; one line when there is none."""
    if os.environ.get("HA_PYTHON"):
        return os.environ["HA_PYTHON"]
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(root.glob("3.13*/bin/python3.13"))
    if found:
        return str(found[-1])
    on_path = shutil.which("python3.13")
    if on_path:
        return on_path
    raise CheckError("no Python 3.13 (Home Assistant 2025.4 needs it): install it with pyenv "
                     "(`pyenv install 3.13`) or set HA_PYTHON")


def integration_requirements(site: Path, domains: tuple[str, ...]) -> list[str]:
    """The pip requirements of these integrations and their dependencies, from their manifest.json files."""
    seen: set[str] = set()
    wanted: list[str] = []
    todo = list(domains)
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest = site / "homeassistant" / "components" / domain / "manifest.json"
        if not manifest.is_file():
            continue
        data = json.loads(manifest.read_text())
        wanted += [r for r in data.get("requirements", []) if r not in wanted]
        todo += data.get("dependencies", []) + data.get("after_dependencies", [])
    return wanted


def ensure_venv(cache: Path, log: Callable[[str], None] = print) -> tuple[Path, float]:
    """The venv's python, created and filled when missing; the seconds that took (0 when cached)."""
    venv = cache / "venv"
    python = venv / "bin" / "python"
    stamp = venv / f".installed-{HA_VERSION}"
    if stamp.exists():
        return python, 0.0
    started = time.monotonic()
    if venv.exists():
        shutil.rmtree(venv)  # a half-made venv (an interrupted install) or another version: start over
    cache.mkdir(parents=True, exist_ok=True)
    log(f"ha-check: creating {venv} with {find_python313()} and installing homeassistant=={HA_VERSION} "
        "(once; a few minutes)")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    steps = [[find_python313(), "-m", "venv", str(venv)], [*pip, "--upgrade", "pip"],
             [*pip, f"homeassistant=={HA_VERSION}"]]
    for step in steps:
        _run(step)
    site = Path(subprocess.check_output([str(python), "-c", "import homeassistant, pathlib; print(pathlib.Path("
                                         "homeassistant.__file__).parent.parent)"], text=True).strip())
    requirements = integration_requirements(site, INTEGRATIONS)
    constraints = site / "homeassistant" / "package_constraints.txt"
    _run([*pip, "--constraint", str(constraints), *requirements])
    stamp.write_text(" ".join(requirements) + "\n")
    return python, time.monotonic() - started


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise CheckError(f"{' '.join(command[:4])}... failed (exit {done.returncode}):\n{tail}")


class Mosquitto:
    """A real mosquitto on a free loopback port, anonymous, no persistence."""

    def __init__(self, folder: Path):
        binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto")
                                               else None)
        if binary is None:
            raise CheckError("mosquitto is not installed (apt-get install mosquitto)")
        self.port = free_port()
        self.log = folder / "mosquitto.log"
        conf = folder / "mosquitto.conf"
        # As root, mosquitto would switch to the "mosquitto" user, who may not read this folder.
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        f"user {getpass.getuser()}\n")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)

        def accepting() -> bool:
            if self.proc.poll() is not None:
                raise CheckError(f"mosquitto exited: {self.log.read_text()[-500:]}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(accepting, "mosquitto to listen", 30, 0.1)

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(claims: dict[str, Any], key: str) -> str:
    """A JWT signed with HMAC-SHA256: what Home Assistant issues and checks as an access token."""
    signing = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{_b64(signature)}"


def auth_storage(now: datetime) -> tuple[dict[str, Any], str]:
    """``.storage/auth`` with one owner and a long-lived refresh token; and an access token for it."""
    user_id, token_id, jwt_key = secrets.token_hex(16), secrets.token_hex(16), secrets.token_hex(64)
    stamp = now.isoformat()
    data = {
        "users": [{"id": user_id, "group_ids": ["system-admin"], "is_owner": True, "is_active": True,
                   "name": "ha-check", "system_generated": False, "local_only": False}],
        "groups": [{"id": "system-admin", "name": "Administrators"}, {"id": "system-users", "name": "Users"},
                   {"id": "system-read-only", "name": "Read Only"}],
        "credentials": [],
        "refresh_tokens": [{
            "id": token_id, "user_id": user_id, "client_id": None, "client_name": "ha-check", "client_icon": None,
            "token_type": "long_lived_access_token", "created_at": stamp,
            "access_token_expiration": TOKEN_LIFETIME_S, "token": secrets.token_hex(64), "jwt_key": jwt_key,
            "last_used_at": None, "last_used_ip": None, "expire_at": None, "credential_id": None,
            "version": HA_VERSION}],
    }
    issued = int(now.timestamp())
    token = hs256_token({"iss": token_id, "iat": issued, "exp": issued + TOKEN_LIFETIME_S}, jwt_key)
    return {"version": 1, "minor_version": 1, "key": "auth", "data": data}, token


CONFIGURATION = """\
homeassistant:
  name: ha-check
  latitude: 52.52
  longitude: 13.40
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: DE
  currency: EUR
  auth_providers:
    - type: trusted_networks
      trusted_networks: [127.0.0.1/32]
      allow_bypass_login: true
    - type: homeassistant
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
websocket_api:
repairs:
{frontend}logger:
  default: warning
  logs:
    homeassistant.components.mqtt: debug
    homeassistant.core: info
"""


class HomeAssistant:
    """``hass -c <folder>`` on a free loopback port, with a token for its REST and websocket APIs."""

    def __init__(self, python: Path, folder: Path, frontend: bool):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        storage = folder / ".storage"
        storage.mkdir(parents=True)
        (folder / "configuration.yaml").write_text(CONFIGURATION.format(
            port=self.port, frontend="frontend:\n" if frontend else ""))
        auth, self.token = auth_storage(datetime.now(UTC))
        (storage / "auth").write_text(json.dumps(auth))
        (storage / "onboarding").write_text(json.dumps({"version": 4, "minor_version": 1, "key": "onboarding",
                                                        "data": {"done": ["user", "core_config", "analytics",
                                                                          "integration"]}}))
        self.log = folder / "home-assistant.log"
        self.started = time.monotonic()
        with open(folder / "hass.stdout", "wb") as out:
            self.proc = subprocess.Popen([str(python), "-m", "homeassistant", "-c", str(folder), "--log-file",
                                          str(self.log)], stdout=out, stderr=subprocess.STDOUT)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def get_bytes(self, path: str) -> bytes:
        """A GET whose answer is not JSON (an image), with the token."""
        request = urllib.request.Request(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def wait_running(self, timeout: float = 300) -> float:
        """Seconds from the start until ``/api/config`` says RUNNING (the API answers our token)."""

        def running() -> bool:
            if self.proc.poll() is not None:
                raise CheckError(f"Home Assistant exited with {self.proc.returncode}")
            with contextlib.suppress(OSError, ValueError):
                return self.request("GET", "/api/config").get("state") == "RUNNING"
            return False

        wait_for(running, "Home Assistant to come up", timeout)
        return time.monotonic() - self.started

    def add_mqtt(self, port: int) -> dict[str, Any]:
        """The MQTT broker as a config entry, through the config flow a user clicks through."""
        flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt",
                                                                        "show_advanced_options": False})
        for _ in range(4):
            if flow.get("type") == "create_entry":
                return flow
            if flow.get("type") != "form":
                raise CheckError(f"the MQTT config flow answered {flow}")
            flow = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                                {"broker": "127.0.0.1", "port": port})
        raise CheckError(f"the MQTT config flow did not finish: {flow}")

    def states(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/states")

    def ws(self, *messages: dict[str, Any]) -> list[Any]:
        """Websocket API calls (registries are only there), each message's ``result``."""
        import websocket  # websocket-client, in the dev extra

        sock = websocket.create_connection(f"ws://127.0.0.1:{self.port}/api/websocket", timeout=30)
        try:
            json.loads(sock.recv())  # auth_required
            sock.send(json.dumps({"type": "auth", "access_token": self.token}))
            answer = json.loads(sock.recv())
            if answer.get("type") != "auth_ok":
                raise CheckError(f"the websocket API refused the token: {answer}")
            results = []
            for number, message in enumerate(messages, 1):
                sock.send(json.dumps({"id": number, **message}))
                while (reply := json.loads(sock.recv())).get("id") != number:
                    pass
                if not reply.get("success"):
                    raise CheckError(f"websocket {message['type']}: {reply.get('error')}")
                results.append(reply["result"])
            return results
        finally:
            sock.close()

    def registries(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        devices, entities = self.ws({"type": "config/device_registry/list"}, {"type": "config/entity_registry/list"})
        return devices, entities

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc, 60)

