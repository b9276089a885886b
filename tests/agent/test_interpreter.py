"""The code interpreter inside the durable agent: files kept across calls and runs,
artifacts stored in Postgres and exported, limits reported to the model, and the demo
model's IP-picture example end to end (real sandbox, real workers, real PostgreSQL)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from absurd_tui.agent.artifacts import load_contents
from absurd_tui.agent.models import CODE_PROMPT
from absurd_tui.agent.sandbox import MountRegistry, host_file
from absurd_tui.agent.sandbox.mounts import register_default_mounts
from absurd_tui.agent.task import AGENT_QUEUE, register_agent, spawn_agent
from absurd_tui.agent.tools import ToolRegistry, register_builtins
from absurd_tui.agent.transcript import load_transcript
from absurd_tui.db import reads
from absurd_tui.runtime import WorkerPool
from absurd_tui.sdk.registry import TaskRegistry

from .fake_anthropic import FakeAnthropic, reply, text, tool_use
from .fake_ip import TEST_IP, FakeIpService
from .helpers import FAST_RETRY, TEST_KEY, running_workers, wait_for_state

PROJECT = Path(__file__).resolve().parents[2]


def cli(dsn: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ABSURD_DATABASE_URL"}
    env["PYTHONPATH"] = str(PROJECT)
    return subprocess.run(
        [sys.executable, "-m", "absurd_tui", *args, "--dsn", dsn],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def code(tool_id: str, source: str) -> dict:
    return tool_use(tool_id, "execute_python", {"code": source})


@pytest.fixture
def claude(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)


@pytest.fixture
def ip_service(monkeypatch):
    with FakeIpService() as service:
        monkeypatch.setenv("ABSURD_TUI_IP_URL", service.url)
        yield service


def test_the_demo_model_plays_the_ip_picture_example(
    conn, db_dsn, sandbox, ip_service, monkeypatch, tmp_path
):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    task_id = spawn_agent(conn, CODE_PROMPT, model="demo")
    with running_workers(db_dsn):
        task = wait_for_state(conn, task_id, "completed", "failed", timeout=120)
    assert task.state == "completed", task.failure
    assert [run["state"] for run in task.runs] == ["completed"]

    transcript = load_transcript(conn, AGENT_QUEUE, task_id)
    results = [e for e in transcript.entries if e.kind == "tool_result"]
    assert [e.tool_name for e in results] == ["execute_python"] * 3
    read, matplotlib, pillow = results
    assert not read.is_error and repr(TEST_IP) in read.text
    assert [(r.path, r.error) for r in read.host_reads] == [("/network/current-ip", None)]
    assert matplotlib.is_error and "backend_tkagg" in matplotlib.text
    assert not pillow.is_error
    [picture] = pillow.files
    assert picture.path == "/output/ip_address.png" and picture.media_type == "image/png"
    assert f"wrote /output/ip_address.png ({picture.size:,} bytes)" in pillow.text
    final = transcript.entries[-1]
    assert (
        final.kind == "final" and TEST_IP in final.text and "/output/ip_address.png" in final.text
    )
    assert transcript.artifacts == (picture,)

    # The content is in Postgres, under its hash, and is the PNG the code drew.
    stored = load_contents(conn, AGENT_QUEUE, task_id, [picture.sha256])
    with Image.open(io.BytesIO(stored[picture.sha256])) as image:
        assert image.format == "PNG" and image.width > image.height > 50
    # Stored contents are not steps: task reads leave them out.
    detail = reads.task_detail(conn, AGENT_QUEUE, task_id)
    assert not any(c.name.startswith("$file:") for c in detail.checkpoints)
    assert f"$file:{picture.sha256}" in task.checkpoints

    shown = cli(db_dsn, tmp_path, "show", task_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["artifacts"] == [picture.to_json()]
    out = tmp_path / "export"
    exported = cli(db_dsn, tmp_path, "artifacts", task_id[:8], "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip() == str(out / "ip_address.png")
    assert (out / "ip_address.png").read_bytes() == stored[picture.sha256]
    listed = cli(db_dsn, tmp_path, "artifacts", task_id, "--json")
    assert json.loads(listed.stdout) == [picture.to_json()]
    # A different file in the way: refused, and nothing is changed.
    (out / "ip_address.png").write_bytes(b"mine")
    refused = cli(db_dsn, tmp_path, "artifacts", task_id, "--out", str(out))
    assert refused.returncode == 1 and "exists and differs" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert (out / "ip_address.png").read_bytes() == b"mine"


def test_files_survive_the_task_leaving_the_worker(conn, db_dsn, sandbox, claude, monkeypatch):
    """A durable sleep between calls: the next call runs in a new execution, with the
    files rebuilt from the checkpoints and their contents read back from Postgres."""
    script = {
        1: [
            reply(
                code(
                    "c1",
                    "import json\n"
                    "json.dump({'n': 41}, open('/scratch/state.json', 'w'))\n"
                    "open('/output/report.txt', 'w').write('draft')\n"
                    "open('/scratch/gone.txt', 'w').write('temporary')\n",
                )
            )
        ],
        2: [reply(tool_use("s1", "sleep", {"seconds": 0.2, "reason": "a new execution"}))],
        3: [
            reply(
                code(
                    "c2",
                    "import json, os\n"
                    "n = json.load(open('/scratch/state.json'))['n'] + 1\n"
                    "os.remove('/scratch/gone.txt')\n"
                    "open('/output/report.txt', 'a').write(f' final {n}')\n"
                    "sorted(os.listdir('/scratch')), open('/output/report.txt').read()",
                )
            )
        ],
        4: [reply(text("done"))],
    }
    with FakeAnthropic(script) as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        task_id = spawn_agent(conn, "Keep state.", model="claude-haiku-4-5")
        with running_workers(db_dsn):
            task = wait_for_state(conn, task_id, "completed", "failed", timeout=60)
        assert task.state == "completed", task.failure
        second = fake.requests_for(4)[0].tool_results()["c2"]
    assert not second.get("is_error"), second
    assert "(['state.json'], 'draft final 42')" in second["content"]
    assert "removed /scratch/gone.txt" in second["content"]
    transcript = load_transcript(conn, AGENT_QUEUE, task_id)
    [report] = transcript.artifacts
    assert report.path == "/output/report.txt" and report.size == len("draft final 42")
    assert load_contents(conn, AGENT_QUEUE, task_id, [report.sha256]) == {
        report.sha256: b"draft final 42"
    }


def test_limits_are_results_for_the_model_not_task_failures(
    conn, db_dsn, sandbox, claude, monkeypatch
):
    script = {
        1: [reply(code("loop", "while True:\n    pass"))],
        # Big blocks: the 64 MiB cap is reached at once, well inside the 1 s deadline.
        2: [
            reply(code("hog", "blocks = []\nwhile True:\n    blocks.append(bytearray(2 * 10**7))"))
        ],
        3: [reply(code("fine", "'still here'"))],
        4: [reply(text("Recovered."))],
    }
    with FakeAnthropic(script) as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        task_id = spawn_agent(
            conn,
            "Try hard things.",
            model="claude-haiku-4-5",
            sandbox={"timeout_seconds": 1, "memory_mb": 64},
            retry_strategy=FAST_RETRY,
        )
        with running_workers(db_dsn):
            task = wait_for_state(conn, task_id, "completed", "failed", timeout=60)
        tool = next(
            t for t in fake.requests_for(1)[0].body["tools"] if t["name"] == "execute_python"
        )
    assert task.state == "completed", task.failure
    assert [run["state"] for run in task.runs] == ["completed"]
    assert task.checkpoints["tool:execute_python"]["is_error"] is True
    assert "past the 1 s wall-clock limit" in task.checkpoints["tool:execute_python"]["content"]
    assert (
        "out of memory (the limit is 64 MiB)"
        in task.checkpoints["tool:execute_python#2"]["content"]
    )
    assert task.checkpoints["tool:execute_python#3"]["content"] == "value:\n'still here'"
    # The model was told the task's own limits and the folders.
    for needle in ("1 s wall-clock", "64 MiB", "/network", "/output", "/scratch", "current-ip"):
        assert needle in tool["description"]


def test_the_sandbox_can_be_turned_off_per_task(conn, db_dsn, claude, monkeypatch):
    script = {
        1: [reply(code("c1", "print('hi')"))],
        2: [reply(text("ok"))],
    }
    with FakeAnthropic(script) as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        task_id = spawn_agent(conn, "No code.", model="claude-haiku-4-5", sandbox=False)
        with running_workers(db_dsn):
            task = wait_for_state(conn, task_id, "completed", "failed", timeout=60)
        names = [t["name"] for t in fake.requests_for(1)[0].body["tools"]]
    assert task.state == "completed", task.failure
    assert "execute_python" not in names
    assert task.checkpoints["tool:execute_python"]["is_error"] is True
    assert "not offered" in task.checkpoints["tool:execute_python"]["content"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"timeout_seconds": 0}, "sandbox.timeout_seconds"),
        ({"memory_mb": 1}, "sandbox.memory_mb"),
        ({"mount": ["/x"]}, 'unknown "sandbox" key'),
        ("yes", '"sandbox" must be false or an object'),
    ],
)
def test_bad_sandbox_params_are_refused_before_anything_is_written(conn, value, message):
    with pytest.raises(ValueError, match=message):
        spawn_agent(conn, "x", model="demo", sandbox=value)
    assert AGENT_QUEUE not in reads.queue_names(conn)


def test_own_host_files_and_a_chosen_set_of_mounts(conn, db_dsn, sandbox, claude, monkeypatch):
    """A host file added like a tool is served to the code; a task that names its mounts
    sees only those; one that names an unknown mount fails with the reason."""
    tools = ToolRegistry()
    register_builtins(tools)
    mounts = MountRegistry()
    register_default_mounts(mounts)

    @host_file("/crm/customers.json", registry=mounts)
    def customers() -> str:
        return json.dumps([{"name": "Ada"}])

    tools.add_code_interpreter(mounts)
    registry = TaskRegistry()
    register_agent(registry, tools=tools)
    probe = (
        "import json, os\n"
        "seen = {}\n"
        "for folder in ('/crm', '/network', '/output'):\n"
        "    try:\n"
        "        seen[folder] = sorted(os.listdir(folder))\n"
        "    except OSError as e:\n"
        "        seen[folder] = type(e).__name__\n"
        "if isinstance(seen['/crm'], list):\n"
        "    seen['ada'] = json.load(open('/crm/customers.json'))[0]['name']\n"
        "seen"
    )
    script = {1: [reply(code("c1", probe))], 2: [reply(text("done"))]}
    with FakeAnthropic(script) as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        everything = spawn_agent(conn, "All mounts.", model="claude-haiku-4-5")
        chosen = spawn_agent(
            conn, "Some mounts.", model="claude-haiku-4-5", sandbox={"mounts": ["/output"]}
        )
        unknown = spawn_agent(
            conn,
            "A mount that is not there.",
            model="claude-haiku-4-5",
            sandbox={"mounts": ["/nope"]},
        )
        pool = WorkerPool(
            db_dsn, registry=registry, queues=(AGENT_QUEUE,), concurrency=1, poll_interval=0.1
        )
        pool.start()
        try:
            results = {
                task_id: wait_for_state(conn, task_id, "completed", "failed", timeout=60)
                for task_id in (everything, chosen, unknown)
            }
        finally:
            pool.stop(timeout=5)
    full = results[everything].checkpoints["tool:execute_python"]["content"]
    assert "'ada': 'Ada'" in full and "'/crm': ['customers.json']" in full
    assert "read /crm/customers.json (17 bytes) from the host" in full
    some = results[chosen].checkpoints["tool:execute_python"]["content"]
    assert "'/crm': 'FileNotFoundError'" in some and "'/network': 'FileNotFoundError'" in some
    assert results[unknown].state == "failed"
    assert "unknown sandbox mount '/nope'" in results[unknown].failure["message"]
    assert len(results[unknown].runs) == 1  # a bad param is not retried
