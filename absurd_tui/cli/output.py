"""Turning results into text: tables, JSON, notes on stderr.

User data goes through ``absurd_tui.text.clean``, exactly as the console shows it:
control characters and bidi overrides become visible escapes, so nothing a task
stored can style, move the cursor or retitle the terminal. JSON output escapes the
same characters as ``\\uXXXX`` (``json.dumps`` already does the C0 range).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .. import text as screen
from .session import EXIT_OK, operation_failed

if TYPE_CHECKING:
    from ..ops import Outcome

_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def plain(text: Any, *, multiline: bool = False) -> str:
    """User data made inert for a terminal (one line unless ``multiline``)."""
    return screen.clean(text, single_line=not multiline)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Aligned plain-text columns, one row per line: greppable, never truncated."""
    from rich.cells import cell_len

    cells = [[cell(value) for value in row] for row in rows]
    widths = [cell_len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], cell_len(text))

    def line(values: Sequence[str]) -> str:
        padded = (v + " " * (w - cell_len(v)) for v, w in zip(values, widths, strict=False))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(row) for row in cells)])


def cell(value: Any) -> str:
    if isinstance(value, datetime):
        value = screen.timestamp(value)
    text = plain(value)
    return text if text else "-"


def ago(moment: datetime | None, now: datetime) -> str:
    return f"{screen.age(moment, now)} ago" if moment is not None else "-"


def indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.split("\n"))


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def print_json(value: Any) -> None:
    text = json.dumps(value, default=_to_json, ensure_ascii=False, indent=2)
    # Only possible inside JSON strings, so escaping them keeps the document valid.
    print(_UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def pretty_json(value: Any) -> str:
    return plain(screen.pretty(value), multiline=True)


def report(outcome: Outcome) -> int:
    """Print what an operation did, in the words every interface uses; one that did
    not do what was asked is a failed operation (exit 1), said on stderr."""
    if not outcome.ok:
        raise operation_failed(outcome.message)
    print(outcome.message)
    return EXIT_OK


def note(message: str) -> None:
    """A remark for the human on stderr, kept out of stdout that scripts capture."""
    print(message, file=sys.stderr)


def confirm(question: str) -> bool:
    """Ask on stderr, read the answer from stdin; anything but yes is no."""
    print(question, end="", file=sys.stderr, flush=True)
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
