"""Opening the database when it may not be up yet: a worker started before its database
(a host booting, a container orchestrator starting both at once) waits for it instead of
exiting, exactly as a running worker rides out a restart.

The wait is logged once when it begins, then at growing intervals (10 s, 30 s, 1, 2, 5
and 10 minutes, then every 10 minutes), and once when the database answers. Only an
unreachable database is waited for: a missing schema or an unparsable connection string
will not fix itself and is raised at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..config import Settings
from . import dsn as dsn_text
from .connect import Database, open_database
from .errors import DatabaseUnavailable

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 10.0
REPORT_AFTER_SECONDS = (10, 30, 60, 120, 300, 600)
REPORT_EVERY_SECONDS = 600


def open_database_waiting(
    settings: Settings,
    *,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    logger: logging.Logger = log,
    opener: Callable[[Settings], Database] = open_database,
) -> Database | None:
    """``open_database(settings)``, retried with capped backoff while the database cannot
    be reached. ``timeout`` seconds (None: no limit; 0: a single attempt) bound the wait,
    after which the last DatabaseUnavailable is raised. Returns None if ``stop`` is set
    while waiting."""
    stop = stop if stop is not None else threading.Event()
    started = time.monotonic()
    delay = FIRST_RETRY_SECONDS
    reports = iter(REPORT_AFTER_SECONDS)
    next_report: float | None = None
    where = dsn_text.describe(settings.dsn)
    while True:
        try:
            database = opener(settings)
        except DatabaseUnavailable as exc:
            waited = time.monotonic() - started
            if timeout is not None and waited >= timeout:
                if next_report is not None:
                    logger.error(
                        "Gave up waiting for the database at %s after %s", where, _span(waited)
                    )
                raise
            if next_report is None:
                logger.warning(
                    "The database at %s cannot be reached yet; waiting for it (retrying with "
                    "backoff up to %g s%s). %s",
                    where,
                    MAX_RETRY_SECONDS,
                    f", giving up after {_span(timeout)}" if timeout is not None else "",
                    exc,
                )
                next_report = float(next(reports))
            elif waited >= next_report:
                logger.warning(
                    "Still waiting for the database at %s after %s. %s", where, _span(waited), exc
                )
                next_report = float(next(reports, next_report + REPORT_EVERY_SECONDS))
            pause = delay if timeout is None else min(delay, max(timeout - waited, 0.0))
            if stop.wait(pause):
                return None
            delay = min(delay * 2, MAX_RETRY_SECONDS)
            continue
        if next_report is not None:
            logger.info(
                "The database at %s answered after %s", where, _span(time.monotonic() - started)
            )
        return database


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
