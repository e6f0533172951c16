"""``[outputs.live_view]``: the live view's settings, declared once and checked in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.settings import ConfigError


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
