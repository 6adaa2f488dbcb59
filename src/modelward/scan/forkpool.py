"""Runs a function over many items on every core: the calling process plus forked children.

Written by hand rather than with ``multiprocessing.Pool``: the pool's import and start-up (~22 ms
on this machine) cost more than scanning a few hundred small files, while a bare ``fork`` shares
the already-imported detectors for free and lets the calling process work too. A child that dies
(a native library crashing on a hostile file) loses only the items it had not reported yet; the
caller gets their indices back and reports them instead of losing the run.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_LEN = struct.Struct("<Q")
_BATCH = 32
_ITEM_COST = 64 << 10
"""Fixed cost of an item in the schedule, in bytes of hashing (open, sniff, report)."""


def available() -> bool:
    """Forking is used on Linux only (macOS' system libraries are not fork-safe)."""
    return sys.platform.startswith("linux")


def schedule(weights: Sequence[int], jobs: int) -> list[list[int]]:
    """Split item indices over ``jobs`` workers, heaviest first to the least loaded one."""
    shares: list[list[int]] = [[] for _ in range(jobs)]
    loads = [0] * jobs
    for i in sorted(range(len(weights)), key=lambda i: -weights[i]):
        k = loads.index(min(loads))
        shares[k].append(i)
        loads[k] += weights[i] + _ITEM_COST
    for share in shares:
        share.sort()  # each worker goes through its files in walk order
    return shares


def run(
    items: Sequence[T],
    work: Callable[[T], R],
    jobs: int,
    weights: Sequence[int],
    on_result: Callable[[int, R], None],
) -> list[int]:
    """Call ``work`` on every item over ``jobs`` processes; ``on_result(index, result)`` in this one.

    Returns the indices of items whose worker died before reporting them.
    """
    shares = schedule(weights, jobs)
    children: dict[int, tuple[int, list[int]]] = {}  # read fd -> (pid, share)
    for share in shares[1:]:
        if not share:
            continue
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: work, send results in batches, never return
            os.close(r)
            _child(items, work, share, w)
        os.close(w)
        children[r] = (pid, share)

    buffers = {fd: bytearray() for fd in children}
    seen: set[int] = set()

    def drain(timeout: float | None) -> None:
        while buffers:
            ready, _, _ = select.select(list(buffers), [], [], timeout)
            if not ready:
                return
            for fd in ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    os.close(fd)
                    del buffers[fd]
                    continue
                buf = buffers[fd]
                buf += chunk
                while len(buf) >= _LEN.size:
                    (n,) = _LEN.unpack_from(buf)
                    if len(buf) < _LEN.size + n:
                        break
                    batch: list[tuple[int, Any]] = pickle.loads(buf[_LEN.size : _LEN.size + n])
                    del buf[: _LEN.size + n]
                    for i, res in batch:
                        seen.add(i)
                        on_result(i, res)
            if timeout == 0:
                return

    try:
        for i in shares[0]:
            on_result(i, work(items[i]))
            if buffers:
                drain(0)
        drain(None)
    finally:
        for fd in buffers:
            os.close(fd)
        for pid, _share in children.values():
            os.waitpid(pid, 0)
    return [i for _pid, share in children.values() for i in share if i not in seen]


def _child(items: Sequence[Any], work: Callable[[Any], Any], share: list[int], fd: int) -> None:
    code = 1
    try:
        batch: list[tuple[int, Any]] = []
        for i in share:
            batch.append((i, work(items[i])))
            if len(batch) >= _BATCH:
                _send(fd, batch)
                batch = []
        if batch:
            _send(fd, batch)
        code = 0
    except BaseException:  # the parent reports what was not sent
        pass
    finally:
        os._exit(code)


def _send(fd: int, batch: list[tuple[int, Any]]) -> None:
    data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_LEN.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]
