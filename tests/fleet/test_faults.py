"""Database faults during ingestion (PostgreSQL): a connection killed between reports or right
before a report's commit. Nothing acknowledged is lost, nothing is applied twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event, func, select
from sqlalchemy.exc import DBAPIError

from modelward.fleet.report import parse_report
from modelward.store.db import AppliedReport, Host, HostArtifact
from tests.fleet.conftest import artifact, host_info, report
from tests.server.conftest import PG_BASE


@pytest.fixture
def pg_fleet(db_url: str) -> Iterator[tuple[Any, str]]:
    from modelward.fleet.bundle import new_private_pem
    from modelward.fleet.service import Fleet
    from modelward.store.db import Database

    if not db_url.startswith("postgresql"):
        pytest.skip("kills server-side connections: PostgreSQL only")
    app_name = "fleet-fault-" + uuid.uuid4().hex[:12]
    db = Database(f"{db_url}&application_name={app_name}")
    db.create_all()
    try:
        yield Fleet(db, new_private_pem()), app_name
    finally:
        db.dispose()


def _kill(app_name: str) -> int:
    """Terminate every connection of this test's engine (only those: the name is unique)."""
    engine = sa.create_engine(PG_BASE)
    try:
        with engine.begin() as conn:
            return len(
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :n"
                    ),
                    {"n": app_name},
                ).all()
            )
    finally:
        engine.dispose()


def test_connection_dropped_between_and_inside_reports(pg_fleet: tuple[Any, str]) -> None:
    fleet, app_name = pg_fleet
    secret = fleet.create_secret("t", "tests").secret
    host_id = fleet.enroll(secret, host_info()).host_id
    assert fleet.ingest(host_id, parse_report(report(1, artifacts=[artifact("/a")]))).applied
    assert _kill(app_name) >= 1  # the pool's idle connection dies: the next use reconnects
    assert fleet.ingest(
        host_id, parse_report(report(2, base=1, artifacts=[artifact("/b")]))
    ).applied

    third = parse_report(report(3, base=2, artifacts=[artifact("/c")]))
    armed = [True]

    def die_before_commit(conn: Any) -> None:
        if armed[0]:
            armed[0] = False
            _kill(app_name)

    event.listen(fleet.db.engine, "commit", die_before_commit)
    try:
        with pytest.raises(DBAPIError):
            fleet.ingest(host_id, third)  # never acknowledged ...
    finally:
        event.remove(fleet.db.engine, "commit", die_before_commit)
    with fleet.db.session() as s:
        assert s.get_one(Host, host_id).last_ack_seq == 2  # ... and not applied
        assert s.scalar(select(func.count()).select_from(AppliedReport)) == 2
    ack = fleet.ingest(host_id, third)  # the agent's resend
    assert ack.applied and ack.ack == 3
    assert not fleet.ingest(host_id, third).applied
    with fleet.db.session() as s:
        paths = s.scalars(select(HostArtifact.path).order_by(HostArtifact.path)).all()
    assert paths == ["/a", "/b", "/c"]
