"""Artifact previews: pictures in half-block cells, text as inert text, words otherwise."""

from __future__ import annotations

import io

from PIL import Image

from absurd_tui.agent.artifacts import Artifact
from absurd_tui.ui.widgets.previews import UPPER_HALF, preview


def png(width: int, height: int, colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def artifact(path: str, data: bytes) -> Artifact:
    return Artifact(path, "0" * 64, len(data))


def test_a_picture_is_drawn_in_half_cells_within_bounds():
    data = png(400, 100, "#ff0000")
    shown = preview(artifact("/output/a.png", data), data)
    lines = shown.plain.split("\n")
    assert 1 < len(lines) <= 20 and all(len(line) <= 96 for line in lines)
    assert set(shown.plain) == {UPPER_HALF, "\n"}
    style = shown.spans[0].style
    assert str(style) == "#ff0000 on #ff0000"


def test_without_colours_or_a_decodable_image_it_says_so(monkeypatch):
    data = png(30, 20, "blue")
    monkeypatch.setenv("NO_COLOR", "1")
    assert (
        "30×20 PNG image; colours are off" in preview(artifact("/output/a.png", data), data).plain
    )
    monkeypatch.delenv("NO_COLOR")
    broken = preview(artifact("/output/b.png", b"not a png"), b"not a png")
    assert broken.plain == "(an image this console cannot decode)"
    assert preview(artifact("/output/c.png", b""), None).plain == "(content not stored)"


def test_text_files_are_shown_as_inert_text():
    data = b"[bold]x[/] \x1b[31mred\n" + b"line\n" * 40
    shown = preview(artifact("/output/notes.txt", data), data)
    assert "\x1b" not in shown.plain and "[bold]x[/]" in shown.plain
    assert shown.plain.endswith("…(more in the file)")
    assert not any("bold" in str(span.style) for span in shown.spans)
    binary = preview(artifact("/output/data.bin", b"\x00\x01"), b"\x00\x01")
    assert "binary file" in binary.plain
