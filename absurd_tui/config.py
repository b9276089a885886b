"""Settings: where the database is, where embedded data lives, how often to poll.

DSN resolution order: an explicit ``--dsn``, then ``ABSURD_DATABASE_URL``, else the
embedded PostgreSQL server kept in the data directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

APP_NAME = "absurd-tui"
DSN_ENV = "ABSURD_DATABASE_URL"
DATA_DIR_ENV = "ABSURD_TUI_DATA_DIR"
DEFAULT_QUEUE = "default"


def default_data_dir() -> Path:
    """The per-user data directory that holds the embedded server's files.

    pgserver runs PostgreSQL as a dedicated ``pgserver`` system user when started as
    root and opens up every parent of the data directory so that user can reach it;
    under root we therefore use /var/lib, whose parents are already world-traversable,
    instead of turning a private 0700 home directory into 0755.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib") / APP_NAME
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True)
class Settings:
    dsn: str | None = None
    """An explicit server; None means the embedded server in ``data_dir``."""
    data_dir: Path = field(default_factory=default_data_dir)
    refresh_interval: float = 1.0
    """Seconds between UI refreshes when no notification arrives."""
    poll_interval: float = 1.0
    """Seconds between worker claim polls when no notification arrives."""

    def __post_init__(self) -> None:
        # Accept str paths from callers; keep the field a resolved Path.
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())

    @property
    def embedded(self) -> bool:
        return self.dsn is None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"


def resolve_settings(
    dsn: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: float,
) -> Settings:
    env = os.environ if env is None else env
    chosen_dsn = dsn or env.get(DSN_ENV) or None
    chosen_dir = data_dir or env.get(DATA_DIR_ENV) or None
    kwargs: dict = dict(overrides)
    if chosen_dir:
        kwargs["data_dir"] = Path(chosen_dir).expanduser().resolve()
    return Settings(dsn=chosen_dsn, **kwargs)
