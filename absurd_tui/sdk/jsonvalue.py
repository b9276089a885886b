"""Strict JSON for everything the engine stores (params, headers, payloads, steps).

``json.dumps`` alone is too lenient for durable state: it silently turns integer keys
into strings, so a value read back on replay would differ from the one first
returned, and it writes ``NaN``, which PostgreSQL's jsonb rejects with an error that
names nothing. Here such values are refused up front with a message that points at
the offending key. Tuples are accepted as JSON arrays (they come back as lists).
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import NotJSONError

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


def dumps(
    value: Any, *, path: str, error: type[NotJSONError] = NotJSONError, context: str = ""
) -> str:
    """JSON text for ``value``, or ``error`` naming the first non-JSON part."""
    problem = find_non_json(value, path)
    if problem is not None:
        prefix = f"{context}: " if context else ""
        raise error(f"{prefix}{problem}.")
    return json.dumps(value, ensure_ascii=False, allow_nan=False)
