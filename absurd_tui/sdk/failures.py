"""Recording a handler's failure so that its cause is never lost.

A failure reason is built from the exception, made storable (text PostgreSQL cannot
store is escaped, and the fields so treated are listed under ``"escaped"``) and cut to
the size limit (``"truncated": true``). Recording it is retried when the database
refuses for a passing reason; if it still cannot be stored, the run is failed with a
reason that says "the failure reason could not be stored" and names the exception's
type. Leaving the run to its lease expiry would turn the real error into an anonymous
``$ClaimTimeout`` a whole lease later.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from typing import Any

import psycopg

from . import jsonvalue, validation
from .errors import NonRetryableError, sqlstate, task_state_errors

log = logging.getLogger(__name__)

MAX_TRACEBACK_CHARS = 64_000  # a runaway recursion must not bloat every failure row
RECORD_ATTEMPTS = 3
RECORD_RETRY_DELAYS = (0.1, 0.5)  # seconds before the second and third attempt
UNSTORED_MESSAGE = "the failure reason could not be stored"

_FAIL_RUN_SQL = "SELECT absurd.fail_run(%s, %s, %s, %s)"


def serialize_error(err: BaseException) -> dict[str, Any]:
    """The failure_reason JSON: the official SDK's name/message/traceback, plus type."""
    kind = type(err)
    formatted = (
        "".join(traceback.format_exception(kind, err, err.__traceback__))
        if err.__traceback__ is not None
        else None
    )
    if formatted is not None and len(formatted) > MAX_TRACEBACK_CHARS:
        formatted = "...(truncated)...\n" + formatted[-MAX_TRACEBACK_CHARS:]
    reason: dict[str, Any] = {
        "name": kind.__name__,
        "message": _message(err),
        "traceback": formatted,
        "type": f"{kind.__module__}.{kind.__qualname__}",
    }
    if isinstance(err, NonRetryableError):
        reason["retryable"] = False
    return reason


def _message(err: BaseException) -> str:
    try:
        return str(err)
    except Exception as exc:  # a broken __str__ must not hide the failure itself
        return f"<str() of the exception raised {type(exc).__name__}>"


def storable_reason(reason: dict[str, Any], limit: int | None = None) -> str:
    """JSON text for a failure reason that PostgreSQL can store, within ``limit``."""
    limit = validation.max_payload_bytes() if limit is None else limit
    value, escaped = jsonvalue.storable(reason)
    if escaped:
        value["escaped"] = sorted(
            new_key
            for new_key, key in zip(value, reason, strict=True)
            if value[new_key] != reason[key]
        )
    text = _dumps(value)
    if validation.oversize(text, limit) is None:
        return text
    return _dumps(_truncated(value, limit))


def _truncated(reason: dict[str, Any], limit: int) -> dict[str, Any]:
    """The reason cut to fit: the start of the message, the end of the traceback."""
    # JSON escapes may take 6 bytes per character; keep well inside the limit.
    budget = max(limit // 16, 64)
    result: dict[str, Any] = {}
    for key in ("name", "type", "retryable", "escaped"):
        if key in reason:
            result[key] = _cut(reason[key], 200) if isinstance(reason[key], str) else reason[key]
    message = reason.get("message")
    if isinstance(message, str):
        result["message"] = _cut(message, budget)
    traceback_text = reason.get("traceback")
    if isinstance(traceback_text, str):
        result["traceback"] = "...(truncated)...\n" + traceback_text[-budget:]
    result["truncated"] = True
    if validation.oversize(_dumps(result), limit) is not None:
        result = {"name": result.get("name"), "message": UNSTORED_MESSAGE, "truncated": True}
    return result


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars] + f"...(truncated {len(text) - chars:,})"


def _dumps(value: Any) -> str:
    # The reason is built here from strings, numbers and None, so it is always JSON.
    return json.dumps(value, ensure_ascii=False, default=repr)


def last_resort_reason(err: BaseException, problem: BaseException) -> str:
    """The reason recorded when the real one could not be: the exception's type and why
    storing failed, both in text that can always be stored."""
    kind = type(err)
    why, _ = jsonvalue.storable(" ".join(str(problem).split())[:500] or type(problem).__name__)
    reason: dict[str, Any] = {
        "name": kind.__name__,
        "message": f"{UNSTORED_MESSAGE} ({kind.__name__}); storing it failed with: {why}",
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "unstored": True,
    }
    reason, _ = jsonvalue.storable(reason)
    return _dumps(reason)


def record_failure(
    conn: psycopg.Connection, queue_name: str, run_id: Any, err: BaseException
) -> None:
    """Fail the run with ``err`` as its reason, trying hard (see the module docstring).

    Raises CancelledTask/FailedTask for the engine's stop signals, and the database
    error itself only when the connection is lost (the run is then resumed or reclaimed
    after reconnecting) or when even the last-resort reason is refused.
    """
    try:
        reason = storable_reason(serialize_error(err))
    except Exception as problem:  # building the reason must not be what loses it
        reason = last_resort_reason(err, problem)
    last_error: BaseException | None = None
    for attempt in range(RECORD_ATTEMPTS):
        if attempt:
            time.sleep(RECORD_RETRY_DELAYS[min(attempt, len(RECORD_RETRY_DELAYS)) - 1])
        try:
            _fail_run(conn, queue_name, run_id, reason)
            return
        except psycopg.Error as problem:
            if conn.closed or conn.broken:
                raise
            last_error = problem
            log.warning(
                "Recording the failure of run %s was refused (%s, SQLSTATE %s); trying again",
                run_id,
                " ".join(str(problem).split())[:300],
                sqlstate(problem),
            )
    assert last_error is not None
    log.error(
        "The failure reason of run %s could not be stored; recording its type (%s) instead",
        run_id,
        type(err).__name__,
    )
    _fail_run(conn, queue_name, run_id, last_resort_reason(err, last_error))


def _fail_run(conn: psycopg.Connection, queue_name: str, run_id: Any, reason: str) -> None:
    # Each attempt in its own transaction (a savepoint inside a caller's transaction), so
    # one refused attempt does not leave the next one in an aborted transaction.
    with task_state_errors(), conn.transaction():
        conn.execute(_FAIL_RUN_SQL, (queue_name, run_id, reason, None))
