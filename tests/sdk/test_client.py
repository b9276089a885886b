"""The client against real PostgreSQL: spawn, events, cancel, retry, results, queues."""

from __future__ import annotations

import builtins
import threading
import uuid

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from absurd_tui.sdk import (
    Absurd,
    InvalidParams,
    SpawnResult,
    TaskRegistry,
    TimeoutError,
)
from absurd_tui.sdk.execution import Outcome

from .helpers import rows, task_row


def test_spawn_result_reads_like_a_dict_and_a_dataclass(client, conn):
    result = client.spawn("hello", {"who": "world"}, queue="default")
    assert isinstance(result, SpawnResult)
    assert result["task_id"] == result.task_id
    assert result["run_id"] == result.run_id
    assert result.attempt == result["attempt"] == 1
    assert result.created is True
    assert dict(result) == {
        "task_id": result.task_id,
        "run_id": result.run_id,
        "attempt": 1,
        "created": True,
    }
    assert isinstance(result.task_id, str)
    uuid.UUID(result.task_id)
    row = task_row(conn, "default", result.task_id)
    assert row["task_name"] == "hello"
    assert row["params"] == {"who": "world"}
    assert row["state"] == "pending"


def test_spawn_options_resolve_like_the_official_sdk(client, conn, registry):
    client.register_task(
        "with-defaults", default_max_attempts=7, default_cancellation={"max_delay": 30}
    )(lambda p, c: None)
    plain = client.spawn("with-defaults", None)
    row = task_row(conn, "default", plain.task_id)
    assert row["max_attempts"] == 7
    assert row["cancellation"] == {"max_delay": 30}
    # Unlike the official SDK, no strategy given means exponential backoff, not an
    # immediate retry.
    assert row["retry_strategy"] == {
        "kind": "exponential",
        "base_seconds": 2,
        "factor": 2,
        "max_seconds": 600,
    }
    assert row["headers"] is None
    assert row["params"] is None

    explicit = client.spawn(
        "with-defaults",
        [1, 2],
        max_attempts=2,
        retry_strategy={"kind": "exponential", "base_seconds": 1, "factor": 3},
        headers={"trace": "abc"},
        cancellation={"max_duration": 90},
    )
    row = task_row(conn, "default", explicit.task_id)
    assert row["max_attempts"] == 2
    assert row["retry_strategy"] == {"kind": "exponential", "base_seconds": 1, "factor": 3}
    assert row["headers"] == {"trace": "abc"}
    assert row["cancellation"] == {"max_duration": 90}

    unregistered = client.spawn("other", {}, queue="default")
    assert task_row(conn, "default", unregistered.task_id)["max_attempts"] == 5


def test_idempotency_key_returns_the_existing_task(client, conn):
    first = client.spawn("once", {"n": 1}, queue="default", idempotency_key="k-1")
    again = client.spawn("once", {"n": 2}, queue="default", idempotency_key="k-1")
    assert again.created is False
    assert (again.task_id, again.run_id, again.attempt) == (first.task_id, first.run_id, 1)
    assert len(rows(conn, "t", "default")) == 1


def test_spawn_queue_rules(client, registry):
    with pytest.raises(ValueError, match=r"not registered\. Provide queue"):
        client.spawn("nobody-knows", {})
    registry.register("mailer", lambda p, c: None, queue="mail")
    with pytest.raises(
        ValueError, match='registered for queue "mail" but spawn requested queue "default"'
    ):
        client.spawn("mailer", {}, queue="default")
    with pytest.raises(ValueError, match="too long"):
        client.spawn("x", {}, queue="é" * 29)  # 58 bytes


def test_non_json_params_are_rejected_before_touching_the_database(client, conn):
    import datetime

    with pytest.raises(
        InvalidParams, match=r'spawn\("t"\): params\["user"\]\["born"\] is of type datetime.date'
    ):
        client.spawn("t", {"user": {"born": datetime.date(1990, 1, 1)}}, queue="default")
    with pytest.raises(InvalidParams, match=r'headers\["n"\] is nan'):
        client.spawn("t", {}, queue="default", headers={"n": float("nan")})
    with pytest.raises(InvalidParams, match="key 3 of type int"):
        client.spawn("t", {3: "x"}, queue="default")
    assert rows(conn, "t", "default") == []


def test_queue_names_are_checked_client_side(client, conn):
    assert client.list_queues() == ["default"]
    name = "é" * 28 + "a"  # 57 bytes: allowed
    client.create_queue(name)
    assert name in client.list_queues()
    with pytest.raises(ValueError, match="too long"):
        client.create_queue("é" * 29)
    with pytest.raises(ValueError, match="must be provided"):
        client.create_queue("")
    with pytest.raises(ValueError, match="too long"):
        Absurd(conn, queue_name="x" * 58)


def test_queue_management_and_policy(client):
    client.create_queue('Has Spaces & "quotes"')
    client.create_queue('Has Spaces & "quotes"')  # idempotent
    assert client.list_queues() == ['Has Spaces & "quotes"', "default"]
    client.set_queue_policy("default", cleanup_ttl="7 days", cleanup_limit=50)
    policy = client.get_queue_policy("default")
    assert policy["queue_name"] == "default"
    assert policy["storage_mode"] == "unpartitioned"
    assert policy["cleanup_ttl"].days == 7
    assert policy["cleanup_limit"] == 50
    assert client.get_queue_policy("nope") is None
    with pytest.raises(psycopg.Error):
        client.create_queue("bad-policy", cleanup_limit=0)
    assert "bad-policy" not in client.list_queues()
    client.drop_queue('Has Spaces & "quotes"')
    assert client.list_queues() == ["default"]


def test_emit_event_first_write_wins_and_payload_must_be_json(client, conn):
    client.emit_event("ready", {"v": 1})
    client.emit_event("ready", {"v": 2})
    (event,) = rows(conn, "e", "default", "event_name = %s", ("ready",))
    assert event["payload"] == {"v": 1}
    client.emit_event("no-payload")
    stored = conn.execute(
        """SELECT payload IS NOT NULL AND payload = 'null'::jsonb FROM absurd."e_default"
           WHERE event_name = 'no-payload'"""
    ).fetchone()[0]
    assert stored is True  # JSON null, not the "not emitted yet" SQL NULL
    with pytest.raises(InvalidParams, match=r'emit_event\("x"\): payload is of type object'):
        client.emit_event("x", object())
    with pytest.raises(ValueError, match="event_name"):
        client.emit_event("", 1)


def test_cancel_accepts_text_or_uuid_and_rejects_garbage(client, conn):
    a = client.spawn("t", {}, queue="default")
    b = client.spawn("t", {}, queue="default")
    client.cancel_task(a.task_id)
    client.cancel_task(uuid.UUID(b.task_id), queue_name="default")
    assert task_row(conn, "default", a.task_id)["state"] == "cancelled"
    assert task_row(conn, "default", b.task_id)["state"] == "cancelled"
    with pytest.raises(ValueError, match="not a valid task id"):
        client.cancel_task("not-a-uuid")
    with pytest.raises(psycopg.Error, match="not found"):
        client.cancel_task(uuid.uuid4())


def test_fetch_and_await_results_and_retry(client, registry, conn):
    calls = []

    @client.register_task("flaky", default_max_attempts=1)
    def flaky(params, ctx):
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ValueError("first attempt fails")
        return {"ok": ctx.attempt}

    spawned = client.spawn("flaky", {})
    assert client.fetch_task_result(spawned.task_id).state == "pending"
    assert client.fetch_task_result(uuid.uuid4()) is None
    [result] = client.work_batch()
    assert result.outcome is Outcome.FAILED
    failed = client.fetch_task_result(spawned.task_id)
    assert failed.state == "failed"
    assert failed.failure["name"] == "ValueError"
    assert failed.failure["message"] == "first attempt fails"
    assert "raise ValueError" in failed.failure["traceback"]

    retried = client.retry_task(spawned.task_id)
    assert (retried.task_id, retried.attempt, retried.created) == (spawned.task_id, 2, False)
    client.work_batch()
    done = client.await_task_result(spawned.task_id, timeout=5)
    assert done.state == "completed" and done.result == {"ok": 2}
    assert calls == [1, 2]
    with pytest.raises(psycopg.Error, match="not currently failed"):
        client.retry_task(spawned.task_id)


def test_retry_spawn_new_copies_the_task(client, conn):
    @client.register_task("always-fails", default_max_attempts=1)
    def always_fails(params, ctx):
        raise RuntimeError("no")

    spawned = client.spawn("always-fails", {"x": 1}, headers={"h": 1})
    client.work_batch()
    copy = client.retry_task(spawned.task_id, spawn_new=True)
    assert copy.created is True and copy.task_id != spawned.task_id and copy.attempt == 1
    row = task_row(conn, "default", copy.task_id)
    assert (row["task_name"], row["params"], row["headers"]) == ("always-fails", {"x": 1}, {"h": 1})


def test_await_task_result_times_out_with_our_timeout_error(client):
    spawned = client.spawn("never-run", {}, queue="default")
    with pytest.raises(TimeoutError, match="Timed out waiting for task"):
        client.await_task_result(spawned.task_id, timeout=0.2)
    assert not issubclass(TimeoutError, builtins.TimeoutError)
    with pytest.raises(LookupError, match="not found"):
        client.await_task_result(uuid.uuid4(), timeout=0.2)


def test_a_user_connection_is_never_committed(connect, registry):
    tx_conn = connect(autocommit=False)
    client = Absurd(tx_conn, registry=registry)
    client.create_queue("txq")
    spawned = client.spawn("t", {}, queue="txq")
    assert tx_conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    tx_conn.rollback()
    observer = connect()
    assert "txq" not in [r[0] for r in observer.execute("SELECT queue_name FROM absurd.queues")]
    assert spawned.task_id


def test_dsn_client_is_safe_from_many_threads(db_dsn, registry):
    with Absurd(db_dsn, registry=registry, pool_size=3) as client:
        client.create_queue()
        ids: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def spawn_many():
            try:
                for i in range(20):
                    result = client.spawn("t", {"i": i}, queue="default")
                    with lock:
                        ids.append(result.task_id)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=spawn_many) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(set(ids)) == 160
        with client.connection() as conn:
            assert conn.execute('SELECT count(*) FROM absurd."t_default"').fetchone()[0] == 160


def test_a_pool_can_be_given(db_dsn, registry):
    pool = ConnectionPool(db_dsn, min_size=1, max_size=2, kwargs={"autocommit": True}, open=True)
    try:
        client = Absurd(pool, queue_name="pooled", registry=registry)
        client.create_queue()
        client.spawn("t", {}, queue="pooled")
        client.close()  # not ours: the pool stays open
        with pool.connection() as conn:
            assert conn.execute('SELECT count(*) FROM absurd."t_pooled"').fetchone()[0] == 1
    finally:
        pool.close()


def test_bad_constructor_argument():
    with pytest.raises(TypeError, match="takes a DSN string"):
        Absurd(42)


def test_a_connection_client_serialises_threads(client, conn):
    errors: list[BaseException] = []

    def spawn_some():
        try:
            for i in range(10):
                client.spawn("t", {"i": i}, queue="default")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=spawn_some) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(rows(conn, "t", "default")) == 60


def test_claim_tasks_and_storage_mode_check(client, conn):
    with pytest.raises(ValueError, match="storage_mode"):
        client.create_queue("x", storage_mode="sharded")
    assert "x" not in client.list_queues()
    client.create_queue("parts")
    spawned = client.spawn("t", {"a": 1}, queue="parts")
    claimer = Absurd(conn, queue_name="parts", registry=TaskRegistry())
    (claimed,) = claimer.claim_tasks(batch_size=5, claim_timeout=30, worker_id="me")
    assert (claimed.task_id, claimed.run_id, claimed.params) == (
        spawned.task_id,
        spawned.run_id,
        {"a": 1},
    )
    assert claimer.claim_tasks() == []
    assert rows(conn, "r", "parts")[0]["claimed_by"] == "me"
