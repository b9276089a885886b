"""Log records kept for the console's log panel instead of being written to its terminal.

While the console runs, the terminal belongs to Textual: a line written to stderr lands
over the screen and stays there until a repaint. ``Logbook`` is a logging handler that
keeps the newest records (formatted by the formatter the CLI configured, so passwords
stay scrubbed) in memory and tells one listener, from whatever thread logged, that
something arrived. ``captured`` swaps it in for the root logger's handlers while the
console runs and puts them back afterwards, so a warning logged after the screen is gone
reaches stderr again.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

KEEP = 2_000
"""Records kept for the panel; older ones are dropped (the panel says how many)."""


@dataclass(frozen=True)
class Entry:
    seq: int
    """1, 2, 3 ... in arrival order: the panel appends what it has not shown yet."""
    level: int
    text: str
    """Formatted, possibly several lines (a traceback)."""


class Logbook(logging.Handler):
    def __init__(self, keep: int = KEEP, formatter: logging.Formatter | None = None):
        super().__init__()
        self._entries: deque[Entry] = deque(maxlen=keep)
        self._seq = 0
        self._warnings = 0
        self._lock_entries = threading.Lock()
        self._listener: Callable[[], None] | None = None
        self.setFormatter(formatter or logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._lock_entries:
            self._seq += 1
            if record.levelno >= logging.WARNING:
                self._warnings += 1
            self._entries.append(Entry(self._seq, record.levelno, text))
            listener = self._listener
        if listener is not None:
            listener()

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener()`` (from the logging thread) after each new record."""
        with self._lock_entries:
            self._listener = listener

    def entries(self, after: int = 0) -> list[Entry]:
        with self._lock_entries:
            return [entry for entry in self._entries if entry.seq > after]

    @property
    def last_seq(self) -> int:
        with self._lock_entries:
            return self._seq

    @property
    def warnings(self) -> int:
        """Warnings and errors logged so far (including any no longer kept)."""
        with self._lock_entries:
            return self._warnings

    @property
    def dropped(self) -> int:
        with self._lock_entries:
            return self._seq - len(self._entries)


@contextmanager
def captured(logbook: Logbook) -> Iterator[Logbook]:
    """Route the root logger (and Python warnings) to ``logbook`` for the duration."""
    root = logging.getLogger()
    previous = root.handlers[:]
    if previous and previous[0].formatter is not None:
        logbook.setFormatter(previous[0].formatter)
    root.handlers[:] = [logbook]
    logging.captureWarnings(True)
    try:
        yield logbook
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = previous
