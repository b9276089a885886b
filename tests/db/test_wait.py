"""A worker started before its database waits for it: open_database_waiting retries an
unreachable server with backoff, says so once, and returns once the server answers."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from absurd_tui.config import Settings
from absurd_tui.db import DatabaseUnavailable, SchemaError, open_database
from absurd_tui.db.wait import open_database_waiting


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proxy:
    """A TCP port that forwards to the test server once ``start``ed: the database
    "coming up" at an address where nothing listened before."""

    def __init__(self, target_dsn: str, port: int):
        params = conninfo_to_dict(target_dsn)
        host = params.get("host") or "localhost"
        target_port = int(params.get("port") or 5432)
        if host.startswith("/"):
            self._target = (socket.AF_UNIX, f"{host}/.s.PGSQL.{target_port}")
        else:
            self._target = (socket.AF_INET, (host, target_port))
        self.port = port
        self._server: socket.socket | None = None

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen()
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(self._target[0])
            upstream.connect(self._target[1])
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def _via_port(dsn: str, port: int) -> str:
    params = conninfo_to_dict(dsn)
    params.update(host="127.0.0.1", port=str(port))
    return make_conninfo(**params)


class Opener:
    def __init__(self):
        self.calls = 0

    def __call__(self, settings):
        self.calls += 1
        return open_database(settings)


def test_waits_for_a_database_that_comes_up_later(db_dsn, caplog, tmp_path):
    port = _free_port()
    settings = Settings(dsn=_via_port(db_dsn, port), data_dir=tmp_path)
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
    settings = Settings(dsn=_via_port(db_dsn, _free_port()), data_dir=tmp_path)
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
    settings = Settings(dsn=_via_port(db_dsn, _free_port()), data_dir=tmp_path)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    assert open_database_waiting(settings, stop=stop) is None


def test_a_missing_schema_is_not_waited_for(empty_db_dsn, tmp_path):
    opener = Opener()
    with pytest.raises(SchemaError):
        open_database_waiting(Settings(dsn=empty_db_dsn, data_dir=tmp_path), opener=opener)
    assert opener.calls == 1
