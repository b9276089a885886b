"""The ``execute_python`` tool: the agent's code interpreter, durable call by call.

Each call is a step of its own (``tool:execute_python``, numbered), whose checkpoint
is the tool result the model saw (stdout and stderr tails, the last expression's
value, the files written) plus, under ``sandbox``, the file-system changes as content
hashes and the host reads. File contents are extra checkpoints of the task, one per
distinct content, named ``$file:<sha256>`` and holding the bytes in base64; they are
written before the step's own checkpoint, so a committed call never names a content
that is not stored, and the engine deletes them with the task.

The files before call N are the committed changes of calls 1..N-1, replayed in order
as the task walks its checkpoints, so a worker killed during call N resumes with the
same files and runs only call N again. Only ``/output`` and ``/scratch`` (the writable
mounts) persist; everything else a call does is gone when it ends.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..db.models import FILE_CHECKPOINT_PREFIX
from .sandbox import (
    HostFolder,
    HostRead,
    Limits,
    MountSpec,
    Sandbox,
    SandboxUnavailable,
    Workspace,
    default_sandbox,
)
from .sandbox.base import MIB, CallOutcome, storable_file_bytes
from .sandbox.mounts import MountDef
from .tools import ToolResult

TAIL_CHARS = 4000
"""Of stdout and of stderr, the model is shown the last this many characters."""

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "code": {
            "type": "string",
            "description": "Python source to run. The value of a last expression is shown.",
        }
    },
    "required": ["code"],
}


def describe(mounts: Sequence[MountDef], limits: Limits | None = None) -> str:
    """The tool's description for the model: what it is, the folders, the limits."""
    limits = limits or Limits()
    folders = "\n".join(
        f"- {m.root}: {m.description}"
        + (f" (files: {', '.join(sorted(m.files))})" if m.files else "")
        for m in mounts
    )
    return (
        "Run Python 3 code in a sandbox and get back its stdout, stderr and the value of "
        "its last expression. The standard library, numpy, pandas, matplotlib (Agg "
        "backend) and Pillow are available; nothing can be installed. There is no "
        "network and no access to this machine except these folders:\n"
        f"{folders}\n"
        "Each call starts a fresh interpreter: variables do not carry over, files in the "
        "writable folders do. Save results you want to hand over (pictures, reports) in "
        "/output and mention them in your answer. Limits: "
        f"{limits.describe()}; going past one stops the call with an error."
    )


def _limits_text(limits: Limits) -> str:
    return f"{limits.timeout_seconds:g} s, {limits.memory_bytes // MIB} MiB"


class Interpreter:
    """The code interpreter of one execution of an agent task.

    Built once per execution; ``call`` is used for every ``execute_python`` tool use in
    order, replayed or live, so the workspace always holds the files as of the call.
    """

    def __init__(
        self,
        ctx: Any,
        mounts: Sequence[MountDef],
        limits: Limits,
        sandbox: Callable[[], Sandbox] = default_sandbox,
    ) -> None:
        self.ctx = ctx
        self.mounts = list(mounts)
        self.limits = limits
        self._sandbox = sandbox
        self.workspace = Workspace(
            [m.root for m in self.mounts if m.writable],
            self._load,
            # A file the task's checkpoints could not store is refused when it is written.
            file_bytes=min(limits.file_bytes, storable_file_bytes()),
            workspace_bytes=limits.workspace_bytes,
        )
        self._contents: dict[str, bytes] = {}
        """Contents seen in this execution, by hash: each ``$file`` step is begun once."""

    # -- content storage, through the task's checkpoints

    def _load(self, sha: str) -> bytes:
        if sha not in self._contents:
            handle = self.ctx.begin_step(FILE_CHECKPOINT_PREFIX + sha)
            if not handle.done:
                raise AssertionError(f"a committed call names content {sha} that is not stored")
            self._contents[sha] = base64.b64decode(handle.state["base64"])
        return self._contents[sha]

    def _store(self, sha: str, data: bytes) -> None:
        if sha in self._contents:
            return
        handle = self.ctx.begin_step(FILE_CHECKPOINT_PREFIX + sha)
        if not handle.done:
            self.ctx.complete_step(
                handle, {"size": len(data), "base64": base64.b64encode(data).decode("ascii")}
            )
        self._contents[sha] = data

    # -- calls

    def replay(self, stored: Mapping[str, Any]) -> None:
        """Apply the file changes of a call that was already checkpointed."""
        sandbox = stored.get("sandbox")
        if isinstance(sandbox, Mapping):
            self.workspace.apply(sandbox.get("changes") or ())

    def run(self, tool_use_id: str, tool_input: Any) -> dict[str, Any]:
        """Run one call live; the returned JSON is the step's checkpoint."""
        code = tool_input.get("code") if isinstance(tool_input, Mapping) else None
        if not isinstance(code, str) or not code.strip():
            return ToolResult(
                tool_use_id, 'Invalid input for execute_python: "code" must be Python source.', True
            ).to_json()
        before = self.workspace.snapshot()
        reads: list[HostRead] = []
        specs = [
            MountSpec(m.root, self.workspace.mount(m.root), True)
            if m.writable
            else MountSpec(m.root, HostFolder(m.root, m.files, reads))
            for m in self.mounts
        ]
        try:
            outcome = self._sandbox().run(code, specs, self.limits)
        except SandboxUnavailable as exc:
            return ToolResult(
                tool_use_id, f"execute_python is not available: {exc}", True
            ).to_json()
        changes = self.workspace.changes_since(before)
        for change in changes:
            if change.get("kind") == "file":
                self._store(change["sha256"], self.workspace.content(change["path"]))
        text = result_text(outcome, reads, changes, self.limits)
        return {
            **ToolResult(tool_use_id, text, outcome.ending != "ok").to_json(),
            "sandbox": {
                "ending": outcome.ending,
                "exit_code": outcome.exit_code,
                "seconds": round(outcome.seconds, 3),
                "changes": changes,
                "host_reads": [read.to_json() for read in reads],
            },
        }


def _tail(text: str) -> str:
    if len(text) <= TAIL_CHARS:
        return text
    return f"[{len(text) - TAIL_CHARS:,} earlier characters cut]\n" + text[-TAIL_CHARS:]


def result_text(
    outcome: CallOutcome,
    reads: Sequence[HostRead],
    changes: Sequence[Mapping[str, Any]],
    limits: Limits,
) -> str:
    """What the model reads back from one call."""
    lines: list[str] = []
    if outcome.ending == "timeout":
        lines.append(
            f"Stopped: the code ran past the {limits.timeout_seconds:g} s wall-clock limit."
        )
    elif outcome.ending == "memory":
        lines.append(
            f"Stopped: the code ran out of memory (the limit is {limits.memory_bytes // MIB} MiB)."
        )
    elif outcome.ending == "stopped":
        lines.append(f"Stopped by the sandbox: {outcome.detail}.")
    elif outcome.ending == "error":
        lines.append(f"The code failed (exit status {outcome.exit_code}).")
    if outcome.stdout:
        lines += ["stdout:", _tail(outcome.stdout.rstrip("\n"))]
    if outcome.stderr and outcome.ending != "memory":
        lines += ["stderr:", _tail(outcome.stderr.rstrip("\n"))]
    elif outcome.ending == "memory":
        lines += ["stderr:", "MemoryError"]
    if outcome.truncated:
        lines.append(
            f"(output past {limits.output_bytes // MIB} MiB was dropped: {', '.join(outcome.truncated)})"
        )
    if outcome.value is not None:
        lines += ["value:", _tail(outcome.value)]
    for read in reads:
        if read.error:
            lines.append(f"host read {read.path} failed: {read.error}")
        else:
            lines.append(f"read {read.path} ({read.size:,} bytes) from the host")
    for change in changes:
        if change.get("deleted"):
            lines.append(f"removed {change['path']}")
        elif change.get("kind") == "file":
            lines.append(f"wrote {change['path']} ({change['size']:,} bytes)")
    for refusal in outcome.refused_writes:
        lines.append(refusal)
    if not lines:
        lines.append("(no output)")
    return "\n".join(lines)
