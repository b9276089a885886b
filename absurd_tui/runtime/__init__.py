"""Embedded workers: a pool of threads that claim and run tasks (no Textual here)."""

from .client import Absurd
from .pool import WorkerPool, default_worker_prefix
from .status import WorkerState, WorkerStatus

__all__ = ["Absurd", "WorkerPool", "WorkerState", "WorkerStatus", "default_worker_prefix"]
