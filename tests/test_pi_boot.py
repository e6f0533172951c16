"""make pi-boot's parts that run without root or qemu (deploy/pi_boot*.py).

The booted guests themselves need root, qemu-system-x86, debootstrap (``make pi-boot``, opt-in in CI);
here: the config it gives the service loads as the daemon loads it, and the deploy's apt list for a
Debian guest is the Pi's less what only the Raspberry Pi archive has.
"""

from __future__ import annotations

from pathlib import Path

from deploy.layout import APT_PACKAGES
from deploy.pi_boot import GUEST_APT, LIVE_PORT, guest_config
from edge.service.config import load_config


def test_the_guest_config_loads_as_the_daemon_loads_it(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(guest_config("/srv/pi-boot/faces.avi", "a" * 32, loop=True))
    config = load_config(path)
    assert (config.camera.source, config.camera.device, config.camera.loop) == ("opencv", "/srv/pi-boot/faces.avi",
                                                                                True)
    live, mqtt = config.outputs.live_view, config.outputs.mqtt
    assert live.enabled and live.host == "127.0.0.1" and live.port == LIVE_PORT and live.token == "a" * 32
    assert mqtt.enabled and mqtt.host == "127.0.0.1" and mqtt.discovery
    assert not config.outputs.leds.enabled


def test_a_debian_guest_gets_the_pis_apt_list_less_the_raspberry_pi_archive() -> None:
    assert set(APT_PACKAGES) - set(GUEST_APT) == {"python3-picamera2", "python3-lgpio"}
    assert [p for p in APT_PACKAGES if p in GUEST_APT] == list(GUEST_APT)
