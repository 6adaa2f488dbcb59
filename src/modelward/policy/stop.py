"""Carry out ``stop`` decisions: terminate a runtime's processes that listen on a network address.

Only with the setting ``stop_exposed_runtimes`` does the bundled pack decide ``stop`` (for
``runtime-exposed``); runtimes are never stopped by default. A process is stopped only when all
of these hold, checked again at the moment of acting (the inventory may be old, a pid reused):

- it is one of the runtime's pids in the inventory;
- it *is* that runtime: its executable, name and command line identify it as the runtime, the
  way the inventory identifies runtimes (:func:`modelward.inventory.runtimes.match_process`), so a
  reused pid, or an inventory that names another program (``python3 -m http.server`` listed as
  ``ollama``), is reported and left alone;
- it listens *now* on a network-reachable address, on a port the inventory lists as exposed for
  that runtime;
- it belongs to the current user (any user's process when running as root).

Stopping is SIGTERM, then a wait; a process still running after the wait is reported, never killed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelward.inventory.exposure import is_exposed
from modelward.policy.decision import Decision

WAIT_SECONDS = 10.0
"""How long a process gets to exit after SIGTERM before it is reported as still running."""


@dataclass(frozen=True, slots=True)
class _Target:
    proc: Any
    """The ``psutil.Process`` checked (it refuses to signal a reused pid)."""
    name: str
    sockets: tuple[str, ...]

    @property
    def pid(self) -> int:
        return int(self.proc.pid)


def _runtimes(inventory: Any, name: str | None) -> list[Mapping[str, Any]]:
    doc = inventory.to_dict() if hasattr(inventory, "to_dict") else inventory
    rts = doc.get("runtimes", []) if isinstance(doc, Mapping) else []
    return [r for r in rts if isinstance(r, Mapping) and r.get("name") == name]


def _pids_and_ports(runtimes: Iterable[Mapping[str, Any]]) -> tuple[list[int], set[int]]:
    pids: dict[int, None] = {}
    ports: set[int] = set()
    for r in runtimes:
        for pid in r.get("pids") or []:
            if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
                pids[pid] = None
        for sock in r.get("listen") or []:
            if isinstance(sock, Mapping) and sock.get("exposed") is True:
                port = sock.get("port")
                if isinstance(port, int):
                    ports.add(port)
    return list(pids), ports


def _listening(proc: Any, ports: set[int]) -> tuple[str, ...]:
    """The process's listening sockets on a network-reachable address and one of ``ports``."""
    import psutil  # type: ignore[import-untyped]  # lazily: the CLI must start fast

    conns = proc.net_connections(kind="inet") if hasattr(proc, "net_connections") else []
    out = {
        f"{c.laddr.ip}:{c.laddr.port}"
        for c in conns
        if c.status == psutil.CONN_LISTEN and c.laddr.port in ports and is_exposed(c.laddr.ip)
    }
    return tuple(sorted(out))


def _identity(proc: Any) -> Any:
    """The process as the inventory sees one (a ``processes.Proc``): what it can read of it."""
    import psutil

    from modelward.inventory.processes import Proc

    with proc.oneshot():
        name = proc.name()
        try:
            argv = tuple(proc.cmdline())
        except (psutil.AccessDenied, psutil.ZombieProcess):
            argv = ()
        exe = cwd = None
        try:
            exe = proc.exe() or None
            cwd = proc.cwd() or None
        except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
            pass
    return Proc(int(proc.pid), str(name), exe, argv or (str(name),), cwd)


def _impostor(proc: Any, name: str) -> str | None:
    """``None`` when the process is runtime ``name``; else what it is (its command line)."""
    from modelward.inventory.runtimes import match_process

    seen = _identity(proc)
    hit = match_process(seen)
    if hit is not None and hit[0].name == name:
        return None
    text = " ".join(seen.argv)
    return text if len(text) <= 80 else text[:77] + "..."


def _owned(proc: Any) -> bool:
    if os.geteuid() == 0:
        return True
    return int(proc.uids().real) == os.getuid()


def stop_decisions(
    decisions: Iterable[Decision],
    inventory: Any,
    apply: bool,
    *,
    wait: float = WAIT_SECONDS,
) -> list[str]:
    """Stop (when ``apply``) the exposed processes of the runtimes of ``stop`` decisions.

    Returns one line per process saying what was (or would be) done, or why it was left alone.
    """
    import psutil

    out: list[str] = []
    seen: set[str] = set()
    for d in decisions:
        if d.action != "stop" or d.subject.kind != "runtime" or not d.subject.name:
            continue
        if d.subject.name in seen:
            continue
        seen.add(d.subject.name)
        name = d.subject.name
        why = f"[{d.rule}] {d.message}"
        pids, ports = _pids_and_ports(_runtimes(inventory, name))
        targets: list[_Target] = []
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                other = _impostor(proc, name)
                if other is not None:
                    on = f" on port {', '.join(map(str, sorted(ports)))}" if ports else ""
                    out.append(f"pid {pid}{on} is not {name} (it is {other}): not stopped")
                    continue
                sockets = _listening(proc, ports)
                if not sockets:
                    out.append(f"left {name} (pid {pid}) alone: it listens on no network address")
                    continue
                if not _owned(proc):
                    out.append(
                        f"left {name} (pid {pid}) alone: the process belongs to another user"
                    )
                    continue
                targets.append(_Target(proc, name, sockets))
            except psutil.NoSuchProcess:
                out.append(f"left {name} (pid {pid}) alone: the process is gone")
            except psutil.AccessDenied:
                out.append(f"left {name} (pid {pid}) alone: not allowed to inspect the process")
        if not pids:
            out.append(f"no process of {name} to stop {why}")
        for t in targets:
            where = ", ".join(t.sockets)
            if not apply:
                out.append(f"would stop {t.name} (pid {t.pid}, listening on {where}) {why}")
                continue
            out.append(_terminate(t, where, why, wait))
    return out


def _terminate(t: _Target, where: str, why: str, wait: float) -> str:
    import psutil

    try:
        t.proc.terminate()  # SIGTERM; psutil refuses if the pid now names another process
        _gone, alive = psutil.wait_procs([t.proc], timeout=wait)
    except psutil.NoSuchProcess:
        return f"stopped {t.name} (pid {t.pid}, listening on {where}) {why}"
    except psutil.AccessDenied:
        return f"could not stop {t.name} (pid {t.pid}): not allowed to signal the process"
    if alive:
        return (
            f"{t.name} (pid {t.pid}) still runs {wait:g} s after SIGTERM: not killed; "
            f"stop it yourself (listening on {where})"
        )
    return f"stopped {t.name} (pid {t.pid}, listening on {where}) {why}"
