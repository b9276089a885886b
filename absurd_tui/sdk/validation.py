"""Client-side checks that the engine would otherwise answer with a vaguer error."""

from __future__ import annotations

import uuid
from typing import Any

MAX_QUEUE_NAME_BYTES = 57  # so the engine's longest index name r_<q>_sai fits 63 bytes


def validate_queue_name(queue_name: Any) -> str:
    if queue_name is None or queue_name == "":
        raise ValueError("Queue name must be provided")
    if not isinstance(queue_name, str):
        raise ValueError(f"Queue name must be a string, not {type(queue_name).__name__}")
    if len(queue_name.encode("utf-8")) > MAX_QUEUE_NAME_BYTES:
        raise ValueError(
            f'Queue name "{queue_name}" is too long (max {MAX_QUEUE_NAME_BYTES} bytes).'
        )
    return queue_name


def parse_uuid(value: Any, what: str = "task id") -> uuid.UUID:
    """A task or run id given as a UUID or its text form."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a valid {what} (expected a UUID)")


def validate_event_name(event_name: Any) -> str:
    if not isinstance(event_name, str) or not event_name:
        raise ValueError("event_name must be a non-empty string")
    return event_name
