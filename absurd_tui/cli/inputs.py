"""Reading what the user typed: JSON options (``@FILE``, ``@-``), ``-P`` pairs, JSON
lines, and argparse types for numbers. Every failure is a usage error that names the
option, raised before anything is written."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .session import usage_error


def read_json(text: str, option: str) -> Any:
    """Parse a JSON option; ``@FILE`` reads it from a file and ``@-`` from stdin."""
    source = option
    if text.startswith("@"):
        path = text[1:]
        source = f"{option} (from {'standard input' if path == '-' else path})"
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise usage_error(f"Cannot read {option} from {path}: {exc.strerror or exc}.") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise usage_error(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from exc


def read_json_object(text: str | None, option: str) -> dict[str, Any] | None:
    if text is None:
        return None
    value = read_json(text, option)
    if not isinstance(value, dict):
        raise usage_error(f"{option} must be a JSON object, not {_json_kind(value)}.")
    return value


def _json_kind(value: Any) -> str:
    kinds: dict[type, str] = {
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return kinds.get(type(value), type(value).__name__)


def param_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    """``-P key=value`` (a string) and ``-P key:=JSON`` (any JSON value)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or key == ":":
            raise usage_error(
                f"-P {pair!r} is not key=value (a string) or key:=JSON (a typed value)."
            )
        if key.endswith(":"):
            key = key[:-1]
            params[key] = read_json(value, f"-P {key}")
        else:
            params[key] = value
    return params


def read_json_lines(path: str, option: str, *, nothing_done: str) -> list[Any]:
    """One JSON value per non-blank line of ``path`` (``-`` for stdin).

    ``nothing_done`` completes the message of a bad line ("Nothing was spawned.").
    """
    try:
        if path == "-":
            lines = sys.stdin.read().splitlines()
        else:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise usage_error(f"Cannot read {option} {path}: {exc.strerror or exc}.") from exc
    values = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise usage_error(
                f"Line {number} of {option} {path} is not valid JSON: {exc.msg} at column "
                f"{exc.colno}. {nothing_done}"
            ) from exc
    return values


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    return parse


positive_int = at_least(1)


def whole_number_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}")
        return value

    return parse


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative number of seconds")
    return value
