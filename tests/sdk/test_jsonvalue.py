"""The strict JSON check used for params, payloads, headers and step results."""

from __future__ import annotations

import datetime
import decimal
import json

import pytest

from absurd_tui.sdk import InvalidParams
from absurd_tui.sdk.jsonvalue import dumps, find_non_json


@pytest.mark.parametrize(
    "value, expected",
    [
        (
            {"a": [1, (2, {"b": datetime.date(2024, 1, 2)})]},
            'params["a"][1][1]["b"] is of type datetime.date',
        ),
        ({"n": decimal.Decimal("1.5")}, 'params["n"] is of type decimal.Decimal'),
        ({1: "x"}, "params has the key 1 of type int; JSON object keys must be strings"),
        ({"x": float("nan")}, 'params["x"] is nan'),
        ({"x": float("inf")}, 'params["x"] is inf'),
        ({"s": {1, 2}}, 'params["s"] is of type set'),
        ({"b": b"raw"}, 'params["b"] is of type bytes'),
        ({'we"ird': object()}, 'params["we\\"ird"] is of type object'),
    ],
)
def test_non_json_values_are_named_by_path(value, expected):
    problem = find_non_json(value, "params")
    assert problem is not None and problem.startswith(expected), problem


def test_cycles_are_refused_but_shared_values_are_fine():
    loop: list = []
    loop.append(loop)
    assert "circular" in find_non_json({"l": loop}, "v")
    shared = [1, 2]
    assert find_non_json({"a": shared, "b": shared}, "v") is None


def test_plain_json_passes_and_tuples_become_lists():
    value = {"s": "ünï", "i": 10**30, "f": 1.5, "b": True, "n": None, "t": (1, "two")}
    text = dumps(value, path="v")
    assert json.loads(text) == {**value, "t": [1, "two"]}
    assert "ünï" in text


def test_dumps_raises_the_requested_error_with_context():
    with pytest.raises(InvalidParams) as info:
        dumps(
            {"when": datetime.datetime(2024, 1, 1)},
            path="params",
            error=InvalidParams,
            context='spawn("t")',
        )
    message = str(info.value)
    assert message.startswith('spawn("t"): params["when"] is of type datetime.datetime')
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
