"""Run a worker pool for the crash test until killed: python crash_worker.py DSN."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crash_tasks import make_registry

from absurd_tui.runtime import WorkerPool


def main() -> None:
    dsn = sys.argv[1]
    pool = WorkerPool(
        dsn,
        make_registry(dsn, hang_in_step_three=True),
        queues=("default",),
        concurrency=1,
        claim_timeout=2,
        poll_interval=0.2,
        worker_id="doomed",
    )
    pool.start()
    print("started", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
