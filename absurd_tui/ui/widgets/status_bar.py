"""The bottom status line: database, connection, refresh age, workers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from ...agent.sandbox import SandboxStatus
from ...text import clean, duration

# How the code interpreter's sandbox is shown while it is not simply ready.
_SANDBOX_NOTES = {
    "warming": "$warning",
    "failed": "$error",
    "missing": "$text-muted",
}


@dataclass(frozen=True)
class ConnectionState:
    connected: bool = True
    error: str | None = None
    """Why the last attempt failed (already free of passwords)."""
    retry_at: float | None = None
    """Monotonic time of the next attempt while disconnected."""
    last_refresh: float | None = None
    """Monotonic time of the last successful refresh."""


@dataclass(frozen=True)
class WorkersState:
    embedded: bool = False
    total: int = 0
    busy: int = 0
    paused: bool = False
    disconnected: int = 0


class StatusBar(Widget):
    """One line; re-rendered every second so the ages stay true."""

    DEFAULT_CSS = """
    StatusBar { height: 1; }
    """

    connection: reactive[ConnectionState] = reactive(ConnectionState, always_update=True)
    worker_state: reactive[WorkersState] = reactive(WorkersState, always_update=True)
    sandbox: reactive[SandboxStatus | None] = reactive(None, always_update=True)
    notice: reactive[str | None] = reactive(None)
    """Shown first, in bold (what quitting waits for)."""
    log_warnings: reactive[int] = reactive(0)
    """Warnings logged since the user last opened the log panel."""

    def __init__(self, label: str, clock: Callable[[], float], **kwargs):
        super().__init__(**kwargs)
        self.label = label
        self._clock = clock

    def on_mount(self) -> None:
        # A bar mounted later (on a pushed screen) starts from the app's current state.
        self.connection = self.app.connection
        self.worker_state = self.app.worker_state()
        self.sandbox = getattr(self.app, "sandbox_status", None)
        self.log_warnings = self.app.unseen_warnings()
        self.notice = self.app.notice
        self.set_interval(1.0, self.refresh)

    def watch_connection(self, state: ConnectionState) -> None:
        self.set_class(not state.connected, "-disconnected")

    def render(self) -> Content:
        now = self._clock()
        state = self.connection
        parts: list[str | tuple[str, str]] = [(" ", "")]
        if self.notice:
            parts.append((clean(self.notice, single_line=True) + "  ", "bold $warning"))
        parts += [
            (clean(self.label, single_line=True), "bold"),
        ]
        if state.connected:
            parts += [("  ●", "$success"), (" connected", "")]
        else:
            retry = ""
            if state.retry_at is not None:
                retry = f", retrying in {max(0, round(state.retry_at - now))} s"
            parts += [("  ✖", "$error"), (f" disconnected{retry}", "bold $error")]
        # Under 100 columns the line keeps what matters: the connection, the workers and
        # any notice; the age of the last read is left out.
        narrow = 0 < self.size.width < 100
        if narrow:
            pass
        elif state.last_refresh is not None:
            parts.append((f"  refreshed {duration(now - state.last_refresh)} ago", "$text-muted"))
        else:
            parts.append(("  not refreshed yet", "$text-muted"))
        workers = self.worker_state
        if workers.embedded:
            idle = workers.total - workers.busy
            text = (
                f"  {workers.busy}/{workers.total} busy"
                if narrow
                else f"  workers {workers.busy} busy / {idle} idle"
            )
            parts.append((text, ""))
            if workers.paused:
                parts.append(("  paused", "bold $warning"))
            if workers.disconnected:
                parts.append((f"  {workers.disconnected} reconnecting", "$warning"))
        else:
            parts.append(("  no workers" if narrow else "  no embedded workers", "$text-muted"))
        sandbox = self.sandbox
        if sandbox is not None and sandbox.state in _SANDBOX_NOTES:
            parts.append(
                (f"  {clean(sandbox.message, single_line=True)}", _SANDBOX_NOTES[sandbox.state])
            )
        if self.log_warnings:
            noun = "warning" if self.log_warnings == 1 else "warnings"
            text = (
                f"  ▲ {self.log_warnings}: l"
                if narrow
                else f"  ▲ {self.log_warnings} {noun}: press l"
            )
            parts.append((text, "bold $warning"))
        return Content.assemble(*parts)
