"""Lease heartbeats: keep the claims of running tasks alive while their code runs.

A claim expires ``claim_timeout`` seconds after it was taken or last extended; an
expired running run is failed by the next ``claim_task`` anywhere and retried by
another worker. Checkpoint writes extend the lease, but a single long step (a slow API
call, a model response) writes nothing for a while. One keeper thread per pool, with
a connection of its own, extends every held run every claim_timeout/6, so five
heartbeats in a row may fail (a database restart, a slow statement) before a live run
is reclaimed: a 30 s lease is renewed every 5 s. Each heartbeat is bounded by a
statement timeout, so one that hangs cannot hold up the others; a heartbeat that timed
out or lost the connection is tried again within a second.

When the engine refuses an extension because the task was cancelled (AB001) or the
run already failed (AB002), the keeper stops heartbeating it and tells the task, via
its RunControl, to stop quietly at its next durable operation.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import psycopg

from ..sdk.context import ClaimedTask, RunControl
from ..sdk.errors import (
    CANCELLED_SQLSTATE,
    FAILED_SQLSTATE,
    CancelledTask,
    FailedTask,
    sqlstate,
)
from .connections import (
    Backoff,
    OutageLog,
    close_quietly,
    describe_error,
    is_connection_error,
    open_connection,
)

log = logging.getLogger("absurd_tui.runtime.lease")

MIN_INTERVAL = 0.2
HEARTBEATS_PER_LEASE = 6
RETRY_SOON = 1.0  # seconds before a heartbeat that failed is tried again
QUERY_CANCELED_SQLSTATE = "57014"


@dataclass
class _Held:
    claimed: ClaimedTask
    control: RunControl
    due: float


class LeaseKeeper:
    def __init__(
        self, dsn: str, claim_timeout: int, *, name: str = "absurd-tui lease keeper"
    ) -> None:
        self._dsn = dsn
        self._claim_timeout = claim_timeout
        self._interval = max(MIN_INTERVAL, claim_timeout / HEARTBEATS_PER_LEASE)
        self._name = name
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._outage = OutageLog(log, "The lease keeper")

    @property
    def interval(self) -> float:
        """Seconds between the heartbeats of one held run."""
        return self._interval

    @property
    def enabled(self) -> bool:
        """A claim timeout of 0 means leases never expire, so there is nothing to do."""
        return self._claim_timeout > 0

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def hold(self, claimed: ClaimedTask, control: RunControl) -> None:
        if not self.enabled:
            return
        due = time.monotonic() + self._interval
        with self._changed:
            # The keeper sleeps until the earliest due time; a later one needs no wake-up
            # (a thread switch per claimed task otherwise).
            earliest = min((h.due for h in self._held.values()), default=None)
            self._held[claimed.run_id] = _Held(claimed, control, due)
            if earliest is None or due < earliest:
                self._changed.notify_all()

    def release(self, run_id: str) -> None:
        with self._changed:
            self._held.pop(run_id, None)

    def holding(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def _run(self) -> None:
        backoff = Backoff(self._stop)
        try:
            while not self._stop.is_set():
                due = self._wait_for_due()
                if due is None:
                    continue
                if self._conn is None:
                    try:
                        self._conn = open_connection(self._dsn, "absurd-tui lease keeper")
                        self._conn.execute(
                            "SELECT set_config('statement_timeout', %s, false)",
                            (f"{int(self._interval * 1000)}ms",),
                        )
                    except psycopg.Error as err:
                        self._outage.down(describe_error(err, self._dsn), backoff.next_delay)
                        backoff.wait()
                        continue
                    self._outage.up()
                    backoff.reset()
                for held in due:
                    if not self._extend(held):
                        break
        finally:
            close_quietly(self._conn)

    def _wait_for_due(self) -> list[_Held] | None:
        with self._changed:
            now = time.monotonic()
            due = [h for h in self._held.values() if h.due <= now]
            if due:
                return due
            next_due = min((h.due for h in self._held.values()), default=None)
            self._changed.wait(None if next_due is None else max(0.0, next_due - now))
            return None

    def _extend(self, held: _Held) -> bool:
        """One heartbeat; False when the connection failed (the rest wait for it)."""
        run_id = held.claimed.run_id
        assert self._conn is not None
        try:
            self._conn.execute(
                "SELECT absurd.extend_claim(%s, %s, %s)",
                (held.claimed.queue_name, run_id, self._claim_timeout),
            )
        except psycopg.Error as err:
            if sqlstate(err) == QUERY_CANCELED_SQLSTATE and not self._conn.broken:
                # Our statement timeout (QueryCanceled is an OperationalError, but the
                # connection is fine): try again soon, the lease is ticking.
                log.warning(
                    "Renewing the lease of run %s took longer than %.1f s; trying again",
                    run_id,
                    self._interval,
                )
                with self._changed:
                    held.due = time.monotonic() + min(RETRY_SOON, self._interval)
                return True
            if is_connection_error(err, self._conn):
                self._outage.down(describe_error(err, self._dsn), 0)
                close_quietly(self._conn)
                self._conn = None
                with self._changed:
                    # Retry soon rather than a full interval later: the lease is ticking.
                    held.due = time.monotonic() + min(RETRY_SOON, self._interval)
                return False
            code = sqlstate(err)
            if code == CANCELLED_SQLSTATE:
                log.info(
                    "Task %s was cancelled; telling it to stop at its next step",
                    held.claimed.task_id,
                )
                held.control.stop(CancelledTask("Task has been cancelled"))
            elif code == FAILED_SQLSTATE:
                log.info(
                    "Run %s lost its claim (the engine failed it); telling it to stop quietly",
                    run_id,
                )
                held.control.stop(FailedTask(f'Run "{run_id}" has already failed'))
            else:
                # Not running any more (it completed, suspended or went away between the
                # worker's last write and this heartbeat): nothing left to keep alive.
                log.debug("Stopped heartbeating run %s: %s", run_id, describe_error(err, self._dsn))
            self.release(run_id)
            return True
        with self._changed:
            if run_id in self._held:
                held.due = time.monotonic() + self._interval
        return True
