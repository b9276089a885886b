"""A handler's failure is always recorded with its cause, whatever its text, and never
left to an anonymous lease expiry."""

from __future__ import annotations

import pytest

from absurd_tui.sdk import Absurd, TaskRegistry
from absurd_tui.sdk.execution import Outcome
from absurd_tui.sdk.failures import UNSTORED_MESSAGE, storable_reason
from absurd_tui.sdk.validation import MAX_PAYLOAD_ENV

from .helpers import run_rows


def _failing(conn, error: BaseException) -> tuple[Absurd, str]:
    registry = TaskRegistry()
    client = Absurd(conn, registry=registry)
    client.create_queue()

    @client.register_task("breaks", default_max_attempts=1)
    def breaks(params, ctx):
        raise error

    return client, client.spawn("breaks", {}).task_id


def _reason(conn, task_id: str) -> dict:
    (run,) = run_rows(conn, "default", task_id)
    assert run["state"] == "failed"
    return run["failure_reason"]


@pytest.mark.parametrize(
    ("message", "stored"),
    [
        ("boom\x00", "boom\\x00"),
        ("half a pair \ud83d here", "half a pair \\ud83d here"),
        ("undecodable \udcff byte", "undecodable \\udcff byte"),
    ],
)
def test_text_postgres_cannot_store_is_escaped_with_a_marker(conn, message, stored):
    client, task_id = _failing(conn, RuntimeError(message))
    assert [r.outcome for r in client.work_batch()] == [Outcome.FAILED]
    reason = _reason(conn, task_id)
    assert reason["name"] == "RuntimeError"
    assert reason["message"] == stored
    assert reason["escaped"] == ["message", "traceback"]
    assert stored in reason["traceback"]


def test_a_storable_reason_has_no_marker(conn):
    client, task_id = _failing(conn, RuntimeError("plain \\x00 text"))
    client.work_batch()
    reason = _reason(conn, task_id)
    assert reason["message"] == "plain \\x00 text" and "escaped" not in reason


def test_an_oversized_reason_is_cut_to_the_limit_and_marked(conn, monkeypatch):
    monkeypatch.setenv(MAX_PAYLOAD_ENV, "20000")
    client, task_id = _failing(conn, ValueError("start " + "x" * 100_000 + " end"))
    client.work_batch()
    reason = _reason(conn, task_id)
    assert reason["truncated"] is True and reason["name"] == "ValueError"
    assert reason["message"].startswith("start xxx") and "truncated" in reason["message"]
    assert reason["traceback"].endswith("end\n")
    assert len(storable_reason(reason, 10**9).encode()) <= 20000


def test_an_exception_whose_str_fails_is_still_recorded(conn):
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no")

    client, task_id = _failing(conn, Unprintable())
    client.work_batch()
    reason = _reason(conn, task_id)
    assert reason["name"] == "Unprintable" and "str()" in reason["message"]


def _refuse_failure_reasons(conn, *, times: int | None, errcode: str) -> None:
    """A trigger that refuses to store a run's failure reason (the first ``times``
    attempts, or all but the last resort)."""
    conn.execute("CREATE SEQUENCE refusals")
    condition = (
        f"nextval('refusals') <= {times}"
        if times is not None
        else "NOT NEW.failure_reason ? 'unstored'"
    )
    conn.execute(
        f"""
        CREATE FUNCTION refuse_reason() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.failure_reason IS NOT NULL AND OLD.failure_reason IS NULL AND {condition} THEN
                RAISE EXCEPTION 'this reason may not be stored' USING ERRCODE = '{errcode}';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse BEFORE UPDATE ON absurd.r_default
            FOR EACH ROW EXECUTE FUNCTION refuse_reason();
        """
    )


def test_a_refused_recording_is_tried_again(conn):
    client, task_id = _failing(conn, RuntimeError("the real cause"))
    _refuse_failure_reasons(conn, times=2, errcode="40001")
    assert [r.outcome for r in client.work_batch()] == [Outcome.FAILED]
    assert _reason(conn, task_id)["message"] == "the real cause"


def test_the_last_resort_says_the_reason_could_not_be_stored(conn):
    client, task_id = _failing(conn, KeyError("the real cause"))
    _refuse_failure_reasons(conn, times=None, errcode="P0001")
    assert [r.outcome for r in client.work_batch()] == [Outcome.FAILED]
    reason = _reason(conn, task_id)
    assert reason["name"] == "KeyError" and reason["type"] == "builtins.KeyError"
    assert reason["message"].startswith(f"{UNSTORED_MESSAGE} (KeyError)")
    assert "this reason may not be stored" in reason["message"]
    assert reason["unstored"] is True


@pytest.mark.parametrize(
    ("handler", "named", "why"),
    [
        (
            lambda params, ctx: ctx.step("fetch", lambda: "a\x00b"),
            'Step "fetch" of task "odd"',
            "contains a NUL character (\\x00), which PostgreSQL cannot store",
        ),
        (
            lambda params, ctx: {"text": "\udcff"},
            'Task "odd" returned a value',
            'result["text"] contains a lone surrogate (\\udcff)',
        ),
    ],
)
def test_results_postgres_cannot_store_fail_the_task_naming_where(conn, handler, named, why):
    registry = TaskRegistry()
    client = Absurd(conn, registry=registry)
    client.create_queue()
    registry.register("odd", handler, default_max_attempts=1)
    task_id = client.spawn("odd", {}).task_id
    assert [r.outcome for r in client.work_batch()] == [Outcome.FAILED]
    reason = _reason(conn, task_id)
    assert reason["name"] == "InvalidStepResult"
    assert named in reason["message"] and why in reason["message"]
