"""absurd-tui: durable execution on nothing but Postgres, with a terminal console."""

__version__ = "0.1.0"
