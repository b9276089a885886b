"""The sandbox backend on its own: isolation, limits, mounts and host reads (no database)."""

from __future__ import annotations

import pytest

from absurd_tui.agent.interpreter import result_text
from absurd_tui.agent.sandbox import (
    HostFolder,
    HostRead,
    Limits,
    MountSpec,
    Workspace,
    current_ip,
)
from absurd_tui.agent.sandbox.base import MIB

from .fake_ip import TEST_IP, FakeIpService


def workspace() -> Workspace:
    return Workspace(["/output", "/scratch"], lambda sha: pytest.fail(f"nothing stored: {sha}"))


def mounts(ws: Workspace, reads: list[HostRead], files=None) -> list[MountSpec]:
    served = files if files is not None else {"current-ip": lambda: TEST_IP + "\n"}
    return [
        MountSpec("/network", HostFolder("/network", served, reads)),
        MountSpec("/output", ws.mount("/output"), True),
        MountSpec("/scratch", ws.mount("/scratch"), True),
    ]


def run(sandbox, code: str, ws: Workspace | None = None, limits: Limits | None = None, **kw):
    ws = ws if ws is not None else workspace()
    reads: list[HostRead] = []
    outcome = sandbox.run(code, mounts(ws, reads, **kw), limits or Limits())
    return outcome, reads


def test_real_cpython_with_classes_imports_and_the_last_value(sandbox):
    outcome, _ = run(
        sandbox,
        "import dataclasses, json, zlib, struct\n"
        "class Base:\n    def hello(self): return 'base'\n"
        "class Child(Base):\n    def hello(self): return 'child of ' + super().hello()\n"
        "print(Child().hello())\n"
        "len(zlib.compress(struct.pack('>I', 7) * 100))",
    )
    assert outcome.ending == "ok", outcome.stderr
    assert outcome.stdout == "child of base\n"
    assert outcome.value is not None and int(outcome.value) > 0


def test_no_network(sandbox):
    # A server listening on this machine, which must see no connection.
    with FakeIpService() as service:
        host, port = service.url.split("//")[1].rstrip("/").split(":")
        outcome, _ = run(
            sandbox,
            "import socket, urllib.request\n"
            "attempts = [\n"
            f"    lambda: socket.socket().connect(({host!r}, {port})),\n"
            f"    lambda: socket.create_connection(({host!r}, {port}), timeout=2),\n"
            f"    lambda: urllib.request.urlopen({service.url!r}, timeout=2),\n"
            "]\n"
            "for attempt in attempts:\n"
            "    try:\n"
            "        attempt()\n"
            "        print('connected')\n"
            "    except Exception as e:\n"
            "        print('refused', type(e).__name__)\n",
        )
    assert outcome.ending == "ok", outcome.stderr
    lines = outcome.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("refused") for line in lines), lines
    assert service.requests == 0


def test_no_host_files_and_no_escape_through_dot_dot(sandbox, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    outcome, _ = run(
        sandbox,
        "paths = ['/etc/passwd', "
        f"{str(secret)!r}, '/output/../etc/passwd', '/scratch/../../etc/passwd', "
        "'/network/../output/x']\n"
        "for p in paths:\n"
        "    try:\n"
        "        print(p, open(p).read()[:20])\n"
        "    except OSError as e:\n"
        "        print(p, 'refused', type(e).__name__)\n",
    )
    assert outcome.ending == "ok", outcome.stderr
    lines = outcome.stdout.splitlines()
    assert len(lines) == 5
    assert all(" refused " in line for line in lines), lines
    assert "root:" not in outcome.stdout and "host secret" not in outcome.stdout


def test_read_only_mount_refuses_writes(sandbox):
    outcome, reads = run(
        sandbox,
        "import os\n"
        "for action in (lambda: open('/network/new', 'w'), lambda: open('/network/current-ip', 'w'),"
        " lambda: os.mkdir('/network/d'), lambda: os.remove('/network/current-ip')):\n"
        "    try:\n"
        "        action()\n"
        "        print('allowed')\n"
        "    except OSError as e:\n"
        "        print('refused', type(e).__name__)\n"
        "print(open('/network/current-ip').read().strip())\n",
    )
    assert outcome.ending == "ok", outcome.stderr
    assert outcome.stdout.splitlines() == ["refused PermissionError"] * 4 + [TEST_IP]
    assert [read.path for read in reads] == ["/network/current-ip"]


def test_a_runaway_loop_is_stopped_and_the_next_call_works(sandbox):
    limits = Limits(timeout_seconds=1)
    outcome, _ = run(sandbox, "print('spinning', flush=True)\nwhile True:\n    pass", limits=limits)
    assert outcome.ending == "timeout"
    assert "spinning" in outcome.stdout
    assert "1 s wall-clock limit" in result_text(outcome, [], [], limits)
    after, _ = run(sandbox, "6 * 7")
    assert after.ending == "ok" and after.value == "42"


@pytest.mark.parametrize(
    "hog",
    ["x = bytearray(900 * 1024 * 1024)", "x = []\nwhile True:\n    x.append(' ' * 1_000_000)"],
)
def test_a_memory_hog_is_stopped_and_the_next_call_works(sandbox, hog):
    limits = Limits(memory_bytes=128 * MIB)
    outcome, _ = run(sandbox, hog, limits=limits)
    assert outcome.ending == "memory", (outcome.ending, outcome.stderr)
    assert "out of memory (the limit is 128 MiB)" in result_text(outcome, [], [], limits)
    after, _ = run(sandbox, "sum(range(10))")
    assert after.ending == "ok" and after.value == "45"


def test_host_reads_are_recorded_and_served_from_the_allow_list(sandbox, monkeypatch):
    with FakeIpService() as service:
        monkeypatch.setenv("ABSURD_TUI_IP_URL", service.url)
        outcome, reads = run(
            sandbox,
            "import os\n"
            "print(os.listdir('/network'))\n"
            "print(os.path.getsize('/network/current-ip'))\n"
            "open('/network/current-ip').read().strip()",
            files={"current-ip": current_ip},
        )
    assert outcome.ending == "ok", outcome.stderr
    assert outcome.stdout.splitlines() == ["['current-ip']", str(len(TEST_IP) + 1)]
    assert outcome.value == repr(TEST_IP)
    # A stat and a read in one call make one host request and one recorded read.
    assert service.requests == 1
    assert reads == [HostRead("/network/current-ip", len(TEST_IP) + 1)]


def test_a_failing_host_read_is_an_io_error_with_the_reason_recorded(sandbox):
    def broken() -> str:
        raise RuntimeError("the IP service could not be reached (offline)")

    outcome, reads = run(
        sandbox,
        "try:\n    open('/network/current-ip').read()\nexcept OSError as e:\n    print(type(e).__name__)",
        files={"current-ip": broken},
    )
    assert outcome.stdout.strip() == "OSError"
    assert reads == [
        HostRead("/network/current-ip", 0, "the IP service could not be reached (offline)")
    ]
    assert "host read /network/current-ip failed: the IP service could not be reached" in (
        result_text(outcome, reads, [], Limits())
    )


def test_workspace_changes_are_hashes_and_limits_are_refusals(sandbox):
    ws = Workspace(["/output", "/scratch"], lambda sha: b"", file_bytes=1000, workspace_bytes=1500)
    before = ws.snapshot()
    outcome, _ = run(
        sandbox,
        "import os\n"
        "os.makedirs('/scratch/a/b')\n"
        "open('/scratch/a/b/note.txt', 'w').write('hello')\n"
        "open('/output/keep.bin', 'wb').write(b'x' * 900)\n"
        "for name, size in (('big', 1001), ('full', 900)):\n"
        "    try:\n"
        "        with open('/output/' + name, 'wb') as f:\n"
        "            f.write(b'y' * size)\n"
        "        print(name, 'written')\n"
        "    except OSError as e:\n"
        "        print(name, 'refused', e.strerror)\n",
        ws=ws,
    )
    assert outcome.ending == "ok", outcome.stderr
    assert outcome.stdout.splitlines() == [
        "big refused File too large",
        "full refused No space left on device",
    ]
    changes = ws.changes_since(before)
    by_path = {c["path"]: c for c in changes}
    assert by_path["/scratch/a"] == {"path": "/scratch/a", "kind": "dir"}
    assert by_path["/scratch/a/b/note.txt"]["size"] == 5
    assert by_path["/output/keep.bin"]["size"] == 900
    assert len(by_path["/output/keep.bin"]["sha256"]) == 64
    # The refused files were created empty at open, then refused their content.
    assert by_path["/output/big"]["size"] == 0


def test_errors_show_the_code_s_own_lines(sandbox):
    failed, _ = run(sandbox, "x = 1\ndef f():\n    raise ValueError('boom')\nf()")
    assert failed.ending == "error" and failed.exit_code == 1
    assert 'File "<code>", line 3, in f' in failed.stderr
    assert "raise ValueError('boom')" in failed.stderr
    assert failed.stderr.rstrip().endswith("ValueError: boom")
    assert "<string>" not in failed.stderr  # the sandbox's own runner is not shown
    syntax, _ = run(sandbox, "print('unclosed'")
    assert syntax.ending == "error" and "SyntaxError" in syntax.stderr
    assert "The code failed (exit status 1)." in result_text(syntax, [], [], Limits())


def test_files_are_limited_to_what_a_checkpoint_can_store(monkeypatch):
    import base64
    import json

    from absurd_tui.agent.sandbox.base import Limits, storable_file_bytes

    monkeypatch.setenv("ABSURD_MAX_PAYLOAD_BYTES", str(100_000))
    limit = Limits().file_bytes
    assert limit == storable_file_bytes() < 100_000
    # The largest file allowed still fits the stored form under the payload limit.
    stored = {"size": limit, "base64": base64.b64encode(b"x" * limit).decode("ascii")}
    assert len(json.dumps(stored)) <= 100_000
