"""Rendering helpers: user data stays inert text; counts and ages read well."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.text import Text

from absurd_tui.db.reads import Count, short_id
from absurd_tui.text import age, clean, count_label, duration, plain, until
from absurd_tui.ui.source import parse_json


def test_plain_keeps_markup_literal_and_escapes_control_characters():
    text = plain("[bold red]x[/] [link=https://e.x]y[/link] \x1b[31mred\x1b]8;;u\x07 \x9b \u202e")
    assert isinstance(text, Text)
    assert (
        text.plain
        == "[bold red]x[/] [link=https://e.x]y[/link] \\x1b[31mred\\x1b]8;;u\\x07 \\x9b \\u202e"
    )
    assert text.spans == []
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in text.plain)


def test_plain_single_line_and_limit():
    assert plain("a\nb\tc").plain == "a⏎b c"
    assert plain("a\nb", single_line=False).plain == "a\nb"
    assert plain("abcdefghij", limit=5).plain == "abcd…"
    assert clean(None) == ""


def test_count_labels():
    assert count_label(Count(1234)) == "1,234"
    assert count_label(Count(10_000, capped=True)) == "10,000+"
    assert count_label(Count(1_204_311, estimated=True)) == "~1.2M"
    assert count_label(Count(52_000, estimated=True)) == "~52k"
    assert (Count(2) + Count(3, estimated=True)) == Count(5, estimated=True)


def test_ages_and_durations():
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert age(now - timedelta(seconds=42), now) == "42s"
    assert age(now - timedelta(minutes=5, seconds=3), now) == "5m"
    assert age(now - timedelta(hours=2, minutes=7), now) == "2h07m"
    assert age(now - timedelta(days=3, hours=4), now) == "3d4h"
    assert until(now + timedelta(minutes=9, seconds=30), now) == "in 9m"
    assert until(now - timedelta(seconds=5), now) == "overdue 5s"
    assert age(None, now) == "" and duration(-3) == "0s"


def test_short_id_is_the_random_tail():
    assert short_id("019bc1a2-0024-776a-8508-87d8f1c2e930") == "87d8f1c2e930"


def test_parse_json_reports_the_position():
    assert parse_json("") is None
    assert parse_json('{"a": [1, 2]}') == {"a": [1, 2]}
    with pytest.raises(ValueError, match="line 2, column 5: Expecting property name"):
        parse_json('{"a":\n  1,,}')


def test_a_logged_line_reaches_the_log_panel_inert():
    import logging

    from absurd_tui.ui.logbook import Entry
    from absurd_tui.ui.screens.log import entry_text

    shown = entry_text(Entry(1, logging.WARNING, "[bold]x[/bold] \x1b[2J \x9b1m"), {})
    assert "\x1b" not in shown.plain and "\x9b" not in shown.plain
    assert "[bold]x[/bold]" in shown.plain and not shown.spans
