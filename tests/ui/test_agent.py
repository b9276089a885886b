"""The agent in the console: New agent, the live transcript, answering its question.

Real PostgreSQL, real embedded workers, the offline demo model (deterministic: the
time, a question, the weather from a local stand-in for Open-Meteo, a durable sleep,
a final answer).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

# tests/agent's stand-in for Open-Meteo (pytest puts tests/ on the import path).
from agent.fake_weather import FakeOpenMeteo
from support import pilot_wait_until
from textual.widgets import Input, Select, Static, TextArea

from absurd_tui.agent import weather
from absurd_tui.ui.dialogs import AgentDialog, AnswerDialog
from absurd_tui.ui.screens.main import MainScreen
from absurd_tui.ui.screens.task_detail import TaskDetailScreen
from absurd_tui.ui.widgets.transcript import TranscriptLog

from .conftest import task_state

pytestmark = pytest.mark.anyio

SIZE = (160, 45)
SHORT = (160, 30)
"""Short enough that the transcript overflows its view before the question."""
HOSTILE = "[bold]x[/] \x1b[31mred\x1b[0m"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with FakeOpenMeteo() as meteo:
        monkeypatch.setenv(weather.BASE_URL_ENV, meteo.base_url)
        yield meteo


def opened(app) -> bool:
    return isinstance(app.screen, TaskDetailScreen) and app.screen.is_mounted


def kinds(log: TranscriptLog) -> list[str]:
    return [log.entry_view(key).entry.kind for key in log.keys]


def shown(log: TranscriptLog, kind: str) -> str:
    view = next(log.entry_view(k) for k in log.keys if log.entry_view(k).entry.kind == kind)
    return str(view.render())


async def test_new_agent_runs_asks_takes_the_answer_and_finishes(make_app, client, conn):
    client.create_queue("agents")
    app = make_app(queues=("default", "agents"))
    async with app.run_test(size=SHORT) as pilot:
        await pilot.press("a")
        dialog = await pilot_wait_until(
            pilot, lambda: app.screen if isinstance(app.screen, AgentDialog) else None, "dialog"
        )
        assert dialog.query_one("#model", Select).value == "demo"
        prompt = dialog.query_one("#prompt", TextArea)
        assert app.focused is prompt
        # Text is set rather than typed key by key: with workers busy in this process,
        # Pilot waits up to 2 s after each key for the process to go idle. The demo
        # model quotes the prompt in its answer: markup and escapes must stay inert.
        prompt.text = f"Plan my day {HOSTILE}"
        await pilot.press("ctrl+s")
        detail = await pilot_wait_until(
            pilot,
            lambda: app.screen if isinstance(app.screen, TaskDetailScreen) else None,
            "the agent's detail",
        )
        # The tabs pick their active pane once mounted; under load that is a moment later.
        tabs = detail.query_one("#detail-tabs")
        await pilot_wait_until(pilot, lambda: tabs.active, "the detail's tabs mounted")
        assert tabs.active == "transcript-tab"
        log = detail.query_one(TranscriptLog)
        await pilot_wait_until(
            pilot, lambda: "waiting_human" in kinds(log), "the question in the transcript"
        )
        assert kinds(log) == [
            "prompt",
            "assistant",
            "tool_call",
            "tool_result",
            "assistant",
            "tool_call",
            "waiting_human",
        ]
        assert "Which city should I check the weather for?" in shown(log, "waiting_human")
        task_id = detail.task_id
        # The question shows as soon as the model asks; the task then parks on the event.
        await pilot_wait_until(
            pilot, lambda: task_state(conn, task_id, "agents") == "sleeping", "the task waiting"
        )
        # The log follows its end while the reader is there ...
        assert app.focused is log
        await pilot_wait_until(
            pilot, lambda: 0 < log.max_scroll_y == log.scroll_y, "the log at its end"
        )
        # ... and stays where they scrolled to read, while it grows.
        await pilot.press("home")
        await pilot_wait_until(pilot, lambda: log.scroll_y == 0, "scrolled to the top")

        await pilot.press("A")
        answer = await pilot_wait_until(
            pilot, lambda: app.screen if isinstance(app.screen, AnswerDialog) else None, "answer"
        )
        assert "Which city should I check the weather for?" in str(
            answer.query_one("#question", Static).render()
        )
        field = answer.query_one("#answer", Input)
        assert app.focused is field
        field.value = "Paris"
        await pilot.press("enter")
        await pilot_wait_until(
            pilot,
            lambda: task_state(conn, task_id, "agents") == "completed",
            "completed",
            timeout=30,
        )
        await pilot_wait_until(pilot, lambda: "final" in kinds(log), "the final answer")
        assert log.scroll_y == 0
        assert answer not in app.screen_stack
        assert kinds(log)[6:] == [
            "tool_result",
            "assistant",
            "tool_call",
            "tool_result",  # the answer, then the weather
            "assistant",
            "tool_call",
            "tool_result",  # the durable sleep
            "final",
        ]
        assert shown(log, "tool_call").endswith('current_time · turn 1\n{"timezone": "UTC"}')
        final = shown(log, "final")
        assert "You asked for the weather in Paris." in final
        assert "7.5" in final
        assert "[bold]x[/] \\x1b[31mred\\x1b[0m" in final and "\x1b" not in final
        summary = str(detail.query_one("#transcript-summary", Static).render())
        assert "demo (offline)" in summary and "completed" in summary and "press A" not in summary
        assert detail.check_action("answer_question", ()) is None


async def test_new_agent_dialog_refuses_bad_input_and_keeps_it(make_app, conn):
    app = make_app(workers=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        dialog = await pilot_wait_until(
            pilot, lambda: app.screen if isinstance(app.screen, AgentDialog) else None, "dialog"
        )
        error = dialog.query_one("#dialog-error", Static)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is dialog
        assert "Write a prompt" in str(error.render())
        dialog.query_one("#prompt", TextArea).text = "What time is it?"
        dialog.query_one("#model", Select).value = "claude-haiku-4-5"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "ANTHROPIC_API_KEY is not set" in str(error.render())
        assert "unavailable" in str(dialog.query_one("#model-note", Static).render())
        dialog.query_one("#model", Select).value = "demo"
        dialog.query_one("#max-iterations", Input).value = "0"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Max iterations must be at least 1" in str(error.render())
        assert app.screen is dialog
        assert dialog.query_one("#prompt", TextArea).text == "What time is it?"
        await pilot.press("escape")
        await pilot_wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "dialog closed")
    assert (
        conn.execute("SELECT count(*) FROM absurd.queues WHERE queue_name = 'agents'").fetchone()[0]
        == 0
    )


async def test_transcript_log_updates_by_entry_key():
    from textual.app import App

    from absurd_tui.agent import Entry
    from absurd_tui.ui.widgets.transcript import EntryView

    class LogApp(App):
        def compose(self):
            yield TranscriptLog()

    now = datetime(2026, 1, 15, 12, tzinfo=UTC)
    prompt = Entry("prompt", "prompt", "Hi")
    app = LogApp()
    async with app.run_test(size=(80, 20)) as pilot:
        log = app.query_one(TranscriptLog)
        log.show(
            [prompt, Entry("iteration/running", "running", "Iteration 1: waiting for the model")],
            now,
            {},
        )
        await pilot.pause()
        first = log.entry_view("prompt")
        running = str(log.entry_view("iteration/running").render())
        assert running.startswith("● Working") and "waiting for the model" in running
        turn = [
            prompt,
            Entry("iteration/0", "assistant", HOSTILE, iteration=1),
            Entry(
                "iteration/1",
                "tool_call",
                "current_time()",
                iteration=1,
                tool_name="current_time",
                tool_input={},
            ),
        ]
        log.show(turn, now, {})
        await pilot.pause()
        # The entry already shown is kept (not re-mounted); the transient one is gone.
        assert log.keys == ["prompt", "iteration/0", "iteration/1"]
        assert log.entry_view("prompt") is first
        assert [type(w) for w in log.children] == [EntryView] * 3
        assert "\x1b" not in str(log.entry_view("iteration/0").render())
        assert "[bold]x[/]" in str(log.entry_view("iteration/0").render())
        # Out of order (never produced by a transcript): rebuilt rather than misordered.
        log.show(list(reversed(turn)), now, {})
        await pilot.pause()
        assert [w.entry.key for w in log.children] == ["iteration/1", "iteration/0", "prompt"]


async def test_detail_finds_out_it_is_an_agent_and_answer_is_hidden_elsewhere():
    from .demo_app import make_app as make_demo_app
    from .fakes import tid

    app = make_demo_app()
    async with app.run_test(size=SIZE) as pilot:
        # Opened without its name: the first load reveals an agent and shows its transcript.
        app.push_screen(TaskDetailScreen("agents", tid(39)))
        detail = await pilot_wait_until(
            pilot,
            lambda: app.screen if opened(app) and app.screen.view.transcript else None,
            "the agent's transcript",
        )
        await pilot.pause()
        tabs = detail.query_one("#detail-tabs")
        assert tabs.active == "transcript-tab"
        assert detail.check_action("answer_question", ()) is True
        await pilot.press("escape")
        # Not an agent: no Transcript tab, no Answer key, and A says why.
        app.push_screen(TaskDetailScreen("default", tid(36), "charge-card"))
        detail = await pilot_wait_until(
            pilot,
            lambda: app.screen if opened(app) and app.screen.view.detail else None,
            "the task's detail",
        )
        assert detail.query_one("#detail-tabs").active == "overview"
        assert detail.check_action("answer_question", ()) is False
        await pilot.press("A")
        assert any("not an agent task" in n.message for n in app._notifications)
