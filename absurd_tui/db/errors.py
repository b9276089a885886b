"""Errors the db layer raises with text meant for the user (no tracebacks needed)."""

from __future__ import annotations


class DatabaseError(Exception):
    """Base for errors whose message is a complete, user-facing explanation."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached (down, wrong host, refused, auth failed)."""


class SchemaError(DatabaseError):
    """The database has no Absurd schema, or one our tools cannot work with."""
