"""Text from files and hosts made safe to print: control characters shown, never sent."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_KEEP_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str, *, lines: bool = False) -> str:
    """``text`` with control characters shown as ``\\xNN`` (``lines``: newlines and tabs kept).

    File names, model metadata and what an enrolled host reports are anybody's choice: an escape
    sequence in one must not reach a terminal (or a log viewer) as a command that clears the
    screen, rewrites earlier lines or sets the window title.
    """
    pattern = _CONTROL_KEEP_LINES if lines else _CONTROL
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def markup(text: str) -> str:
    """``text`` for rich markup: control characters shown (:func:`visible`), brackets escaped."""
    from rich.markup import escape

    return escape(visible(text))
