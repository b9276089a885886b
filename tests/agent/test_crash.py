"""A worker killed with SIGKILL in the middle of a conversation (between model turns, or
inside a code-interpreter call): another worker finishes it without asking the model
again for the turns already checkpointed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from absurd_tui.agent.artifacts import load_contents
from absurd_tui.agent.task import AGENT_QUEUE, spawn_agent
from absurd_tui.agent.transcript import load_transcript

from .fake_anthropic import FakeAnthropic, Hold, reply, text, tool_use
from .fake_ip import TEST_IP, FakeIpService
from .helpers import FAST_RETRY, TEST_KEY, detail, running_workers, wait_for_state

WORKER = Path(__file__).with_name("agent_worker.py")
PROJECT = Path(__file__).resolve().parents[2]
CLAIM_TIMEOUT = 2


def test_a_killed_worker_resumes_after_the_last_checkpointed_turn(conn, db_dsn, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)
    # The weather tool runs for real: offline, it is an error result, the same each time.
    monkeypatch.delenv("ABSURD_TUI_WEATHER_URL", raising=False)
    third = Hold(then=reply(text("(never delivered)")))
    script = {
        1: [reply(text("First the time."), tool_use("toolu_1", "current_time", {}))],
        2: [
            reply(
                text("Now the weather."), tool_use("toolu_2", "get_weather", {"location": "Oslo"})
            )
        ],
        3: [
            third,
            reply(
                text("The time once more."),
                tool_use("toolu_3", "current_time", {"timezone": "Europe/Oslo"}),
            ),
        ],
        4: [reply(text("Done: it is dark in Oslo."))],
    }
    with FakeAnthropic(script) as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        task_id = spawn_agent(
            conn, "Tell me about Oslo.", model="claude-haiku-4-5", retry_strategy=FAST_RETRY
        )
        env = {**os.environ, "PYTHONPATH": str(PROJECT)}
        doomed = subprocess.Popen(
            [sys.executable, str(WORKER), db_dsn, str(CLAIM_TIMEOUT)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert third.held.wait(60), f"turn 3 never requested; turns {fake.turns()}"
            before = detail(conn, task_id)
            assert set(before.checkpoints) == {
                "iteration",
                "tool:current_time",
                "iteration#2",
                "tool:get_weather",
            }
            assert before.state == "running"
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
        finally:
            if doomed.poll() is None:
                doomed.kill()
                doomed.wait(10)
            third.release.set()
        assert doomed.returncode == -signal.SIGKILL

        # A fresh worker takes over once the dead worker's lease runs out.
        with running_workers(db_dsn):
            task = wait_for_state(conn, task_id, "completed", "failed", timeout=60)
        turns = fake.turns()
        first_try, second_try = fake.requests_for(3)

    assert task.state == "completed", task.failure
    assert turns == [1, 2, 3, 3, 4]  # turns 1 and 2 were never asked again
    # The history sent after the crash was rebuilt from checkpoints: identical.
    assert first_try.body == second_try.body
    assert [run["state"] for run in task.runs] == ["failed", "completed"]
    assert task.runs[0]["failure_reason"]["name"] == "$ClaimTimeout"
    assert task.result["iterations"] == 4 and task.result["answer"] == "Done: it is dark in Oslo."

    transcript = load_transcript(conn, AGENT_QUEUE, task_id)
    assert [(e.kind, e.tool_name) for e in transcript.entries] == [
        ("prompt", None),
        ("assistant", None),
        ("tool_call", "current_time"),
        ("tool_result", "current_time"),
        ("assistant", None),
        ("tool_call", "get_weather"),
        ("tool_result", "get_weather"),
        ("assistant", None),
        ("tool_call", "current_time"),
        ("tool_result", "current_time"),
        ("final", None),
    ]
    weather = transcript.entries[6]
    assert weather.is_error and "could not be reached" in weather.text
    assert '"timezone": "Europe/Oslo"' in transcript.entries[9].text


def test_a_worker_killed_during_a_code_call_resumes_with_the_files_of_earlier_calls(
    conn, db_dsn, sandbox, monkeypatch
):
    """SIGKILL while call 2 waits on a host read: the next worker reruns only call 2,
    with the files call 1 wrote, and the model is asked nothing twice."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)
    script = {
        1: [
            reply(
                tool_use(
                    "c1",
                    "execute_python",
                    {
                        "code": "open('/output/first.txt', 'w').write('written by call 1')\n"
                        "open('/scratch/count', 'w').write('1')"
                    },
                )
            )
        ],
        2: [
            reply(
                tool_use(
                    "c2",
                    "execute_python",
                    {
                        "code": "ip = open('/network/current-ip').read().strip()\n"
                        "first = open('/output/first.txt').read()\n"
                        "n = int(open('/scratch/count').read()) + 1\n"
                        "open('/scratch/count', 'w').write(str(n))\n"
                        "open('/output/second.txt', 'w').write(f'{ip} after {first!r}, count {n}')\n"
                        "open('/output/second.txt').read()"
                    },
                )
            )
        ],
        3: [reply(text("Both files are in /output."))],
    }
    with FakeIpService(hold_first=True) as ip, FakeAnthropic(script) as fake:
        monkeypatch.setenv("ABSURD_TUI_IP_URL", ip.url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        task_id = spawn_agent(
            conn, "Two calls.", model="claude-haiku-4-5", retry_strategy=FAST_RETRY
        )
        env = {**os.environ, "PYTHONPATH": str(PROJECT)}
        doomed = subprocess.Popen(
            [sys.executable, str(WORKER), db_dsn, str(CLAIM_TIMEOUT)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert ip.held.wait(60), f"call 2 never read the host file; turns {fake.turns()}"
            before = detail(conn, task_id)
            assert "tool:execute_python" in before.checkpoints
            assert "tool:execute_python#2" not in before.checkpoints
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
        finally:
            if doomed.poll() is None:
                doomed.kill()
                doomed.wait(10)
            ip.release.set()
        assert doomed.returncode == -signal.SIGKILL

        with running_workers(db_dsn):
            task = wait_for_state(conn, task_id, "completed", "failed", timeout=60)
        turns = fake.turns()

    assert task.state == "completed", task.failure
    assert turns == [1, 2, 3]  # no turn was asked twice
    assert ip.requests == 2  # call 2 ran again, whole; call 1 did not
    assert [run["state"] for run in task.runs] == ["failed", "completed"]
    second = task.checkpoints["tool:execute_python#2"]
    assert not second["is_error"], second["content"]
    assert "written by call 1" in second["content"] and "count 2" in second["content"]
    transcript = load_transcript(conn, AGENT_QUEUE, task_id)
    assert [a.path for a in transcript.artifacts] == ["/output/first.txt", "/output/second.txt"]
    contents = load_contents(conn, AGENT_QUEUE, task_id, [a.sha256 for a in transcript.artifacts])
    assert sorted(contents.values()) == [
        f"{TEST_IP} after 'written by call 1', count 2".encode(),
        b"written by call 1",
    ]
