"""The Python SDK: client, task registry, task context and errors.

Names follow the official ``absurd-sdk`` so code moves between the two; see
``client.py`` for what is added (thread-safe pooled client, strict JSON checks,
run id and attempt on the context).
"""

from .client import Absurd, RetryTaskResult, SpawnResult
from .context import ClaimedTask, StepHandle, TaskContext, get_current_context
from .errors import (
    CancelledTask,
    FailedTask,
    InvalidInput,
    InvalidParams,
    InvalidStepResult,
    NonRetryableError,
    NotJSONError,
    PayloadTooLarge,
    SuspendTask,
    TaskAbandoned,
    TaskModuleError,
    TimeoutError,
    UnknownTaskError,
)
from .execution import ExecutionResult, Outcome
from .registry import (
    TaskRegistration,
    TaskRegistry,
    default_registry,
    load_task_modules,
    register_task,
)
from .results import TaskResultSnapshot

__all__ = [
    "Absurd",
    "CancelledTask",
    "ClaimedTask",
    "ExecutionResult",
    "FailedTask",
    "InvalidInput",
    "InvalidParams",
    "InvalidStepResult",
    "NonRetryableError",
    "NotJSONError",
    "Outcome",
    "PayloadTooLarge",
    "RetryTaskResult",
    "SpawnResult",
    "StepHandle",
    "SuspendTask",
    "TaskAbandoned",
    "TaskContext",
    "TaskModuleError",
    "TaskRegistration",
    "TaskRegistry",
    "TaskResultSnapshot",
    "TimeoutError",
    "UnknownTaskError",
    "default_registry",
    "get_current_context",
    "load_task_modules",
    "register_task",
]
