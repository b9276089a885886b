"""run_tui: problems a user can fix end with a one-paragraph message and exit code 1."""

from __future__ import annotations

from absurd_tui.config import Settings
from absurd_tui.ui import run_tui, worker_queues


def test_unreachable_database(tmp_path, capsys):
    code = run_tui(Settings(dsn="postgresql://u:s3cret@127.0.0.1:1/app", data_dir=tmp_path))
    err = capsys.readouterr().err
    assert code == 1
    assert "Cannot connect to PostgreSQL at 127.0.0.1:1/app" in err
    assert "s3cret" not in err


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
