"""run_tui: problems a user can fix end with a one-paragraph message and exit code 1; a
server that is merely down is waited for inside the console."""

from __future__ import annotations

import psycopg
from support import Proxy, free_port, via_port
from support import pilot_wait_until as wait_until

from absurd_tui.config import Settings
from absurd_tui.ui import run_tui, worker_queues
from absurd_tui.ui.app import AbsurdApp


def test_an_unparsable_dsn_exits_before_the_console_opens(tmp_path, capsys):
    # Not a server that is down but one that cannot be named: nothing to wait for.
    code = run_tui(Settings(dsn="postgresql://u:s3cret%zz@127.0.0.1:1/app", data_dir=tmp_path))
    err = capsys.readouterr().err
    assert code == 1
    assert "The connection string cannot be parsed" in err and "s3cret" not in err


def test_a_console_started_against_a_down_server_waits_in_its_own_screen(
    db_dsn, tmp_path, monkeypatch, capfd
):
    port = free_port()
    proxy = Proxy(db_dsn, port)
    settings = Settings(dsn=via_port(db_dsn, port), data_dir=tmp_path)
    seen: dict[str, str] = {}

    async def script(pilot) -> None:
        app = pilot.app

        def status() -> str:
            return str(app.main_screen.query_one("#status").render())

        await wait_until(pilot, lambda: "disconnected, retrying" in status(), "the outage shown")
        seen["while down"] = status()
        proxy.start()
        await wait_until(pilot, lambda: app.connection.connected, "connected", timeout=30)
        # The workers' queue is created once the server answers, and they serve it.
        await wait_until(pilot, lambda: _queue_exists(db_dsn, "waiting"), "the queue", timeout=30)
        await wait_until(
            pilot, lambda: "disconnected" not in status(), "the status to recover", timeout=30
        )
        app.exit()

    original = AbsurdApp.run

    def run_scripted(self, *args, **kwargs):
        return original(self, headless=True, size=(160, 45), auto_pilot=script)

    monkeypatch.setattr(AbsurdApp, "run", run_scripted)
    try:
        assert run_tui(settings, workers=1, queues=["waiting"], refresh=0.5) == 0
    finally:
        proxy.close()
    assert "disconnected, retrying" in seen["while down"]
    # Nothing was written to the terminal the console owned.
    assert capfd.readouterr().err == ""


def _queue_exists(dsn: str, queue: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return bool(
            conn.execute("SELECT 1 FROM absurd.queues WHERE queue_name = %s", (queue,)).fetchone()
        )


def test_task_module_that_does_not_import(settings, tmp_path, capsys):
    broken = tmp_path / "broken_tasks.py"
    broken.write_text("raise RuntimeError('boom')\n")
    assert run_tui(settings, task_modules=[str(broken)]) == 1
    assert "boom" in capsys.readouterr().err


def test_queue_name_too_long(settings, capsys):
    assert run_tui(settings, queues=["q" * 80]) == 1
    assert "too long" in capsys.readouterr().err


def test_embedded_workers_serve_the_agent_queue(settings, capsys):
    # run_tui registers the built-in agent before anything else (here it then stops at
    # the missing task module), so the default worker queues include the agent's.
    assert run_tui(settings, task_modules=["no_such_module_here"]) == 1
    capsys.readouterr()
    assert {"agents", "default"} <= set(worker_queues())
    assert worker_queues(["reports"]) == ["reports"]
