"""Every ``pixsight serve`` option in one dataclass.

>>> s = ServeSettings(db="/tmp/c.sqlite")
>>> s.uploads_dir.name, s.is_loopback()
('c.sqlite.uploads', True)
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import AnalyzeConfig
from ..core.errors import ConfigError

__all__ = ["ServeSettings"]

_MIB = 1024 * 1024


@dataclass
class ServeSettings:
    """Options of the HTTP server (``pixsight serve --help`` documents each one).

    ``tasks``/``model``/``config_file`` choose what the server's one Analyzer runs, the same
    way ``pixsight analyze --tasks/--model/--config`` do.
    """

    db: Path
    host: str = "127.0.0.1"
    port: int = 8000
    tasks: tuple[str, ...] | None = None
    model: tuple[str, ...] | None = None  # training run folders / registered model names
    config_file: Path | None = None
    load_models: bool = True
    max_upload_bytes: int = 20 * _MIB
    max_batch: int = 16
    batch_wait_ms: float = 5.0
    queue_size: int = 64
    max_batch_files: int = 32
    rate_limit_per_min: float = 600.0
    rate_limit_burst: int = 60
    cors_origins: tuple[str, ...] = ()
    fetch_allow: tuple[str, ...] = ()
    drain_timeout_s: float = 10.0
    drift_interval_s: float = 60.0
    session_hours: float = 12.0
    fetch_timeout_s: float = 10.0
    fetch_deadline_s: float = 30.0  # whole download, beside the per-read fetch_timeout_s
    max_request_line_bytes: int = 8 * 1024  # request target (URL); past it: 414, connection closed
    max_header_bytes: int = 64 * 1024  # request line + headers; past it: 431, connection closed
    #: pixels (megapixels) all decodes in the server may hold at once; None: 2 x the image pixel limit
    decode_budget_mp: float | None = None
    #: how long a decode waits for budget before the request gets 503 + Retry-After
    decode_wait_s: float = 5.0

    def __post_init__(self) -> None:
        self.db = Path(self.db)
        if self.config_file is not None:
            self.config_file = Path(self.config_file)
        if isinstance(self.tasks, str):
            self.tasks = tuple(t.strip() for t in self.tasks.split(",") if t.strip())
        elif self.tasks is not None:
            self.tasks = tuple(self.tasks)
        if isinstance(self.model, str):
            self.model = (self.model,)
        elif self.model is not None:
            self.model = tuple(self.model)
        self.cors_origins = tuple(self.cors_origins)
        self.fetch_allow = tuple(h.lower() for h in self.fetch_allow)
        checks = {
            "port": (self.port, 0, 65535),
            "max_upload_bytes": (self.max_upload_bytes, 1, None),
            "max_batch": (self.max_batch, 1, None),
            "queue_size": (self.queue_size, 1, None),
            "max_batch_files": (self.max_batch_files, 1, None),
            "rate_limit_burst": (self.rate_limit_burst, 1, None),
            "max_request_line_bytes": (self.max_request_line_bytes, 64, None),
            "max_header_bytes": (self.max_header_bytes, 256, None),
        }
        for name, (value, low, high) in checks.items():
            if value < low or (high is not None and value > high):
                raise ConfigError(f"serve setting {name}={value} is out of range")
        if self.decode_budget_mp is not None and not self.decode_budget_mp > 0:
            raise ConfigError(f"serve setting decode_budget_mp must be > 0, got {self.decode_budget_mp}")
        for name in ("batch_wait_ms", "drain_timeout_s", "drift_interval_s", "session_hours", "fetch_timeout_s",
                     "decode_wait_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"serve setting {name} must be >= 0, got {getattr(self, name)}")
        if not self.fetch_deadline_s > 0:
            raise ConfigError(f"serve setting fetch_deadline_s must be > 0, got {self.fetch_deadline_s}")
        if self.rate_limit_per_min <= 0:
            raise ConfigError(f"serve setting rate_limit_per_min must be > 0, got {self.rate_limit_per_min}")

    def replace(self, **changes: Any) -> ServeSettings:
        return dataclasses.replace(self, **changes)

    @property
    def decode_budget_pixels(self) -> int:
        """The decode budget in pixels (default: twice the default image pixel limit)."""
        from ..core.image import ImageLimits

        if self.decode_budget_mp is None:
            return 2 * ImageLimits().max_pixels
        return max(1, int(self.decode_budget_mp * 1_000_000))

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded bytes are kept: ``<db>.uploads``."""
        return self.db.with_name(self.db.name + ".uploads")

    def analyze_config(self) -> AnalyzeConfig:
        """The :class:`AnalyzeConfig` of the server's Analyzer (like ``pixsight analyze``).

        Raises:
            ConfigError: unreadable config file, unknown task or model.
        """
        from ..tasks import SUPPORTED_TASKS, config_with_models

        cfg = AnalyzeConfig.from_file(self.config_file) if self.config_file else AnalyzeConfig()
        if self.tasks is not None:
            unknown = [t for t in self.tasks if t not in SUPPORTED_TASKS]
            if unknown or not self.tasks:
                raise ConfigError(f"unknown task(s) {unknown or list(self.tasks)!r}; "
                                  f"choose from {','.join(SUPPORTED_TASKS)}")
            cfg = cfg.replace(tasks=tuple(dict.fromkeys(self.tasks)))
        return config_with_models(cfg, list(self.model or ()))

    def is_loopback(self) -> bool:
        """True when ``host`` only accepts local connections (127.0.0.0/8, ::1, localhost)."""
        host = self.host.strip("[]")
        if host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
