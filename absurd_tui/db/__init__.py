"""Connections, the embedded server, the schema, and the read queries of the UI and CLI."""

from .connect import Database, connect, open_database
from .errors import DatabaseError, DatabaseUnavailable, SchemaError

__all__ = [
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "SchemaError",
    "connect",
    "open_database",
]
