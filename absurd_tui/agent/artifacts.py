"""The files an agent produced: what the console lists and shows, and what the CLI exports.

An artifact is a file the agent's code left in ``/output``. Its name, size and content
hash come from the checkpoints of the ``execute_python`` calls (``interpreter.py``);
its bytes from the task's ``$file:<sha256>`` checkpoints, read here only when wanted
(they are left out of the task reads the console polls).
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import posixpath
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql

from ..db import tables
from ..db.models import FILE_CHECKPOINT_PREFIX
from .sandbox.mounts import OUTPUT

TEXT_TYPES = ("application/json", "application/xml", "application/javascript")


@dataclass(frozen=True)
class Artifact:
    path: str
    """Where the code saw it, e.g. ``/output/ip_address.png``."""
    sha256: str
    size: int

    @property
    def name(self) -> str:
        """The path inside ``/output`` (what an export writes under its folder)."""
        return self.path[len(OUTPUT) + 1 :] if self.path.startswith(OUTPUT + "/") else self.path

    @property
    def media_type(self) -> str:
        guessed, _ = mimetypes.guess_type(self.path)
        return guessed or "application/octet-stream"

    @property
    def kind(self) -> Literal["image", "text", "binary"]:
        media = self.media_type
        if media.startswith("image/") and media != "image/svg+xml":
            return "image"
        if media.startswith("text/") or media in TEXT_TYPES or media == "image/svg+xml":
            return "text"
        return "binary"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "media_type": self.media_type,
        }


@dataclass(frozen=True)
class HostReadInfo:
    path: str
    size: int
    error: str | None = None


def _changes(stored: Any) -> list[Mapping[str, Any]]:
    sandbox = stored.get("sandbox") if isinstance(stored, Mapping) else None
    changes = sandbox.get("changes") if isinstance(sandbox, Mapping) else None
    return [c for c in changes if isinstance(c, Mapping)] if isinstance(changes, list) else []


def call_files(stored: Any) -> tuple[Artifact, ...]:
    """The files under ``/output`` that one call wrote (from its checkpoint)."""
    return tuple(
        Artifact(str(c["path"]), str(c["sha256"]), int(c["size"]))
        for c in _changes(stored)
        if c.get("kind") == "file" and str(c.get("path", "")).startswith(OUTPUT + "/")
    )


def call_host_reads(stored: Any) -> tuple[HostReadInfo, ...]:
    sandbox = stored.get("sandbox") if isinstance(stored, Mapping) else None
    reads = sandbox.get("host_reads") if isinstance(sandbox, Mapping) else None
    if not isinstance(reads, list):
        return ()
    return tuple(
        HostReadInfo(str(r.get("path")), int(r.get("size") or 0), r.get("error"))
        for r in reads
        if isinstance(r, Mapping)
    )


def final_artifacts(call_results: Iterable[Any]) -> tuple[Artifact, ...]:
    """The files in ``/output`` after these calls (checkpoints in call order)."""
    present: dict[str, Artifact] = {}
    for stored in call_results:
        for change in _changes(stored):
            path = str(change.get("path", ""))
            if not path.startswith(OUTPUT + "/"):
                continue
            if change.get("kind") == "file":
                present[path] = Artifact(path, str(change["sha256"]), int(change["size"]))
            else:
                # Removed, or replaced by a folder (whose files come as changes of their own).
                prefix = path + "/"
                for known in [p for p in present if p == path or p.startswith(prefix)]:
                    del present[known]
    return tuple(present[path] for path in sorted(present))


def load_contents(
    conn: psycopg.Connection, queue: str, task_id: str | uuid.UUID, hashes: Iterable[str]
) -> dict[str, bytes]:
    """The bytes of a task's stored files, by content hash (missing ones are left out)."""
    wanted = sorted({h for h in hashes})
    if not wanted:
        return {}
    query = sql.SQL(
        "SELECT checkpoint_name, state FROM {} "
        "WHERE task_id = %s AND checkpoint_name = ANY(%s) AND status = 'committed'"
    ).format(tables.checkpoints(queue))
    names = [FILE_CHECKPOINT_PREFIX + h for h in wanted]
    found: dict[str, bytes] = {}
    for name, state in conn.execute(query, (uuid.UUID(str(task_id)), names)):
        sha = name[len(FILE_CHECKPOINT_PREFIX) :]
        data = base64.b64decode(state["base64"])
        # A content that does not match its name would be shown as something it is not.
        if hashlib.sha256(data).hexdigest() == sha:
            found[sha] = data
    return found


class ExportError(Exception):
    """The export would lose or overwrite something; nothing was written."""


def export(artifacts: Sequence[Artifact], contents: Mapping[str, bytes], out: Path) -> list[Path]:
    """Write the artifacts under ``out`` (made if missing), by their path in ``/output``.

    Refuses, before writing anything, when a file there differs from the artifact or a
    content is missing; a file already identical is left as it is.
    """
    plans: list[tuple[Path, bytes]] = []
    problems: list[str] = []
    root = out.resolve()
    for artifact in artifacts:
        data = contents.get(artifact.sha256)
        if data is None:
            problems.append(f"{artifact.path}: its content is not stored")
            continue
        relative = posixpath.normpath(artifact.name)
        target = (root / relative).resolve()
        if relative.startswith("..") or root not in target.parents:
            problems.append(f"{artifact.path}: not a path inside the export folder")
            continue
        if target.exists() and (not target.is_file() or target.read_bytes() != data):
            problems.append(f"{target} exists and differs")
            continue
        plans.append((target, data))
    if problems:
        raise ExportError("Nothing was written: " + "; ".join(problems))
    written = []
    for target, data in plans:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.write_bytes(data)
        written.append(target)
    return written
