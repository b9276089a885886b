"""The file system the agent's code sees: writable workspace folders and host-served files.

Two kinds of mount, both plain Python and independent of the backend:

- A workspace folder (``/output``, ``/scratch``) is writable and lives in a
  ``Workspace``: a map of paths to content hashes, rebuilt for every call from the
  changes of the calls before it, with the contents loaded on first read. After a call,
  ``changes_since`` says what it created, changed or removed, as hashes, which is what
  the call's checkpoint stores.
- A host folder (``/network``) is read-only and serves an allow-list of files, each
  produced by a host function when the code reads it (``/network/current-ip`` makes the
  host fetch the machine's public address). The code cannot name anything else: there
  is no URL to pass, only the files the host offers. Every read is recorded.

Providers speak in paths relative to their mount (``/`` is the mount itself), already
normalised by the backend, and answer with ``Node`` values or raise ``OSError`` with an
errno; the backend adapts them to its own protocol.
"""

from __future__ import annotations

import errno
import hashlib
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .base import DEFAULT_FILE_BYTES, DEFAULT_WORKSPACE_BYTES, HostRead

DIR: Literal["dir"] = "dir"


@dataclass(frozen=True)
class Node:
    kind: Literal["file", "dir"]
    size: int = 0


@dataclass(frozen=True)
class FileRef:
    sha256: str
    size: int


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fail(code: int, path: str) -> OSError:
    return OSError(code, errno.errorcode.get(code, "error"), path)


def _join(root: str, path: str) -> str:
    return root if path == "/" else root.rstrip("/") + path


Manifest = dict[str, "FileRef | str"]
"""A workspace's state: guest path to a file's hash and size, or ``DIR``."""


class Workspace:
    """The writable folders of one agent task, as of the call about to run.

    ``load(sha)`` returns a stored file's bytes; it is called only when the code reads
    a file an earlier call wrote. Limits: no file over ``file_bytes`` (the code gets
    EFBIG), no more than ``workspace_bytes`` in all (ENOSPC).
    """

    def __init__(
        self,
        roots: Iterable[str],
        load: Callable[[str], bytes],
        *,
        file_bytes: int = DEFAULT_FILE_BYTES,
        workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    ) -> None:
        self.roots = tuple(roots)
        self._load = load
        self.file_bytes = file_bytes
        self.workspace_bytes = workspace_bytes
        self.entries: Manifest = {}
        self._data: dict[str, bytes] = {}

    # -- durable state

    def snapshot(self) -> Manifest:
        return dict(self.entries)

    def apply(self, changes: Iterable[Mapping[str, Any]]) -> None:
        """Replay the changes a committed call recorded (``changes_since`` of that call)."""
        for change in changes:
            path = str(change["path"])
            if change.get("deleted"):
                self.entries.pop(path, None)
                self._data.pop(path, None)
            elif change.get("kind") == DIR:
                self.entries[path] = DIR
            else:
                ref = FileRef(str(change["sha256"]), int(change["size"]))
                if self.entries.get(path) != ref:
                    self._data.pop(path, None)
                self.entries[path] = ref

    def changes_since(self, before: Manifest) -> list[dict[str, Any]]:
        """What changed since ``before``, sorted by path: the call's durable record."""
        changes: list[dict[str, Any]] = []
        for path in sorted(set(before) | set(self.entries)):
            old, new = before.get(path), self.entries.get(path)
            if old == new:
                continue
            if new is None:
                changes.append({"path": path, "deleted": True})
            elif new == DIR:
                changes.append({"path": path, "kind": DIR})
            else:
                assert isinstance(new, FileRef)
                changes.append(
                    {"path": path, "kind": "file", "sha256": new.sha256, "size": new.size}
                )
        return changes

    def content(self, path: str) -> bytes:
        """A file's bytes (loaded from storage on first use)."""
        data = self._data.get(path)
        if data is None:
            ref = self.entries.get(path)
            if not isinstance(ref, FileRef):
                raise _fail(errno.ENOENT, path)
            data = self._load(ref.sha256)
            if sha256(data) != ref.sha256:
                raise AssertionError(f"stored content of {path} does not match its hash")
            self._data[path] = data
        return data

    def used_bytes(self) -> int:
        return sum(ref.size for ref in self.entries.values() if isinstance(ref, FileRef))

    def files_under(self, root: str) -> dict[str, FileRef]:
        prefix = root.rstrip("/") + "/"
        return {
            path: ref
            for path, ref in self.entries.items()
            if isinstance(ref, FileRef) and path.startswith(prefix)
        }

    # -- the file system calls, on full guest paths

    def _is_dir(self, path: str) -> bool:
        return path in self.roots or self.entries.get(path) == DIR

    def _parent_ok(self, path: str) -> None:
        parent = posixpath.dirname(path)
        if self._is_dir(parent):
            return
        raise _fail(errno.ENOTDIR if parent in self.entries else errno.ENOENT, path)

    def stat(self, path: str) -> Node:
        if self._is_dir(path):
            return Node(DIR)
        ref = self.entries.get(path)
        if isinstance(ref, FileRef):
            return Node("file", ref.size)
        raise _fail(errno.ENOENT, path)

    def list(self, path: str) -> list[tuple[str, str]]:
        if not self._is_dir(path):
            raise _fail(errno.ENOTDIR if path in self.entries else errno.ENOENT, path)
        prefix = path.rstrip("/") + "/"
        found = []
        for entry, ref in self.entries.items():
            if entry.startswith(prefix) and "/" not in entry[len(prefix) :]:
                found.append((entry[len(prefix) :], DIR if ref == DIR else "file"))
        return sorted(found)

    def read(self, path: str) -> bytes:
        if self._is_dir(path):
            raise _fail(errno.EISDIR, path)
        self._parent_ok(path)
        return self.content(path)

    def write(self, path: str, data: bytes) -> None:
        if self._is_dir(path):
            raise _fail(errno.EISDIR, path)
        self._parent_ok(path)
        if len(data) > self.file_bytes:
            raise _fail(errno.EFBIG, path)
        old = self.entries.get(path)
        old_size = old.size if isinstance(old, FileRef) else 0
        if self.used_bytes() - old_size + len(data) > self.workspace_bytes:
            raise _fail(errno.ENOSPC, path)
        data = bytes(data)
        self.entries[path] = FileRef(sha256(data), len(data))
        self._data[path] = data

    def mkdir(self, path: str) -> None:
        if path in self.entries or path in self.roots:
            raise _fail(errno.EEXIST, path)
        self._parent_ok(path)
        self.entries[path] = DIR

    def remove(self, path: str) -> None:
        if self._is_dir(path):
            raise _fail(errno.EISDIR, path)
        if path not in self.entries:
            raise _fail(errno.ENOENT, path)
        del self.entries[path]
        self._data.pop(path, None)

    def rmdir(self, path: str) -> None:
        if path in self.roots:
            raise _fail(errno.EBUSY, path)
        if self.entries.get(path) != DIR:
            raise _fail(errno.ENOTDIR if path in self.entries else errno.ENOENT, path)
        if self.list(path):
            raise _fail(errno.ENOTEMPTY, path)
        del self.entries[path]

    def rename(self, src: str, dst: str) -> None:
        if src not in self.entries:
            raise _fail(errno.ENOENT, src)
        self._parent_ok(dst)
        if self.entries[src] == DIR:
            if dst in self.entries and (self.entries[dst] != DIR or self.list(dst)):
                raise _fail(errno.ENOTEMPTY if self.entries[dst] == DIR else errno.ENOTDIR, dst)
            prefix = src + "/"
            moved = {
                dst + path[len(src) :]: self.entries.pop(path)
                for path in [p for p in self.entries if p == src or p.startswith(prefix)]
            }
            for path in list(self._data):
                if path == src or path.startswith(prefix):
                    self._data[dst + path[len(src) :]] = self._data.pop(path)
            self.entries.update(moved)
            return
        if self._is_dir(dst):
            raise _fail(errno.EISDIR, dst)
        self.entries[dst] = self.entries.pop(src)
        if src in self._data:
            self._data[dst] = self._data.pop(src)

    def mount(self, root: str) -> WorkspaceFolder:
        return WorkspaceFolder(self, root)


class WorkspaceFolder:
    """One writable mount of a workspace, in the mount-relative paths backends use."""

    writable = True

    def __init__(self, workspace: Workspace, root: str) -> None:
        self.workspace = workspace
        self.root = root

    def stat(self, path: str) -> Node:
        return self.workspace.stat(_join(self.root, path))

    def list(self, path: str) -> list[tuple[str, str]]:
        return self.workspace.list(_join(self.root, path))

    def read(self, path: str) -> bytes:
        return self.workspace.read(_join(self.root, path))

    def write(self, path: str, data: bytes) -> None:
        self.workspace.write(_join(self.root, path), data)

    def mkdir(self, path: str) -> None:
        self.workspace.mkdir(_join(self.root, path))

    def remove(self, path: str) -> None:
        self.workspace.remove(_join(self.root, path))

    def rmdir(self, path: str) -> None:
        self.workspace.rmdir(_join(self.root, path))

    def rename(self, src: str, dst: str) -> None:
        self.workspace.rename(_join(self.root, src), _join(self.root, dst))


MAX_HOST_FILE_BYTES = 1_000_000


class HostFolder:
    """A read-only mount whose files are host functions, served on read.

    ``files`` maps paths inside the mount (``current-ip``, ``a/b.json``) to functions
    returning ``bytes`` or ``str``. A function is called at most once per call (a
    ``stat`` before the read uses the same answer); an exception becomes EIO for the
    code and the recorded read carries its message, which the model is shown.
    """

    writable = False

    def __init__(
        self, root: str, files: Mapping[str, Callable[[], bytes | str]], record: list[HostRead]
    ) -> None:
        self.root = root
        self.files = {"/" + name.strip("/"): fn for name, fn in files.items()}
        self._record = record
        self._served: dict[str, bytes | OSError] = {}

    def _dirs(self) -> set[str]:
        dirs = {"/"}
        for name in self.files:
            parent = posixpath.dirname(name)
            while parent not in dirs:
                dirs.add(parent)
                parent = posixpath.dirname(parent)
        return dirs

    def _serve(self, path: str) -> bytes:
        if path not in self._served:
            full = _join(self.root, path)
            try:
                value = self.files[path]()
                data = value.encode() if isinstance(value, str) else bytes(value)
                if len(data) > MAX_HOST_FILE_BYTES:
                    raise ValueError(f"the host's answer is over {MAX_HOST_FILE_BYTES:,} bytes")
                self._served[path] = data
                self._record.append(HostRead(full, len(data)))
            except Exception as exc:
                # The model reads the reason in the call's result; the code gets EIO.
                message = str(exc) or exc.__class__.__name__
                self._served[path] = _fail(errno.EIO, full)
                self._record.append(HostRead(full, 0, message))
        served = self._served[path]
        if isinstance(served, OSError):
            raise served
        return served

    def stat(self, path: str) -> Node:
        if path in self._dirs():
            return Node(DIR)
        if path in self.files:
            return Node("file", len(self._serve(path)))
        raise _fail(errno.ENOENT, path)

    def list(self, path: str) -> list[tuple[str, str]]:
        dirs = self._dirs()
        if path not in dirs:
            raise _fail(errno.ENOTDIR if path in self.files else errno.ENOENT, path)
        prefix = path.rstrip("/") + "/"
        found = {}
        for name in [*self.files, *dirs]:
            if name.startswith(prefix) and name != path and "/" not in name[len(prefix) :]:
                found[name[len(prefix) :]] = DIR if name in dirs else "file"
        return sorted(found.items())

    def read(self, path: str) -> bytes:
        if path in self._dirs():
            raise _fail(errno.EISDIR, path)
        if path not in self.files:
            raise _fail(errno.ENOENT, path)
        return self._serve(path)
