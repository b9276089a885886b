"""Describing a connection string without ever revealing its password.

Passwords are found by pattern, not by parsing, so that a connection string libpq cannot
parse (and whose error message quotes it) is scrubbed as well: the password of a URI
(``scheme://user:PASSWORD@``), of a ``password=`` keyword (quoted or not, even without
its closing quote) and of a ``?password=`` / ``&password=`` query parameter.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import DatabaseError

MASK = "****"
SECRET_KEYS = ("password", "sslpassword")
"""Connection parameters that hold a secret (sslpassword unlocks the client's key)."""

# Greedy up to the last "@": a password holding a raw "@" is still masked whole.
_URI_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s\"']*:)(?P<secret>\S*)(?=@)"
)
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>(?<![^\s])(?:ssl)?password\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*(?:'|$)|[^\s'][^\s]*)",
    re.IGNORECASE,
)
_QUERY_PASSWORD = re.compile(
    r"(?P<head>[?&](?:ssl)?password=)(?P<secret>[^&#\s\"']*)", re.IGNORECASE
)
_PATTERNS = (_URI_PASSWORD, _QUERY_PASSWORD, _KEYWORD_PASSWORD)
_SHORT_SECRET = 4  # shorter passwords are masked only where they stand as a whole token


class UnparsableDsn(DatabaseError, ValueError):
    """A connection string that libpq cannot parse (bad input; the message is masked)."""


def mask_passwords(text: str) -> str:
    """``text`` with every password written in connection-string syntax masked."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group("head") + MASK, text)
    return text


def passwords(dsn: str) -> set[str]:
    """The password(s) in ``dsn`` as written, unquoted and percent-decoded."""
    found: set[str] = set()
    for pattern in _PATTERNS:
        for match in pattern.finditer(dsn):
            secret = match.group("secret")
            if secret.startswith("'"):
                secret = secret[1:-1] if secret.endswith("'") and len(secret) > 1 else secret[1:]
                found.add(re.sub(r"\\(.)", r"\1", secret))
            found.update({secret, unquote(secret)})
    parsed = parse(dsn)
    found.update(parsed[key] for key in SECRET_KEYS if parsed.get(key))
    return {secret for secret in found if secret and secret != MASK}


def parse(dsn: str) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except Exception:
        return {}


def check(dsn: str) -> str:
    """``dsn`` if libpq can parse it; else UnparsableDsn saying why, password masked."""
    try:
        conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        what = " ".join(str(exc).split()) or type(exc).__name__
        raise UnparsableDsn(
            f"The connection string cannot be parsed: {scrub(what, dsn)}. "
            "Check --dsn or ABSURD_DATABASE_URL (a URI such as postgresql://user@host:5432/db, "
            "or key=value pairs such as 'host=db user=app dbname=app')."
        ) from None
    return dsn


def redact(dsn: str) -> str:
    """The DSN with any password removed, keeping its form (URI or key=value)."""
    if "://" not in dsn:
        params = parse(dsn)
        if not params:
            return "<unparsable connection string>"
        for key in SECRET_KEYS:
            params.pop(key, None)
        return make_conninfo(**params)
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<unparsable connection string>"
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = userinfo.partition(":")[0] + "@" + hosts if at else parts.netloc
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(k, v) for k, v in pairs if k not in SECRET_KEYS], safe="/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def has_password(dsn: str) -> bool:
    """Whether ``dsn`` carries a password (which a command line shows to every local
    user in ``ps``)."""
    return bool(passwords(dsn))


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
    """``text`` (an error message, a log line) with the DSN's password removed, and any
    other password written in connection-string syntax masked."""
    if dsn:
        for secret in _secrets(dsn):
            if len(secret) >= _SHORT_SECRET:
                text = text.replace(secret, MASK)
            else:
                text = re.sub(rf"(?<![\w%]){re.escape(secret)}(?![\w%])", MASK, text)
    return mask_passwords(text)


@functools.lru_cache(maxsize=16)
def _secrets(dsn: str) -> tuple[str, ...]:
    # scrub() runs on every log line of a worker: find each DSN's passwords once.
    return tuple(sorted(passwords(dsn), key=len, reverse=True))
