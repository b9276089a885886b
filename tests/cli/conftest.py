"""Fixtures for the command-line tests: ``cli`` runs the real ``absurd-tui`` entry point."""

from __future__ import annotations

import pytest

from .helpers import Cli


@pytest.fixture
def cli(db_dsn, tmp_path, capsys, monkeypatch) -> Cli:
    return Cli(db_dsn, tmp_path, capsys, monkeypatch)


@pytest.fixture
def bare_cli(tmp_path, capsys, monkeypatch) -> Cli:
    """For tests that name their own database (or none): no test database is made."""
    return Cli("postgresql://nobody@127.0.0.1:1/unused", tmp_path, capsys, monkeypatch)


@pytest.fixture
def default_queue(conn) -> str:
    conn.execute("SELECT absurd.create_queue('default')")
    return "default"
