"""Views that refresh from the database in a thread worker.

The contract of a polling view:
* ``poll()`` (UI thread) captures the view's parameters (filter, page ...) and starts
  one thread worker, unless one is already in flight: a tick is then skipped, so a
  slow query never piles up behind itself.
* ``fetch(params)`` (worker thread) does the I/O and returns one immutable snapshot.
  It must not touch widgets.
* ``apply(snapshot)`` (UI thread) shows it, inside one ``batch_update``.
If the parameters changed while the query ran, the stale snapshot is dropped and the
view polls again at once.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from textual import work
from textual.containers import Vertical
from textual.message import Message
from textual.worker import get_current_worker

from ... import ops
from ...db.dsn import mask_passwords
from ...db.errors import DatabaseError, primary_message

CLOCK_EVERY = 5.0
"""Seconds between redraws of ages while nothing changes: a table repaints every
visible cell when one changes, and ages of fresh rows change every second."""


class PollDone(Message):
    def __init__(self, params: Any, result: Any = None, error: BaseException | None = None):
        super().__init__()
        self.params = params
        self.result = result
        self.error = error


class PollingView(Vertical):
    """Base class; subclasses implement ``poll_params``, ``fetch`` and ``apply``."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.in_flight = False
        self.loaded = False
        self._bindings_key: Any = None
        self.polled_at: float | None = None
        """Monotonic time the last poll started (None before the first)."""
        self.snapshot: Any = None
        """The last snapshot applied, for redrawing the clock without a read."""
        self.drawn_at = 0.0

    def poll_params(self) -> Any:
        return None

    def fetch(self, params: Any) -> Any:
        raise NotImplementedError

    def apply(self, snapshot: Any) -> None:
        raise NotImplementedError

    def same_params(self, a: Any, b: Any) -> bool:
        return a == b

    def refresh_bindings_for(self, node: Any, scope: str) -> None:
        """Refresh the footer only if an action of ``scope`` changed whether it applies:
        the footer rebuilds its keys on every refresh, which is not free once a second."""
        from ..actions import specs

        key = tuple(node.check_action(spec.action, ()) for spec in specs(scope))
        if key != self._bindings_key:
            self._bindings_key = key
            self.screen.refresh_bindings()

    def show_error(self, message: str | None) -> None:
        """Show (or with None, clear) a read error that is not a lost connection."""

    def poll(self) -> bool:
        """Start a refresh unless one is running; True if one was started."""
        if self.in_flight or not self.is_mounted:
            return False
        self.in_flight = True
        self.polled_at = time.monotonic()
        self._fetch_in_thread(self.poll_params())
        return True

    def tick(self, fallback: float) -> None:
        """A timer tick: read again if the last read is ``fallback`` seconds old (a change
        announced by NOTIFY polls at once, through ``poll``); otherwise only redraw what
        depends on the clock, without I/O."""
        now = time.monotonic()
        if self.polled_at is None or now - self.polled_at >= fallback:
            self.poll()
        elif (
            self.snapshot is not None and not self.in_flight and now - self.drawn_at >= CLOCK_EVERY
        ):
            self.drawn_at = now
            with self.app.batch_update():
                self.redraw_clock(self.snapshot)

    def redraw_clock(self, snapshot: Any) -> None:
        """Redraw ages and countdowns from ``snapshot`` (the table diffs keep it cheap)."""

    @work(thread=True, group="poll")
    def _fetch_in_thread(self, params: Any) -> None:
        worker = get_current_worker()
        try:
            message = PollDone(params, result=self.fetch(params))
        except (DatabaseError, psycopg.Error) as exc:
            # Reported to the user by the UI thread (status bar or the view's error
            # line); anything else is a bug and crashes loudly.
            message = PollDone(params, error=exc)
        if not worker.is_cancelled:
            self.post_message(message)

    def on_poll_done(self, message: PollDone) -> None:
        message.stop()
        self.in_flight = False
        app = self.app
        if message.error is not None:
            if ops.kind_of(message.error) is ops.ErrorKind.CONNECTION_LOST:
                app.report_unavailable(message.error)
            else:
                # A timeout, a conflict or a refusal: the connection is fine, so the
                # status bar stays connected and the view says what went wrong.
                app.report_success()
                self.show_error(error_text(message.error))
            return
        app.report_success()
        if not self.same_params(message.params, self.poll_params()):
            self.poll()
            return
        self.show_error(None)
        with app.batch_update():
            self.apply(message.result)
        self.snapshot = message.result
        self.drawn_at = time.monotonic()
        self.loaded = True


def error_text(exc: BaseException) -> str:
    """An error's one-line message (the one rule in db.errors), passwords masked."""
    return mask_passwords(primary_message(exc))
