"""Operations on the engine, decided and carried out in one place.

The CLI and the console are thin adapters over this package: they parse input, call
one function here with an autocommit connection, and show ``outcome.message`` (or
``str(error)``). Nothing here prints, and nothing imports Textual.

Resolving names (``queues``, ``tasks``)
    resolve_queue(conn, queue) -> str                  UnknownQueue, one message
    resolve_agent_queue(conn, queue=None, registry=None) -> str
                                        the agent's own queue is created on demand
    agent_queue(registry=None) -> str, is_agent_queue(queue, registry=None) -> bool
    resolve_task(conn, ref, queue=None) -> TaskRef     full id, unique prefix, short id
    task_ref(conn, queue, task_id) -> TaskRef          the task as it is now

Operations (``commands``), each returning an outcome with ``ok``, ``changed``, ``message``
    create_queue(conn, queue) -> QueueCreated          idempotent; says "already exists"
    drop_queue(conn, queue) -> QueueDropped            UnknownQueue if there is none
    spawn(conn, task_name, params, *, queue=None, registry=None, max_attempts=None,
          retry_strategy=None, cancellation=None, headers=None, idempotency_key=None)
          -> Spawned                                   spawn_batch(...) -> list[Spawned]
    spawn_queue(task_name, queue=None, registry=None) -> str   where a spawn goes
    spawn_agent(conn, prompt, *, model, max_iterations, system, queue, registry) -> Spawned
    emit(conn, queue, event_name, payload) -> Emitted  status EMITTED | ALREADY_EMITTED
    answer(conn, queue, event_name, text) -> Answered  an agent's question
    retry(conn, task_ref, *, spawn_new=False, max_attempts=None) -> Retried
                                        status RETRIED | SPAWNED_NEW | NOT_FAILED
    cancel(conn, task_ref) -> Cancelled status CANCELLED | ALREADY_FINISHED | FINISHED_FIRST

Bulk (``bulk``)
    plan_bulk(conn, "retry" | "cancel", flt, limit=BULK_LIMIT) -> BulkPlan
        .tasks .truncated .title .question .empty_message .started_message
    run_bulk(conn, plan, progress=None, should_stop=None) -> BulkResult
        progress(processed, total) after each task; .done .skipped .errors .stopped .message

State policy (``policy``)
    can_retry(state), can_cancel(state), retry_refusal(state), cancel_refusal(state),
    bulk_states(operation, state_filter), operation_states(operation), states_label,
    bulk_excluded_message(operation), STATES, LIVE_STATES, TERMINAL_STATES, is_live,
    is_terminal

Errors (``errors``): every failure is an ``OpsError`` whose ``kind`` is an ErrorKind
    CONNECTION_LOST (ConnectionLost, also a DatabaseUnavailable: the only "unreachable")
    TIMED_OUT (TimedOut), CONFLICT (Conflict: 40001/40P01, transient), NOT_FOUND
    (NotFound, UnknownQueue, TaskNotFound), BAD_INPUT (BadInput, AmbiguousTask),
    REFUSED (Refused). ``kind_of(exc, conn)`` / ``classify`` classify any database error
    by SQLSTATE; ``translate(exc)`` and ``with translated(conn):`` turn one into an
    OpsError. ``error.unreachable`` / ``error.transient`` say how to react.
"""

from . import policy
from .bulk import BULK_LIMIT, Progress, plan_bulk, run_bulk
from .commands import (
    answer,
    cancel,
    create_queue,
    drop_queue,
    emit,
    retry,
    spawn,
    spawn_agent,
    spawn_batch,
    spawn_queue,
)
from .errors import (
    AmbiguousTask,
    BadInput,
    Conflict,
    ConnectionLost,
    ErrorKind,
    NotFound,
    OpsError,
    Refused,
    TaskNotFound,
    TimedOut,
    UnknownQueue,
    classify,
    is_connection_lost,
    kind_of,
    translate,
    translated,
)
from .outcomes import (
    Answered,
    BulkPlan,
    BulkResult,
    Cancelled,
    CancelStatus,
    EmitStatus,
    Emitted,
    Outcome,
    QueueCreated,
    QueueDropped,
    Retried,
    RetryStatus,
    Spawned,
)
from .policy import (
    LIVE_STATES,
    STATES,
    TERMINAL_STATES,
    BulkOperation,
    bulk_excluded_message,
    bulk_states,
    can_cancel,
    can_retry,
    cancel_refusal,
    retry_refusal,
)
from .queues import agent_queue, is_agent_queue, resolve_agent_queue, resolve_queue
from .tasks import resolve_task, task_ref

__all__ = [
    "BULK_LIMIT",
    "LIVE_STATES",
    "STATES",
    "TERMINAL_STATES",
    "AmbiguousTask",
    "Answered",
    "BadInput",
    "BulkOperation",
    "BulkPlan",
    "BulkResult",
    "CancelStatus",
    "Cancelled",
    "Conflict",
    "ConnectionLost",
    "EmitStatus",
    "Emitted",
    "ErrorKind",
    "NotFound",
    "OpsError",
    "Outcome",
    "Progress",
    "QueueCreated",
    "QueueDropped",
    "Refused",
    "Retried",
    "RetryStatus",
    "Spawned",
    "TaskNotFound",
    "TimedOut",
    "UnknownQueue",
    "agent_queue",
    "answer",
    "bulk_excluded_message",
    "bulk_states",
    "can_cancel",
    "can_retry",
    "cancel",
    "cancel_refusal",
    "classify",
    "create_queue",
    "drop_queue",
    "emit",
    "is_agent_queue",
    "is_connection_lost",
    "kind_of",
    "plan_bulk",
    "policy",
    "resolve_agent_queue",
    "resolve_queue",
    "resolve_task",
    "retry",
    "retry_refusal",
    "run_bulk",
    "spawn",
    "spawn_agent",
    "spawn_batch",
    "spawn_queue",
    "task_ref",
    "translate",
    "translated",
]
