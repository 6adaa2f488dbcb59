"""Group commit: reports applied together in one transaction, each still exactly once; a
report that fails (in its checks or in the database) fails alone, the others of its batch
are applied; an answer comes only after the commit."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import DBAPIError

from modelward.errors import Unauthorized
from modelward.fleet.errors import ResyncRequired
from modelward.fleet.report import parse_report
from modelward.fleet.service import _Pending, hash_secret
from modelward.store.db import AppliedReport, Host, HostArtifact
from tests.fleet.conftest import artifact, host_info, report


def _hosts(fleet: Any, n: int) -> list[Any]:
    secret = fleet.create_secret("t", "tests").secret
    return [fleet.enroll(secret, host_info(i)) for i in range(n)]


def _count(fleet: Any, model: Any) -> int:
    with fleet.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_a_batch_applies_each_report_once_and_fails_only_the_bad_ones(fleet: Any) -> None:
    hosts = _hosts(fleet, 5)
    for i, e in enumerate(hosts):
        assert fleet.ingest(e.host_id, parse_report(report(1, artifacts=[artifact(f"/{i}/a")])))
    commits = []
    event.listen(fleet.db.engine, "commit", lambda conn: commits.append(1))
    good = [parse_report(report(2, base=1, artifacts=[artifact(f"/{i}/b")])) for i in range(5)]
    items = [
        _Pending(hosts[0].host_id, good[0], hash_secret(hosts[0].host_key)),
        _Pending(hosts[1].host_id, good[1], hash_secret("mwh_forged")),  # 401, nothing stored
        _Pending(hosts[2].host_id, replace(good[2], base=7, seq=8), None),  # resync
        _Pending(hosts[3].host_id, good[3], None),
        _Pending(hosts[4].host_id, good[4], None),
    ]
    fleet._apply_batch(items)
    assert len(commits) == 1  # one transaction for the whole batch
    assert isinstance(items[1].result, Unauthorized)
    assert isinstance(items[2].result, ResyncRequired)
    assert [items[i].outcome().to_dict() for i in (0, 3, 4)] == [{"ack": 2, "applied": True}] * 3
    with fleet.db.session() as s:
        acked = {r.id: r.last_ack_seq for r in s.execute(select(Host.id, Host.last_ack_seq))}
    assert [acked[e.host_id] for e in hosts] == [2, 1, 1, 2, 2]
    assert _count(fleet, AppliedReport) == 5 + 3

    # a database failure in the batch (a size no BIGINT holds): the batch is rolled back and
    # each report retried alone, so only that one fails; the resends are applied once
    third = [parse_report(report(3, base=2, artifacts=[artifact(f"/{i}/c")])) for i in range(5)]
    bad = replace(third[3], artifacts=(replace(third[3].artifacts[0], size=2**70),))
    items = [
        _Pending(hosts[0].host_id, third[0], None),
        _Pending(hosts[3].host_id, bad, None),
        _Pending(hosts[4].host_id, third[4], None),
        _Pending(hosts[1].host_id, good[1], None),  # applied now (no key check asked)
    ]
    fleet._apply_batch(items)
    assert isinstance(items[1].result, OverflowError | DBAPIError)
    assert [items[i].outcome().applied for i in (0, 2, 3)] == [True, True, True]
    with fleet.db.session() as s:
        paths = set(s.scalars(select(HostArtifact.path)))
    assert "/3/c" not in paths and {"/0/c", "/4/c", "/1/b"} <= paths
    # resent (a lost ack): acknowledged, not applied twice
    again = [_Pending(hosts[0].host_id, third[0], None), _Pending(hosts[1].host_id, good[1], None)]
    fleet._apply_batch(again)
    assert [a.outcome().to_dict() for a in again] == [
        {"ack": 3, "applied": False},
        {"ack": 2, "applied": False},
    ]
    assert _count(fleet, AppliedReport) == 5 + 3 + 3


def test_submitted_reports_are_acknowledged_after_their_commit(fleet: Any) -> None:
    hosts = _hosts(fleet, 8)
    futures = [
        fleet.submit(
            e.host_id,
            parse_report(report(1, artifacts=[artifact(f"/{i}/a"), artifact(f"/{i}/b")])),
            host_key=e.host_key,
        )
        for i, e in enumerate(hosts)
    ]
    # the same host twice at once: never in one batch; the second is a duplicate
    dup = parse_report(report(2, base=1))
    first = fleet.submit(hosts[0].host_id, dup, host_key=hosts[0].host_key)
    second = fleet.submit(hosts[0].host_id, dup, host_key=hosts[0].host_key)
    assert all(f.result(60).applied for f in futures)
    assert sorted([first.result(60).applied, second.result(60).applied]) == [False, True]
    forged = fleet.submit(hosts[1].host_id, dup, host_key="mwh_forged")
    with pytest.raises(Unauthorized):
        forged.result(60)
    assert _count(fleet, HostArtifact) == 16
    assert _count(fleet, AppliedReport) == 9
