"""The read queries the console, the CLI and the agent transcript share, by view.

Everything here is a plain read of the contract's tables (absurd.queues and the
per-queue t_/r_/c_/e_/w_ tables, columns listed in the contract's sections 2 and 7),
so it works the same against upstream Absurd's schema and ours. No function here
writes, and none formats text for a screen (``absurd_tui.text`` does).

- ``queues``: per-queue counts by state, claimable runs and lag;
- ``tasks``: a page of tasks for a filter, its match count, the ids a bulk action takes;
- ``detail``: one task as one consistent snapshot;
- ``events``: pending waits and emitted events;
- ``workers``: workers holding running runs, on any host.

The models are in ``absurd_tui.db.models`` and id resolution in ``absurd_tui.db.ids``;
both are re-exported here so ``from absurd_tui.db import reads`` reaches every read.
"""

from ..ids import (
    ID_ONLY_DIGITS,
    MIN_SUFFIX_DIGITS,
    SHORT_ID_DIGITS,
    AmbiguousTaskId,
    TaskNotFound,
    find_task,
    short_id,
    tasks_with_id_tail,
)
from ..models import (
    LIVE_STATES,
    STATES,
    TERMINAL_STATES,
    ZERO,
    CheckpointInfo,
    Count,
    EventInfo,
    QueueSummary,
    RunInfo,
    TaskDetail,
    TaskFilter,
    TaskPage,
    TaskRef,
    TaskRow,
    WaitInfo,
    WorkerSeen,
)
from .common import COUNT_CAP, db_now, queue_names
from .detail import CHECKPOINT_LIMIT, task_detail
from .events import emitted_events, event_emitted_at, pending_waits
from .queues import queue_summaries, queue_summary
from .tasks import count_tasks, list_task_ids, list_tasks
from .workers import workers_seen

__all__ = [
    "CHECKPOINT_LIMIT",
    "COUNT_CAP",
    "ID_ONLY_DIGITS",
    "LIVE_STATES",
    "MIN_SUFFIX_DIGITS",
    "SHORT_ID_DIGITS",
    "STATES",
    "TERMINAL_STATES",
    "ZERO",
    "AmbiguousTaskId",
    "CheckpointInfo",
    "Count",
    "EventInfo",
    "QueueSummary",
    "RunInfo",
    "TaskDetail",
    "TaskFilter",
    "TaskNotFound",
    "TaskPage",
    "TaskRef",
    "TaskRow",
    "WaitInfo",
    "WorkerSeen",
    "count_tasks",
    "db_now",
    "emitted_events",
    "event_emitted_at",
    "find_task",
    "list_task_ids",
    "list_tasks",
    "pending_waits",
    "queue_names",
    "queue_summaries",
    "queue_summary",
    "short_id",
    "task_detail",
    "tasks_with_id_tail",
    "workers_seen",
]
