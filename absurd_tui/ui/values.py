"""How the console shows a JSON value that may be huge: bounded, with its size stated.

A value read whole is shown whole up to ``PREVIEW_BYTES`` of JSON text and cut there
otherwise; a value the detail read left out (``Large``) is shown as the outline its
bounded preview gives. Either way the text says how to see all of it (``v``).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from ..db.previews import PREVIEW_BYTES, Large, Preview, human_size, outline_text
from ..text import json_block, json_preview, plain, pretty

WHOLE_VALUE_HINT = "press v to page through the whole value or save it"


def value_text(value: Any, preview: Preview | None, muted: str = "") -> Text:
    """A detail section's body for ``value`` (``preview`` stands in for a ``Large``)."""
    if isinstance(value, Large):
        if preview is None:
            return Text(
                f"(a large value, {human_size(value.stored)} as stored; {WHOLE_VALUE_HINT})",
                style=muted,
            )
        note = Text(
            f"{human_size(preview.size)}: an outline of the first members; {WHOLE_VALUE_HINT}\n",
            style=muted,
        )
        return Text.assemble(note, plain(outline_text(preview), single_line=False))
    text = pretty(value)
    if len(text) <= PREVIEW_BYTES:
        return json_block(value)
    note = Text(
        f"\n… the first {human_size(PREVIEW_BYTES)} of {human_size(len(text.encode()))}; "
        f"{WHOLE_VALUE_HINT}",
        style=muted,
    )
    return Text.assemble(plain(text[:PREVIEW_BYTES], single_line=False), note)


def cell_text(value: Any, limit: int) -> Text:
    """One line for a table cell."""
    if isinstance(value, Large):
        return Text(f"(large: {human_size(value.stored)} stored)")
    return json_preview(value, limit)


def is_large(value: Any) -> bool:
    return isinstance(value, Large) or (value is not None and len(pretty(value)) > PREVIEW_BYTES)
