"""Regenerate screenshots/*.svg from a real run of the console.

    python scripts/screenshots.py [--dsn MAINTENANCE_DSN] [--out screenshots]

Without --dsn it starts a throwaway embedded PostgreSQL. It creates a database
``absurd_screenshots``, installs the schema, spawns a mix of the demo tasks
(scripts/demo_tasks.py) and an agent on the offline demo model, runs them on real
embedded workers until each has reached the state it is meant to show (completed,
failed, sleeping on a timer, waiting for an event, running, the agent asking its
question, a second agent drawing its picture in the code interpreter), then drives the
console headless at 160x45 and saves an SVG of each main screen. The database is
dropped at the end. ``/network/current-ip`` is served by a local stand-in answering a
documentation address, so no picture shows this machine's real one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from absurd_tui.agent import AGENT_QUEUE, load_transcript, register_agent, spawn_agent  # noqa: E402
from absurd_tui.agent.models import CODE_PROMPT  # noqa: E402
from absurd_tui.agent.sandbox.mounts import IP_URL_ENV  # noqa: E402
from absurd_tui.db import schema  # noqa: E402
from absurd_tui.db.dsn import describe  # noqa: E402
from absurd_tui.runtime import WorkerPool  # noqa: E402
from absurd_tui.sdk import Absurd, default_registry, load_task_modules  # noqa: E402
from absurd_tui.ui.app import AbsurdApp  # noqa: E402
from absurd_tui.ui.screens.main import MainScreen  # noqa: E402
from absurd_tui.ui.screens.task_detail import TaskDetailScreen  # noqa: E402
from absurd_tui.ui.source import LiveSource  # noqa: E402

DBNAME = "absurd_screenshots"
SIZE = (160, 45)
QUEUES = ("default", "emails", AGENT_QUEUE)
AGENT_PROMPT = (
    "What should I pack for a day trip tomorrow? Check the time and the weather where I am going."
)


SHOWN_IP = "203.0.113.7"
"""A documentation address (RFC 5737), served as the machine's public IP."""


class _ShownIp(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = SHOWN_IP.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass


def serve_shown_ip() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ShownIp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    os.environ[IP_URL_ENV] = f"http://{host}:{port}/"
    return server


def wait_for(what: str, condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.1)


def seed(client: Absurd) -> dict[str, str]:
    ids: dict[str, str] = {}
    for i, name in enumerate(["cat.jpg", "harbour.png", "invoice-scan.tiff", "avatar.webp"]):
        client.spawn("resize-image", {"name": name, "sizes": [64, 256, 1024], "pause": 0.05 * i})
    for user in ("Ada", "Grace", "Edsger"):
        client.spawn("send-welcome-email", {"user": user, "email": f"{user.lower()}@example.com"})
    ids["failed"] = client.spawn(
        "charge-card", {"order": 41, "amount": 1999, "decline": True}
    ).task_id
    client.spawn("charge-card", {"order": 42, "amount": 500})
    ids["timer"] = client.spawn("nightly-report", {"seconds": 6 * 3600}).task_id
    ids["event"] = client.spawn("approve-order", {"order": 7}).task_id
    client.spawn("approve-order", {"order": 8, "timeout": 900})
    client.emit_event("order-6.approved", {"by": "alice"}, queue_name="default")
    return ids


def _asking(conn: psycopg.Connection, agent_id: str) -> bool:
    question = load_transcript(conn, AGENT_QUEUE, agent_id).pending_question
    return question is not None and question.waiting_since is not None


def state(client: Absurd, task_id: str, queue: str = "default") -> str | None:
    result = client.fetch_task_result(task_id, queue_name=queue)
    return result.state if result else None


async def shoot(
    app: AbsurdApp, out: Path, failed_id: str, agent_id: str, picture_id: str
) -> list[Path]:
    saved: list[Path] = []

    async def settle(pilot, condition, what: str) -> None:
        deadline = time.monotonic() + 15
        while not condition():
            if time.monotonic() > deadline:
                raise SystemExit(f"the console never showed {what}")
            await pilot.pause(0.05)
        await pilot.pause(0.3)

    def save(name: str) -> None:
        saved.append(Path(app.save_screenshot(f"{name}.svg", str(out))))

    async with app.run_test(size=SIZE) as pilot:
        await settle(
            pilot,
            lambda: isinstance(app.screen, MainScreen) and app.screen.tasks_view.loaded,
            "tasks",
        )
        save("tasks")
        table = app.main_screen.query_one("#tasks")
        table.select_key(f"default/{failed_id}")
        await pilot.press("enter")
        await settle(
            pilot,
            lambda: isinstance(app.screen, TaskDetailScreen) and app.screen.view.detail,
            "detail",
        )
        save("task-detail")
        app.screen.query_one("#detail-tabs").active = "runs-tab"
        await pilot.pause(0.3)
        save("task-runs")
        app.screen.query_one("#runs").focus()
        await pilot.press("enter")
        await pilot.pause(0.3)
        save("run-failure")
        await pilot.press("escape", "escape")
        await pilot.press("2")
        await settle(pilot, lambda: app.main_screen.events_view.loaded, "events")
        save("events")
        await pilot.press("3")
        await settle(pilot, lambda: app.main_screen.workers_view.loaded, "workers")
        save("workers")
        await pilot.press("1", "n")
        await pilot.pause(0.3)
        await pilot.press(*"resize-image")
        await pilot.pause(0.3)
        save("spawn-dialog")
        await pilot.press("escape", "a")
        await pilot.pause(0.3)
        app.screen.query_one("#prompt").text = AGENT_PROMPT
        await pilot.pause(0.3)
        save("agent-dialog")
        await pilot.press("escape")
        app.open_task(AGENT_QUEUE, uuid.UUID(agent_id), "agent")
        await settle(
            pilot,
            lambda: (
                isinstance(app.screen, TaskDetailScreen)
                and app.screen.is_mounted
                and app.screen.view.transcript
            ),
            "transcript",
        )
        save("agent-transcript")
        await pilot.press("escape")
        app.open_task(AGENT_QUEUE, uuid.UUID(picture_id), "agent")
        await settle(
            pilot,
            lambda: (
                isinstance(app.screen, TaskDetailScreen)
                and app.screen.is_mounted
                and app.screen.view.artifact_previews
            ),
            "the agent's picture",
        )
        app.screen.query_one("#transcript").scroll_end(animate=False)
        await pilot.pause(0.3)
        save("agent-picture")
        await pilot.press("escape", "question_mark")
        await pilot.pause(0.3)
        save("help")
        await pilot.press("escape")
        app.logbook.handle(
            logging.makeLogRecord(
                {
                    "levelno": logging.WARNING,
                    "levelname": "WARNING",
                    "name": "absurd_tui.runtime",
                    "msg": "Worker lost its connection; reconnecting in 1 s",
                }
            )
        )
        await pilot.press("l")
        await pilot.pause(0.3)
        save("log")
        await pilot.press("escape")
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.5)
        save("tasks-80x24")
    return saved


def run(server_dsn: str, out: Path) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
    dsn = make_conninfo(**{**conninfo_to_dict(server_dsn), "dbname": DBNAME})
    pool = None
    ip_server = serve_shown_ip()
    try:
        load_task_modules([str(ROOT / "scripts" / "demo_tasks.py")])
        register_agent()
        with psycopg.connect(dsn, autocommit=True) as conn:
            schema.install(conn)
            client = Absurd(conn)
            for queue in QUEUES:
                client.create_queue(queue)
            ids = seed(client)
            agent_id = spawn_agent(conn, AGENT_PROMPT, model="demo")
            picture_id = spawn_agent(conn, CODE_PROMPT, model="demo")
            source = LiveSource(dsn, describe(dsn), registry=default_registry)
            app = AbsurdApp(source, worker_queues=QUEUES, refresh=0.5, theme="textual-dark")
            pool = WorkerPool(
                dsn,
                registry=default_registry,
                queues=QUEUES,
                concurrency=3,
                poll_interval=0.2,
                on_status=app.on_worker_status,
            )
            app.worker_pool = pool
            pool.start()
            wait_for("the failed charge", lambda: state(client, ids["failed"]) == "failed")
            wait_for("the timer", lambda: state(client, ids["timer"]) == "sleeping")
            wait_for("the event wait", lambda: state(client, ids["event"]) == "sleeping")
            wait_for("the agent's question", lambda: _asking(conn, agent_id))
            wait_for(
                "the agent's picture",
                lambda: state(client, picture_id, AGENT_QUEUE) == "completed",
                timeout=300,
            )
            # Something running while the pictures are taken.
            client.spawn(
                "resize-image",
                {"name": "panorama.tif", "sizes": [64, 256, 1024, 4096], "pause": 20},
            )
            wait_for("a running task", lambda: any(s.state == "running" for s in pool.statuses()))
            out.mkdir(parents=True, exist_ok=True)
            saved = asyncio.run(shoot(app, out, ids["failed"], agent_id, picture_id))
            source.close()
        for path in saved:
            print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    finally:
        ip_server.shutdown()
        if pool is not None:
            pool.stop(timeout=1)
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME))
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dsn", help="a server's maintenance DSN (default: a throwaway embedded server)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args()
    if args.dsn:
        run(args.dsn, args.out.resolve())
        return 0
    from absurd_tui.db import embedded

    tmp = Path(tempfile.mkdtemp(prefix="absurd-tui-shots-"))
    server = embedded.get_server(tmp / "pgdata", cleanup_mode="delete")
    try:
        run(server.get_uri("postgres"), args.out.resolve())
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
