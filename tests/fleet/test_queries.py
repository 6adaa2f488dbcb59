"""Fleet queries as a library: the online window, filters and cursor pagination."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modelward.errors import BadRequest
from modelward.fleet import queries
from modelward.fleet.report import parse_report
from modelward.store.db import Host
from tests.fleet.conftest import artifact, decision, host_info, report


def _fleet_of(fleet: Any, n: int) -> list[str]:
    secret = fleet.create_secret("t", "tests").secret
    ids = []
    for i in range(n):
        e = fleet.enroll(secret, host_info(i))
        fleet.ingest(
            e.host_id,
            parse_report(
                report(
                    1,
                    artifacts=[artifact(f"/m/{i}/{j}") for j in range(3)],
                    decisions=[decision("r", f"/m/{i}/0", "medium")],
                )
            ),
        )
        ids.append(e.host_id)
    return ids


def _walk(fn: Any, **kw: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = fn(**kw, cursor=cursor)
        out += page.items
        cursor = page.next
        if cursor is None:
            return out


def test_online_window_and_pages(fleet: Any) -> None:
    ids = _fleet_of(fleet, 7)
    window = fleet.settings.offline_window
    assert window == 900  # 3 x the 300 s report interval
    with fleet.db.session() as s:
        s.get_one(Host, ids[0]).last_seen = queries.utcnow() - dt.timedelta(seconds=window + 1)
    every = _walk(lambda **kw: queries.hosts(fleet.db, window=window, limit=3, **kw))
    assert sorted(h["id"] for h in every) == sorted(ids)
    offline = queries.hosts(fleet.db, window=window, state="offline").items
    assert [h["id"] for h in offline] == [ids[0]]
    assert len(queries.hosts(fleet.db, window=window, state="online").items) == 6
    arts = _walk(lambda **kw: queries.artifacts(fleet.db, limit=4, **kw))
    assert len(arts) == 21 and len({a["id"] for a in arts}) == 21
    one = queries.artifacts(fleet.db, host_id=ids[3]).items
    assert {a["path"] for a in one} == {f"/m/3/{j}" for j in range(3)}
    v = _walk(lambda **kw: queries.violations(fleet.db, severity="medium", limit=2, **kw))
    assert len(v) == 7
    assert queries.violations(fleet.db, severity="high").items == []
    assert queries.licenses(fleet.db) == [{"license": "apache-2.0", "artifacts": 21, "hosts": 7}]
    assert queries.trend(fleet.db, 7)[-1]["by_severity"]["medium"] == 7
    text = queries.metrics(fleet.db, window=window)
    assert 'modelward_fleet_hosts{state="offline"} 1' in text
    assert 'modelward_fleet_violations{severity="medium"} 7' in text
    with pytest.raises(BadRequest):
        queries.hosts(fleet.db, window=window, limit=0)
    with pytest.raises(BadRequest):
        queries.hosts(fleet.db, window=window, state="asleep")
