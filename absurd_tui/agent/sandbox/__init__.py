"""The code interpreter's sandbox: run agent-written Python with no network and no view
of the host beyond the mounts it is given (see ``base.py`` for the interface,
``files.py`` and ``mounts.py`` for the file system, ``wasi.py`` for the backend).

``default_sandbox()`` is the process-wide backend. ``start_warm_up()`` prepares it in a
background thread (the first time on a machine this compiles the runtime, which takes
a minute or two) and reports progress to a callback, so a console or a worker log can
say what is going on; a call made meanwhile waits for the compile to finish.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .base import (
    DEFAULT_MEMORY_BYTES,
    DEFAULT_TIMEOUT_SECONDS,
    CallOutcome,
    HostRead,
    Limits,
    MountSpec,
    Sandbox,
    SandboxParams,
    SandboxStatus,
    SandboxUnavailable,
)
from .files import FileRef, HostFolder, Workspace, sha256
from .mounts import (
    NETWORK,
    OUTPUT,
    SCRATCH,
    HostFileError,
    MountRegistry,
    current_ip,
    default_mounts,
    host_file,
)
from .wasi import INSTALL_HINT, WasiSandbox, is_compiled, is_installed

log = logging.getLogger(__name__)

_lock = threading.Lock()
_backend: Sandbox | None = None
_status = SandboxStatus("cold", "the Python sandbox has not been prepared yet")
_warming: threading.Thread | None = None
_listeners: list[Callable[[SandboxStatus], object]] = []


def default_sandbox() -> Sandbox:
    global _backend
    with _lock:
        if _backend is None:
            _backend = WasiSandbox()
        return _backend


def sandbox_status() -> SandboxStatus:
    with _lock:
        return SandboxStatus(_status.state, _status.message, _status.seconds)


def _set_status(state: str, message: str, seconds: float | None = None) -> None:
    global _status
    with _lock:
        _status = SandboxStatus(state, message, seconds)  # type: ignore[arg-type]
        listeners = list(_listeners)
        current = SandboxStatus(_status.state, _status.message, _status.seconds)
    for listener in listeners:
        listener(current)


def start_warm_up(on_change: Callable[[SandboxStatus], object] | None = None) -> SandboxStatus:
    """Prepare the sandbox in a daemon thread (once per process); returns the status now.

    ``on_change`` is called, on the warming thread, with each new status.
    """
    global _warming
    with _lock:
        if on_change is not None:
            _listeners.append(on_change)
        if _warming is not None or _status.state in ("ready", "missing"):
            return SandboxStatus(_status.state, _status.message, _status.seconds)
        _warming = threading.Thread(target=_warm, name="sandbox-warm-up", daemon=True)
        thread = _warming
    thread.start()
    return sandbox_status()


def _warm() -> None:
    if not is_installed():
        _set_status("missing", f"code interpreter off: {INSTALL_HINT}")
        return
    compiled = is_compiled()
    _set_status(
        "warming",
        "loading the Python sandbox"
        if compiled
        else "compiling the Python sandbox (one-time, about 2 minutes)",
    )
    started = time.monotonic()
    try:
        default_sandbox().warm_up()
    except Exception as exc:
        # The tool reports the same problem to the model on each call; here it is
        # only said once, for the person watching.
        log.warning("The Python sandbox could not be prepared: %s", exc)
        _set_status("failed", f"the Python sandbox failed to start: {exc}")
        return
    seconds = time.monotonic() - started
    _set_status("ready", f"Python sandbox ready ({seconds:.0f} s)", seconds)


__all__ = [
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_TIMEOUT_SECONDS",
    "NETWORK",
    "OUTPUT",
    "SCRATCH",
    "CallOutcome",
    "FileRef",
    "HostFileError",
    "HostFolder",
    "HostRead",
    "Limits",
    "MountRegistry",
    "MountSpec",
    "Sandbox",
    "SandboxParams",
    "SandboxStatus",
    "SandboxUnavailable",
    "Workspace",
    "current_ip",
    "default_mounts",
    "default_sandbox",
    "host_file",
    "is_compiled",
    "is_installed",
    "sandbox_status",
    "sha256",
    "start_warm_up",
]
