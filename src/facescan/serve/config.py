"""What ``facescan serve`` can be told, and the rule for where it may listen."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field

LOOPBACK_NAMES = ("localhost", "ip6-localhost")
#: Host header values always accepted: the names of this machine's loopback interface.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


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
    body_timeout: float = 10.0  # a request body not fully received by then: 408, connection closed
    header_timeout: float = 10.0  # request line + headers not received by then: connection closed
    max_batch: int = 16
    batch_wait_ms: float = 5.0
    max_queue: int = 64
    cors_origins: list[str] = field(default_factory=list)
    allowed_hosts: list[str] = field(default_factory=list)  # Host header values beyond loopback; "*": any
    # clips on POST /v1/analyze (see facescan.serve.clips)
    max_video_mb: float | None = None  # a clip's upload limit; None: the same as max_upload_mb
    max_video_seconds: float = 60.0  # a clip's duration (declared, and checked again as it is decoded)
    max_video_frames: int = 300  # frames analyzed per clip (the default sampling is lowered to fit)
    video_fps: float = 5.0  # frames analyzed per second of video unless the request asks otherwise
    video_timeout: float = 120.0  # seconds a clip may wait and be analyzed (503 after; the analysis stops)
    video_jobs: int = 1  # clips analyzed at once (each on its own thread; frames are CPU-heavy)
    max_video_queue: int = 4  # clips waiting for a turn before 429

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def video_upload_mb(self) -> float:
        """A clip's upload limit in MB (``max_video_mb``, or the photos' limit when unset)."""
        return self.max_upload_mb if self.max_video_mb is None else self.max_video_mb

    @property
    def video_upload_bytes(self) -> int:
        return int(self.video_upload_mb * 1024 * 1024)

    def body_limit_mb(self, method: str, path: str) -> float:
        """The most a request body may carry: only ``POST /v1/analyze`` takes clips (the larger of both limits)."""
        if method == "POST" and path == "/v1/analyze":
            return max(self.max_upload_mb, self.video_upload_mb)
        return self.max_upload_mb

    def body_limit_bytes(self, method: str, path: str) -> int:
        return int(self.body_limit_mb(method, path) * 1024 * 1024)

    @property
    def trusted_hosts(self) -> list[str]:
        """Host header values served: the loopback names, the bind address and ``allowed_hosts``."""
        bind = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal, as a Host header writes it
        return list(dict.fromkeys([*LOOPBACK_HOSTS, bind.lower(), *(h.lower() for h in self.allowed_hosts)]))

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
