"""The state policy: which task states each operation applies to, decided once.

The live/terminal split itself is the engine's (``absurd_tui.db.models``); here is
what users may do about it. The console dims its actions with these, the CLI refuses
with these, bulk plans select with these, and the refusal sentences live here too.
"""

from __future__ import annotations

from typing import Literal

from ..db.models import LIVE_STATES, STATES, TERMINAL_STATES, is_live, is_terminal

BulkOperation = Literal["retry", "cancel"]
BULK_OPERATIONS: tuple[BulkOperation, ...] = ("retry", "cancel")

RETRYABLE_STATES = ("failed",)
CANCELLABLE_STATES = LIVE_STATES


def can_retry(state: str) -> bool:
    """Only a failed task can be retried (in place, or as a new task)."""
    return state in RETRYABLE_STATES


def can_cancel(state: str) -> bool:
    """A task can be cancelled until it finishes."""
    return state in CANCELLABLE_STATES


def retry_refusal(state: str) -> str | None:
    """Why a task in ``state`` cannot be retried, or None if it can."""
    if can_retry(state):
        return None
    return f"Only failed tasks can be retried; this one is {state}."


def cancel_refusal(state: str) -> str | None:
    """Why a task in ``state`` cannot be cancelled, or None if it can."""
    if can_cancel(state):
        return None
    return (
        f"This task is {state}: it cannot be cancelled "
        "(only pending, running or sleeping tasks can)."
    )


def operation_states(operation: BulkOperation) -> tuple[str, ...]:
    """Every state ``operation`` applies to."""
    if operation == "retry":
        return RETRYABLE_STATES
    if operation == "cancel":
        return CANCELLABLE_STATES
    raise ValueError(f"unknown bulk operation {operation!r}")


def bulk_states(operation: BulkOperation, state_filter: str | None) -> tuple[str, ...]:
    """The states a bulk ``operation`` touches within a list filtered to
    ``state_filter`` (None: every state); empty when the filter excludes them all."""
    applicable = operation_states(operation)
    if state_filter:
        return (state_filter,) if state_filter in applicable else ()
    return applicable


def states_label(operation: BulkOperation) -> str:
    """The states ``operation`` applies to, in words: "failed", "pending, running or sleeping"."""
    states = operation_states(operation)
    if len(states) == 1:
        return states[0]
    return ", ".join(states[:-1]) + " or " + states[-1]


def bulk_excluded_message(operation: BulkOperation) -> str:
    """What to say when the state filter leaves a bulk operation nothing to touch."""
    kind = "failed" if operation == "retry" else "live"
    return f"Nothing to {operation}: the state filter excludes every {kind} task."


__all__ = [
    "BULK_OPERATIONS",
    "CANCELLABLE_STATES",
    "LIVE_STATES",
    "RETRYABLE_STATES",
    "STATES",
    "TERMINAL_STATES",
    "BulkOperation",
    "bulk_excluded_message",
    "bulk_states",
    "can_cancel",
    "can_retry",
    "cancel_refusal",
    "is_live",
    "is_terminal",
    "operation_states",
    "retry_refusal",
    "states_label",
]
