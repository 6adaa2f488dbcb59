"""Fixtures for the fleet library: a migrated database (SQLite and PostgreSQL) and a Fleet on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.server.conftest import db_url  # noqa: F401  (the sqlite/postgresql fixture)


@pytest.fixture
def fleet(db_url: str) -> Iterator[Any]:  # noqa: F811
    from modelward.fleet.bundle import new_private_pem
    from modelward.fleet.service import Fleet
    from modelward.store.db import Database

    db = Database(db_url)
    db.create_all()
    try:
        yield Fleet(db, new_private_pem())
    finally:
        db.dispose()


def host_info(n: int = 1, **kw: Any) -> dict[str, Any]:
    return {
        "hostname": f"host-{n}",
        "os": "linux",
        "os_version": "6.1",
        "user": f"user{n}",
        "machine_id": f"machine-{n}",
        "agent_version": "0.1.0",
        **kw,
    }


def artifact(path: str, sha: str | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "path": path,
        "size": 10,
        "sha256": sha if sha is not None else uuid.uuid5(uuid.NAMESPACE_URL, path).hex * 2,
        "format": "safetensors",
        "source": {"kind": "huggingface", "name": None, "repo": "acme/m", "revision": None},
        "license": {"id": "apache-2.0"},
        "metadata": {},
        "findings": [],
        "in_use": False,
        **kw,
    }


def report(
    seq: int,
    *,
    base: int | None = None,
    artifacts: list[dict[str, Any]] | None = None,
    removed: list[str] | None = None,
    decisions: list[dict[str, Any]] | None = None,
    runtimes: list[dict[str, Any]] | None = None,
    packages: list[dict[str, Any]] | None = None,
    report_id: str | None = None,
) -> dict[str, Any]:
    return {
        "schema": "modelward.agent-report/v1",
        "report_id": report_id or str(uuid.uuid4()),
        "seq": seq,
        "base": base,
        "full": base is None,
        "collected_at": "2026-11-25T10:00:00Z",
        "host": {"hostname": "host-1"},
        "added": {
            "artifacts": artifacts or [],
            "runtimes": runtimes or [],
            "packages": packages or [],
        },
        "removed": {"artifacts": removed or [], "runtimes": [], "packages": []},
        "decisions": decisions or [],
        "actions": [],
        "agent": {"version": "0.1.0", "rss_bytes": 1, "cpu_percent": 0.5, "spool_dropped": 0},
    }


def decision(rule: str, path: str, severity: str = "high", action: str = "deny") -> dict[str, Any]:
    return {
        "rule": rule,
        "action": action,
        "severity": severity,
        "subject": {"kind": "artifact", "path": path, "sha256": None},
        "message": f"{rule} on {path}",
        "waived_by": None,
    }
