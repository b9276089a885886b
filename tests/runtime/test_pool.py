"""The worker pool against real PostgreSQL: pick-up, status, leases, retries, control."""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
import time
from collections import Counter

import pytest
from support import wait_until

from absurd_tui.db.models import FILE_CHECKPOINT_PREFIX
from absurd_tui.runtime import WorkerPool, WorkerStatus

from .helpers import run_rows, stays_false, task_row


def completed(client, task_id, queue="default"):
    def check():
        snapshot = client.fetch_task_result(task_id, queue_name=queue)
        return snapshot if snapshot is not None and snapshot.state == "completed" else None

    return check


def test_a_notification_wakes_an_idle_worker_at_once(client, registry, make_pool):
    @registry.register_task("quick")
    def quick(params, ctx):
        return params

    @registry.register_task("waits")
    def waits(params, ctx):
        return ctx.await_event("go")

    # Polling every 30 s: only the notification can explain a fast pick-up.
    pool = make_pool(registry, poll_interval=30).start()
    wait_until(lambda: pool.listener_connected, what="the listener")
    wait_until(lambda: all(s.state == "idle" for s in pool.statuses()), what="idle workers")
    # The first claim of the pool may still be in flight; let it settle.
    started = time.monotonic()
    spawned = client.spawn("quick", {"x": 1})
    wait_until(completed(client, spawned.task_id), timeout=5, what="the spawned task")
    assert time.monotonic() - started < 3.0

    @registry.register_task("fails-once", default_max_attempts=1)
    def fails_once(params, ctx):
        if ctx.attempt == 1:
            raise RuntimeError("first attempt")
        return "second"

    failing = client.spawn("fails-once", {})
    wait_until(lambda: client.fetch_task_result(failing.task_id).state == "failed", timeout=5)
    started = time.monotonic()
    client.retry_task(failing.task_id)
    wait_until(completed(client, failing.task_id), timeout=5, what="the retried task")
    assert time.monotonic() - started < 3.0

    waiting = client.spawn("waits", {})
    wait_until(
        lambda: task_row(client._conn, "default", waiting.task_id)["state"] == "sleeping",
        timeout=5,
        what="the wait",
    )
    started = time.monotonic()
    client.emit_event("go", "now")
    wait_until(completed(client, waiting.task_id), timeout=5, what="the woken task")
    assert time.monotonic() - started < 3.0


def test_polling_is_the_fallback_without_notifications(client, registry, make_pool):
    registry.register("quick", lambda params, ctx: "ok")
    make_pool(registry, listen=False, poll_interval=0.2).start()
    spawned = client.spawn("quick", {})
    assert wait_until(completed(client, spawned.task_id), what="a polled task").result == "ok"


def test_status_reports_idle_and_running_with_the_step(client, registry, make_pool):
    reports: list[WorkerStatus] = []
    in_step = threading.Event()
    release = threading.Event()

    @registry.register_task("observed")
    def observed(params, ctx):
        ctx.step("prepare", lambda: 1)
        return ctx.step("slow", lambda: in_step.set() or release.wait(10) or "x")

    pool = make_pool(registry, on_status=reports.append).start()
    (status,) = pool.statuses()
    assert status.worker_id == f"{pool.worker_prefix}:0"
    assert pool.worker_prefix.startswith(f"{socket.gethostname()}:{os.getpid()}")
    spawned = client.spawn("observed", {})
    assert in_step.wait(10)
    (status,) = pool.statuses()
    assert status.state == "running"
    assert (status.task_id, status.task_name, status.queue, status.step) == (
        spawned.task_id,
        "observed",
        "default",
        "slow",
    )
    assert status.run_id == spawned.run_id and status.attempt == 1
    assert "running observed" in status.describe()
    release.set()
    wait_until(completed(client, spawned.task_id))
    wait_until(lambda: pool.statuses()[0].state == "idle", what="idle again")
    running = [r for r in reports if r.state == "running"]
    assert [r.step for r in running] == [None, "prepare", "slow"]
    assert reports[-1].state == "idle" and reports[-1].task_id is None
    pool.stop()
    assert pool.statuses()[0].state == "stopped"


def test_a_faulty_status_callback_does_not_stop_the_worker(client, registry, make_pool):
    registry.register("quick", lambda params, ctx: "ok")

    def explode(status):
        raise RuntimeError("observer bug")

    make_pool(registry, on_status=explode).start()
    spawned = client.spawn("quick", {})
    wait_until(completed(client, spawned.task_id))


def test_threads_run_tasks_concurrently(client, registry, make_pool):
    barrier = threading.Barrier(3, timeout=10)

    @registry.register_task("together")
    def together(params, ctx):
        return barrier.wait()

    pool = make_pool(registry, concurrency=3).start()
    ids = [client.spawn("together", {"i": i}).task_id for i in range(3)]
    for task_id in ids:
        wait_until(completed(client, task_id), what="all three tasks")
    assert len({s.worker_id for s in pool.statuses()}) == 3


def test_status_does_not_name_bookkeeping_steps(client, registry, make_pool):
    reports: list[WorkerStatus] = []

    @registry.register_task("stores_a_file")
    def stores_a_file(params, ctx):
        ctx.step("call", lambda: 1)
        # What the code interpreter does while a call stores a file's contents.
        handle = ctx.begin_step(f"{FILE_CHECKPOINT_PREFIX}{'0' * 64}")
        ctx.complete_step(handle, {"size": 0, "base64": ""})
        return ctx.step("answer", lambda: "x")

    make_pool(registry, on_status=reports.append).start()
    spawned = client.spawn("stores_a_file", {})
    wait_until(completed(client, spawned.task_id))
    assert [r.step for r in reports if r.state == "running"] == [None, "call", "answer"]


def test_a_long_step_keeps_its_lease(client, registry, make_pool, connect):
    release = threading.Event()
    in_step = threading.Event()

    @registry.register_task("slow")
    def slow(params, ctx):
        return ctx.step("slow", lambda: in_step.set() or release.wait(10) or "done")

    make_pool(registry, claim_timeout=2).start()
    spawned = client.spawn("slow", {})
    assert in_step.wait(10)
    sweeper = connect()
    deadline = time.monotonic() + 5  # two and a half lease lengths
    while time.monotonic() < deadline:
        # claim_task fails any run whose lease expired: this one must never be.
        sweeper.execute("SELECT * FROM absurd.claim_task('default', 'sweeper', 1, 1)")
        time.sleep(0.1)
    release.set()
    wait_until(completed(client, spawned.task_id))
    runs = run_rows(sweeper, "default", spawned.task_id)
    assert [(r["attempt"], r["state"]) for r in runs] == [(1, "completed")]


def test_a_run_that_lost_its_claim_stops_quietly(client, registry, make_pool, connect):
    ran = Counter()
    release = threading.Event()
    between = threading.Event()

    @registry.register_task("overtaken", default_max_attempts=3)
    def overtaken(params, ctx):
        ctx.step("one", lambda: ran.update([f"one@{ctx.attempt}"]))
        if ctx.attempt == 1:
            between.set()
            release.wait(10)
        ctx.step("two", lambda: ran.update([f"two@{ctx.attempt}"]))
        return ctx.attempt

    pool = make_pool(registry, claim_timeout=3, concurrency=2).start()
    spawned = client.spawn("overtaken", {})
    assert between.wait(10)
    admin = connect()
    admin.execute(
        "SELECT absurd.fail_run('default', %s, %s, NULL)",
        (spawned.run_id, json.dumps({"name": "$ClaimTimeout", "message": "simulated expiry"})),
    )
    # The heartbeat is refused with AB002: the keeper lets go of the run.
    wait_until(lambda: spawned.run_id not in pool._keeper.holding(), what="the keeper to let go")
    assert wait_until(completed(client, spawned.task_id)).result == 2
    release.set()
    wait_until(lambda: all(s.state == "idle" for s in pool.statuses()), what="idle workers")
    runs = run_rows(admin, "default", spawned.task_id)
    assert [(r["attempt"], r["state"]) for r in runs] == [(1, "failed"), (2, "completed")]
    assert runs[0]["failure_reason"]["message"] == "simulated expiry"
    assert ran == {"one@1": 1, "two@2": 1}


def test_cancellation_reaches_a_running_task_at_its_next_step(client, registry, make_pool):
    ran = Counter()
    between = threading.Event()
    release = threading.Event()

    @registry.register_task("cancellable")
    def cancellable(params, ctx):
        ctx.step("one", lambda: ran.update(["one"]))
        between.set()
        release.wait(10)
        ctx.step("two", lambda: ran.update(["two"]))

    pool = make_pool(registry, claim_timeout=3).start()
    spawned = client.spawn("cancellable", {})
    assert between.wait(10)
    client.cancel_task(spawned.task_id)
    wait_until(
        lambda: spawned.run_id not in pool._keeper.holding(), what="the keeper to see the cancel"
    )
    release.set()
    wait_until(lambda: pool.statuses()[0].state == "idle", what="the worker to stop the task")
    assert ran == {"one": 1}
    assert client.fetch_task_result(spawned.task_id).state == "cancelled"


def test_an_unknown_task_is_deferred_and_not_failed(client, registry, make_pool, caplog):
    pool = make_pool(registry).start()
    spawned = client.spawn("not-here", {}, queue="default")
    wait_until(
        lambda: run_rows(client._conn, "default", spawned.task_id)[0]["state"] == "sleeping",
        what="the deferral",
    )
    (run,) = run_rows(client._conn, "default", spawned.task_id)
    assert run["attempt"] == 1 and run["failure_reason"] is None and run["failed_at"] is None
    assert task_row(client._conn, "default", spawned.task_id)["state"] == "sleeping"
    assert any("No handler for task 'not-here'" in r.getMessage() for r in caplog.records)
    assert pool.unknown_tasks() == ["not-here"]


def test_failures_are_recorded_and_retried_by_the_strategy(client, registry, make_pool):
    @registry.register_task("fails")
    def fails(params, ctx):
        raise KeyError(f"attempt {ctx.attempt}")

    make_pool(registry).start()
    spawned = client.spawn(
        "fails", {}, max_attempts=3, retry_strategy={"kind": "fixed", "base_seconds": 0.5}
    )
    wait_until(
        lambda: client.fetch_task_result(spawned.task_id).state == "failed",
        what="the final failure",
    )
    runs = run_rows(client._conn, "default", spawned.task_id)
    assert [(r["attempt"], r["state"]) for r in runs] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
    ]
    for run in runs:
        reason = run["failure_reason"]
        assert reason["name"] == "KeyError" and reason["type"] == "builtins.KeyError"
        assert reason["message"] == repr(f"attempt {run['attempt']}")
        assert 'raise KeyError(f"attempt {ctx.attempt}")' in reason["traceback"]
    for earlier, later in itertools.pairwise(runs):
        # Claiming resets available_at, so the delay shows in when the retry started.
        waited = (later["started_at"] - earlier["failed_at"]).total_seconds()
        assert 0.5 <= waited < 3


def test_pause_stops_claiming_and_resume_restarts_it(client, registry, make_pool):
    registry.register("quick", lambda params, ctx: "ok")
    pool = make_pool(registry, concurrency=2).start()
    pool.pause()
    wait_until(lambda: all(s.state == "paused" for s in pool.statuses()), what="paused workers")
    spawned = client.spawn("quick", {})
    assert stays_false(completed(client, spawned.task_id), 1.0)
    pool.resume()
    wait_until(completed(client, spawned.task_id))


def test_resize_adds_and_retires_threads(client, registry, make_pool):
    barrier = threading.Barrier(3, timeout=10)
    registry.register("together", lambda params, ctx: barrier.wait())
    pool = make_pool(registry, concurrency=1).start()
    pool.resize(3)
    assert [s.index for s in pool.statuses()] == [0, 1, 2]
    ids = [client.spawn("together", {}).task_id for _ in range(3)]
    for task_id in ids:
        wait_until(completed(client, task_id))
    pool.resize(1)
    wait_until(lambda: [s.index for s in pool.statuses()] == [0], what="threads to retire")
    registry.register("quick", lambda params, ctx: "ok")
    spawned = client.spawn("quick", {})
    wait_until(completed(client, spawned.task_id))


def test_stop_hands_a_running_task_back_as_the_same_attempt(client, registry, make_pool, connect):
    ran = Counter()
    between = threading.Event()
    release = threading.Event()

    @registry.register_task("interrupted", default_max_attempts=1)
    def interrupted(params, ctx):
        ctx.step("one", lambda: ran.update([f"one@{ctx.attempt}"]))
        if not release.is_set():
            between.set()
            release.wait(10)
        ctx.step("two", lambda: ran.update([f"two@{ctx.attempt}"]))
        return ctx.attempt

    first = make_pool(registry, claim_timeout=30)
    first.start()
    spawned = client.spawn("interrupted", {})
    assert between.wait(10)
    progress: list[int] = []
    started = time.monotonic()
    assert first.stop(grace=0.2, on_progress=progress.append) == 1
    assert time.monotonic() - started < 3
    assert progress[0] == 1
    observer = connect()
    (run,) = run_rows(observer, "default", spawned.task_id)
    assert (run["attempt"], run["state"], run["claimed_by"], run["claim_expires_at"]) == (
        1,
        "pending",
        None,
        None,
    )
    release.set()  # the handed-back handler goes on, but must write nothing more
    wait_until(
        lambda: all(s.state == "stopped" for s in first.statuses()), what="the old thread to end"
    )
    second = make_pool(registry, claim_timeout=30).start()
    assert wait_until(completed(client, spawned.task_id), timeout=15).result == 1
    runs = run_rows(observer, "default", spawned.task_id)
    assert [(r["attempt"], r["state"], r["failure_reason"]) for r in runs] == [
        (1, "completed", None)
    ]
    assert ran == {"one@1": 1, "two@1": 1}
    second.stop()


def test_stop_waits_for_running_tasks_within_the_grace_period(client, registry, make_pool):
    release = threading.Event()
    registry.register("slow", lambda params, ctx: ctx.step("wait", lambda: release.wait(10)))
    pool = make_pool(registry).start()
    spawned = client.spawn("slow", {})
    wait_until(lambda: any(s.state == "running" for s in pool.statuses()), what="the task")
    progress: list[int] = []
    timer = threading.Timer(0.3, release.set)
    timer.start()
    assert pool.stop(grace=10, on_progress=progress.append) == 0
    assert progress == [1, 0]
    assert client.fetch_task_result(spawned.task_id).state == "completed"


def test_a_missing_queue_is_waited_for(db_dsn, registry, make_pool, conn, caplog):
    import logging

    from absurd_tui.sdk import Absurd

    # Said once, at INFO: a queue may appear later by design (the agent's does).
    caplog.set_level(logging.INFO, logger="absurd_tui.runtime")
    registry.register("late", lambda params, ctx: "ok", queue="later")
    make_pool(registry, queues=("later",)).start()
    wait_until(
        lambda: any(
            "does not exist" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records
        ),
        what="the notice",
    )
    client = Absurd(conn, registry=registry)
    client.create_queue("later")
    spawned = client.spawn("late", {})
    wait_until(completed(client, spawned.task_id, queue="later"), what="the task on the new queue")


def test_bad_pool_arguments():
    with pytest.raises(ValueError, match="at least one queue"):
        WorkerPool("postgresql://x", queues=())
    with pytest.raises(ValueError, match="too long"):
        WorkerPool("postgresql://x", queues=("q" * 58,))
    with pytest.raises(ValueError, match="poll_interval"):
        WorkerPool("postgresql://x", poll_interval=0)


def test_client_start_worker_serves_until_stop_worker(db_dsn, registry):
    from absurd_tui import Absurd

    with Absurd(db_dsn, registry=registry) as client:
        client.create_queue()

        @client.register_task("stopper")
        def stopper(params, ctx):
            client.stop_worker()
            return "stopping"

        spawned = client.spawn("stopper", {})
        runner = threading.Thread(target=client.start_worker, kwargs={"claim_timeout": 5})
        runner.start()
        runner.join(15)
        assert not runner.is_alive()
        assert wait_until(completed(client, spawned.task_id)).result == "stopping"


def test_start_worker_needs_a_dsn(client):
    with pytest.raises(ValueError, match="needs a client built from a DSN"):
        client.start_worker()


def test_stop_lets_running_tasks_finish_within_the_grace_period(client, registry, make_pool):
    in_step = threading.Event()
    release = threading.Event()
    registry.register(
        "graceful",
        lambda params, ctx: ctx.step("s", lambda: in_step.set() or release.wait(10) or 1),
    )
    pool = make_pool(registry).start()
    spawned = client.spawn("graceful", {})
    assert in_step.wait(10)
    stopper = threading.Thread(target=pool.stop, kwargs={"timeout": 10})
    stopper.start()
    assert stays_false(lambda: not stopper.is_alive(), 0.3)  # stop() waits for the task
    release.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert client.fetch_task_result(spawned.task_id).state == "completed"
    assert [s.state for s in pool.statuses()] == ["stopped"]


def test_sys_exit_in_a_handler_fails_the_task_not_the_worker(client, registry, make_pool):
    import sys

    registry.register("exits", lambda params, ctx: sys.exit(3), default_max_attempts=1)
    registry.register("quick", lambda params, ctx: "ok")
    pool = make_pool(registry).start()
    exiting = client.spawn("exits", {})
    wait_until(lambda: client.fetch_task_result(exiting.task_id).state == "failed")
    assert client.fetch_task_result(exiting.task_id).failure["name"] == "SystemExit"
    after = client.spawn("quick", {})
    wait_until(completed(client, after.task_id))
    assert pool.statuses()[0].state in ("idle", "running")


def test_one_pool_serves_several_queues(client, registry, make_pool):
    client.create_queue("second")
    registry.register("on-default", lambda params, ctx: ctx.queue_name)
    registry.register("on-second", lambda params, ctx: ctx.queue_name, queue="second")
    make_pool(registry, queues=("default", "second"), poll_interval=30).start()
    first = client.spawn("on-default", {})
    second = client.spawn("on-second", {})
    assert wait_until(completed(client, first.task_id), timeout=5).result == "default"
    assert (
        wait_until(completed(client, second.task_id, queue="second"), timeout=5).result == "second"
    )
