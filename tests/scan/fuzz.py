"""Shared helpers for the parsers' property tests: mutate a valid file and scan it."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from modelward.models import FileReport
from modelward.scan import ScanOptions, scan_file


def mutate(data: st.DataObject, valid: bytes, *, flips: int = 6, min_len: int = 1) -> bytes:
    """``valid`` with 1..``flips`` random bytes changed, cut to a random length >= ``min_len``."""
    buf = bytearray(valid)
    for _ in range(data.draw(st.integers(1, flips))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    return bytes(buf[: data.draw(st.integers(min(min_len, len(buf)), len(buf)))])


def scan_written(path: Path, content: bytes) -> FileReport:
    """Write ``content`` to ``path`` and scan it; no detector may have failed on it."""
    path.write_bytes(content)
    rep = scan_file(str(path), str(path), ScanOptions(hash=False))
    assert not any(f.rule == "format.analysis-failed" for f in rep.findings), rep.findings
    return rep
