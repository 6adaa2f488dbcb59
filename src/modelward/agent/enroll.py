"""Enrollment: trade the team's enrollment secret for this host's key, kept in ``agent.json`` (0600).

``<state_dir>/agent.json`` holds ``host_id``, ``host_key``, ``server``, ``bundle_public_key`` (the
server's policy-bundle signing key, pinned here at enrollment), ``ca_bundle``, ``secret_file`` and
``report_interval``; it is written atomically, owner-only. When the server revokes the key, the agent
re-enrolls once with the secret file if it is still there, else it stops with a clear message.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelward.agent.files import ensure_dir, read_json, write_bytes_atomic, write_json
from modelward.errors import Error, UsageError

STATE_FILE = "agent.json"
MACHINE_ID_FILE = "machine-id"


class NotEnrolled(Error):
    """The agent has no host key (never enrolled, or its key was revoked and cannot be renewed)."""


def default_state_dir(env: dict[str, str] | None = None) -> Path:
    """``/var/lib/modelward-agent`` as root, else ``$XDG_STATE_HOME/modelward-agent`` (default
    ``~/.local/state/modelward-agent``)."""
    e = os.environ if env is None else env
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/modelward-agent")
    base = e.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "modelward-agent"


@dataclass(frozen=True, slots=True)
class AgentState:
    """What ``agent.json`` holds."""

    host_id: str
    host_key: str
    server: str
    bundle_public_key: str | None = None
    ca_bundle: str | None = None
    secret_file: str | None = None
    report_interval: int = 3600

    @classmethod
    def from_dict(cls, doc: Any, where: Path) -> AgentState:
        if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k), str) for k in ("host_id", "host_key", "server")
        ):
            raise NotEnrolled(f"{where}: not an agent key file; enroll again")
        names = {"bundle_public_key", "ca_bundle", "secret_file"}
        extra = {k: doc[k] for k in names if isinstance(doc.get(k), str)}
        interval = doc.get("report_interval")
        return cls(
            host_id=doc["host_id"],
            host_key=doc["host_key"],
            server=doc["server"],
            report_interval=interval if isinstance(interval, int) and interval > 0 else 3600,
            **extra,
        )


def load_state(state_dir: Path) -> AgentState | None:
    """This host's enrollment, or ``None`` before the first enrollment."""
    path = state_dir / STATE_FILE
    doc = read_json(path)
    return None if doc is None else AgentState.from_dict(doc, path)


def save_state(state_dir: Path, state: AgentState) -> None:
    ensure_dir(state_dir)
    write_json(state_dir / STATE_FILE, asdict(state), mode=0o600)


def machine_id(state_dir: Path) -> str:
    """A stable id of this machine: the OS's machine id when readable, else a random one kept in
    the state folder (re-enrolling the same machine keeps its host id on the server)."""
    kept = state_dir / MACHINE_ID_FILE
    try:
        value = kept.read_text().strip()
        if value:
            return value
    except OSError:
        pass
    value = ""
    for candidate in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            value = Path(candidate).read_text().strip()
        except OSError:
            continue
        if value:
            break
    value = value or uuid.uuid4().hex
    ensure_dir(state_dir)
    write_bytes_atomic(kept, value.encode() + b"\n", mode=0o600)
    return value


def host_facts(state_dir: Path) -> dict[str, Any]:
    """The ``host`` object of the enroll request."""
    from modelward import __version__

    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in a container: the uid will do
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return {
        "hostname": socket.gethostname(),
        "os": platform.system().lower(),
        "os_version": platform.release(),
        "user": user,
        "machine_id": machine_id(state_dir),
        "agent_version": __version__,
    }


def read_secret(path: Path) -> str:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the enrollment secret: {exc}") from None
    if not secret:
        raise UsageError(f"{path}: the enrollment secret file is empty")
    return secret


def enroll(
    server: str,
    secret_file: Path,
    state_dir: Path,
    *,
    ca_bundle: str | None = None,
) -> AgentState:
    """Exchange the secret in ``secret_file`` for a host key and store it; returns the new state."""
    from modelward.agent.client import AgentClient

    if not server.startswith(("https://", "http://")):
        raise UsageError(f"--server {server!r}: give a URL like https://modelward.example.com")
    secret = read_secret(secret_file)
    ensure_dir(state_dir)
    with AgentClient(server, ca_bundle=ca_bundle) as client:
        got = client.enroll(secret, host_facts(state_dir))
    state = AgentState(
        host_id=got.host_id,
        host_key=got.host_key,
        server=server.rstrip("/"),
        bundle_public_key=got.bundle_public_key,
        ca_bundle=str(Path(ca_bundle).resolve()) if ca_bundle else None,
        secret_file=str(secret_file.resolve()),
        report_interval=got.report_interval,
    )
    save_state(state_dir, state)
    return state


def reenroll(state_dir: Path, state: AgentState, why: str) -> AgentState:
    """Enroll again with the secret file named at enrollment; :class:`NotEnrolled` when it is gone."""
    secret = Path(state.secret_file) if state.secret_file else None
    if secret is None or not secret.is_file():
        where = f" ({state.secret_file} is gone)" if state.secret_file else ""
        raise NotEnrolled(
            f"{state.server} refused this host's key: {why}. The enrollment secret is not available"
            f"{where}, so the agent stops. Enroll again: modelward agent enroll --server "
            f"{state.server} --secret-file FILE"
        )
    return enroll(state.server, secret, state_dir, ca_bundle=state.ca_bundle)
