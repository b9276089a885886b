"""LISTEN for the engine's ``absurd_ready`` notifications and wake idle workers.

The engine notifies (payload: queue name) whenever work becomes claimable now: a
spawn, a retry, an event waking a run. One listener per pool turns that into a wake-up
within milliseconds. Notifications can be lost (the listener reconnecting, for one),
so workers still poll; after every reconnection the listener wakes them once to cover
whatever it missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

import psycopg

from .connections import (
    Backoff,
    OutageLog,
    close_quietly,
    describe_error,
    open_connection,
)

log = logging.getLogger("absurd_tui.runtime.listener")

READY_CHANNEL = "absurd_ready"


class NotifyListener:
    def __init__(
        self,
        dsn: str,
        queues: Iterable[str],
        on_ready: Callable[[str | None], None],
        *,
        check_interval: float = 0.25,
    ) -> None:
        self._dsn = dsn
        self._queues = frozenset(queues)
        self._on_ready = on_ready
        self._check_interval = check_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outage = OutageLog(log, "The notification listener")
        self.connected = threading.Event()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="absurd-tui listener", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = Backoff(self._stop)
        while not self._stop.is_set():
            conn = None
            try:
                conn = open_connection(self._dsn, "absurd-tui listener")
                conn.execute(f"LISTEN {READY_CHANNEL}")
                self._outage.up()
                backoff.reset()
                self.connected.set()
                # Anything that became ready while we were not listening.
                self._on_ready(None)
                while not self._stop.is_set():
                    for notify in conn.notifies(timeout=self._check_interval):
                        if notify.payload in self._queues:
                            self._on_ready(notify.payload)
            except psycopg.Error as err:
                self.connected.clear()
                if self._stop.is_set():
                    break
                self._outage.down(describe_error(err, self._dsn), backoff.next_delay)
                backoff.wait()
            finally:
                close_quietly(conn)
