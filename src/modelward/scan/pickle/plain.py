"""A C-speed proof that a pickle stream cannot import or call anything.

The unpickler runs code only through what it imports: ``GLOBAL``, ``STACK_GLOBAL``, ``INST`` and
the extension codes (``EXT1/2/4``) resolve callables, ``REDUCE``/``BUILD``/``OBJ``/``NEWOBJ`` call
them, and ``PERSID``/``BINPERSID`` call the loader's own hook. :func:`is_plain` tokenises a whole
stream with one regular expression whose alphabet is every *other* opcode, each with its exact
argument layout (pickle's grammar is prefix-free, so the tokenisation is the unpickler's own),
from ``PROTO`` to a final ``STOP``. When it matches, no opcode of the stream can run code, and the
per-opcode walk in :mod:`.vm` is unnecessary: vocabularies and configs (plain dicts, lists,
strings and numbers) are cleared in one C call. Anything else (an import, a text-protocol
opcode, a string over 255 bytes, data after ``STOP``) does not match and gets the full walk.

``re`` cannot read a length prefix, so each length-prefixed opcode is spelled as one
alternative per length that starts with its own length byte: the regex engine rejects a wrong
alternative after one byte comparison. Lengths are capped (strings at 80 bytes, which covers
vocabulary tokens and config values) to keep the compiled pattern small (~4 ms, compiled on first
use); a longer one simply sends the stream to the full walk. The repetition is possessive, so the
engine keeps no backtracking state whatever the stream's length.
"""

from __future__ import annotations

import functools
import re
from typing import Any

PLAIN_MAX = 4 << 20
"""Streams longer than this always get the full walk."""


STR_MAX = 80
BYTES_MAX = 32
LONG_MAX = 16


def _lengths(width: int, longest: int) -> bytes:
    alts = []
    for n in range(longest + 1):
        lit = re.escape(n.to_bytes(width, "little"))
        alts.append(lit + (b"[\\x00-\\xff]{%d}" % n if n else b""))
    return b"(?:" + b"|".join(alts) + b")"


# Opcodes that only build plain data or move it around (see pickletools' opcode table).
_SINGLE = re.escape(
    bytes(
        [
            0x28,  # MARK
            0x7D,  # EMPTY_DICT
            0x5D,  # EMPTY_LIST
            0x29,  # EMPTY_TUPLE
            0x8F,  # EMPTY_SET
            0x65,  # APPENDS
            0x61,  # APPEND
            0x75,  # SETITEMS
            0x73,  # SETITEM
            0x90,  # ADDITEMS
            0x85,  # TUPLE1
            0x86,  # TUPLE2
            0x87,  # TUPLE3
            0x74,  # TUPLE
            0x6C,  # LIST
            0x64,  # DICT
            0x91,  # FROZENSET
            0x30,  # POP
            0x31,  # POP_MARK
            0x32,  # DUP
            0x4E,  # NONE
            0x88,  # NEWTRUE
            0x89,  # NEWFALSE
            0x94,  # MEMOIZE
        ]
    )
)


@functools.cache
def _plain() -> re.Pattern[bytes]:
    # Commonest first: strings (vocabularies, config keys), then one-byte opcodes and numbers.
    token = (
        b"(?:\\x8c"
        + _lengths(1, STR_MAX)  # SHORT_BINUNICODE
        + b"|["
        + _SINGLE
        + b"]"
        + rb"|K[\x00-\xff]"  # BININT1
        + b"|X"
        + _lengths(4, STR_MAX)  # BINUNICODE
        + rb"|[qh][\x00-\xff]"  # BINPUT BINGET
        + rb"|M[\x00-\xff]{2}"  # BININT2
        + rb"|[rj][\x00-\xff]{4}"  # LONG_BINPUT LONG_BINGET
        + rb"|J[\x00-\xff]{4}"  # BININT
        + rb"|G[\x00-\xff]{8}"  # BINFLOAT
        + rb"|\x95[\x00-\xff]{8}"  # FRAME
        + b"|C"
        + _lengths(1, BYTES_MAX)  # SHORT_BINBYTES
        + b"|B"
        + _lengths(4, BYTES_MAX)  # BINBYTES
        + b"|\\x8a"
        + _lengths(1, LONG_MAX)  # LONG1
        + b")"
    )
    return re.compile(rb"\x80[\x02-\x05](?:" + token + rb")*+\.")


@functools.cache
def _tail() -> re.Pattern[bytes]:
    # The same tokens without the PROTO header: the rest of a stream from an opcode boundary.
    return re.compile(_plain().pattern[len(rb"\x80[\x02-\x05]") :])


def is_plain(buf: Any, start: int, end: int) -> bool:
    """True when ``buf[start:end]`` is exactly one stream of data-only opcodes ending in STOP."""
    if end - start > PLAIN_MAX:
        return False
    return _plain().fullmatch(buf, start, end) is not None


def plain_until_stop(buf: Any, start: int, end: int) -> int:
    """End of the STOP when ``buf[start:end]`` is data-only opcodes up to a STOP, else -1.

    ``start`` must be an opcode boundary (where a walk stopped): used to show that the part of a
    stream past the opcode budget can run nothing.
    """
    m = _tail().match(buf, start, end)
    return -1 if m is None else m.end()
