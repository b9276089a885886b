"""Running ``absurd-tui`` against a test's database, in-process or as a subprocess.

``cli(*args)`` calls the entry point ``absurd_tui.cli.main([*ARGS, "--dsn", db_dsn])``
in the test process, with stdin, stdout and stderr captured, and returns its exit
code and output. ``cli.process(*args)`` runs ``python -m absurd_tui`` instead, for
what only a real process shows: its exit status, that nothing reaches the terminal
but the message, and signal handling (``cli.start`` for workers). Either way the
command never sees the developer's ABSURD_DATABASE_URL and has a private data
directory, so no test touches a real embedded server by accident.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import absurd_tui
from absurd_tui.cli import main
from absurd_tui.config import DATA_DIR_ENV, DSN_ENV

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


def private_data_dir(tmp_path: Path) -> str:
    return str(tmp_path / "no-embedded-server-here")


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (DSN_ENV, DATA_DIR_ENV)}
    env[DATA_DIR_ENV] = private_data_dir(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Cli:
    def __init__(
        self,
        dsn: str,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ):
        self.dsn = dsn
        self.tmp_path = tmp_path
        self.env = cli_env(tmp_path)
        self._capsys = capsys
        self._monkeypatch = monkeypatch

    def argv(self, args: tuple[str, ...], dsn: str | bool | None) -> list[str]:
        chosen = self.dsn if dsn is True else (None if dsn is False else dsn)
        return [*args, "--dsn", chosen] if chosen is not None else list(args)

    def command(self, args: tuple[str, ...], dsn: str | bool | None) -> list[str]:
        return [sys.executable, "-m", "absurd_tui", *self.argv(args, dsn)]

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        dsn: str | bool | None = True,
        env: dict[str, str] | None = None,
    ) -> Result:
        """Run the command in this process through ``main()``."""
        with self._monkeypatch.context() as patch:
            patch.delenv(DSN_ENV, raising=False)
            patch.setenv(DATA_DIR_ENV, private_data_dir(self.tmp_path))
            for key, value in (env or {}).items():
                patch.setenv(key, value)
            patch.setattr(sys, "stdin", io.StringIO(input if input is not None else ""))
            patch.chdir(self.tmp_path)
            self._capsys.readouterr()  # output of earlier steps is not this command's
            try:
                code = main(self.argv(args, dsn))
            except SystemExit as exc:  # argparse: bad usage, --help, --version
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
            captured = self._capsys.readouterr()
        return Result(tuple(args), code, captured.out, captured.err)

    def process(
        self,
        *args: str,
        input: str | None = None,
        dsn: str | bool | None = True,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Result:
        """Run the command as ``python -m absurd_tui`` in a process of its own."""
        proc = subprocess.run(
            self.command(args, dsn),
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
