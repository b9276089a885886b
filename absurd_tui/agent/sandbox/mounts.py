"""Which folders the agent's code sees, and the host functions behind the read-only ones.

The defaults: ``/network`` (read-only, host-served; ``current-ip`` is this machine's
public address), ``/output`` (writable; what the code leaves here is the task's
artifacts) and ``/scratch`` (writable working space). Add a host-served file of your
own the way you add a tool, in a module loaded with ``--tasks``::

    from absurd_tui.agent import host_file

    @host_file("/crm/customers.json")
    def customers() -> str:
        '''Our customers, as JSON.'''
        return json.dumps(load_customers())

The function runs on the worker when the code reads the file, and its answer is the
file's content; nothing else of the host is reachable. An agent task may name the
mounts it gets (param ``sandbox.mounts``); by default it gets all of them.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

IP_URL_ENV = "ABSURD_TUI_IP_URL"
IP_URL = "https://api.ipify.org"
"""The one address ``/network/current-ip`` fetches (it answers with the caller's IP)."""
IP_TIMEOUT_SECONDS = 5.0

NETWORK = "/network"
OUTPUT = "/output"
SCRATCH = "/scratch"


class HostFileError(Exception):
    """A host-served file could not be produced; the message is shown to the model."""


def current_ip() -> str:
    """This machine's public IP address, as the outside world sees it."""
    url = os.environ.get(IP_URL_ENV, "").strip() or IP_URL
    request = urllib.request.Request(url, headers={"User-Agent": "absurd-tui"})
    try:
        with urllib.request.urlopen(request, timeout=IP_TIMEOUT_SECONDS) as response:
            body = response.read(200)
    except urllib.error.HTTPError as exc:
        raise HostFileError(f"the IP service answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HostFileError(f"the IP service could not be reached ({reason})") from None
    text = body.decode("ascii", "replace").strip()
    try:
        return str(ipaddress.ip_address(text)) + "\n"
    except ValueError:
        raise HostFileError("the IP service did not answer with an IP address") from None


@dataclass(frozen=True)
class MountDef:
    root: str
    writable: bool
    description: str
    files: dict[str, Callable[[], bytes | str]] = field(default_factory=dict, compare=False)


def _check_root(root: str) -> str:
    if not root.startswith("/") or root == "/" or ".." in root.split("/") or root.endswith("/"):
        raise ValueError(f"a mount is a folder such as '/network', not {root!r}")
    if root.count("/") != 1:
        raise ValueError(f"mounts are top-level folders such as '/data', not {root!r}")
    return root


class MountRegistry:
    """The mounts offered to the agent's code, by root folder."""

    def __init__(self) -> None:
        self._mounts: dict[str, MountDef] = {}

    def add_folder(self, root: str, description: str) -> None:
        """A writable workspace folder, kept durably across the task's calls."""
        root = _check_root(root)
        existing = self._mounts.get(root)
        if existing is not None and not existing.writable:
            raise ValueError(f"{root} is already a read-only host folder")
        self._mounts[root] = MountDef(root, True, description)

    def add_file(
        self, path: str, fn: Callable[[], bytes | str], description: str | None = None
    ) -> None:
        """A read-only file whose content ``fn`` produces on the host when it is read."""
        root, _, name = path.partition("/")[2].partition("/")
        root = _check_root("/" + root)
        if not name or ".." in name.split("/") or name.endswith("/"):
            raise ValueError(
                f"a host file needs a path such as '/network/current-ip', not {path!r}"
            )
        existing = self._mounts.get(root)
        if existing is not None and existing.writable:
            raise ValueError(f"{root} is a writable folder; host files need a read-only one")
        if existing is None:
            existing = MountDef(root, False, description or "host-served files (read-only)")
            self._mounts[root] = existing
        known = existing.files.get(name)
        if known is not None and known is not fn:
            raise ValueError(f"a different host file {path!r} is already registered")
        existing.files[name] = fn

    def roots(self) -> list[str]:
        return sorted(self._mounts)

    def get(self, root: str) -> MountDef | None:
        return self._mounts.get(root)

    def selected(self, roots: Iterable[str] | None) -> list[MountDef]:
        """The mounts a task gets: all, or those it names (unknown names are refused)."""
        if roots is None:
            return [self._mounts[root] for root in self.roots()]
        chosen = []
        for root in roots:
            found = self._mounts.get(root)
            if found is None:
                known = ", ".join(self.roots()) or "none"
                raise ValueError(f"unknown sandbox mount {root!r}; known: {known}")
            chosen.append(found)
        return chosen


def register_default_mounts(registry: MountRegistry) -> None:
    registry.add_file(
        f"{NETWORK}/current-ip",
        current_ip,
        "the network as the host sees it, read-only; current-ip is this machine's public address",
    )
    registry.add_folder(OUTPUT, "writable; files left here are the task's artifacts")
    registry.add_folder(SCRATCH, "writable scratch space, kept between calls")


default_mounts = MountRegistry()
register_default_mounts(default_mounts)


def host_file(
    path: str, *, registry: MountRegistry | None = None, description: str | None = None
) -> Callable[[Callable[[], bytes | str]], Callable[[], bytes | str]]:
    """Decorator serving a function's answer as a read-only file of the sandbox."""
    target = registry if registry is not None else default_mounts

    def decorate(fn: Callable[[], bytes | str]) -> Callable[[], bytes | str]:
        target.add_file(path, fn, description)
        return fn

    return decorate
