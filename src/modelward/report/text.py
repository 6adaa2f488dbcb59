"""Text from files and hosts made safe to print: control characters shown, never sent."""

from __future__ import annotations

import re

# C0 and C1 controls, and the invisible characters that reorder or break what a terminal shows:
# bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069: "evil\u202egnp.exe" shows as
# "evilexe.png"), marks (U+200E, U+200F, U+061C) and the Unicode line and paragraph separators.
_INVISIBLE = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_INVISIBLE}]")
_CONTROL_KEEP_LINES = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_INVISIBLE}]")


def visible(text: str, *, lines: bool = False) -> str:
    """``text`` with control characters shown as ``\\xNN`` (``lines``: newlines and tabs kept).

    File names, model metadata and what an enrolled host reports are anybody's choice: an escape
    sequence in one must not reach a terminal (or a log viewer) as a command that clears the
    screen, rewrites earlier lines or sets the window title.
    """
    pattern = _CONTROL_KEEP_LINES if lines else _CONTROL
    return pattern.sub(_shown, text)


def _shown(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def markup(text: str) -> str:
    """``text`` for rich markup: control characters shown (:func:`visible`), brackets escaped."""
    from rich.markup import escape

    return escape(visible(text))
