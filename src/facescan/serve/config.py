"""What ``facescan serve`` can be told, and the rule for where it may listen."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field

LOOPBACK_NAMES = ("localhost", "ip6-localhost")


@dataclass
class ServeConfig:
    """Everything ``facescan serve`` can be told (the first backend is the default one)."""

    backends: list[str] = field(default_factory=lambda: ["builtin"])
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_upload_mb: float = 10.0
    max_pixels: int = 40_000_000
    request_timeout: float = 30.0
    max_batch: int = 16
    batch_wait_ms: float = 5.0
    max_queue: int = 64
    cors_origins: list[str] = field(default_factory=list)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        return cls(**json.loads(text))


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a bearer token."""
    if not is_loopback(host) and not token:
        raise ValueError(f"refusing to listen on {host} without a bearer token: anyone who can reach it could "
                         "use it. Pass --token (or set FACESCAN_TOKEN), or listen on 127.0.0.1.")
