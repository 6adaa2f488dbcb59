"""The agent's resource budget: low priority, rate-limited hashing, and its own RSS/CPU figures.

The targets are osquery's watchdog defaults: peak memory under 200 MB and sustained CPU under 10%
of one core. The agent lowers its CPU and I/O priority, hashes at a bounded rate (SHA-256 runs at
~1 GB/s: 32 MiB/s is about 3-5% of a core) and reports what it used since the previous report.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import stat
import time
from dataclasses import dataclass

from modelward.inventory.hashcache import FileChangedError, stat_key
from modelward.models import Sha256

DEFAULT_HASH_RATE = 32 << 20
CHUNK = 1 << 20


def lower_priority(nice: int = 10) -> None:
    """Raise the process's niceness by ``nice`` and ask for idle-class I/O where the OS has it."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(nice)
    with contextlib.suppress(Exception):  # psutil: ionice exists on Linux and Windows only
        import psutil  # type: ignore[import-untyped]

        if hasattr(psutil, "IOPRIO_CLASS_IDLE"):
            psutil.Process().ionice(psutil.IOPRIO_CLASS_IDLE)


class RateLimiter:
    """A token bucket of ``rate`` bytes per second (burst: one second's worth); 0 = unlimited."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._allowance = float(rate)
        self._last = time.monotonic()

    def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self._allowance = min(float(self.rate), self._allowance + (now - self._last) * self.rate)
        self._last = now
        self._allowance -= n
        if self._allowance < 0:
            time.sleep(-self._allowance / self.rate)


def sha256_limited(path: str, st: os.stat_result, limiter: RateLimiter) -> Sha256:
    """SHA-256 of the regular file ``st`` describes, read no faster than ``limiter`` allows.

    Hand-written rather than :class:`modelward.inventory.hashcache.Hasher` because that one reads
    the file in one loop with no hook between chunks to pace it. Raises ``FileChangedError`` when
    the file changed meanwhile.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or stat_key(before) != stat_key(st):
            raise FileChangedError(f"{path}: changed before it was hashed")
        h = hashlib.sha256()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        with open(fd, "rb", buffering=0, closefd=False) as fh:
            while n := fh.readinto(buf):
                h.update(view[:n])
                limiter.take(n)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if stat_key(after) != stat_key(st):
        raise FileChangedError(f"{path}: changed while it was hashed")
    return Sha256(h.hexdigest())


@dataclass(frozen=True, slots=True)
class Usage:
    rss_bytes: int
    peak_rss_bytes: int
    cpu_percent: float


class UsageMeter:
    """CPU time (the agent and its finished workers) over wall time since the last reading."""

    def __init__(self) -> None:
        self._cpu = _cpu_seconds()
        self._wall = time.monotonic()

    def read(self) -> Usage:
        cpu, wall = _cpu_seconds(), time.monotonic()
        spent, elapsed = cpu - self._cpu, wall - self._wall
        self._cpu, self._wall = cpu, wall
        percent = round(100.0 * spent / elapsed, 2) if elapsed > 0 else 0.0
        return Usage(rss_bytes=current_rss(), peak_rss_bytes=peak_rss(), cpu_percent=percent)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def peak_rss() -> int:
    """Peak resident memory of the agent process in bytes.

    Linux: ``VmHWM`` of ``/proc/self/status`` (``ru_maxrss`` would also count the parent's pages
    before ``exec`` when the agent was forked from a big process). Elsewhere ``ru_maxrss`` (bytes
    on macOS, KiB on the BSDs).
    """
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if os.uname().sysname == "Darwin" else peak * 1024


def current_rss() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # psutil cannot read its own process: the peak is the best we have
        return peak_rss()
