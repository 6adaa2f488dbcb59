"""The process table and the TCP sockets processes listen on, read without running anything.

On Linux both come from ``/proc`` (``cmdline``, ``exe``, ``comm``; ``/proc/<pid>/net/tcp{,6}`` in
the process's own network namespace, joined to its sockets through the ``socket:[inode]`` links in
``/proc/<pid>/fd``); elsewhere from ``psutil``, imported lazily. Processes that exit meanwhile or
cannot be read are skipped quietly. Of a process's environment only the named keys are ever kept
(it may hold tokens).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from modelward.inventory.inuse import MAX_FDS, _read

MAX_ENVIRON = 1 << 20
MAX_NET_LINES = 200_000


@dataclass(frozen=True, slots=True)
class Proc:
    """A running process: ``name`` is the kernel's short name, ``argv`` its command line."""

    pid: int
    name: str
    exe: str | None
    argv: tuple[str, ...]
    cwd: str | None = None


def default_backend() -> str:
    return (
        "proc" if sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd") else "psutil"
    )


def process_table(*, backend: str = "auto", deadline: float = 5.0) -> list[Proc]:
    """Every process this user can see (this process excluded)."""
    if backend == "auto":
        backend = default_backend()
    if backend == "proc":
        return _procs_from_proc(deadline)
    if backend == "psutil":
        return _procs_from_psutil(deadline)
    raise ValueError(f"unknown backend {backend!r}")


def _procs_from_proc(deadline: float) -> list[Proc]:
    started = time.monotonic()
    out: list[Proc] = []
    me = os.getpid()
    try:
        pids = [int(n) for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return out
    for pid in pids:
        if pid == me:
            continue
        if time.monotonic() - started > deadline:
            break
        base = f"/proc/{pid}/"
        try:
            raw = _read(base + "cmdline")
            with open(base + "comm", "rb") as fh:
                comm = fh.read(64).rstrip(b"\n")
        except OSError:  # gone, or not ours to read
            continue
        if not raw:  # kernel threads and zombies
            continue
        argv = tuple(os.fsdecode(a) for a in raw.rstrip(b"\0").split(b"\0"))
        exe = cwd = None
        try:
            exe = os.readlink(base + "exe")
            cwd = os.readlink(base + "cwd")
        except OSError:
            pass
        out.append(Proc(pid, os.fsdecode(comm), exe, argv, cwd))
    return out


def _psutil_errors() -> tuple[type[BaseException], ...]:
    import psutil  # type: ignore[import-untyped]

    return (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError)


def _procs_from_psutil(deadline: float) -> list[Proc]:
    import psutil

    started = time.monotonic()
    skip = _psutil_errors()
    out: list[Proc] = []
    me = os.getpid()
    for p in psutil.process_iter():
        if p.pid == me:
            continue
        if time.monotonic() - started > deadline:
            break
        try:
            with p.oneshot():
                name = p.name()
                try:
                    argv = tuple(p.cmdline())
                except skip:
                    argv = (name,)
                exe = cwd = None
                try:
                    exe = p.exe() or None
                    cwd = p.cwd() or None
                except skip:
                    pass
        except skip:
            continue
        out.append(Proc(p.pid, name, exe, argv, cwd))
    return out


def process_environ(pid: int, keys: Collection[str], *, backend: str = "auto") -> dict[str, str]:
    """The values of ``keys`` in process ``pid``'s environment (empty when not permitted)."""
    if backend == "auto":
        backend = default_backend()
    wanted = set(keys)
    if backend == "proc":
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                raw = fh.read(MAX_ENVIRON)
        except OSError:
            return {}
        out: dict[str, str] = {}
        for item in raw.split(b"\0"):
            k, eq, v = item.partition(b"=")
            if eq:
                key = os.fsdecode(k)
                if key in wanted:
                    out[key] = os.fsdecode(v)[:4096]
        return out
    try:
        import psutil

        env = psutil.Process(pid).environ()
    except Exception:  # AccessDenied, NoSuchProcess, unsupported platform
        return {}
    return {k: str(v)[:4096] for k, v in env.items() if k in wanted}


# ---------------------------------------------------------------------------- sockets
def listening(
    pids: Iterable[int],
    *,
    backend: str = "auto",
    hints: Mapping[int, Collection[int]] | None = None,
) -> dict[int, list[tuple[str, int]]]:
    """The TCP sockets in LISTEN state held by each of ``pids``: ``pid -> [(address, port)]``.

    ``hints``: for a process whose descriptors cannot be read (another user's, such as the
    ``ollama`` service user's server seen by a normal user), the ports it is expected on; on
    Linux a listening socket owned by that process's user on one of those ports is attributed
    to it (the socket table is world-readable and records the owner's uid).
    """
    if backend == "auto":
        backend = default_backend()
    wanted = sorted(set(pids))
    if not wanted:
        return {}
    if backend == "proc":
        return _listening_proc(wanted, hints or {})
    if backend == "psutil":
        return _listening_psutil(wanted)
    raise ValueError(f"unknown backend {backend!r}")


_Table = dict[int, tuple[str, int, int]]


def _listening_proc(
    pids: list[int], hints: Mapping[int, Collection[int]]
) -> dict[int, list[tuple[str, int]]]:
    tables: dict[str, _Table] = {}  # network namespace -> inode -> (address, port, uid)
    out: dict[int, list[tuple[str, int]]] = {}
    for pid in pids:
        base = f"/proc/{pid}/"
        opaque = False
        inodes: list[int] = []
        try:
            fds = os.listdir(base + "fd")
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM) or not hints.get(pid):
                continue
            opaque, fds = True, []
        for fd in fds[:MAX_FDS]:
            try:
                target = os.readlink(base + "fd/" + fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target.endswith("]"):
                try:
                    inodes.append(int(target[8:-1]))
                except ValueError:
                    continue
        if not inodes and not opaque:
            continue
        table = _table(base, pid, tables)
        if opaque:
            uid = _uid(base)
            ports = set(hints.get(pid, ()))
            found = sorted({(a, p) for a, p, u in table.values() if u == uid and p in ports})
        else:
            found = sorted({table[i][:2] for i in inodes if i in table})
        if found:
            out[pid] = found
    return out


def _table(base: str, pid: int, tables: dict[str, _Table]) -> _Table:
    try:
        ns = os.readlink(base + "ns/net")
    except OSError:
        ns = f"pid:{pid}"
    table = tables.get(ns)
    if table is None:
        table = {}
        for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
            try:
                table.update(parse_listeners(_read(base + "net/" + name), family))
            except OSError:
                continue
        tables[ns] = table
    return table


def _uid(base: str) -> int | None:
    try:
        with open(base + "status", "rb") as fh:
            for line in fh.read(65536).splitlines():
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def parse_net_tcp(data: bytes, family: int) -> dict[int, tuple[str, int]]:
    """Listening sockets in a ``/proc/net/tcp`` or ``tcp6`` table: inode -> (address, port)."""
    return {i: (a, p) for i, (a, p, _u) in parse_listeners(data, family).items()}


def parse_listeners(data: bytes, family: int) -> _Table:
    """Listening sockets in a ``/proc/net/tcp{,6}`` table: inode -> (address, port, owner uid)."""
    out: _Table = {}
    for n, line in enumerate(data.splitlines()[1:]):
        if n >= MAX_NET_LINES:
            break
        parts = line.split()
        if len(parts) < 10 or parts[3] != b"0A":  # 0A = TCP_LISTEN
            continue
        try:
            addr_hex, port_hex = parts[1].split(b":")
            port = int(port_hex, 16)
            uid = int(parts[7])
            inode = int(parts[9])
            if family == socket.AF_INET and len(addr_hex) == 8:
                packed = struct.pack("=I", int(addr_hex, 16))
            elif family == socket.AF_INET6 and len(addr_hex) == 32:
                words = [int(addr_hex[i : i + 8], 16) for i in range(0, 32, 8)]
                packed = struct.pack("=4I", *words)
            else:
                continue
            out[inode] = (socket.inet_ntop(family, packed), port, uid)
        except (ValueError, OSError, struct.error):
            continue
    return out


def _listening_psutil(pids: list[int]) -> dict[int, list[tuple[str, int]]]:
    import psutil

    wanted = set(pids)
    found: dict[int, set[tuple[str, int]]] = {}
    conns: list[object] | None
    try:
        conns = list(psutil.net_connections(kind="tcp"))
    except Exception:  # AccessDenied on macOS without root: ask each process instead
        conns = None
    if conns is not None:
        for c in conns:
            pid = getattr(c, "pid", None)
            if pid in wanted:
                _add_psutil_conn(found, pid, c)
    else:
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                get = getattr(proc, "net_connections", None) or proc.connections
                for c in get(kind="tcp"):
                    _add_psutil_conn(found, pid, c)
            except Exception:
                continue
    return {pid: sorted(s) for pid, s in found.items()}


def _add_psutil_conn(found: dict[int, set[tuple[str, int]]], pid: int, conn: object) -> None:
    if getattr(conn, "status", None) != "LISTEN":
        return
    laddr = getattr(conn, "laddr", None)
    if not laddr:
        return
    try:
        address, port = str(laddr[0]), int(laddr[1])
    except (IndexError, TypeError, ValueError):
        return
    found.setdefault(pid, set()).add((address, port))
