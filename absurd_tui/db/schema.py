"""Installing, upgrading and recognising the Absurd schema.

``sql/absurd.sql`` is the whole engine. Applying it is both install and upgrade: it
only creates what is missing and replaces functions, keeping all data.

Versions: ``get_schema_version()`` answers as upstream Absurd's does, with the upstream
release whose contract the engine implements (``0.5.1``). Our engine is recognised by
``get_engine_revision()``, which upstream lacks: it returns our revision, or NULL when
another tool (``absurdctl migrate``) has replaced engine functions since the last install.
Revision 1 said ``<upstream>+absurd-tui.1`` in its schema version instead. A database set
up by upstream Absurd reports ``main`` or a plain release such as ``0.4.0``; from 0.4 on
it has every table, column and function our tools read or call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, LiteralString

import psycopg

from .errors import SchemaError

MIN_UPSTREAM = (0, 4)
_LOCK_KEY = 0x0AB5_0D7E  # pg_advisory_xact_lock key serialising concurrent installs

_REVISION_1 = re.compile(r"\+absurd-tui\.(\d+)$")  # revision 1's version string
_RELEASE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")
# The revision constant of the block in sql/absurd.sql that creates get_engine_revision().
_SQL_REVISION = re.compile(r"\bc_revision\s+constant\s+integer\s*:=\s*(\d+)\s*;")


@cache
def schema_sql() -> str:
    """The text of absurd.sql: from the installed wheel, else from the source tree."""
    packaged = resources.files("absurd_tui").joinpath("sql/absurd.sql")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    source = Path(__file__).resolve().parents[2] / "sql" / "absurd.sql"
    return source.read_text(encoding="utf-8")


def revision_in(sql_text: str) -> int:
    """The engine revision that get_engine_revision() reports in this text of absurd.sql."""
    found = _SQL_REVISION.findall(sql_text)
    if len(found) != 1:
        raise SchemaError(
            "absurd.sql must hold exactly one 'c_revision constant integer := <rev>;' "
            f"declaration; found {len(found)}"
        )
    return int(found[0])


# The engine revision this version of absurd-tui ships and expects, read from the SQL so
# that bumping c_revision there is the only change. Older ones `init` upgrades.
SCHEMA_REVISION = revision_in(schema_sql())


@dataclass(frozen=True)
class SchemaInfo:
    version: str | None
    """What absurd.get_schema_version() returned; None when there is no schema."""
    engine: bool = False
    """The schema has our get_engine_revision()."""
    engine_revision: int | None = None
    """What get_engine_revision() returned (None: functions replaced by another tool)."""

    @property
    def installed(self) -> bool:
        return self.version is not None

    @property
    def revision(self) -> int | None:
        """Our engine revision, or None for upstream Absurd's own schema (or a changed one)."""
        if self.engine:
            return self.engine_revision
        match = _REVISION_1.search(self.version or "")
        return int(match.group(1)) if match else None

    @property
    def is_ours(self) -> bool:
        return self.engine or self.revision is not None

    @property
    def modified(self) -> bool:
        """Our engine, with functions replaced by another tool since it was installed."""
        return self.engine and self.engine_revision is None

    @property
    def upstream_compatible(self) -> bool:
        """An upstream schema our tools can read and drive (0.4 or later, or main)."""
        if self.version is None or self.is_ours:
            return False
        if self.version.strip() == "main":
            return True
        match = _RELEASE.match(self.version.strip())
        if match is None:
            return False
        return (int(match.group(1)), int(match.group(2))) >= MIN_UPSTREAM

    @property
    def current(self) -> bool:
        return self.revision == SCHEMA_REVISION

    def label(self) -> str:
        if self.version is None:
            return "none"
        if self.modified:
            return f"{self.version} (absurd-tui engine, functions changed by another tool)"
        if self.is_ours:
            return f"{self.version} (absurd-tui engine revision {self.revision})"
        return f"{self.version} (upstream Absurd)"


def _one_row(conn: psycopg.Connection, query: LiteralString) -> tuple[Any, ...]:
    row = conn.execute(query).fetchone()
    assert row is not None, query  # a SELECT without FROM always yields one row
    return tuple(row)


def inspect(conn: psycopg.Connection) -> SchemaInfo:
    version_fn, revision_fn = _one_row(
        conn,
        "SELECT to_regprocedure('absurd.get_schema_version()') IS NOT NULL,"
        " to_regprocedure('absurd.get_engine_revision()') IS NOT NULL",
    )
    if not version_fn:
        return SchemaInfo(version=None)
    version, revision = _one_row(
        conn,
        "SELECT absurd.get_schema_version(), "
        + ("absurd.get_engine_revision()" if revision_fn else "NULL::integer"),
    )
    return SchemaInfo(version=version, engine=revision_fn, engine_revision=revision)


def install(conn: psycopg.Connection) -> SchemaInfo:
    """Install or upgrade the schema in one transaction; concurrent callers serialise."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(schema_sql().encode("utf-8"))
    return inspect(conn)


def check_usable(info: SchemaInfo, *, target: str) -> None:
    """Raise SchemaError unless our tools can work with this schema as it is.

    ``target`` describes the database (host and name, never a password) for messages.
    """
    if not info.installed:
        raise SchemaError(
            f"The database {target} has no Absurd schema. Install it with "
            "`absurd-tui init --dsn ...` (the same DSN), then start again."
        )
    if info.modified:
        raise SchemaError(
            f"The database {target} has the absurd-tui engine, but another tool (such as "
            "upstream's `absurdctl migrate`) has replaced some of its functions since. "
            "Restore them in place, keeping all data, with `absurd-tui init --dsn ...`."
        )
    if info.is_ours:
        assert info.revision is not None
        if info.revision < SCHEMA_REVISION:
            raise SchemaError(
                f"The database {target} has an older absurd-tui schema ({info.version}); "
                f"this absurd-tui needs revision {SCHEMA_REVISION}. Upgrade it in place, "
                "keeping all data, with `absurd-tui init --dsn ...`."
            )
        if info.revision > SCHEMA_REVISION:
            raise SchemaError(
                f"The database {target} has schema {info.version}, newer than this "
                f"absurd-tui understands (revision {SCHEMA_REVISION}). Upgrade absurd-tui."
            )
        return
    if not info.upstream_compatible:
        raise SchemaError(
            f"The database {target} has upstream Absurd schema {info.version}; absurd-tui "
            f"works with upstream {MIN_UPSTREAM[0]}.{MIN_UPSTREAM[1]} and later "
            f"(or its own revision {SCHEMA_REVISION}). Upgrade it with upstream's "
            "`absurdctl migrate`, or apply this project's schema with "
            "`absurd-tui init --dsn ...`."
        )
