"""A worker started before its database waits for it: open_database_waiting retries an
unreachable server with backoff, says so once, and returns once the server answers."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from support import Proxy, free_port, via_port

from absurd_tui.config import Settings
from absurd_tui.db import DatabaseUnavailable, SchemaError, open_database
from absurd_tui.db.wait import open_database_waiting


class Opener:
    def __init__(self):
        self.calls = 0

    def __call__(self, settings):
        self.calls += 1
        return open_database(settings)


def test_waits_for_a_database_that_comes_up_later(db_dsn, caplog, tmp_path):
    port = free_port()
    settings = Settings(dsn=via_port(db_dsn, port), data_dir=tmp_path)
    opener = Opener()
    result: dict = {}

    def wait() -> None:
        result["db"] = open_database_waiting(settings, opener=opener)

    caplog.set_level(logging.INFO, logger="absurd_tui.db.wait")
    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while opener.calls < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert opener.calls >= 3 and thread.is_alive(), "kept retrying"
    waiting = [r for r in caplog.records if "cannot be reached yet" in r.getMessage()]
    assert len(waiting) == 1, "said so once, not per retry"
    proxy = Proxy(db_dsn, port)
    proxy.start()
    try:
        thread.join(timeout=20)
        assert not thread.is_alive()
        assert result["db"].dsn == settings.dsn
        assert any("answered after" in r.getMessage() for r in caplog.records)
    finally:
        proxy.close()


def test_the_timeout_bounds_the_wait(db_dsn, tmp_path):
    settings = Settings(dsn=via_port(db_dsn, free_port()), data_dir=tmp_path)
    opener = Opener()
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        open_database_waiting(settings, timeout=2, opener=opener)
    assert 1 <= time.monotonic() - started < 6 and opener.calls >= 2
    opener.calls = 0
    with pytest.raises(DatabaseUnavailable):
        open_database_waiting(settings, timeout=0, opener=opener)
    assert opener.calls == 1


def test_stopping_ends_the_wait(db_dsn, tmp_path):
    settings = Settings(dsn=via_port(db_dsn, free_port()), data_dir=tmp_path)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    assert open_database_waiting(settings, stop=stop) is None


def test_a_missing_schema_is_not_waited_for(empty_db_dsn, tmp_path):
    opener = Opener()
    with pytest.raises(SchemaError):
        open_database_waiting(Settings(dsn=empty_db_dsn, data_dir=tmp_path), opener=opener)
    assert opener.calls == 1
