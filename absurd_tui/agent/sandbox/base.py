"""The sandbox interface: what one call of agent-written Python gets and gives back.

A backend runs ``code`` in a fresh interpreter that sees only the mounts it is handed
(no network, no host file system) and stops it at the limits. Nothing the code does
makes ``run`` raise: a crash, a timeout or a memory hog is a ``CallOutcome`` the model
reads, never a task failure. ``SandboxUnavailable`` is the one exception, for a backend
that is not installed; the tool reports it to the model too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

MIB = 1024 * 1024

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MEMORY_BYTES = 512 * MIB
DEFAULT_OUTPUT_BYTES = 1 * MIB
DEFAULT_FILE_BYTES = 10 * MIB


def storable_file_bytes() -> int:
    """The largest file whose content fits one stored checkpoint (base64, in JSON) under
    the configured payload limit: a larger file could be written but never stored."""
    from ...sdk.validation import max_payload_bytes

    return max(0, (max_payload_bytes() - 1024) * 3 // 4)


def default_file_bytes() -> int:
    return min(DEFAULT_FILE_BYTES, storable_file_bytes())


DEFAULT_WORKSPACE_BYTES = 50 * MIB
MAX_TIMEOUT_SECONDS = 600.0
MAX_MEMORY_BYTES = 4096 * MIB


@dataclass(frozen=True)
class Limits:
    """Per call: wall-clock seconds, guest memory and kept output; per task: file sizes."""

    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    output_bytes: int = DEFAULT_OUTPUT_BYTES
    """Bytes kept per stream (stdout, stderr); the rest is dropped and said so."""
    file_bytes: int = field(default_factory=default_file_bytes)
    """The largest file the code may write to a writable mount (at most what can be stored)."""
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES
    """All files of the writable mounts together, across the task's calls."""

    def describe(self) -> str:
        return (
            f"{self.timeout_seconds:g} s wall-clock and {self.memory_bytes // MIB} MiB of "
            f"memory per call; files up to {self.file_bytes / MIB:.1f} MiB each, "
            f"{self.workspace_bytes // MIB} MiB in all"
        )


Ending = Literal["ok", "error", "timeout", "memory", "stopped"]


@dataclass(frozen=True)
class HostRead:
    """One read the host served to the code (a file of a host-served mount)."""

    path: str
    size: int
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        value: dict[str, object] = {"path": self.path, "size": self.size}
        if self.error is not None:
            value["error"] = self.error
        return value


@dataclass(frozen=True)
class CallOutcome:
    """How one call ended, from the backend."""

    ending: Ending
    exit_code: int | None
    stdout: str
    stderr: str
    value: str | None = None
    """The repr of the code's last expression, as a notebook shows it (None if none)."""
    truncated: tuple[str, ...] = ()
    detail: str | None = None
    """The backend's words when it stopped the call (a trap name)."""
    host_reads: tuple[HostRead, ...] = ()
    refused_writes: tuple[str, ...] = ()
    seconds: float = 0.0


class SandboxUnavailable(RuntimeError):
    """No backend can run code here; the message says how to install one."""


@dataclass(frozen=True)
class MountSpec:
    """A mount as a backend sees it: a guest path and its provider (see ``files.py``)."""

    guest: str
    provider: object
    writable: bool = False


class Sandbox(Protocol):
    name: str

    def run(self, code: str, mounts: Sequence[MountSpec], limits: Limits) -> CallOutcome: ...

    def warm_up(self) -> None:
        """Do the one-time preparation now (it may take minutes); later calls are fast."""
        ...


@dataclass
class SandboxStatus:
    """Where the process-wide sandbox stands, for notices in the console and the log."""

    state: Literal["missing", "cold", "warming", "ready", "failed"]
    message: str
    seconds: float | None = field(default=None)


@dataclass(frozen=True)
class SandboxParams:
    """The agent param ``sandbox``: ``false`` turns the code interpreter off for the
    task; an object may name the mounts (``["/network", "/output"]``) and set
    ``timeout_seconds`` and ``memory_mb`` per call."""

    enabled: bool = True
    mounts: tuple[str, ...] | None = None
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def parse(cls, value: object) -> SandboxParams:
        """Raises ``ValueError`` with a sentence saying what to fix."""
        if value is None or value is True:
            return cls()
        if value is False:
            return cls(enabled=False)
        if not isinstance(value, dict):
            raise ValueError('"sandbox" must be false or an object such as {"timeout_seconds": 60}')
        unknown = sorted(set(value) - {"mounts", "timeout_seconds", "memory_mb"})
        if unknown:
            raise ValueError(
                f'unknown "sandbox" key(s) {", ".join(map(repr, unknown))}; '
                "expected mounts, timeout_seconds, memory_mb"
            )
        mounts = value.get("mounts")
        if mounts is not None and (
            not isinstance(mounts, list) or not all(isinstance(m, str) for m in mounts)
        ):
            raise ValueError('"sandbox.mounts" must be a list of folders such as ["/output"]')
        timeout = value.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout <= MAX_TIMEOUT_SECONDS
        ):
            raise ValueError(
                f'"sandbox.timeout_seconds" must be a number above 0, at most {MAX_TIMEOUT_SECONDS:g}'
            )
        memory_mb = value.get("memory_mb", DEFAULT_MEMORY_BYTES // MIB)
        if (
            isinstance(memory_mb, bool)
            or not isinstance(memory_mb, int)
            or not 32 <= memory_mb <= MAX_MEMORY_BYTES // MIB
        ):
            raise ValueError(
                f'"sandbox.memory_mb" must be a whole number from 32 to {MAX_MEMORY_BYTES // MIB}'
            )
        return cls(
            True,
            tuple(mounts) if mounts is not None else None,
            Limits(timeout_seconds=float(timeout), memory_bytes=memory_mb * MIB),
        )
