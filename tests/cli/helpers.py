"""Running ``absurd-tui`` as a real subprocess against a test's database.

``cli(*args)`` runs ``python -m absurd_tui ARGS --dsn <db_dsn>`` and returns its exit
code, stdout and stderr. The child imports the same absurd_tui as the tests, never
sees the developer's ABSURD_DATABASE_URL, and has a private data directory, so no
test touches a real embedded server by accident.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import absurd_tui

PACKAGE_ROOT = Path(absurd_tui.__file__).resolve().parents[1]
TASK_MODULE = Path(__file__).with_name("cli_tasks.py")


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"absurd-tui {' '.join(self.args)} -> {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ABSURD_DATABASE_URL", "ABSURD_TUI_DATA_DIR")
    }
    env["ABSURD_TUI_DATA_DIR"] = str(tmp_path / "no-embedded-server-here")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Cli:
    def __init__(self, dsn: str, tmp_path: Path):
        self.dsn = dsn
        self.tmp_path = tmp_path
        self.env = cli_env(tmp_path)

    def command(self, args: tuple[str, ...], dsn: str | None) -> list[str]:
        cmd = [sys.executable, "-m", "absurd_tui", *args]
        if dsn is not None:
            cmd += ["--dsn", dsn]
        return cmd

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        dsn: str | bool | None = True,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Result:
        chosen = self.dsn if dsn is True else (None if dsn is False else dsn)
        proc = subprocess.run(
            self.command(args, chosen),
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=self.tmp_path,
            timeout=timeout,
        )
        return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)

    def start(self, *args: str, env: dict[str, str] | None = None) -> Background:
        """Start a long-running command (a worker); its output goes to files, so a
        chatty process never blocks on a full pipe."""
        return Background(self.command(args, self.dsn), {**self.env, **(env or {})}, self.tmp_path)


class Background:
    _numbers = iter(range(1, 1_000_000))

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path):
        number = next(self._numbers)
        self.out_path = cwd / f"background-{number}.out"
        self.err_path = cwd / f"background-{number}.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; kill if it does not exit in time (then fail loudly)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"process did not stop on SIGTERM:\n{self.log()}") from None
        return self.proc.returncode


def assert_clean_error(result: Result, code: int, *needles: str) -> None:
    """A failed command: the exit code, one message on stderr, no traceback."""
    assert result.code == code, str(result)
    assert "Traceback" not in result.err, str(result)
    assert result.err.strip(), str(result)
    for needle in needles:
        assert needle in result.err, f"{needle!r} not in stderr\n{result}"
