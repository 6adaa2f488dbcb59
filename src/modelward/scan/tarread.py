"""A bounded tar header walker (ustar, GNU, pax, v7) that never extracts and never follows links.

It yields each member's name, type, size and data offset; member data is left in place so the
detector can hand out zero-copy slices. Malformed headers end the walk with an error string.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from modelward.scan.source import Source

BLOCK = 512
REGULAR = frozenset(b"0\x007")
"""Type flags of regular files (``0``, NUL for v7, ``7`` contiguous)."""
_MAX_META = 1 << 20
"""Largest GNU long name or pax header read."""


@dataclass(slots=True)
class TarMember:
    name: str
    type: int
    size: int
    offset: int
    """Absolute offset of the member data."""
    linkname: str = ""
    mode: int = 0

    @property
    def is_file(self) -> bool:
        return self.type in REGULAR

    @property
    def is_dir(self) -> bool:
        return self.type == ord("5")

    @property
    def is_symlink(self) -> bool:
        return self.type == ord("2")

    @property
    def is_hardlink(self) -> bool:
        return self.type == ord("1")


@dataclass(slots=True)
class TarListing:
    members: list[TarMember] = field(default_factory=list)
    error: str | None = None
    truncated: bool = False
    """More members than the walk was allowed to read."""


def _cstr(b: bytes) -> str:
    return b.split(b"\x00", 1)[0].decode("utf-8", errors="replace")


def _number(field_: bytes) -> int:
    if field_ and field_[0] & 0x80:  # GNU base-256
        n = int.from_bytes(field_[1:], "big")
        return -n if field_[0] & 0x40 else n
    text = field_.split(b"\x00", 1)[0].strip(b" \x00")
    return int(text, 8) if text else 0


_LOW_BYTES = bytes(range(128))


def checksum_ok(block: bytes) -> bool:
    """Whether a 512-byte header's checksum field matches (signed or unsigned sum)."""
    if len(block) < BLOCK:
        return False
    try:
        want = _number(block[148:156])
    except ValueError:
        return False
    body = block[:148] + b" " * 8 + block[156:BLOCK]
    unsigned = sum(body)
    signed = unsigned - 256 * len(body.translate(None, _LOW_BYTES))  # bytes > 127 count negative
    return want in (unsigned, signed)


def octal_checksum_field(head: bytes) -> bool:
    """The checksum field holds octal digits, as ``tarfile`` requires of a header without the
    base-256 marker (cheap; the registry's pre-check for tar)."""
    text = head[148:156].split(b"\x00", 1)[0].strip()
    return bool(text) and not text.strip(b"01234567")


def looks_like_tar(head: bytes) -> bool:
    """ustar/GNU magic at 257, or any header with a valid octal checksum (v7). Like
    ``tarfile.open``, the name is not checked: ``torch.load`` tries tar before anything else
    for a file that does not start with a zip header, whatever its first member is called."""
    if len(head) < BLOCK:
        return False
    if head[257:262] == b"ustar":
        return checksum_ok(head)
    return octal_checksum_field(head) and checksum_ok(head)


def _pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            break
        try:
            length = int(data[pos:sp])
        except ValueError:
            break
        if length <= 0 or pos + length > len(data):
            break
        rec = data[sp + 1 : pos + length - 1]
        key, _, value = rec.partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        pos += length
    return out


_LATE_MAX = 16


def walk(src: Source, max_members: int, keep: Callable[[str], bool] | None = None) -> TarListing:
    """List members from the start of ``src``; bounded by ``max_members`` and the file size.

    Past ``max_members``, headers are still walked (up to four times as many) and members whose
    name ``keep`` accepts are listed all the same: a loader that opens a member by name
    (``tarfile.getmember``) finds it however many decoys precede it."""
    out = TarListing()
    off = 0
    long_name: str | None = None
    long_link: str | None = None
    pax: dict[str, str] = {}
    gpax: dict[str, str] = {}
    seen_headers = 0
    late = 0
    while True:
        block = src.read(off, BLOCK)
        if len(block) < BLOCK:
            if block.strip(b"\x00") or off == 0:
                out.error = f"truncated header at byte {off}"
            break
        if not block.strip(b"\x00"):
            break  # end-of-archive marker (one zero block is enough for tarfile too)
        if not checksum_ok(block):
            out.error = f"bad header checksum at byte {off}"
            break
        seen_headers += 1
        if seen_headers > 4 * max_members + 16:
            out.truncated = True
            break
        try:
            size = _number(block[124:136])
            mode = _number(block[100:108])
        except ValueError:
            out.error = f"bad size field at byte {off}"
            break
        typ = block[156]
        data_off = off + BLOCK
        if size < 0 or data_off + size > src.size:
            out.error = f"member data at byte {data_off} runs past the end of the file"
            size = max(0, src.size - data_off)
        nxt = data_off + (size + BLOCK - 1) // BLOCK * BLOCK
        if typ in (ord("L"), ord("K"), ord("x"), ord("g")):
            meta = src.read(data_off, min(size, _MAX_META))
            if typ == ord("L"):
                long_name = _cstr(meta)
            elif typ == ord("K"):
                long_link = _cstr(meta)
            elif typ == ord("x"):
                pax = _pax(meta)
            else:
                gpax.update(_pax(meta))
            off = nxt
            if out.error:
                break
            continue
        name = _cstr(block[:100])
        if block[257:263] == b"ustar\x00":  # POSIX ustar: a prefix field extends the name
            prefix = _cstr(block[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        linkname = _cstr(block[157:257])
        merged = {**gpax, **pax}
        name = merged.get("path", long_name or name)
        linkname = merged.get("linkpath", long_link or linkname)
        if "size" in merged:
            try:
                psize = int(merged["size"])
            except ValueError:
                psize = size
            if 0 <= psize <= src.size - data_off:
                size = psize
                nxt = data_off + (size + BLOCK - 1) // BLOCK * BLOCK
        long_name = long_link = None
        pax = {}
        if len(out.members) >= max_members:
            out.truncated = True
            if keep is None or late >= _LATE_MAX:
                break
            if not keep(name):
                off = nxt
                continue
            late += 1
        out.members.append(TarMember(name, typ, size, data_off, linkname, mode))
        if out.error:
            break
        off = nxt
    return out
