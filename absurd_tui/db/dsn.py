"""Describing a connection string without ever revealing its password."""

from __future__ import annotations

import functools
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo


def parse(dsn: str) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except Exception:
        return {}


def redact(dsn: str) -> str:
    """The DSN with any password removed, keeping its form (URI or key=value)."""
    if "://" not in dsn:
        params = parse(dsn)
        if not params:
            return "<unparsable connection string>"
        params.pop("password", None)
        return make_conninfo(**params)
    parts = urlsplit(dsn)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = userinfo.partition(":")[0] + "@" + hosts if at else parts.netloc
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(k, v) for k, v in pairs if k != "password"], safe="/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def describe(dsn: str | None) -> str:
    """A short label such as ``db.example.com:5432/app`` or ``embedded``."""
    if dsn is None:
        return "embedded"
    params = parse(dsn)
    if not params:
        return "<unparsable connection string>"
    host = params.get("host") or params.get("hostaddr") or "localhost"
    if host.startswith("/"):
        host = f"socket {host}"
    port = params.get("port")
    where = f"{host}:{port}" if port and not host.startswith("socket") else host
    dbname = params.get("dbname") or params.get("user") or ""
    return f"{where}/{dbname}" if dbname else where


def scrub(text: str, dsn: str | None) -> str:
    """Remove the DSN's password from an arbitrary message, if it appears there."""
    if not dsn:
        return text
    password = _password(dsn)
    if password:
        text = text.replace(password, "****")
    return text


@functools.lru_cache(maxsize=16)
def _password(dsn: str) -> str | None:
    # scrub() runs on every log line of a worker: parse each DSN once.
    return parse(dsn).get("password")
