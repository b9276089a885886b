"""Turning values into text for the screen.

User data (task names, params, payloads, error messages, worker ids) always goes
through ``plain``: it becomes a ``rich.text.Text`` (never parsed as markup) with every
control character shown as an escape (``\\x1b``), so nothing a task writes can style,
link, move the cursor or otherwise drive the terminal.
"""

from __future__ import annotations

import json
import re
import shlex
from datetime import datetime, timedelta
from typing import Any

from rich.text import Text

from .db.models import Count, TaskFilter

PREVIEW_CHARS = 120

# C0 controls except tab and newline, DEL, C1 controls; plus bidi overrides, which can
# make text read differently from what it is.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: Any, *, single_line: bool = False) -> str:
    text = "" if value is None else str(value)
    text = _CONTROL.sub(_escape, text)
    if single_line:
        text = text.replace("\t", " ").replace("\n", "⏎")
    return text


def plain(
    value: Any, style: str = "", *, single_line: bool = True, limit: int | None = None
) -> Text:
    """User data as inert text: no markup, no escape sequences; cut to ``limit`` chars."""
    text = clean(value, single_line=single_line)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return Text(text, style=style, end="", no_wrap=single_line)


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """One line of JSON for tables. Control characters are the renderer's business."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty(value: Any) -> str:
    """Indented JSON for detail views."""
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def count_label(count: Count) -> str:
    """A count as screens show it: "1,234", "10,000+" (capped), "~1.2M" (estimated)."""
    if count.capped:
        return f"{count.value:,}+"
    if count.estimated:
        return "~" + _compact(count.value)
    return f"{count.value:,}"


def _compact(n: int) -> str:
    if n < 10_000:
        return f"{n:,}"
    if n < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.1f}M"


def filter_label(flt: TaskFilter) -> str:
    """A task filter in words: "queue default, state failed, name fetch*"."""
    parts = [f"queue {flt.queue}" if flt.queue else "all queues"]
    if flt.state:
        parts.append(f"state {flt.state}")
    if flt.name:
        parts.append(f"name {flt.name}*")
    if flt.search:
        parts.append(f"matching {flt.search}")
    return ", ".join(parts)


def json_preview(value: Any, limit: int = 80) -> Text:
    return plain(preview(value, limit))


def json_block(value: Any) -> Text:
    return plain(pretty(value), single_line=False)


def age(then: datetime | None, now: datetime) -> str:
    """A short, coarse duration such as ``4s``, ``12m``, ``3h``, ``2d``."""
    if then is None:
        return ""
    return duration((now - then).total_seconds())


def until(then: datetime | None, now: datetime) -> str:
    if then is None:
        return ""
    seconds = (then - now).total_seconds()
    if seconds < 0:
        return "overdue " + duration(-seconds)
    return "in " + duration(seconds)


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h{(seconds % 3600) // 60:02.0f}m"
    return f"{seconds // 86400:.0f}d{(seconds % 86400) // 3600:.0f}h"


def timestamp(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.year > 9000:
        return "never"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def attempts(attempts: int, max_attempts: int | None) -> str:
    return f"{attempts}/{max_attempts if max_attempts is not None else '∞'}"


def is_far_future(value: datetime | None, now: datetime) -> bool:
    return value is not None and value - now > timedelta(days=365 * 100)


# Task and run states take the theme's colours (resolved from its variables, so every
# theme looks right): waiting to start in the warning colour, running in the primary
# colour and bold, parked (sleeping) in italics, then success, failure, muted.
STATE_VARIABLES = {
    "pending": "warning",
    "running": "primary",
    "sleeping": "foreground",
    "completed": "success",
    "failed": "error",
    "cancelled": "foreground-muted",
    "timed_out": "warning",
    "committed": "foreground",
}


def state_text(state: str, variables: dict[str, str]) -> Text:
    colour = variables.get(STATE_VARIABLES.get(state, "foreground"), "")
    emphasis = {"running": "bold ", "failed": "bold ", "sleeping": "italic "}.get(state, "")
    return plain(state, f"{emphasis}{colour}".strip())


def muted(text: str, variables: dict[str, str]) -> Text:
    return plain(text, variables.get("foreground-muted", ""))


def quote(text: Any) -> str:
    """A name inside a sentence, quoted and inert: ``"my queue"``."""
    return '"' + clean(text, single_line=True).replace('"', '\\"') + '"'


def shell_word(text: Any) -> str:
    """A value as one word of a shell command in a hint, quoted if it needs it."""
    return shlex.quote(clean(text, single_line=True))
