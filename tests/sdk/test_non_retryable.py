"""NonRetryableError fails a task at once, keeps its attempts for a later manual retry."""

import pytest

from absurd_tui import Absurd, NonRetryableError, TaskRegistry
from absurd_tui.sdk import failures


def test_reason_marks_only_non_retryable_errors():
    assert failures.serialize_error(NonRetryableError("bad input"))["retryable"] is False
    assert "retryable" not in failures.serialize_error(ValueError("flaky"))


def _failing_client(conn, error):
    registry = TaskRegistry()
    client = Absurd(conn, queue_name="jobs", registry=registry)
    client.create_queue("jobs")

    @client.register_task("fragile", default_max_attempts=5)
    def fragile(params, ctx):
        raise error

    return client


@pytest.mark.parametrize(
    ("error", "runs", "state"),
    [
        (NonRetryableError("card number is invalid"), 1, "failed"),
        (RuntimeError("network blip"), 2, "sleeping"),  # the default backoff
    ],
)
def test_non_retryable_error_fails_the_task_now(conn, error, runs, state):
    client = _failing_client(conn, error)
    task_id = client.spawn("fragile", {})["task_id"]
    client.work_batch(worker_id="w")
    row = conn.execute(
        "SELECT t.state, t.max_attempts, (SELECT count(*) FROM absurd.r_jobs r WHERE r.task_id = t.task_id)"
        " FROM absurd.t_jobs t WHERE t.task_id = %s",
        (task_id,),
    ).fetchone()
    assert row == (state, 5, runs)


def test_a_task_failed_for_good_can_still_be_retried_by_hand(conn):
    client = _failing_client(conn, NonRetryableError("needs a fix first"))
    task_id = client.spawn("fragile", {})["task_id"]
    client.work_batch(worker_id="w")
    assert client.fetch_task_result(task_id).state == "failed"
    client.retry_task(task_id)
    assert client.fetch_task_result(task_id).state == "pending"
