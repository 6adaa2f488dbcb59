"""Which files running processes use: memory-mapped, open, or named on their command line.

:func:`files_in_use` answers "is this model loaded right now, and by whom?". On Linux it reads
``/proc/<pid>/maps``, ``/proc/<pid>/fd`` and ``/proc/<pid>/cmdline`` directly (``psutil``'s
``memory_maps()`` parses ``smaps`` and ``open_files()`` reads every ``fdinfo``: several times
slower); elsewhere it asks ``psutil``, imported lazily. Processes that cannot be inspected (other
users', zombies, ones that exit meanwhile) are skipped quietly and counted. The walk is bounded:
``deadline`` seconds, after which the answer says it is incomplete.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

MAX_ARG_LEN = 4096
MAX_FDS = 65536
_MAPS_RE = re.compile(rb"^\S+ \S+ \S+ ([0-9a-f]+):([0-9a-f]+) (\d+) +(/[^\n]*)$", re.MULTILINE)
_DELETED = " (deleted)"


@dataclass(frozen=True, slots=True)
class InUse:
    """Files used by running processes.

    ``holders``: real path -> pids that map it, hold it open or name it on their command line.
    ``inodes``: ``(st_dev, st_ino)`` of mapped files -> pids (Linux; matches a file even when the
    process sees it under another path, in a container or through a hard link).
    ``processes``: how many were inspected; ``denied``: how many could not be (fully) read;
    ``complete``: False when the deadline cut the walk short.
    """

    holders: dict[str, tuple[int, ...]] = field(default_factory=dict)
    inodes: dict[tuple[int, int], tuple[int, ...]] = field(default_factory=dict)
    processes: int = 0
    denied: int = 0
    complete: bool = True
    elapsed: float = 0.0

    def __contains__(self, path: object) -> bool:
        return path in self.holders

    def pids(self, path: str, st: os.stat_result | None = None) -> tuple[int, ...]:
        """The pids using the file at ``path`` (a real path), also matched by inode if ``st``."""
        found = set(self.holders.get(path, ()))
        if st is not None:
            found.update(self.inodes.get((st.st_dev, st.st_ino), ()))
        return tuple(sorted(found))

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(self.holders)


class _Collector:
    def __init__(self) -> None:
        self.holders: dict[str, set[int]] = {}
        self.inodes: dict[tuple[int, int], set[int]] = {}
        self.processes = 0
        self.denied = 0
        self._real: dict[str, str | None] = {}

    def add(self, path: str, pid: int) -> None:
        self.holders.setdefault(path, set()).add(pid)

    def add_arg_files(self, args: Iterable[str], cwd: str | None, pid: int) -> None:
        """Add the command-line arguments that name existing regular files."""
        for arg in args:
            if not arg or len(arg) > MAX_ARG_LEN:
                continue
            if arg.startswith("-"):  # --model=path / -m=path: the value
                _, eq, arg = arg.partition("=")
                if not eq or not arg:
                    continue
            if not os.path.isabs(arg):
                if cwd is None:
                    continue
                arg = os.path.join(cwd, arg)
            real = self._real.get(arg, "")
            if real == "":
                real = _regular_realpath(arg)
                self._real[arg] = real
            if real is not None:
                self.add(real, pid)

    def result(self, complete: bool, started: float) -> InUse:
        return InUse(
            holders={p: tuple(sorted(s)) for p, s in self.holders.items()},
            inodes={k: tuple(sorted(s)) for k, s in self.inodes.items()},
            processes=self.processes,
            denied=self.denied,
            complete=complete,
            elapsed=time.monotonic() - started,
        )


def _regular_realpath(path: str) -> str | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return os.path.realpath(path) if stat.S_ISREG(st.st_mode) else None


def files_in_use(
    *, exclude_pids: Collection[int] | None = None, deadline: float = 5.0, backend: str = "auto"
) -> InUse:
    """Files that running processes map, hold open or name on their command line.

    ``exclude_pids`` defaults to this process (the scanner maps files it reads); pass the pids
    of your own workers too. ``backend``: ``auto``, ``proc`` (Linux ``/proc``) or ``psutil``.
    """
    excluded = {os.getpid()} if exclude_pids is None else set(exclude_pids)
    if backend == "auto":
        backend = (
            "proc"
            if sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd")
            else "psutil"
        )
    if backend == "proc":
        return _from_proc(excluded, deadline)
    if backend == "psutil":
        return _from_psutil(excluded, deadline)
    raise ValueError(f"unknown backend {backend!r}")


# ---------------------------------------------------------------------------- Linux /proc
def _read(path: str) -> bytes:
    with open(path, "rb", buffering=0) as fh:
        chunks = []
        while chunk := fh.read(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)


def _from_proc(excluded: set[int], deadline: float) -> InUse:
    started = time.monotonic()
    c = _Collector()
    try:
        pids = [int(n) for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return c.result(False, started)
    complete = True
    for pid in pids:
        if pid in excluded:
            continue
        if time.monotonic() - started > deadline:
            complete = False
            break
        base = f"/proc/{pid}/"
        try:
            cmdline = _read(base + "cmdline")
        except OSError:  # gone, or not ours to read
            continue
        c.processes += 1
        denied = False
        try:
            maps = _read(base + "maps")
        except OSError:
            denied = True
            maps = b""
        for m in _MAPS_RE.finditer(maps):
            ino = int(m.group(3))
            path = os.fsdecode(m.group(4))
            if ino == 0 or path.endswith(_DELETED):
                continue
            c.add(path, pid)
            dev = os.makedev(int(m.group(1), 16), int(m.group(2), 16))
            c.inodes.setdefault((dev, ino), set()).add(pid)
        try:
            fds = os.listdir(base + "fd")
        except OSError:
            denied = True
            fds = []
        for fd in fds[:MAX_FDS]:
            try:
                target = os.readlink(base + "fd/" + fd)
            except OSError:
                continue
            if target.startswith("/") and not target.endswith(_DELETED):
                c.add(target, pid)
        if cmdline:
            args = [os.fsdecode(a) for a in cmdline.rstrip(b"\0").split(b"\0")]
            try:
                cwd: str | None = os.readlink(base + "cwd")
            except OSError:
                cwd = None
            c.add_arg_files(args, cwd, pid)
        if denied:
            c.denied += 1
    return c.result(complete, started)


# ---------------------------------------------------------------------------- psutil
def _from_psutil(excluded: set[int], deadline: float) -> InUse:
    import psutil  # type: ignore[import-untyped]  # lazily: the inventory must start fast

    started = time.monotonic()
    c = _Collector()
    complete = True
    skip = (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError)
    for proc in psutil.process_iter():
        if proc.pid in excluded:
            continue
        if time.monotonic() - started > deadline:
            complete = False
            break
        denied = False
        try:
            with proc.oneshot():
                try:
                    args = proc.cmdline()
                except skip:
                    continue
                c.processes += 1
                try:
                    for mm in proc.memory_maps(grouped=True):
                        if mm.path.startswith("/") and not mm.path.endswith(_DELETED):
                            c.add(mm.path, proc.pid)
                except (*skip, NotImplementedError, AttributeError):
                    denied = True
                try:
                    for of in proc.open_files():
                        c.add(of.path, proc.pid)
                except skip:
                    denied = True
                try:
                    cwd: str | None = proc.cwd()
                except skip:
                    cwd = None
                c.add_arg_files(args, cwd, proc.pid)
        except skip:
            denied = True
        if denied:
            c.denied += 1
    return c.result(complete, started)
