"""Installing, upgrading and recognising the Absurd schema.

``sql/absurd.sql`` is the whole engine. Applying it is both install and upgrade: it
only creates what is missing and replaces functions, keeping all data.

Versions: our file reports ``get_schema_version()`` as ``<upstream>+absurd-tui.<rev>``.
A database set up by upstream Absurd reports ``main`` or a plain release such as
``0.4.0``; from 0.4 on it has every table, column and function our tools read or call.
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

_OURS = re.compile(r"\+absurd-tui\.(\d+)$")
_RELEASE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")
# The literal that absurd.get_schema_version() returns in sql/absurd.sql.
_SQL_VERSION = re.compile(r"'[^'\s]*\+absurd-tui\.(\d+)'::text")


@cache
def schema_sql() -> str:
    """The text of absurd.sql: from the installed wheel, else from the source tree."""
    packaged = resources.files("absurd_tui").joinpath("sql/absurd.sql")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    source = Path(__file__).resolve().parents[2] / "sql" / "absurd.sql"
    return source.read_text(encoding="utf-8")


def revision_in(sql_text: str) -> int:
    """The schema revision that get_schema_version() reports in this text of absurd.sql."""
    found = _SQL_VERSION.findall(sql_text)
    if len(found) != 1:
        raise SchemaError(
            "absurd.sql must hold exactly one '<upstream>+absurd-tui.<rev>'::text version "
            f"literal; found {len(found)}"
        )
    return int(found[0])


# The schema revision this version of absurd-tui ships and expects, read from the SQL so
# that bumping it in get_schema_version() is the only change. Older ones `init` upgrades.
SCHEMA_REVISION = revision_in(schema_sql())


@dataclass(frozen=True)
class SchemaInfo:
    version: str | None
    """What absurd.get_schema_version() returned; None when there is no schema."""

    @property
    def installed(self) -> bool:
        return self.version is not None

    @property
    def revision(self) -> int | None:
        """Our schema revision, or None for upstream Absurd's own schema."""
        if self.version is None:
            return None
        match = _OURS.search(self.version)
        return int(match.group(1)) if match else None

    @property
    def is_ours(self) -> bool:
        return self.revision is not None

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
        if self.is_ours:
            return f"{self.version} (absurd-tui schema revision {self.revision})"
        return f"{self.version} (upstream Absurd)"


def inspect(conn: psycopg.Connection) -> SchemaInfo:
    if not _scalar(conn, "SELECT to_regprocedure('absurd.get_schema_version()') IS NOT NULL"):
        return SchemaInfo(version=None)
    return SchemaInfo(version=_scalar(conn, "SELECT absurd.get_schema_version()"))


def _scalar(conn: psycopg.Connection, query: LiteralString) -> Any:
    row = conn.execute(query).fetchone()
    # A SELECT without FROM always yields one row.
    assert row is not None, query
    return row[0]


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
