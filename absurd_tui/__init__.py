"""absurd-tui: durable execution on nothing but Postgres, with a terminal console."""

__version__ = "0.1.0"

# The public SDK surface; the version stays first so it is readable without it. Absurd
# is the SDK client with start_worker (the worker runtime), as in the official SDK.
from .runtime.client import Absurd
from .sdk import (
    CancelledTask,
    FailedTask,
    InvalidInput,
    InvalidParams,
    InvalidStepResult,
    NonRetryableError,
    NotJSONError,
    PayloadTooLarge,
    RetryTaskResult,
    SpawnResult,
    StepHandle,
    SuspendTask,
    TaskAbandoned,
    TaskContext,
    TaskModuleError,
    TaskRegistration,
    TaskRegistry,
    TaskResultSnapshot,
    TimeoutError,
    UnknownTaskError,
    default_registry,
    get_current_context,
    load_task_modules,
    register_task,
)

__all__ = [
    "Absurd",
    "CancelledTask",
    "FailedTask",
    "InvalidInput",
    "InvalidParams",
    "InvalidStepResult",
    "NonRetryableError",
    "NotJSONError",
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
    "__version__",
    "default_registry",
    "get_current_context",
    "load_task_modules",
    "register_task",
]
