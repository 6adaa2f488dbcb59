"""Fleet HTTP API: the agent routes (/api/v1/agent/) and the console routes (/api/v1/fleet/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tests.fleet.conftest import artifact, decision, host_info, report
from tests.fleet.test_bundle import policy_dir
from tests.server.conftest import ADMIN_TOKEN, auth

AGENT = "/api/v1/agent"
FLEET = "/api/v1/fleet"


def _error(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.json()


def _rows(app: Any, table: Any) -> int:
    with app.state.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(table)))


def _secret(app: Any, team: str = "blue") -> str:
    from modelward.server.api.agent import fleet_of

    secret: str = fleet_of(app).create_secret(team, "tests").secret
    return secret


def _enroll(client: Any, app: Any, n: int = 1, secret: str | None = None) -> dict[str, Any]:
    r = client.post(
        f"{AGENT}/enroll", json={"secret": secret or _secret(app), "host": host_info(n)}
    )
    assert r.status_code == 201, r.text
    doc: dict[str, Any] = r.json()
    return doc


def test_enroll_report_policy(client: Any, app: Any, tmp_path: Path) -> None:
    from modelward.fleet import bundle
    from modelward.server.api.agent import fleet_of

    e = _enroll(client, app)
    assert set(e) == {"host_id", "host_key", "report_interval", "bundle_public_key"}
    key = auth(e["host_key"])
    body = report(1, artifacts=[artifact("/m/a")], decisions=[decision("r", "/m/a")])
    r = client.post(f"{AGENT}/report", json=body, headers=key)
    assert r.status_code == 200 and r.json() == {"ack": 1, "applied": True}
    r = client.post(f"{AGENT}/report", json=body, headers=key)
    assert r.json() == {"ack": 1, "applied": False}
    r = client.post(f"{AGENT}/report", json=report(3, base=2), headers=key)
    _error(r, 409, "resync_required")

    _error(client.get(f"{AGENT}/policy", headers=key), 404, "no_policy_bundle")
    content = bundle.read_folder(policy_dir(tmp_path))
    fleet = fleet_of(app)
    bundle.push(fleet.db, content, fleet.bundle_private_key, "tests")
    r = client.get(f"{AGENT}/policy", headers=key)
    assert r.status_code == 200
    doc = r.json()
    assert r.headers["etag"] == f'"{doc["etag"]}"' and doc["version"] == 1
    assert bundle.verify(doc, e["bundle_public_key"])
    for sent in (r.headers["etag"], doc["etag"], f'W/"{doc["etag"]}"'):
        again = client.get(f"{AGENT}/policy", headers={**key, "If-None-Match": sent})
        assert again.status_code == 304 and again.content == b""
    stale = client.get(f"{AGENT}/policy", headers={**key, "If-None-Match": '"old"'})
    assert stale.status_code == 200


def test_forged_revoked_or_missing_keys_store_nothing(client: Any, app: Any) -> None:
    from modelward.server.api.agent import fleet_of
    from modelward.store.db import AppliedReport, Host, HostArtifact

    _error(
        client.post(f"{AGENT}/enroll", json={"secret": "mwe_forged", "host": host_info()}),
        401,
        "unauthorized",
    )
    assert _rows(app, Host) == 0
    e = _enroll(client, app)
    body = report(1, artifacts=[artifact("/a")])
    for headers in (
        {},
        auth("mwh_forged"),
        auth(ADMIN_TOKEN),  # an API token is not a host key
        {"Authorization": "Basic bXdoX3g6eA=="},
    ):
        _error(client.post(f"{AGENT}/report", json=body, headers=headers), 401, "unauthorized")
        _error(client.get(f"{AGENT}/policy", headers=headers), 401, "unauthorized")
    # a forged key with a body that is not even JSON: still 401, never 400/422
    r = client.post(f"{AGENT}/report", content=b"{oops", headers=auth("mwh_forged"))
    _error(r, 401, "unauthorized")
    fleet_of(app).revoke_host(e["host_id"], "tests")
    r = client.post(f"{AGENT}/report", json=body, headers=auth(e["host_key"]))
    _error(r, 401, "host_key_revoked")
    assert _rows(app, AppliedReport) == 0 and _rows(app, HostArtifact) == 0
    r = client.post(f"{AGENT}/enroll", json={"secret": _secret(app), "host": host_info()})
    _error(r, 401, "host_key_revoked")


def test_bad_report_bodies(client: Any, app: Any) -> None:
    key = auth(_enroll(client, app)["host_key"])
    _error(client.post(f"{AGENT}/report", content=b"{oops", headers=key), 400, "bad_request")
    _error(client.post(f"{AGENT}/report", json=[1], headers=key), 400, "bad_request")
    bad = {**report(1), "report_id": "x"}
    _error(client.post(f"{AGENT}/report", json=bad, headers=key), 400, "bad_request")
    r = client.post(f"{AGENT}/enroll", json={"secret": "mwe_x", "host": {"hostname": "h"}})
    _error(r, 422, "invalid_request")
