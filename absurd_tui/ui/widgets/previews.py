"""What an artifact looks like in the transcript: an image drawn in the terminal, a text
file as text, anything else as a line saying what it is.

Images are drawn with half-block characters (each cell two pixels, one above the
other, as foreground and background colours): any colour terminal shows them, no
terminal is queried, and the output is the same everywhere, which snapshot tests need.
Where the picture cannot be drawn (Pillow missing, a file it cannot decode, or
``NO_COLOR`` set) the preview says so in words. Built off the UI thread (decoding is
work); text is cleaned like all user data.
"""

from __future__ import annotations

import io
import os

from rich.style import Style
from rich.text import Text

from ...agent.artifacts import Artifact
from ...text import plain

MAX_COLUMNS = 96
MAX_ROWS = 20
TEXT_LINES = 30
TEXT_CHARS = 3000
UPPER_HALF = "▀"


def describe(artifact: Artifact) -> str:
    return f"{artifact.path} · {artifact.media_type} · {artifact.size:,} bytes"


def preview(artifact: Artifact, data: bytes | None) -> Text:
    """The preview shown under an artifact's line (without the line itself)."""
    if data is None:
        return Text("(content not stored)", style="italic")
    if artifact.kind == "image":
        return image_preview(data)
    if artifact.kind == "text":
        return text_preview(data)
    return Text("(binary file; export it with: absurd-tui artifacts TASK --out DIR)")


def text_preview(data: bytes) -> Text:
    text = data.decode("utf-8", "replace")
    lines = text.splitlines()
    shown = "\n".join(lines[:TEXT_LINES])
    cut = len(lines) > TEXT_LINES or len(shown) > TEXT_CHARS
    out = plain(shown[:TEXT_CHARS], single_line=False)
    if cut:
        out.append("\n…(more in the file)", style="italic")
    return out


def image_preview(data: bytes, *, columns: int = MAX_COLUMNS, rows: int = MAX_ROWS) -> Text:
    if os.environ.get("NO_COLOR"):
        return _image_words(data, "colours are off (NO_COLOR), so it is not drawn")
    try:
        from PIL import Image
    except ImportError:
        return Text("(an image; install Pillow to see it here)", style="italic")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            picture = opened.convert("RGB")
    except Exception:
        # Whatever the decoder raises, the file is still listed and exportable.
        return Text("(an image this console cannot decode)", style="italic")
    scale = min(columns / picture.width, (rows * 2) / picture.height, 1.0)
    width = max(1, round(picture.width * scale))
    height = max(2, round(picture.height * scale))
    height += height % 2
    # Box averaging when shrinking (thin strokes stay visible), nearest neighbour when
    # not: both are plain arithmetic, so every machine draws the same cells.
    shrinking = width < picture.width
    small = picture.resize(
        (width, height), Image.Resampling.BOX if shrinking else Image.Resampling.NEAREST
    )
    rgb = small.tobytes()
    out = Text(no_wrap=True, overflow="crop")
    for y in range(0, height, 2):
        for x in range(width):
            top = rgb[(y * width + x) * 3 : (y * width + x) * 3 + 3]
            bottom = rgb[((y + 1) * width + x) * 3 : ((y + 1) * width + x) * 3 + 3]
            out.append(
                UPPER_HALF,
                Style(color=_hex(top), bgcolor=_hex(bottom)),
            )
        if y + 2 < height:
            out.append("\n")
    return out


def _image_words(data: bytes, why: str) -> Text:
    size = ""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as opened:
            size = f"{opened.width}×{opened.height} {opened.format} "
    except Exception:
        # Only the dimensions are lost; the sentence says what the file is anyway.
        pass
    return Text(f"(a {size}image; {why})", style="italic")


def _hex(pixel: bytes) -> str:
    return "#" + pixel.hex()
