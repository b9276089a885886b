"""The code interpreter in the console: the demo model's IP-picture example, started
from New agent, run by the embedded workers in the real sandbox, its picture shown in
the transcript; and the status bar's notice while the sandbox is prepared."""

from __future__ import annotations

import pytest

# tests/agent's stand-in for the public-IP service (pytest puts tests/ on the path).
from agent.fake_ip import TEST_IP, FakeIpService
from support import pilot_wait_until
from textual.widgets import TextArea

from absurd_tui.agent.models import CODE_PROMPT
from absurd_tui.agent.sandbox import SandboxStatus
from absurd_tui.ui.dialogs import AgentDialog
from absurd_tui.ui.screens.task_detail import TaskDetailScreen
from absurd_tui.ui.widgets.status_bar import StatusBar
from absurd_tui.ui.widgets.transcript import TranscriptLog

from .conftest import task_state

pytestmark = pytest.mark.anyio

SIZE = (160, 45)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with FakeIpService() as service:
        monkeypatch.setenv("ABSURD_TUI_IP_URL", service.url)
        yield service


def views(log: TranscriptLog):
    return [log.entry_view(key) for key in log.keys]


async def test_the_ip_picture_example_runs_from_the_console(make_app, client, conn, sandbox):
    client.create_queue("agents")
    app = make_app(queues=("default", "agents"))
    app.warm_sandbox = True
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(
            pilot,
            lambda: app.sandbox_status is not None and app.sandbox_status.state == "ready",
            "the sandbox ready",
        )
        await pilot.press("a")
        dialog = await pilot_wait_until(
            pilot, lambda: app.screen if isinstance(app.screen, AgentDialog) else None, "dialog"
        )
        dialog.query_one("#prompt", TextArea).text = CODE_PROMPT
        await pilot.press("ctrl+s")
        detail = await pilot_wait_until(
            pilot,
            lambda: app.screen if isinstance(app.screen, TaskDetailScreen) else None,
            "the agent's detail",
        )
        task_id = detail.task_id
        await pilot_wait_until(
            pilot,
            lambda: task_state(conn, task_id, "agents") == "completed",
            "completed",
            timeout=60,
        )
        log = detail.query_one(TranscriptLog)
        await pilot_wait_until(
            pilot, lambda: "final" in [v.entry.kind for v in views(log)], "answer"
        )

        results = [v for v in views(log) if v.entry.kind == "tool_result"]
        assert [v.entry.is_error for v in results] == [False, True, False]
        assert TEST_IP in str(results[0].render())
        assert "backend_tkagg" in str(results[1].render())
        picture = str(results[2].render())
        assert "File /output/ip_address.png · image/png · " in picture
        # The picture itself, drawn in half-block cells under its line.
        assert picture.count("▀") > 200
        final = views(log)[-1]
        assert "/output/ip_address.png" in str(final.render())
        summary = str(detail.query_one("#transcript-summary").render())
        assert "files: ip_address.png" in summary
        # The stored contents are not listed among the steps.
        assert not any(name.startswith("$file:") for name in detail.view.checkpoints)


async def test_the_status_bar_says_while_the_sandbox_is_prepared(make_app):
    app = make_app(workers=0)
    async with app.run_test(size=SIZE) as pilot:
        bar = app.screen.query_one(StatusBar)
        bar.sandbox = SandboxStatus(
            "warming", "compiling the Python sandbox (one-time, about 2 minutes)"
        )
        await pilot.pause()
        assert "compiling the Python sandbox (one-time, about 2 minutes)" in str(bar.render())
        bar.sandbox = SandboxStatus("ready", "Python sandbox ready (1 s)")
        await pilot.pause()
        assert "sandbox" not in str(bar.render())
