"""Bad input is refused by the SDK before the database sees it, naming the field, and
changes nothing."""

from __future__ import annotations

import pytest
from support import table_contents

from absurd_tui.sdk import Absurd, TaskRegistry
from absurd_tui.sdk.errors import InvalidInput, InvalidParams, PayloadTooLarge
from absurd_tui.sdk.validation import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_ENV,
    max_payload_bytes,
    validate_cancellation,
    validate_retry_strategy,
)

from .helpers import task_row

BAD_STRATEGIES = [
    ({"kind": "bogus"}, r"retry_strategy\.kind must be one of 'none', 'fixed', 'exponential'"),
    ({"base_seconds": 5}, r"retry_strategy\.kind must be one of .*not missing"),
    ({"kind": "fixed", "base_seconds": "abc"}, r"base_seconds must be a number from 0 to 86,400"),
    ({"kind": "fixed", "base_seconds": -1}, r"base_seconds must be a number from 0 to 86,400"),
    ({"kind": "fixed", "base_seconds": 86_401}, r"base_seconds must be .*not 86401"),
    ({"kind": "exponential", "max_seconds": 1e9}, r"max_seconds must be a number from 0"),
    ({"kind": "exponential", "factor": -2}, r"factor must be a finite number >= 0"),
    ({"kind": "exponential", "factor": float("inf")}, r"factor must be a finite number >= 0"),
    ({"kind": "exponential", "factor": True}, r"factor must be a finite number >= 0"),
    ({"kind": "fixed", "base_second": 5}, r"unknown key\(s\) 'base_second'"),
    ([1, 2], r"retry_strategy must be a JSON object, not an array"),
]

BAD_CANCELLATIONS = [
    ({"max_delay": -1}, r"cancellation\.max_delay must be a whole number of seconds >= 0"),
    ({"max_duration": 1.5}, r"cancellation\.max_duration must be a whole number"),
    ({"max_duration": "60"}, r"cancellation\.max_duration must be a whole number"),
    ({"max_delay": 2**63}, r"cancellation\.max_delay must be a whole number"),
    ({"deadline": 5}, r"cancellation has unknown key\(s\) 'deadline'"),
    ("soon", r"cancellation must be a JSON object, not a string"),
]


@pytest.mark.parametrize(("strategy", "message"), BAD_STRATEGIES)
def test_retry_strategies_follow_upstreams_rules(client, conn, strategy, message):
    before = table_contents(conn)
    with pytest.raises(InvalidInput, match=message):
        client.spawn("t", {}, queue="default", retry_strategy=strategy)
    assert table_contents(conn) == before


def test_valid_retry_strategies_pass_unchanged():
    for strategy in (
        {"kind": "none"},
        {"kind": "fixed", "base_seconds": 0},
        {"kind": "fixed", "base_seconds": 86_400},
        {"kind": "exponential", "base_seconds": 0.5, "factor": 0, "max_seconds": 60},
    ):
        assert validate_retry_strategy(strategy) == strategy


@pytest.mark.parametrize(("policy", "message"), BAD_CANCELLATIONS)
def test_cancellation_policies_take_whole_non_negative_seconds(client, conn, policy, message):
    before = table_contents(conn)
    with pytest.raises(InvalidInput, match=message):
        client.spawn("t", {}, queue="default", cancellation=policy)
    assert table_contents(conn) == before
    assert validate_cancellation({"max_delay": 0, "max_duration": 10**12}) == {
        "max_delay": 0,
        "max_duration": 10**12,
    }


@pytest.mark.parametrize("value", [0, -3, 2**31, True, 2.0, "3"])
def test_max_attempts_is_a_whole_number_from_1_to_int4_max(client, conn, value):
    before = table_contents(conn)
    with pytest.raises(InvalidInput, match=r"max_attempts must be a whole number from 1 to 2,147"):
        client.spawn("t", {}, queue="default", max_attempts=value)
    assert table_contents(conn) == before


def test_the_largest_max_attempts_is_stored(client, conn):
    spawned = client.spawn("t", {}, queue="default", max_attempts=2**31 - 1)
    assert task_row(conn, "default", spawned.task_id)["max_attempts"] == 2**31 - 1


def test_max_attempts_of_retry_is_checked_too(client, conn):
    spawned = client.spawn("t", {}, queue="default")
    before = table_contents(conn)
    with pytest.raises(InvalidInput, match="max_attempts must be a whole number"):
        client.retry_task(spawned.task_id, max_attempts=2**31)
    assert table_contents(conn) == before


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda c: c.spawn("t", {"note": "a\x00b"}, queue="default"),
            r'params\["note"\] contains a NUL character',
        ),
        (
            lambda c: c.spawn("t", {"note": ["ok", "\udc80"]}, queue="default"),
            r'params\["note"\]\[1\] contains a lone surrogate \(\\udc80\)',
        ),
        (
            lambda c: c.spawn("t", {}, queue="default", headers={"k\x00": 1}),
            r"headers has a key that contains a NUL character",
        ),
        (
            lambda c: c.emit_event("ready", {"text": "\ud800"}),
            r'payload\["text"\] contains a lone surrogate',
        ),
        (lambda c: c.emit_event("re\x00dy", {}), r"event_name contains a NUL character"),
        (lambda c: c.spawn("t\udc80", {}, queue="default"), r"task_name contains a lone surrogate"),
        (
            lambda c: c.spawn("t", {}, queue="default", idempotency_key="k\x00"),
            r"idempotency_key contains a NUL character",
        ),
        (lambda c: c.spawn("t", {}, queue="q\x00"), r"the queue name contains a NUL character"),
    ],
)
def test_text_postgres_cannot_store_is_named_by_field(client, conn, call, message):
    before = table_contents(conn)
    with pytest.raises(InvalidInput, match=message):
        call(client)
    assert table_contents(conn) == before


def test_an_escaped_nul_in_text_is_plain_text_and_stored(client, conn):
    spawned = client.spawn("t", {"note": "a\\u0000b"}, queue="default")
    assert task_row(conn, "default", spawned.task_id)["params"] == {"note": "a\\u0000b"}


def test_headers_must_be_an_object(client, conn):
    with pytest.raises(InvalidInput, match="headers must be a JSON object, not an array"):
        client.spawn("t", {}, queue="default", headers=[1])


def test_oversized_values_are_refused_naming_field_size_and_limit(client, conn, monkeypatch):
    monkeypatch.setenv(MAX_PAYLOAD_ENV, "1000")
    before = table_contents(conn)
    big = {"blob": "x" * 2000}
    with pytest.raises(
        PayloadTooLarge, match=r"params is 2.0 KiB \(2,012 bytes\), over the limit of 1,000 bytes"
    ):
        client.spawn("t", big, queue="default")
    with pytest.raises(PayloadTooLarge, match=r"headers is .* over the limit of 1,000 bytes"):
        client.spawn("t", {}, queue="default", headers=big)
    with pytest.raises(PayloadTooLarge, match=r"payload is .* over the limit of 1,000 bytes"):
        client.emit_event("ready", big)
    assert table_contents(conn) == before
    # Just under the limit is fine.
    client.spawn("t", {"blob": "x" * 900}, queue="default")


def test_the_size_is_counted_in_utf8_bytes(client, monkeypatch):
    monkeypatch.setenv(MAX_PAYLOAD_ENV, "1000")
    with pytest.raises(PayloadTooLarge, match=r"params is 1\.2 KiB \(1,209 bytes\)"):
        client.spawn("t", {"s": "é" * 600}, queue="default")


def test_the_default_limit_is_2_mib_and_configurable(monkeypatch):
    monkeypatch.delenv(MAX_PAYLOAD_ENV, raising=False)
    assert max_payload_bytes() == DEFAULT_MAX_PAYLOAD_BYTES == 2 * 1024 * 1024
    monkeypatch.setenv(MAX_PAYLOAD_ENV, "5000000")
    assert max_payload_bytes() == 5_000_000
    monkeypatch.setenv(MAX_PAYLOAD_ENV, "lots")
    with pytest.raises(InvalidInput, match=f"{MAX_PAYLOAD_ENV} must be a whole number of bytes"):
        max_payload_bytes()


def test_bad_input_errors_are_value_errors_naming_their_field(client):
    with pytest.raises(InvalidParams) as info:
        client.spawn("t", {"a": "\x00"}, queue="default")
    assert isinstance(info.value, ValueError) and info.value.field == "params"
    with pytest.raises(InvalidInput) as info:
        client.spawn("t", {}, queue="default", retry_strategy={"kind": "fixed", "factor": -1})
    assert info.value.field == "retry_strategy.factor"


def test_registrations_validate_their_defaults():
    registry = TaskRegistry()
    with pytest.raises(InvalidInput, match=r'default_cancellation of task "x"\.max_delay'):
        registry.register("x", lambda p, c: None, default_cancellation={"max_delay": -5})
    with pytest.raises(InvalidInput, match="the task name contains a NUL"):
        registry.register("x\x00", lambda p, c: None)


def test_the_default_retry_strategy_backs_off(conn):
    registry = TaskRegistry()
    client = Absurd(conn, registry=registry)
    client.create_queue()

    @client.register_task("flaky")
    def flaky(params, ctx):
        raise RuntimeError("not yet")

    spawned = client.spawn("flaky", {})
    client.work_batch()
    retry_at = conn.execute(
        "SELECT available_at - (SELECT failed_at FROM absurd.r_default WHERE attempt = 1)"
        " FROM absurd.r_default WHERE task_id = %s AND attempt = 2",
        (spawned.task_id,),
    ).fetchone()[0]
    assert retry_at.total_seconds() == pytest.approx(2, abs=0.01)
