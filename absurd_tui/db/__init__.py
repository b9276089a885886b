"""The database layer: connections, the embedded server, the schema, and the reads.

- ``connect``: the one connection factory (keepalives, statement timeout) and
  ``open_database``; ``dsn``: DSN parsing and password scrubbing; ``embedded``: the
  embedded PostgreSQL; ``schema``: install, upgrade, recognise (the revision is read
  from sql/absurd.sql);
- ``errors``: user-facing errors and the one classification by SQLSTATE (``classify``);
- ``tables``: the per-queue table names as identifiers, for every layer;
- ``models``: the frozen read models and the task states;
- ``catalog``: the queues and the engine's clock; ``ids``: task id resolution; ``query``:
  one-value statements;
- ``reads``: the read queries, by view (queues, tasks, detail, events, workers).

Nothing here writes except ``schema.install``, and nothing formats text for a screen.
"""

from .connect import Database, connect, open_database
from .errors import DatabaseError, DatabaseUnavailable, ErrorKind, SchemaError, classify

__all__ = [
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "ErrorKind",
    "SchemaError",
    "classify",
    "connect",
    "open_database",
]
