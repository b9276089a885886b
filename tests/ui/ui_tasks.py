"""Small tasks the UI tests run on real embedded workers."""

from __future__ import annotations

import time

from absurd_tui.agent import register_agent
from absurd_tui.sdk import TaskRegistry


def build_registry() -> TaskRegistry:
    registry = TaskRegistry()
    # As in the console: the agent is always known (queue agents).
    register_agent(registry)

    @registry.register_task("steps", queue="default")
    def steps(params, ctx):
        total = 0
        for i in range(params.get("n", 3)):
            total += ctx.step("iteration", lambda i=i: i)
        return {"total": total}

    @registry.register_task("wait-event", queue="default")
    def wait_event(params, ctx):
        ctx.step("prepare", lambda: "ready")
        return {"got": ctx.await_event(params["event"])}

    @registry.register_task("flaky", queue="default")
    def flaky(params, ctx):
        ctx.step("before", lambda: 1)
        if ctx.attempt < 2:
            raise RuntimeError("flaky failure [bold red]x[/]")
        return "recovered"

    @registry.register_task("nap", queue="default")
    def nap(params, ctx):
        ctx.sleep_for("nap", params.get("seconds", 3600))
        return "woke"

    @registry.register_task("slow", queue="default", default_max_attempts=1)
    def slow(params, ctx):
        for n in range(params.get("steps", 100)):
            ctx.step("tick", lambda n=n: time.sleep(0.2) or n)
        return "done"

    return registry
