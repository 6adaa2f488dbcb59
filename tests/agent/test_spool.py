"""Spool: bounded by count and bytes, oldest dropped first with a persisted counter, ordered,
survives a restart and a SIGKILL in the middle of writing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from modelward.agent import diff
from modelward.agent.spool import Spool


def report(seq: int, base: int | None, **added: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "seq": seq,
        "report_id": str(uuid.uuid4()),
        "base": base,
        "full": base is None,
        "added": {k: added.get(k, []) for k in diff.KINDS},
        "removed": {k: [] for k in diff.KINDS},
        "pad": "x" * 100,
    }


def test_order_count_bound_and_counter_survive_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_count=3)
    for seq in (1, 2, 3):
        assert spool.put(report(seq, seq - 1 or None)) == []
    assert spool.put(report(4, 3)) == [1]
    assert spool.put(report(5, 4)) == [2]
    assert [e.seq for e in spool.entries()] == [3, 4, 5]
    assert spool.dropped == 2

    again = Spool(tmp_path / "spool", max_count=3)
    assert [e.seq for e in again.entries()] == [3, 4, 5]
    assert again.dropped == 2
    docs = [again.read(e) for e in again.entries()]
    assert [d["seq"] for d in docs if d] == [3, 4, 5]
    again.discard_through(4)
    assert [e.seq for e in again.entries()] == [5]


def test_byte_bound_keeps_the_newest(tmp_path: Path) -> None:
    one = len(json.dumps(report(1, None), separators=(",", ":")))
    spool = Spool(tmp_path / "spool", max_bytes=one * 2 + 10)
    for seq in range(1, 6):
        spool.put(report(seq, seq - 1 or None))
    assert [e.seq for e in spool.entries()] == [4, 5]
    assert spool.dropped == 3
    huge = report(6, 5)
    huge["pad"] = "y" * (one * 10)
    spool.put(huge)
    assert [e.seq for e in spool.entries()] == [6]  # a report bigger than the bound is still kept


def test_a_delta_on_a_dropped_report_is_rebuilt_full(tmp_path: Path) -> None:
    def rebase(dropped: dict[str, Any], nxt: dict[str, Any]) -> dict[str, Any]:
        return diff.as_full(nxt, diff.apply(diff.apply(None, dropped), nxt))

    spool = Spool(tmp_path / "spool", max_count=2, rebase=rebase)
    spool.put(report(1, None, artifacts=[{"path": "/a"}]))
    spool.put(report(2, 1, artifacts=[{"path": "/b"}]))
    spool.put(report(3, 2, artifacts=[{"path": "/c"}]))
    first, second = (spool.read(e) for e in spool.entries())
    assert first is not None and second is not None
    assert first["seq"] == 2 and first["full"] is True and first["base"] is None
    assert [a["path"] for a in first["added"]["artifacts"]] == ["/a", "/b"]
    assert second["base"] == 2 and second["full"] is False


def test_unreadable_entry_is_moved_aside_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.put(report(1, None))
    entry = spool.entries()[0]
    entry.path.write_bytes(b"{not json")
    assert spool.read(entry) is None
    assert spool.entries() == [] and spool.dropped == 1
    assert (tmp_path / "spool" / "corrupt" / entry.path.name).exists()


WRITER = """
import sys, uuid
from pathlib import Path
from modelward.agent.spool import Spool
spool = Spool(Path(sys.argv[1]), max_count=1_000_000, max_bytes=1 << 40)
seq = 0
pad = "z" * 200_000
while True:
    seq += 1
    spool.put({"seq": seq, "report_id": str(uuid.uuid4()), "base": seq - 1 or None,
               "full": seq == 1, "pad": pad})
    print(seq, flush=True)
"""


def test_sigkill_while_spooling_loses_nothing_acknowledged(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    acked: list[int] = []
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        while len(acked) < 15 and time.monotonic() < deadline:
            acked.append(int(proc.stdout.readline()))
        time.sleep(0.05)  # let it be in the middle of the next write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        acked += [int(line) for line in proc.stdout.read().split()]
    assert len(acked) >= 15

    spool = Spool(folder)
    entries = spool.entries()
    seqs = [e.seq for e in entries]
    assert set(acked) <= set(seqs)  # every put that returned is there
    assert seqs == list(range(1, len(seqs) + 1))  # in order, no hole
    assert len(seqs) - len(acked) <= 1  # at most the write in flight, complete or absent
    for e in entries:
        doc = spool.read(e)
        assert doc is not None and doc["seq"] == e.seq
    assert not list(folder.glob(".tmp-*"))  # a torn temporary file is cleaned on open
    assert spool.dropped == 0
