"""Bounded previews of JSON values that may be huge (params, results, checkpoint states).

A screen must not pull a 100 MB value over the wire, parse it and lay it out to show a
few lines of it. Two reads keep that bounded:

* In row reads, ``bounded(column)`` returns a column's value only if its stored size is
  at most ``INLINE_BYTES``; otherwise a ``Large`` marker with that size. The stored size
  (``pg_column_size``) comes from the value's header and costs no read of the value.
* ``preview(...)`` reads one large value: its type and size, and for an object or array
  its first ``OUTLINE_ITEMS`` members, each whole if small and otherwise summarised.
  The value is detoasted once (``#> '{}'`` behind ``OFFSET 0`` keeps one copy for every
  use in the statement) and never serialised whole to text.

``stream_text`` writes a whole value to a file in chunks, for paging and saving.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

INLINE_BYTES = 16_384
"""Row reads return a value whole up to this stored size (compressed values may be
larger once read; the preview still bounds what is shown)."""
PREVIEW_BYTES = 65_536
"""A value up to this size is shown whole; a larger one as an outline."""
MEMBER_BYTES = 2_048
"""In an outline, a member up to this size is shown whole, a larger one summarised."""
OUTLINE_ITEMS = 100
STRING_HEAD = 4_096
"""Characters shown of a large string."""


@dataclass(frozen=True)
class Large:
    """Stands for a value too large to read with its row."""

    stored: int
    """Bytes as stored (possibly compressed): a lower bound of its real size."""


@dataclass(frozen=True)
class Member:
    key: str | int
    """The key of an object member, or the index of an array element."""
    kind: str
    size: int
    value: Any = None
    whole: bool = False
    """Whether ``value`` is the member itself (else it is summarised)."""
    head: str | None = None
    """For a large string: its beginning."""
    items: int | None = None
    """For a large object or array: how many members it has."""


@dataclass(frozen=True)
class Preview:
    kind: str
    """jsonb_typeof: object, array, string, number, boolean, null."""
    size: int
    """Bytes of the value as PostgreSQL holds it (close to its length as JSON text)."""
    value: Any = None
    whole: bool = False
    """Whether ``value`` is the whole value (it was small enough)."""
    items: int | None = None
    members: tuple[Member, ...] = ()
    """The first members of a large object or array."""
    head: str | None = None
    """The beginning of a large string."""


def bounded(column: str, bound: bool = True) -> sql.Composable:
    """Select-list items for ``column``: its value, or with ``bound`` its value only if
    small, and beside it (as ``<column>__large``) the stored size of a value left out.
    Read them back with ``unbounded(row, column)``."""
    col = sql.Identifier(column)
    large = sql.Identifier(f"{column}__large")
    if not bound:
        return sql.SQL("{col}, NULL::integer AS {large}").format(col=col, large=large)
    return sql.SQL(
        "CASE WHEN pg_column_size({col}) <= {limit} THEN {col} END AS {col}, "
        "CASE WHEN pg_column_size({col}) > {limit} THEN pg_column_size({col}) END AS {large}"
    ).format(col=col, large=large, limit=sql.Literal(INLINE_BYTES))


def unbounded(row: dict[str, Any], column: str) -> Any:
    """The value of a ``bounded`` column in a dict row: a ``Large`` if it was left out."""
    stored = row.get(f"{column}__large")
    return Large(stored) if stored is not None else row[column]


# Members are taken one by one with -> (a copy in memory), never with jsonb_each or
# jsonb_array_elements: those materialise every member, which for a 100 MB value spills
# to a temporary file.
_PREVIEW = """
SELECT d.kind, d.size,
       CASE WHEN d.size <= {preview} THEN d.j END AS whole,
       CASE d.kind WHEN 'array' THEN jsonb_array_length(d.j)
                   WHEN 'object' THEN (SELECT count(*) FROM jsonb_object_keys(d.j)) END,
       CASE WHEN d.kind = 'string' AND d.size > {preview} THEN left(d.j #>> '{{}}', {head}) END,
       coalesce(m.key, m.idx::text), jsonb_typeof(v.value), pg_column_size(v.value),
       CASE WHEN pg_column_size(v.value) <= {member} THEN v.value END,
       CASE WHEN jsonb_typeof(v.value) = 'string' AND pg_column_size(v.value) > {member}
            THEN left(v.value #>> '{{}}', 200) END,
       CASE jsonb_typeof(v.value) WHEN 'array' THEN jsonb_array_length(v.value)
            WHEN 'object' THEN (SELECT count(*) FROM jsonb_object_keys(v.value)) END
FROM (SELECT jsonb_typeof(s.j) AS kind, pg_column_size(s.j) AS size, s.j
      FROM ({source}) AS s) AS d
LEFT JOIN LATERAL (
    SELECT k.key, NULL::integer AS idx, k.n
    FROM jsonb_object_keys(CASE WHEN d.kind = 'object' AND d.size > {preview}
                                THEN d.j ELSE '{{}}' END) WITH ORDINALITY AS k(key, n)
    WHERE k.n <= {items}
    UNION ALL
    SELECT NULL, g, g + 1
    FROM generate_series(0, CASE WHEN d.kind = 'array' AND d.size > {preview}
                                 THEN least(jsonb_array_length(d.j), {items}) - 1
                                 ELSE -1 END) AS g
) AS m ON true
LEFT JOIN LATERAL (
    SELECT CASE WHEN m.key IS NOT NULL THEN d.j -> m.key ELSE d.j -> m.idx END AS value
    OFFSET 0
) AS v ON true
ORDER BY m.n
"""


def preview(
    conn: psycopg.Connection, table: sql.Composable, column: str, where: str, args: Sequence[Any]
) -> Preview | None:
    """A bounded preview of ``column`` of the one row of ``table`` matching ``where``
    (None if there is no such row or the value is SQL NULL)."""
    source = sql.SQL("SELECT {col} #> '{{}}' AS j FROM {table} WHERE {where} OFFSET 0").format(
        col=sql.Identifier(column), table=table, where=sql.SQL(where)
    )
    stmt = sql.SQL(_PREVIEW).format(
        source=source,
        preview=sql.Literal(PREVIEW_BYTES),
        member=sql.Literal(MEMBER_BYTES),
        items=sql.Literal(OUTLINE_ITEMS),
        head=sql.Literal(STRING_HEAD),
    )
    rows = conn.execute(stmt, tuple(args)).fetchall()
    if not rows or rows[0][0] is None:
        return None
    kind, size, whole, items, head = rows[0][:5]
    if whole is not None or size <= PREVIEW_BYTES:
        return Preview(kind, size, whole, whole=True, items=items)
    members = []
    for row in rows:
        key, member_kind, member_size, value, member_head, member_items = row[5:]
        if key is None:
            continue
        members.append(
            Member(
                int(key) if kind == "array" else key,
                member_kind,
                member_size,
                value,
                whole=member_size <= MEMBER_BYTES,
                head=member_head,
                items=member_items,
            )
        )
    return Preview(kind, size, None, whole=False, items=items, members=tuple(members), head=head)


def stream_text(
    conn: psycopg.Connection,
    table: sql.Composable,
    column: str,
    where: str,
    args: Sequence[Any],
    path: Path,
) -> int:
    """Write the value as JSON text to ``path`` in chunks (never whole in memory);
    the number of bytes written."""
    stmt = sql.SQL("COPY (SELECT {col}::text FROM {table} WHERE {where}) TO STDOUT").format(
        col=sql.Identifier(column), table=table, where=sql.SQL(where)
    )
    written = 0
    with path.open("wb") as out, conn.cursor() as cur, cur.copy(stmt, tuple(args)) as copy:
        carry = b""
        for chunk in copy:
            data = carry + bytes(chunk)
            # COPY's text format doubles each backslash (JSON text has no raw control
            # characters to escape) and ends the row with a newline. An odd run of
            # backslashes at the end of a chunk is half of a pair: keep one back.
            run = len(data) - len(data.rstrip(b"\\"))
            carry, data = (data[-1:], data[:-1]) if run % 2 else (b"", data)
            data = data.replace(b"\\\\", b"\\")
            out.write(data)
            written += len(data)
    if written and _last_byte(path) == b"\n":
        with path.open("r+b") as out:
            out.truncate(written - 1)
        written -= 1
    return written


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(-1, 2)
        return f.read(1)


def outline_text(value: Preview, indent: int = 2) -> str:
    """The preview as JSON-like text: whole members as JSON, large ones summarised."""
    if value.whole:
        return json.dumps(value.value, indent=indent, ensure_ascii=False)
    if value.kind == "string":
        return json.dumps(value.head or "", ensure_ascii=False)[:-1] + " …"
    pad = " " * indent
    opening, closing = ("{", "}") if value.kind == "object" else ("[", "]")
    lines = [opening]
    for member in value.members:
        prefix = (
            f"{pad}{json.dumps(member.key, ensure_ascii=False)}: "
            if value.kind == "object"
            else pad
        )
        if member.whole:
            body = json.dumps(member.value, ensure_ascii=False)
        else:
            body = member_summary(member)
        lines.append(f"{prefix}{body},")
    shown = len(value.members)
    if value.items is not None and value.items > shown:
        lines.append(f"{pad}… {value.items - shown:,} more")
    elif lines[-1].endswith(","):
        lines[-1] = lines[-1][:-1]
    lines.append(closing)
    return "\n".join(lines)


def member_summary(member: Member) -> str:
    size = human_size(member.size)
    if member.kind == "string":
        head = json.dumps(member.head or "", ensure_ascii=False)[:-1]
        return f'{head}…" (string, {size})'
    if member.kind in ("array", "object"):
        count = f"{member.items:,} " if member.items is not None else ""
        noun = "items" if member.kind == "array" else "keys"
        return f"… {member.kind} of {count}{noun}, {size} …"
    return f"… {member.kind}, {size} …"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
