"""Fixed names and paths on the target, and what the Pi needs installed.

Everything that other parts of the project rely on (service name, install root,
config path, release naming) lives here so that it is changed in one place.
A ``prefix`` moves every path under a sandbox directory, so the whole deploy can
run against a throwaway directory on a machine that is not a Pi (the tests).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

SERVICE = "face-emotion"
SERVICE_USER = "face-emotion"
# Groups the service user joins when they exist (gpio is Raspberry Pi OS only).
SERVICE_GROUPS = ("video", "gpio")
INSTALL_ROOT = "/opt/face-emotion"
CONFIG_PATH = "/etc/face-emotion/config.toml"
UNIT_PATH = f"/etc/systemd/system/{SERVICE}.service"
KEEP_RELEASES = 3
# Free disk a new release needs (--min-free-mb), apt's packages aside (those are measured on the Pi from
# apt's own sizes before installing): a release measured 107 MB on arm64 Bookworm in `make pi-check`
# (ai-edge-litert 43 MB, ml_dtypes 26 MB, pip and setuptools in the venv 23 MB, the wheel with the models),
# plus pip's downloads while it installs.
MIN_FREE_MB = 250

# picamera2 and lgpio only work from apt; numpy and OpenCV come from apt too and
# reach the venv through --system-site-packages.
APT_PACKAGES = (
    "python3-picamera2",
    "python3-opencv",
    "python3-numpy",
    "python3-gpiozero",
    "python3-lgpio",
    "python3-systemd",
    "python3-venv",
    "python3-pip",
)
# The package apt cannot give us: a camera stack without it is not a camera Pi.
CAMERA_PACKAGE = "python3-picamera2"
# The oldest picamera2 the camera source runs with (captured_request(wait=), cancel_all_and_flush() came in
# 0.3.20). The same floor as edge/inputs/picamera2_version.py (deploy imports nothing of edge; a test keeps them equal).
PICAMERA2_MIN = (0, 3, 20)
# Installed with pip into the release venv (not on apt for Raspberry Pi OS). paho-mqtt is the optional MQTT
# output's client (pure Python, ~100 kB; Bookworm's apt has only 1.6, the output supports 1.6 and 2.x).
PIP_PACKAGES = ("ai-edge-litert", "paho-mqtt>=1.6,<3")

# Files of the repository's models/ directory that belong to a release.
MODEL_PATTERNS = ("*.tflite", "*.xml", "manifest.json")

# <UTC timestamp>-<short git sha>, e.g. 20261128T101500Z-ab12cd3; sorts by time.
RELEASE_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-z]+$")


@dataclass(frozen=True)
class Layout:
    """Absolute paths on one target, all moved under ``prefix`` when one is given."""

    prefix: str = ""

    def _p(self, path: str) -> str:
        return posixpath.normpath(self.prefix + path) if self.prefix else path

    @property
    def root(self) -> str:
        return self._p(INSTALL_ROOT)

    @property
    def releases(self) -> str:
        return posixpath.join(self.root, "releases")

    @property
    def current(self) -> str:
        return posixpath.join(self.root, "current")

    @property
    def config(self) -> str:
        return self._p(CONFIG_PATH)

    @property
    def config_dir(self) -> str:
        return posixpath.dirname(self.config)

    @property
    def unit(self) -> str:
        return self._p(UNIT_PATH)

    @property
    def fake_dir(self) -> str:
        """Where ``--fake-system`` puts its recorder, answers and call log."""
        return self._p("/fake-system")

    def release(self, release_id: str) -> str:
        return posixpath.join(self.releases, release_id)
