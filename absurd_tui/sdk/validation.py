"""The rules for what may be handed to the engine, checked before any SQL runs.

This is the one place these rules live: the SDK applies them, and the CLI and the
console reach them through the SDK, so the same bad value gets the same words
everywhere. Every refusal is an ``InvalidInput`` (a ``ValueError``) whose message names
the field and says what is expected; nothing has changed when it is raised.

The retry-strategy rules are upstream Absurd 0.5's (its SQLSTATE AB003), with unknown
keys refused as well, since a misspelt key would otherwise be silently ignored.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from collections.abc import Mapping
from typing import Any

from .errors import InvalidInput

MAX_QUEUE_NAME_BYTES = 57  # so the engine's longest index name r_<q>_sai fits 63 bytes
MAX_INT4 = 2**31 - 1  # max_attempts is an integer column
MAX_BIGINT = 2**63 - 1

RETRY_KINDS = ("none", "fixed", "exponential")
RETRY_STRATEGY_KEYS = ("kind", "base_seconds", "factor", "max_seconds")
MAX_RETRY_SECONDS = 86_400
CANCELLATION_KEYS = ("max_duration", "max_delay")

# What this SDK spawns with when the caller names no strategy: 2 s, 4 s, 8 s ... capped
# at 10 minutes. The engine's own default for a task without a strategy stays an
# immediate retry, so the official SDKs, which send none, behave as upstream.
DEFAULT_RETRY_STRATEGY: Mapping[str, Any] = {
    "kind": "exponential",
    "base_seconds": 2,
    "factor": 2,
    "max_seconds": 600,
}

# Params, headers, event payloads, step and task results and failure reasons: at most
# this many bytes of JSON text each (Temporal refuses payloads over 2 MB for the same
# reason: one huge row slows every reader of the queue). The engine enforces the same
# default for other clients; raise both together (see the README).
DEFAULT_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024
MAX_PAYLOAD_ENV = "ABSURD_MAX_PAYLOAD_BYTES"

_SURROGATE = re.compile("[\ud800-\udfff]")


# -- text ------------------------------------------------------------------------------


def unstorable_text(text: str) -> str | None:
    """Why PostgreSQL cannot store ``text`` (a NUL, a lone surrogate), or None."""
    if "\x00" in text:
        return "contains a NUL character (\\x00), which PostgreSQL cannot store"
    match = _SURROGATE.search(text)
    if match is not None:
        return (
            f"contains a lone surrogate (\\u{ord(match.group()):04x}), which is not valid "
            "Unicode and cannot be stored as UTF-8"
        )
    return None


def validate_text(value: Any, field: str, *, allow_empty: bool = True) -> str:
    """A text field: a string PostgreSQL can store."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, not {_kind(value)}", field=field)
    if not allow_empty and not value.strip():
        raise InvalidInput(f"{field} must be a non-empty string", field=field)
    problem = unstorable_text(value)
    if problem is not None:
        raise InvalidInput(f"{field} {problem}", field=field)
    return value


def validate_queue_name(queue_name: Any) -> str:
    if queue_name is None or queue_name == "":
        raise InvalidInput("Queue name must be provided", field="queue")
    if not isinstance(queue_name, str):
        raise InvalidInput(
            f"Queue name must be a string, not {type(queue_name).__name__}", field="queue"
        )
    validate_text(queue_name, "the queue name")
    if len(queue_name.encode("utf-8")) > MAX_QUEUE_NAME_BYTES:
        raise InvalidInput(
            f'Queue name "{queue_name}" is too long (max {MAX_QUEUE_NAME_BYTES} bytes).',
            field="queue",
        )
    return queue_name


def validate_event_name(event_name: Any) -> str:
    if not isinstance(event_name, str) or not event_name:
        raise InvalidInput("event_name must be a non-empty string", field="event_name")
    return validate_text(event_name, "event_name")


def validate_task_name(task_name: Any) -> str:
    if not isinstance(task_name, str) or not task_name.strip():
        raise InvalidInput("task_name must be a non-empty string", field="task_name")
    return validate_text(task_name, "task_name")


def parse_uuid(value: Any, what: str = "task id") -> uuid.UUID:
    """A task or run id given as a UUID or its text form."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value.strip())
        except ValueError:
            pass
    raise InvalidInput(f"{value!r} is not a valid {what} (expected a UUID)", field=what)


# -- numbers and options ---------------------------------------------------------------


def validate_max_attempts(value: Any, field: str = "max_attempts") -> int:
    """A whole number of attempts from 1 to 2,147,483,647."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(
            f"{field} must be a whole number from 1 to {MAX_INT4:,}, not {_kind(value)}",
            field=field,
        )
    if not 1 <= value <= MAX_INT4:
        raise InvalidInput(
            f"{field} must be a whole number from 1 to {MAX_INT4:,}, not {value}", field=field
        )
    return value


def validate_json_object(value: Any, field: str) -> dict[str, Any]:
    """A JSON object (a mapping with string keys) where the engine requires one."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} must be a JSON object, not {_kind(value)}", field=field)
    return dict(value)


def validate_params(value: Any, field: str = "params") -> dict[str, Any]:
    """Params given by the CLI or the console: a JSON object, as handlers read them.
    (The SDK itself takes any JSON, as the official SDK does.)"""
    if not isinstance(value, Mapping):
        raise InvalidInput(
            f"{field} must be a JSON object (a task gets its params as one, e.g. "
            f'{{"n": 3}}), not {_kind(value)}',
            field=field,
        )
    return dict(value)


def validate_retry_strategy(value: Any, field: str = "retry_strategy") -> dict[str, Any]:
    """A retry strategy: ``kind`` none/fixed/exponential; ``base_seconds`` and
    ``max_seconds`` from 0 to 86,400; ``factor`` a finite non-negative number."""
    strategy = validate_json_object(value, field)
    unknown = [key for key in strategy if key not in RETRY_STRATEGY_KEYS]
    if unknown:
        raise InvalidInput(
            f"{field} has unknown key(s) {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(RETRY_STRATEGY_KEYS)}",
            field=field,
        )
    kind = strategy.get("kind")
    if kind not in RETRY_KINDS:
        raise InvalidInput(
            f"{field}.kind must be one of {', '.join(map(repr, RETRY_KINDS))}, not "
            f"{_shown(kind) if 'kind' in strategy else 'missing'}",
            field=f"{field}.kind",
        )
    for key in ("base_seconds", "max_seconds"):
        if key in strategy:
            _number(strategy[key], f"{field}.{key}", maximum=MAX_RETRY_SECONDS)
    if "factor" in strategy:
        _number(strategy["factor"], f"{field}.factor", maximum=None)
    return strategy


def validate_cancellation(value: Any, field: str = "cancellation") -> dict[str, Any] | None:
    """A cancellation policy: ``max_delay`` and ``max_duration`` in whole seconds >= 0.
    An empty policy means none (None)."""
    policy = validate_json_object(value, field)
    unknown = [key for key in policy if key not in CANCELLATION_KEYS]
    if unknown:
        raise InvalidInput(
            f"{field} has unknown key(s) {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(CANCELLATION_KEYS)}",
            field=field,
        )
    for key, seconds in policy.items():
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int)
            or not (0 <= seconds <= MAX_BIGINT)
        ):
            raise InvalidInput(
                f"{field}.{key} must be a whole number of seconds >= 0, not {_shown(seconds)}",
                field=f"{field}.{key}",
            )
    return policy or None


def _number(value: Any, field: str, *, maximum: float | None) -> float:
    expected = f"a number from 0 to {maximum:,}" if maximum is not None else "a finite number >= 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{field} must be {expected}, not {_shown(value)}", field=field)
    if not math.isfinite(value) or value < 0 or (maximum is not None and value > maximum):
        raise InvalidInput(f"{field} must be {expected}, not {_shown(value)}", field=field)
    return float(value)


# -- sizes -----------------------------------------------------------------------------


def max_payload_bytes() -> int:
    """The configured size limit: ``ABSURD_MAX_PAYLOAD_BYTES``, else the default."""
    configured = os.environ.get(MAX_PAYLOAD_ENV, "").strip()
    if not configured:
        return DEFAULT_MAX_PAYLOAD_BYTES
    try:
        limit = int(configured)
    except ValueError:
        limit = 0
    if limit < 1:
        raise InvalidInput(
            f"{MAX_PAYLOAD_ENV} must be a whole number of bytes >= 1, not {configured!r}",
            field=MAX_PAYLOAD_ENV,
        )
    return limit


def oversize(text: str, limit: int) -> int | None:
    """The UTF-8 size of ``text`` if it is over ``limit`` bytes, else None."""
    if len(text) * 4 <= limit:  # no character takes more than 4 bytes
        return None
    size = len(text.encode("utf-8", "surrogatepass"))
    return size if size > limit else None


def too_large(field: str, size: int, limit: int) -> str:
    """The one wording of a size refusal (the engine's says the same)."""
    return f"{field} is {_bytes(size)}, over the limit of {_bytes(limit)} ({MAX_PAYLOAD_ENV})"


def _bytes(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MiB ({count:,} bytes)"
    if count >= 1024:
        return f"{count / 1024:.1f} KiB ({count:,} bytes)"
    return f"{count:,} bytes"


# -- wording ---------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        tuple: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
