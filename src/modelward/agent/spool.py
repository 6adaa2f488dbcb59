"""The on-disk spool of reports not yet acknowledged: bounded, ordered, crash-safe.

One file per report, ``<seq:012d>-<report_id>.json``, written atomically (temporary file, fsync,
rename, folder fsync): a crash leaves a report whole or absent, never torn. Files are replayed in
``seq`` order. The spool is bounded by total bytes and by count; when it is full the OLDEST report
is dropped, ``dropped.json`` (the counter the agent reports as ``spool_dropped``) is incremented
and persisted, and the report after it, if it was a delta against the dropped one, is first
rewritten as a full report (``rebase``) so the chain the server sees has no hole.

:meth:`Spool.rewrite` replaces some reports by others in one step (a report too large for the
server becomes several): the new files are written to ``rewrite/``, then ``rewrite.json`` names
what goes and what comes (the commit point), then the files move; a crash before the journal
leaves the spool as it was, after it the move is finished when the spool is next opened.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelward.agent.files import ensure_dir, fsync_dir, read_json, write_bytes_atomic, write_json

DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_MAX_COUNT = 10_000
_NAME = re.compile(r"(\d{12})-([0-9a-fA-F-]{1,64})\.json\Z")

Rebase = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
"""``rebase(dropped, next) -> next'``: the next report made independent of the dropped one."""


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    report_id: str
    path: Path
    size: int


class Spool:
    """``Spool(folder).put(report)``; ``entries()`` oldest first; ``remove(entry)`` once acked."""

    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_count: int = DEFAULT_MAX_COUNT,
        rebase: Rebase | None = None,
    ) -> None:
        self.folder = ensure_dir(folder)
        self.max_bytes = max_bytes
        self.max_count = max(1, max_count)
        self.rebase = rebase
        self._counter = folder / "dropped.json"
        self._staging = folder / "rewrite"
        self._journal = folder / "rewrite.json"
        for leftover in folder.glob(".tmp-*"):  # a write cut short by a crash: never renamed
            with contextlib.suppress(OSError):
                leftover.unlink()
        self._finish_rewrite()

    # ------------------------------------------------------------------ reading
    def entries(self) -> list[Entry]:
        out: list[Entry] = []
        with os.scandir(self.folder) as it:
            for d in it:
                m = _NAME.match(d.name)
                if m is None or not d.is_file(follow_symlinks=False):
                    continue
                try:
                    size = d.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
                out.append(Entry(int(m.group(1)), m.group(2), Path(d.path), size))
        return sorted(out, key=lambda e: e.seq)

    def read(self, entry: Entry) -> dict[str, Any] | None:
        """The report of ``entry``; ``None`` (and the file moved to ``corrupt/``) when unreadable."""
        try:
            doc = json.loads(entry.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            doc = None
        if isinstance(doc, dict):
            return doc
        self._quarantine(entry)
        return None

    def _counters(self) -> dict[str, int]:
        doc = read_json(self._counter)
        doc = doc if isinstance(doc, dict) else {}
        return {k: v for k, v in doc.items() if isinstance(v, int)}

    @property
    def dropped(self) -> int:
        """Reports dropped to make room (or unreadable), since the agent was installed."""
        return self._counters().get("dropped", 0)

    @property
    def too_large(self) -> int:
        """Reports, or entries of one, left out because the server refuses them as too large."""
        return self._counters().get("too_large", 0)

    def count_too_large(self) -> None:
        self._count("too_large")

    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries())

    # ------------------------------------------------------------------ writing
    def put(self, report: dict[str, Any]) -> list[int]:
        """Spool ``report`` (it needs ``seq`` and ``report_id``); returns the seqs dropped to fit."""
        seq, rid = int(report["seq"]), str(report["report_id"])
        path = self.folder / f"{seq:012d}-{rid}.json"
        write_bytes_atomic(path, json.dumps(report, separators=(",", ":")).encode())
        return self._enforce_bounds()

    def replace(self, entry: Entry, report: dict[str, Any]) -> None:
        """Rewrite ``entry`` (same seq and id) atomically, e.g. as a full report."""
        write_bytes_atomic(entry.path, json.dumps(report, separators=(",", ":")).encode())

    def remove(self, entry: Entry) -> None:
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()
        fsync_dir(self.folder)

    def discard_through(self, seq: int) -> None:
        """Remove every report up to ``seq`` (acknowledged already; left by a crash after the ack)."""
        for e in self.entries():
            if e.seq <= seq:
                self.remove(e)

    def _enforce_bounds(self) -> list[int]:
        entries = self.entries()
        total = sum(e.size for e in entries)
        dropped: list[int] = []
        while len(entries) > 1 and (total > self.max_bytes or len(entries) > self.max_count):
            oldest, nxt = entries[0], entries[1]
            self._rebase_next(oldest, nxt)
            self._count_drop()
            self.remove(oldest)
            dropped.append(oldest.seq)
            total -= oldest.size
            entries = entries[1:]
        return dropped

    def _rebase_next(self, oldest: Entry, nxt: Entry) -> None:
        if self.rebase is None:
            return
        old_doc, next_doc = self.read(oldest), self.read(nxt)
        if old_doc is None or next_doc is None or next_doc.get("full"):
            return
        if next_doc.get("base") != old_doc.get("seq"):
            return
        self.replace(nxt, self.rebase(old_doc, next_doc))

    def _count_drop(self, n: int = 1) -> None:
        self._count("dropped", n)

    def _count(self, name: str, n: int = 1) -> None:
        counters = self._counters()
        counters[name] = counters.get(name, 0) + n
        write_json(self._counter, counters)

    def rewrite(self, old: list[Entry], new: list[dict[str, Any]]) -> None:
        """Replace the reports ``old`` by the reports ``new`` (each with its own ``seq`` and
        ``report_id``) as one step that a crash cannot leave half done."""
        shutil.rmtree(self._staging, ignore_errors=True)
        ensure_dir(self._staging)
        added = []
        for report in new:
            name = f"{int(report['seq']):012d}-{report['report_id']}.json"
            write_bytes_atomic(
                self._staging / name, json.dumps(report, separators=(",", ":")).encode()
            )
            added.append(name)
        write_json(self._journal, {"remove": [e.path.name for e in old], "add": added})
        self._finish_rewrite()

    def _finish_rewrite(self) -> None:
        journal = read_json(self._journal)
        if not isinstance(journal, dict):  # none, or cut short before its commit: undo
            shutil.rmtree(self._staging, ignore_errors=True)
            return
        for name in journal.get("add", []):
            staged = self._staging / name
            if staged.exists():
                os.replace(staged, self.folder / name)
        for name in journal.get("remove", []):
            if name not in journal.get("add", []):
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / name).unlink()
        fsync_dir(self.folder)
        self._journal.unlink()
        shutil.rmtree(self._staging, ignore_errors=True)
        fsync_dir(self.folder)

    def _quarantine(self, entry: Entry) -> None:
        aside = ensure_dir(self.folder / "corrupt")
        with contextlib.suppress(OSError):
            os.replace(entry.path, aside / entry.path.name)
        fsync_dir(self.folder)
        self._count_drop()
