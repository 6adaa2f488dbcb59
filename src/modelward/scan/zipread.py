"""A lenient, bounded zip reader that sees the members a model loader sees, and notes every anomaly.

Why not :mod:`zipfile`: Python's reader refuses archives that PyTorch's own reader (miniz, wrapped
by ``PyTorchStreamReader``) opens without complaint - a bad CRC (CVE-2025-10156), the "encrypted"
or "patched data" flag bits set on plain data, a local header whose name differs from the central
directory's (CVE-2025-1944, CVE-2025-1945). A scanner built on :mod:`zipfile` errors out where the
loader runs the pickle. This reader accepts everything a lenient loader accepts and returns the
oddities as :class:`Anomaly` values, so the detector can analyse the members *and* report the trick.

It only parses structure: the central directory is found from the end (bounded search), each entry
is cross-checked against its local header, and data regions are bounds-checked against the file.
Decompression is the caller's job (:mod:`modelward.scan.members`).
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field

from modelward.scan.source import Source

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
EOCD_SIG = b"PK\x05\x06"
EOCD64_SIG = b"PK\x06\x06"
EOCD64_LOC_SIG = b"PK\x06\x07"

_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOC = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_LOCAL = struct.Struct("<4s5H3L2H")

MAX_COMMENT = 0xFFFF
FLAG_ENCRYPTED = 0x1
FLAG_DESCRIPTOR = 0x8
FLAG_PATCHED = 0x20
FLAG_STRONG_ENCRYPTION = 0x40
FLAG_UTF8 = 0x800
S_IFMT = 0o170000
S_IFLNK = 0o120000


@dataclass(slots=True)
class Anomaly:
    """Something a strict reader would reject or that differs between two views of the archive."""

    kind: str
    """``malformed``, ``header-mismatch``, ``duplicate-name``, ``prefix-data``, ``flag-bits``,
    ``limit``, ``hidden-member`` or ``two-directories``."""
    message: str
    evidence: str = ""
    member: str = ""


@dataclass(slots=True)
class ZipEntry:
    """One central-directory entry, cross-checked with its local header."""

    index: int
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    header_offset: int
    external_attr: int
    create_system: int
    data_offset: int = -1
    """Absolute offset of the member data, or -1 when the local header is unusable."""
    local_name: str = ""
    local_offset: int = -1
    """Absolute offset of the local header that was used (-1 when missing)."""
    hidden: bool = False
    """Found from its local header only: the central directory read does not list it."""

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/") or self.name.endswith("\\")

    @property
    def is_symlink(self) -> bool:
        return self.create_system == 3 and ((self.external_attr >> 16) & S_IFMT) == S_IFLNK

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & FLAG_ENCRYPTED)


@dataclass(slots=True)
class ZipArchive:
    """The parsed directory of an archive."""

    start: int
    """Offset of the zip within the file (bytes of prefix data before it)."""
    entries: list[ZipEntry] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    declared_entries: int = 0
    late: int = 0
    """Entries past the entry cap that were read because loaders open them by name."""


def decode_name(raw: bytes, flags: int) -> str:
    if flags & FLAG_UTF8:
        return raw.decode("utf-8", errors="replace")
    try:
        return raw.decode("utf-8")  # what miniz and most writers actually store
    except UnicodeDecodeError:
        return raw.decode("cp437")


def find_eocd(src: Source) -> int:
    """Offset of the end-of-central-directory record, or -1 (searches only the last 64 KiB + 22)."""
    if src.size < _EOCD.size:
        return -1
    tail_start = max(0, src.size - _EOCD.size - MAX_COMMENT)
    tail = src.read(tail_start, src.size - tail_start)
    # The last signature that leaves room for a whole record (what zipfile and miniz pick too).
    pos = tail.rfind(EOCD_SIG, 0, len(tail) - _EOCD.size + 4)
    return tail_start + pos if pos >= 0 else -1


def read_zip(src: Source, max_entries: int) -> ZipArchive | None:
    """Parse the archive's directory, or ``None`` when there is no end-of-central-directory."""
    eocd = find_eocd(src)
    if eocd < 0:
        return None
    (_, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment_len) = _EOCD.unpack(
        src.read(eocd, _EOCD.size)
    )
    anomalies: list[Anomaly] = []
    dir_end = eocd  # where the central directory must end (EOCD64 record if present)
    if eocd + _EOCD.size + comment_len != src.size:
        anomalies.append(
            Anomaly(
                "malformed",
                "The end-of-central-directory comment length does not match the end of the file.",
                f"{src.size - eocd - _EOCD.size - comment_len} stray bytes",
            )
        )
    if disk or cd_disk:
        anomalies.append(Anomaly("malformed", "Multi-disk (spanned) archive.", f"disk {disk}"))
    loc_at = eocd - _EOCD64_LOC.size
    if loc_at >= 0:
        loc = src.read(loc_at, _EOCD64_LOC.size)
        if loc[:4] == EOCD64_LOC_SIG:
            _, _, rec_off, _ = _EOCD64_LOC.unpack(loc)
            z64 = _find_eocd64(src, rec_off, loc_at)
            if z64 < 0:
                anomalies.append(Anomaly("malformed", "The zip64 end record is missing."))
            else:
                fields = _EOCD64.unpack(src.read(z64, _EOCD64.size))
                n_total, cd_size, cd_offset = fields[7], fields[8], fields[9]
                dir_end = z64
                other = loc_at - _EOCD64.size  # where Python's zipfile reads it, ignoring rec_off
                if other != z64 and other >= 0 and src.read(other, 4) == EOCD64_SIG:
                    alt = _EOCD64.unpack(src.read(other, _EOCD64.size))
                    if alt[7:10] != fields[7:10]:
                        anomalies.append(
                            Anomaly(
                                "two-directories",
                                "Two zip64 end records point to different central directories: "
                                "miniz (torch) reads one, Python's zipfile (numpy, Keras) the "
                                "other.",
                                f"records at {z64} and {other}",
                            )
                        )
    del n_disk
    concat = dir_end - cd_size - cd_offset
    if concat < 0:
        anomalies.append(
            Anomaly(
                "malformed",
                "The central directory is declared larger than the space before its end record.",
                f"size {cd_size} at offset {cd_offset}",
            )
        )
        concat = 0
        cd_start = min(cd_offset, dir_end)
        cd_size = dir_end - cd_start
    else:
        cd_start = cd_offset + concat
    arch = ZipArchive(start=concat, anomalies=anomalies, declared_entries=n_total)
    _read_central(src, arch, cd_start, cd_size, max_entries)
    _cross_check(src, arch)
    covered = [(cd_start, cd_start + cd_size), (dir_end, src.size)]
    if src.read(0, 4) != LOCAL_SIG:
        covered.append((0, concat))  # prefix data (an executable, a polyglot): reported apart
    # else miniz (torch) takes the offsets as they are, where Python's zipfile adds ``concat``:
    # the bytes before ``concat`` are members to one of them.
    _find_hidden(src, arch, covered, max_entries)
    return arch


_MAX_HIDDEN = 256
_MAX_CANDIDATES = 4096
_GAP_CHUNK = 1 << 20
DESCRIPTOR_SIG = b"PK\x07\x08"


def _gaps(src: Source, arch: ZipArchive, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Byte ranges that neither a listed member, a directory nor an end record accounts for."""
    spans = list(covered)
    for e in arch.entries:
        if e.local_offset < 0:
            continue
        end = e.data_offset + e.csize
        if e.flags & FLAG_DESCRIPTOR:
            wide = 8 if max(e.csize, e.usize) >= 0xFFFFFFFF else 0
            end += (16 if src.read(end, 4) == DESCRIPTOR_SIG else 12) + wide
        spans.append((e.local_offset, end))
    spans.sort()
    out: list[tuple[int, int]] = []
    pos = 0
    for a, b in spans:
        if a > pos:
            out.append((pos, a))
        pos = max(pos, b)
    if pos < src.size:
        out.append((pos, src.size))
    if src.read(0, 4) != LOCAL_SIG:  # prefix data (an executable, a polyglot): reported apart
        out = [(a, b) for a, b in out if a > 0]
    return out


def _find_hidden(
    src: Source, arch: ZipArchive, covered: list[tuple[int, int]], max_entries: int
) -> None:
    """Local headers that the central directory does not list. Another directory (a second
    zip64 end record, a second end record, a hand-edited offset) may list them for another
    reader: Python's zipfile and miniz find the directory differently. They are analysed too.
    Each gap is read once; candidate signatures are bounded (time stays linear)."""
    found = tried = 0
    for g0, g1 in _gaps(src, arch, covered):
        at = g0
        while at < g1:
            chunk = src.read(at, min(g1 - at, _GAP_CHUNK + 3))
            i = chunk.find(LOCAL_SIG)
            while i >= 0 and i + 4 <= len(chunk):
                tried += 1
                if tried > _MAX_CANDIDATES or found >= _MAX_HIDDEN:
                    arch.anomalies.append(
                        Anomaly(
                            "hidden-member",
                            "Stray local header signatures outside the listed members; not "
                            "all of them were examined.",
                            f"{tried - 1} examined",
                        )
                    )
                    return
                if len(arch.entries) >= max_entries:
                    return
                off = at + i
                entry = _hidden_entry(src, off, g1, len(arch.entries))
                if entry is not None:
                    found += 1
                    arch.entries.append(entry)
                    arch.anomalies.append(
                        Anomaly(
                            "hidden-member",
                            "A member's local header is not listed in the central directory; "
                            "a reader that finds another directory loads it.",
                            f"local header at byte {off}",
                            entry.name,
                        )
                    )
                i = chunk.find(LOCAL_SIG, i + 4)
            if len(chunk) <= 3:
                break
            at += len(chunk) - 3


def _hidden_entry(src: Source, off: int, gap_end: int, index: int) -> ZipEntry | None:
    hdr = src.read(off, _LOCAL.size)
    if len(hdr) < _LOCAL.size:
        return None
    (_, _ver, flags, method, _t, _d, crc, csize, usize, nlen, xlen) = _LOCAL.unpack(hdr)
    if not 0 < nlen <= 4096 or method not in (0, 8, 12, 14):
        return None
    raw = src.read(off + _LOCAL.size, nlen)
    data_off = off + _LOCAL.size + nlen + xlen
    if len(raw) < nlen or data_off > src.size:
        return None
    if csize in (0, 0xFFFFFFFF):  # sizes in a data descriptor or a zip64 extra: up to the gap end
        csize = max(0, gap_end - data_off)
    csize = min(csize, src.size - data_off)
    name = decode_name(raw, flags)
    return ZipEntry(
        index, name, raw, flags, method, crc, csize, usize, off, 0, 0, data_off, name, off, True
    )


def _find_eocd64(src: Source, declared: int, loc_at: int) -> int:
    if 0 <= declared <= loc_at - _EOCD64.size and src.read(declared, 4) == EOCD64_SIG:
        return declared
    guess = loc_at - _EOCD64.size  # prefix data shifts the declared offset
    if guess >= 0 and src.read(guess, 4) == EOCD64_SIG:
        return guess
    return -1


def _parse_central(data: bytes, pos: int, index: int, start: int) -> tuple[ZipEntry, int] | None:
    """The central entry at ``data[pos:]`` and where the next one starts (None past the end)."""
    f = _CENTRAL.unpack_from(data, pos)
    (ver_made, _ver, flags, method, _t, _d, crc, csize, usize, nlen, xlen, clen) = f[1:13]
    ext_attr, local_off = f[15], f[16]
    end = pos + _CENTRAL.size + nlen + xlen + clen
    if end > len(data):
        return None
    raw = bytes(data[pos + _CENTRAL.size : pos + _CENTRAL.size + nlen])
    extra = data[pos + _CENTRAL.size + nlen : pos + _CENTRAL.size + nlen + xlen]
    if 0xFFFFFFFF in (usize, csize, local_off):
        usize, csize, local_off = _zip64_extra(extra, usize, csize, local_off)
    entry = ZipEntry(
        index=index,
        name=decode_name(raw, flags),
        raw_name=raw,
        flags=flags,
        method=method,
        crc=crc,
        csize=csize,
        usize=usize,
        header_offset=local_off + start,
        external_attr=ext_attr,
        create_system=ver_made >> 8,
    )
    return entry, end


_LOADED_NAMES = (b".pkl", b".npy", b"config.json")
"""Member names that loaders open by name: torch's ``data.pkl``, npz arrays, Keras' config."""
_LATE_MAX = 64


def _late_entries(data: bytes, pos: int, arch: ZipArchive) -> None:
    """Past the entry cap, still pick out the members a loader opens by name (torch finds
    ``data.pkl`` wherever it is listed), so a pickle cannot hide behind 100,000 decoys."""
    low = bytes(data[pos:]).lower()
    hits: set[int] = set()
    for needle in _LOADED_NAMES:
        at = low.find(needle)
        while at >= 0 and len(hits) < _LATE_MAX:
            entry_at = low.rfind(CENTRAL_SIG.lower(), 0, at)
            if entry_at >= 0:
                hits.add(entry_at)
            at = low.find(needle, at + 1)
    for rel in sorted(hits):
        parsed = _parse_central(data, pos + rel, len(arch.entries), arch.start)
        if parsed is not None and parsed[0].name.lower().endswith(
            tuple(n.decode() for n in _LOADED_NAMES)
        ):
            arch.entries.append(parsed[0])
            arch.late += 1


def _read_central(src: Source, arch: ZipArchive, start: int, size: int, max_entries: int) -> None:
    data = src.read(start, size)
    pos = 0
    index = 0
    seen: dict[str, int] = {}
    while pos + _CENTRAL.size <= len(data):
        if data[pos : pos + 4] != CENTRAL_SIG:
            arch.anomalies.append(
                Anomaly(
                    "malformed", "Garbage inside the central directory.", f"at byte {start + pos}"
                )
            )
            break
        if index >= max_entries:
            arch.anomalies.append(
                Anomaly("limit", "More entries than the scanner reads.", f"{max_entries}+")
            )
            _late_entries(data, pos, arch)
            break
        parsed = _parse_central(data, pos, index, arch.start)
        if parsed is None:
            arch.anomalies.append(
                Anomaly(
                    "malformed", "A central directory entry runs past its end.", f"entry {index}"
                )
            )
            break
        entry, pos = parsed
        name = entry.name
        if name in seen:
            arch.anomalies.append(
                Anomaly(
                    "duplicate-name",
                    "Two members share one name: readers disagree on which one they load.",
                    name,
                    name,
                )
            )
        seen[name] = index
        arch.entries.append(entry)
        index += 1
    if arch.declared_entries != len(arch.entries) and len(arch.entries) < max_entries:
        arch.anomalies.append(
            Anomaly(
                "malformed",
                "The entry count in the end record differs from the central directory.",
                f"declared {arch.declared_entries}, found {len(arch.entries)}",
            )
        )


def _zip64_extra(extra: bytes, usize: int, csize: int, off: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, ln = struct.unpack_from("<2H", extra, pos)
        body = extra[pos + 4 : pos + 4 + ln]
        if tag == 1:
            vals = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            it = iter(vals)
            if usize == 0xFFFFFFFF:
                usize = next(it, usize)
            if csize == 0xFFFFFFFF:
                csize = next(it, csize)
            if off == 0xFFFFFFFF:
                off = next(it, off)
            break
        pos += 4 + ln
    return usize, csize, off


def _cross_check(src: Source, arch: ZipArchive) -> None:
    """Locate each member's data via its local header and compare the two headers."""
    regions: list[tuple[int, int, str]] = []
    for e in arch.entries:
        off = e.header_offset
        hdr = src.read(off, _LOCAL.size)
        if len(hdr) < _LOCAL.size or hdr[:4] != LOCAL_SIG:
            # Writers that prepend data without fixing offsets: try the unadjusted offset.
            alt = off - arch.start
            hdr2 = src.read(alt, _LOCAL.size) if arch.start else b""
            if len(hdr2) == _LOCAL.size and hdr2[:4] == LOCAL_SIG:
                off, hdr = alt, hdr2
            else:
                arch.anomalies.append(
                    Anomaly(
                        "malformed",
                        "The member's local header is missing.",
                        f"offset {off}",
                        e.name,
                    )
                )
                continue
        (_, _ver, flags, method, _t, _d, crc, csize, usize, nlen, xlen) = _LOCAL.unpack(hdr)
        raw = src.read(off + _LOCAL.size, nlen)
        e.local_name = decode_name(raw, flags)
        e.local_offset = off
        e.data_offset = off + _LOCAL.size + nlen + xlen
        if raw != e.raw_name:
            arch.anomalies.append(
                Anomaly(
                    "header-mismatch",
                    "The local header names the member differently from the central directory.",
                    f"{e.name!r} vs {e.local_name!r}",
                    e.name,
                )
            )
        if method != e.method:
            arch.anomalies.append(
                Anomaly(
                    "header-mismatch",
                    "The local header gives another compression method than the central directory.",
                    f"{e.method} vs {method}",
                    e.name,
                )
            )
        odd = (flags | e.flags) & (FLAG_PATCHED | FLAG_STRONG_ENCRYPTION)
        if odd or (flags ^ e.flags) & FLAG_ENCRYPTED:
            arch.anomalies.append(
                Anomaly(
                    "flag-bits",
                    "Flag bits that make strict readers refuse the member are set.",
                    f"flags 0x{e.flags:04x} / local 0x{flags:04x}",
                    e.name,
                )
            )
        if (
            not flags & FLAG_DESCRIPTOR
            and (csize, usize, crc) != (0, 0, 0)
            and csize != e.csize
            and 0xFFFFFFFF not in (csize, e.csize)
        ):
            arch.anomalies.append(
                Anomaly(
                    "header-mismatch",
                    "The local header gives another compressed size than the central directory.",
                    f"{e.csize} vs {csize}",
                    e.name,
                )
            )
        if e.data_offset + e.csize > src.size:
            arch.anomalies.append(
                Anomaly(
                    "malformed",
                    "The member's data runs past the end of the file.",
                    f"{e.csize} bytes at {e.data_offset}",
                    e.name,
                )
            )
            e.csize = max(0, src.size - e.data_offset)
        regions.append((e.data_offset, e.data_offset + e.csize, e.name))
    regions.sort()
    overlaps = 0
    for (_a0, a1, an), (b0, _b1, bn) in itertools.pairwise(regions):
        if b0 < a1 and overlaps < 5:
            overlaps += 1
            arch.anomalies.append(
                Anomaly(
                    "malformed",
                    "Two members share data (an overlap used by zip bombs and by hidden members).",
                    f"{an} / {bn}",
                    bn,
                )
            )


def walk_local_headers(src: Source, max_entries: int) -> list[ZipEntry]:
    """Members found by walking local headers from the start (for archives without a directory)."""
    out: list[ZipEntry] = []
    off = 0
    while len(out) < max_entries:
        hdr = src.read(off, _LOCAL.size)
        if len(hdr) < _LOCAL.size or hdr[:4] != LOCAL_SIG:
            break
        (_, _ver, flags, method, _t, _d, crc, csize, usize, nlen, xlen) = _LOCAL.unpack(hdr)
        raw = src.read(off + _LOCAL.size, nlen)
        data_off = off + _LOCAL.size + nlen + xlen
        if flags & FLAG_DESCRIPTOR and csize == 0:
            break  # size known only after the data: cannot step over it without decompressing
        csize = min(csize, max(0, src.size - data_off))
        name = decode_name(raw, flags)
        out.append(
            ZipEntry(
                len(out), name, raw, flags, method, crc, csize, usize, off, 0, 0, data_off, name
            )
        )
        off = data_off + csize
    return out


def probe(src: Source) -> bool:
    """Cheap check that ``src`` ends with a plausible zip directory (for polyglots and llamafile)."""
    eocd = find_eocd(src)
    if eocd < 0:
        return False
    fields = _EOCD.unpack(src.read(eocd, _EOCD.size))
    n_total: int = fields[4]
    cd_size: int = fields[5]
    comment_len: int = fields[7]
    if n_total == 0 and cd_size == 0:
        return eocd + _EOCD.size + comment_len == src.size
    if src.read(eocd - _EOCD64_LOC.size, 4) == EOCD64_LOC_SIG:
        return True
    start = eocd - cd_size
    return start >= 0 and src.read(start, 4) == CENTRAL_SIG
