"""A worker process serving the agent queue, for the crash test (killed with SIGKILL).

Usage: python agent_worker.py DSN CLAIM_TIMEOUT. Anthropic settings come from the
environment (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL).
"""

import sys
import threading

from absurd_tui.agent.task import AGENT_QUEUE, register_agent
from absurd_tui.runtime import WorkerPool
from absurd_tui.sdk.registry import TaskRegistry


def main() -> None:
    dsn, claim_timeout = sys.argv[1], int(sys.argv[2])
    registry = TaskRegistry()
    register_agent(registry)
    pool = WorkerPool(
        dsn,
        registry=registry,
        queues=(AGENT_QUEUE,),
        concurrency=1,
        claim_timeout=claim_timeout,
        poll_interval=0.1,
        worker_id="doomed-worker",
    )
    pool.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
