"""Strict JSON for everything the engine stores (params, headers, payloads, steps).

``json.dumps`` alone is too lenient for durable state: it silently turns integer keys
into strings, so a value read back on replay would differ from the one first
returned, and it writes ``NaN``, which PostgreSQL's jsonb rejects with an error that
names nothing. Here such values are refused up front with a message that points at
the offending key. Tuples are accepted as JSON arrays (they come back as lists).

Text PostgreSQL cannot store (a NUL, a lone surrogate) is refused the same way, naming
where it is, and so is a value over the size limit. ``storable`` is the exception for
failure reasons, which must always be recorded: it escapes such text instead.
"""

from __future__ import annotations

import json
import math
from typing import Any

from . import validation
from .errors import (
    InvalidParams,
    InvalidStepResult,
    NotJSONError,
    ParamsTooLarge,
    PayloadTooLarge,
    StepResultTooLarge,
)

_TOO_LARGE: dict[type[NotJSONError], type[PayloadTooLarge]] = {
    InvalidParams: ParamsTooLarge,
    InvalidStepResult: StepResultTooLarge,
}

_SCALARS = (str, bool, int, type(None))


def _type_name(value: Any) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def find_non_json(value: Any, path: str) -> str | None:
    """Describe the first part of ``value`` that is not plain JSON, or None if all is.

    ``path`` names the root in the description, e.g. ``params`` gives
    ``params["user"]["born"] is a datetime.date, which is not JSON``.
    """
    try:
        return _check(value, path, set())
    except RecursionError:
        return f"{path} is nested too deeply to store as JSON"


def _check(item: Any, where: str, ancestors: set[int]) -> str | None:
    if isinstance(item, _SCALARS):
        return None
    if isinstance(item, float):
        return None if math.isfinite(item) else f"{where} is {item!r}, which JSON cannot represent"
    if not isinstance(item, (dict, list, tuple)):
        return f"{where} is of type {_type_name(item)}, which is not JSON"
    if id(item) in ancestors:
        return f"{where} contains itself (a circular reference)"
    ancestors.add(id(item))
    try:
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return (
                        f"{where} has the key {key!r} of type {_type_name(key)}; JSON object "
                        "keys must be strings"
                    )
                problem = _check(
                    child, f"{where}[{json.dumps(key, ensure_ascii=False)}]", ancestors
                )
                if problem:
                    return problem
        else:
            for index, child in enumerate(item):
                problem = _check(child, f"{where}[{index}]", ancestors)
                if problem:
                    return problem
    finally:
        ancestors.discard(id(item))
    return None


_DEFAULT_LIMIT = -1


def dumps(
    value: Any,
    *,
    path: str,
    error: type[NotJSONError] = NotJSONError,
    context: str = "",
    max_bytes: int | None = _DEFAULT_LIMIT,
) -> str:
    """JSON text for ``value``, or ``error`` naming the first part that is not JSON or
    holds text PostgreSQL cannot store, or saying that it is over ``max_bytes`` (default:
    the configured limit; None: no limit)."""
    prefix = f"{context}: " if context else ""
    problem = find_non_json(value, path)
    if problem is None:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        problem = find_unstorable(value, path) if _may_be_unstorable(text) else None
    if problem is not None:
        raise error(f"{prefix}{problem}.", field=path)
    limit = validation.max_payload_bytes() if max_bytes == _DEFAULT_LIMIT else max_bytes
    if limit is not None:
        size = validation.oversize(text, limit)
        if size is not None:
            too_large = _TOO_LARGE.get(error, PayloadTooLarge)
            raise too_large(f"{prefix}{validation.too_large(path, size, limit)}.", field=path)
    return text


def _may_be_unstorable(text: str) -> bool:
    # json.dumps writes a NUL as the escape \u0000 and leaves surrogates as they are;
    # a string that merely contains a backslash and "u0000" is found again by the walk,
    # which decides.
    return "\\u0000" in text or validation.unstorable_text(text) is not None


def find_unstorable(value: Any, path: str) -> str | None:
    """Describe the first key or string in ``value`` PostgreSQL cannot store, or None."""
    if isinstance(value, str):
        problem = validation.unstorable_text(value)
        return f"{path} {problem}" if problem else None
    if isinstance(value, dict):
        for key, child in value.items():
            problem = validation.unstorable_text(key)
            if problem:
                return f"{path} has a key that {problem}"
            problem = find_unstorable(child, f"{path}[{_key(key)}]")
            if problem:
                return problem
    elif isinstance(value, (list, tuple)):
        for index, child in enumerate(value):
            problem = find_unstorable(child, f"{path}[{index}]")
            if problem:
                return problem
    return None


def _key(key: str) -> str:
    return json.dumps(key, ensure_ascii=True)


def storable(value: Any) -> tuple[Any, bool]:
    """``value`` with every NUL and lone surrogate in its keys and strings written as a
    backslash escape (``\\x00``, ``\\udc80``), and whether any was."""
    if isinstance(value, str):
        if validation.unstorable_text(value) is None:
            return value, False
        escaped = value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace")
        return escaped.decode("utf-8"), True
    if isinstance(value, dict):
        changed = False
        result = {}
        for key, child in value.items():
            new_key, key_changed = storable(key) if isinstance(key, str) else (key, False)
            new_child, child_changed = storable(child)
            result[new_key] = new_child
            changed = changed or key_changed or child_changed
        return result, changed
    if isinstance(value, (list, tuple)):
        pairs = [storable(child) for child in value]
        return [item for item, _ in pairs], any(flag for _, flag in pairs)
    return value, False
