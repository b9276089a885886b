"""The SDK client with a worker of its own: ``start_worker`` and ``stop_worker``.

The official SDK's client can serve its queue in the calling thread. Ours does it
with this package's ``WorkerPool``, so the method lives here, on a subclass of the
SDK's client (the SDK never imports the runtime). ``absurd_tui.Absurd`` is this class.
"""

from __future__ import annotations

import threading
from typing import Any

from ..sdk.client import Absurd as SdkClient
from .pool import WorkerPool


class Absurd(SdkClient):
    """``absurd_tui.sdk.Absurd`` plus ``start_worker``/``stop_worker``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._worker_stop = threading.Event()
        super().__init__(*args, **kwargs)

    def start_worker(
        self,
        worker_id: str | None = None,
        claim_timeout: int = 120,
        concurrency: int = 1,
        batch_size: int | None = None,
        poll_interval: float = 0.25,
    ) -> None:
        """Serve this client's queue with a worker pool until ``stop_worker()`` is called
        (from a handler, another thread or a signal handler); blocks meanwhile.

        Needs a client built from a DSN: every worker thread opens its own connection.
        ``batch_size`` is accepted for the official SDK's signature; each thread claims
        one run at a time.
        """
        if self.dsn is None:
            raise ValueError(
                "start_worker needs a client built from a DSN, since each worker thread opens "
                "its own connection; use absurd_tui.runtime.WorkerPool, or work_batch() on "
                "this client"
            )
        pool = WorkerPool(
            self.dsn,
            self.registry,
            queues=(self.queue_name,),
            concurrency=concurrency,
            claim_timeout=claim_timeout,
            poll_interval=poll_interval,
            worker_id=worker_id,
        )
        self._worker_stop.clear()
        pool.start()
        try:
            self._worker_stop.wait()
        finally:
            pool.stop()

    def stop_worker(self) -> None:
        """Make a running ``start_worker()`` return (running tasks get 5 s to finish)."""
        self._worker_stop.set()

    def close(self) -> None:
        """Stop ``start_worker`` if running, then close as the SDK client does."""
        self.stop_worker()
        super().close()


__all__ = ["Absurd"]
