"""The workload of bench/throughput.py for absurd-tui workers (``--tasks`` module).

``noop3`` is three checkpointed steps that do nothing; ``wait1`` awaits one event and
checkpoints once, for the emit-to-resume latency. The official SDK's copy of the same
tasks lives in throughput.py (it registers on its own client).
"""

from __future__ import annotations

from typing import Any

from absurd_tui import TaskContext
from absurd_tui.sdk.registry import register_task

QUEUE = "tp"


@register_task("noop3", queue=QUEUE)
def noop3(params: Any, ctx: TaskContext) -> int:
    a = ctx.step("one", lambda: 1)
    b = ctx.step("two", lambda: 2)
    c = ctx.step("three", lambda: 3)
    return a + b + c


@register_task("wait1", queue=QUEUE)
def wait1(params: Any, ctx: TaskContext) -> Any:
    payload = ctx.await_event(params["event"])
    return ctx.step("after", lambda: payload)
