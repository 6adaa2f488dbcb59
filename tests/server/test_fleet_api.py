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


# ---------------------------------------------------------------------------------- console API
ROUTES: list[tuple[str, str, str]] = [
    ("GET", f"{FLEET}/hosts", "review"),
    ("GET", f"{FLEET}/hosts/0123", "review"),
    ("POST", f"{FLEET}/hosts/0123/revoke", "admin"),
    ("GET", f"{FLEET}/secrets", "admin"),
    ("POST", f"{FLEET}/secrets", "admin"),
    ("POST", f"{FLEET}/secrets/1/revoke", "admin"),
    ("GET", f"{FLEET}/artifacts", "review"),
    ("GET", f"{FLEET}/violations", "review"),
    ("GET", f"{FLEET}/violations/summary", "review"),
    ("GET", f"{FLEET}/runtimes", "review"),
    ("GET", f"{FLEET}/packages", "review"),
    ("GET", f"{FLEET}/vulnerable", "review"),
    ("GET", f"{FLEET}/licenses", "review"),
    ("GET", f"{FLEET}/trend", "review"),
    ("GET", f"{FLEET}/policy", "review"),
    ("POST", f"{FLEET}/policy", "admin"),
    ("GET", "/api/v1/events", "review"),
    ("GET", "/metrics", "review"),
    ("GET", f"{FLEET}/hosts/0123/cyclonedx", "review"),
    ("GET", f"{FLEET}/cyclonedx", "review"),
]


def test_every_fleet_route_refuses_the_wrong_roles(client: Any, app: Any) -> None:
    from modelward.server.auth import create_token

    db = app.state.db
    tokens = {
        r: create_token(db, f"t-{r}", r, "tests") for r in ("reviewer", "publisher", "reader")
    }
    host_key = _enroll(client, app)["host_key"]
    for method, path, need in ROUTES:
        body = {"json": {}} if method == "POST" else {}
        _error(client.request(method, path, **body), 401, "unauthorized")
        _error(client.request(method, path, headers=auth(host_key), **body), 401, "unauthorized")
        wrong = ["publisher", "reader"] + (["reviewer"] if need == "admin" else [])
        for role in wrong:
            r = client.request(method, path, headers=auth(tokens[role]), **body)
            _error(r, 403, "forbidden")
        if need == "review":  # a reviewer may read (404 for the made-up host/bundle is fine)
            r = client.request(method, path, headers=auth(tokens["reviewer"]), **body)
            assert r.status_code in (200, 404), (path, r.text)


def _populate(client: Any, app: Any, hosts: int = 5) -> list[dict[str, Any]]:
    r = client.post(f"{FLEET}/secrets", json={"team": "red"}, headers=auth())
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    shared = "ab" * 32
    out = []
    for n in range(hosts):
        e = _enroll(client, app, n, secret)
        runtime = {
            "name": "ollama",
            "version": "0.1.0",
            "running": True,
            "listen": [{"address": "0.0.0.0", "port": 11434, "exposed": n % 2 == 0}],
            "findings": [{"rule": "runtime.vulnerable-version", "severity": "high"}]
            if n == 0
            else [],
        }
        body = report(
            1,
            artifacts=[
                artifact(f"/m/{n}/shared", shared, license={"id": "apache-2.0"}),
                artifact(f"/m/{n}/own", license={"id": "llama3.1"}),
            ],
            decisions=[decision("unapproved-model", f"/m/{n}/own", "high" if n else "critical")],
            runtimes=[runtime],
            packages=[{"name": "vllm", "version": "0.1", "environment": "/venv", "findings": []}],
        )
        r = client.post(f"{AGENT}/report", json=body, headers=auth(e["host_key"]))
        assert r.json()["applied"], r.text
        out.append(e)
    return out


def _all(client: Any, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {**params, **({"cursor": cursor} if cursor else {})}
        r = client.get(path, params=q, headers=auth())
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next"]
        if cursor is None:
            return items


def test_views_filters_and_pagination(client: Any, app: Any, tmp_path: Path) -> None:
    from tests.server.conftest import make_model_dir, publish

    enrolled = _populate(client, app, hosts=5)
    hosts = _all(client, f"{FLEET}/hosts", limit=2)
    assert len(hosts) == 5 and len({h["id"] for h in hosts}) == 5
    assert {h["state"] for h in hosts} == {"online"} and hosts[0]["team"] == "red"
    assert _all(client, f"{FLEET}/hosts", state="offline") == []
    one = client.get(f"{FLEET}/hosts/{enrolled[0]['host_id']}", headers=auth()).json()
    assert one["artifacts"] == 2 and one["violations"] == {"critical": 1}
    assert one["runtimes"][0]["vulnerable"] and one["agent"]["rss_bytes"] == 1

    shared = _all(client, f"{FLEET}/artifacts", sha256="ab" * 32, limit=2)
    assert len(shared) == 5 and {a["hostname"] for a in shared} == {f"host-{n}" for n in range(5)}
    assert len(_all(client, f"{FLEET}/artifacts", unapproved="true", limit=3)) == 10
    # approving the shared file's hub revision makes those artifacts approved
    folder = make_model_dir(tmp_path)
    rev = publish(app.state.hub, "acme/tiny", folder)
    digest = next(f.sha256 for f in rev.files if f.path == "model.safetensors")
    body = report(2, base=1, artifacts=[artifact("/m/0/approved", digest)], decisions=[])
    r = client.post(f"{AGENT}/report", json=body, headers=auth(enrolled[0]["host_key"]))
    assert r.json()["applied"]
    unapproved = _all(client, f"{FLEET}/artifacts", unapproved="true")
    assert "/m/0/approved" not in {a["path"] for a in unapproved} and len(unapproved) == 10
    mine = _all(client, f"{FLEET}/artifacts", host=enrolled[0]["host_id"])
    assert {a["path"]: a["approved"] for a in mine}["/m/0/approved"] is True

    v = _all(client, f"{FLEET}/violations", severity="high", limit=1)
    assert len(v) == 4 and {x["rule"] for x in v} == {"unapproved-model"}
    assert _all(client, f"{FLEET}/violations", rule="nope") == []
    summary = client.get(f"{FLEET}/violations/summary", headers=auth()).json()["items"]
    assert [(s["severity"], s["hosts"]) for s in summary] == [("high", 4)]  # host 0: now none
    exposed = _all(client, f"{FLEET}/runtimes", exposed="true")
    assert len(exposed) == 3
    vuln = client.get(f"{FLEET}/vulnerable", headers=auth()).json()["items"]
    assert vuln == [{"kind": "runtime", "name": "ollama", "version": "0.1.0", "hosts": 1}]
    assert len(_all(client, f"{FLEET}/packages", name="vllm")) == 5
    lic = client.get(f"{FLEET}/licenses", headers=auth()).json()["items"]
    assert {x["license"]: x["hosts"] for x in lic} == {"apache-2.0": 5, "llama3.1": 5}
    trend = client.get(f"{FLEET}/trend", headers=auth()).json()["items"]
    assert len(trend) == 1 and trend[0]["total"] == 4 and trend[0]["by_severity"]["high"] == 4
    _error(client.get(f"{FLEET}/violations?severity=huge", headers=auth()), 400, "bad_request")
    _error(client.get(f"{FLEET}/artifacts?cursor=x", headers=auth()), 400, "bad_request")
    _error(client.get(f"{FLEET}/hosts/nope", headers=auth()), 404, "host_not_found")

    r = client.post(f"{FLEET}/hosts/{enrolled[1]['host_id']}/revoke", headers=auth())
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    assert len(_all(client, f"{FLEET}/hosts", state="revoked")) == 1


def test_events_metrics_secrets_and_policy_push(client: Any, app: Any, tmp_path: Path) -> None:
    from modelward.fleet import bundle

    enrolled = _populate(client, app, hosts=2)
    r = client.get("/api/v1/events", headers=auth())
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [__import__("json").loads(x) for x in r.text.splitlines()]
    kinds = [e["modelward_kind"] for e in lines]
    assert kinds == ["enrollment", "violation", "enrollment", "violation"]
    assert lines[1]["class_uid"] == 2004 and lines[1]["severity"] == "Critical"
    assert lines[0]["device"]["hostname"] == "host-0"
    cursor = r.headers["x-next-cursor"]
    client.post(f"{FLEET}/hosts/{enrolled[0]['host_id']}/revoke", headers=auth())
    r = client.get("/api/v1/events", params={"since": cursor}, headers=auth())
    assert [__import__("json").loads(x)["modelward_kind"] for x in r.text.splitlines()] == [
        "revocation"
    ]
    again = client.get(
        "/api/v1/events", params={"since": r.headers["x-next-cursor"]}, headers=auth()
    )
    assert again.text == "" and again.headers["x-next-cursor"] == r.headers["x-next-cursor"]

    m = client.get("/metrics", headers=auth())
    assert m.headers["content-type"].startswith("text/plain")
    assert 'modelward_fleet_hosts{state="online"} 1' in m.text
    assert 'modelward_fleet_hosts{state="revoked"} 1' in m.text
    assert "modelward_fleet_artifacts 4" in m.text

    secrets = client.get(f"{FLEET}/secrets", headers=auth()).json()["items"]
    assert len(secrets) == 1 and "secret" not in secrets[0]
    client.post(f"{FLEET}/secrets/{secrets[0]['id']}/revoke", headers=auth())
    r = client.post(f"{AGENT}/enroll", json={"secret": "mwe_x", "host": host_info(9)})
    _error(r, 401, "unauthorized")

    content = bundle.read_folder(policy_dir(tmp_path))
    r = client.post(f"{FLEET}/policy", json=content, headers=auth())
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.json()["files"] == ["org.rego"]
    doc = client.get(f"{AGENT}/policy", headers=auth(enrolled[1]["host_key"])).json()
    assert bundle.verify(doc, r.json()["public_key"]) and doc["waivers"] == content["waivers"]
    assert client.get(f"{FLEET}/policy", headers=auth()).json()["etag"] == doc["etag"]
    bad = {**content, "settings": {"allowed_formatz": ["gguf"]}}
    _error(client.post(f"{FLEET}/policy", json=bad, headers=auth()), 400, "bad_request")
    evil = {**content, "files": {"../x.rego": "package x"}}
    _error(client.post(f"{FLEET}/policy", json=evil, headers=auth()), 400, "bad_request")


def test_cyclonedx_exports(client: Any, app: Any) -> None:
    enrolled = _populate(client, app, hosts=2)
    r = client.get(f"{FLEET}/hosts/{enrolled[0]['host_id']}/cyclonedx", headers=auth())
    assert r.status_code == 200 and "cyclonedx" in r.headers["content-type"]
    bom = r.json()
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    assert bom["metadata"]["component"]["name"] == "host-0"
    models = [c for c in bom["components"] if c["type"] == "machine-learning-model"]
    assert {h["content"] for c in models for h in c.get("hashes", [])} >= {"ab" * 32}
    assert any(c["type"] == "application" and c["name"] == "ollama" for c in bom["components"])
    fleet = client.get(f"{FLEET}/cyclonedx", headers=auth()).json()
    devices = fleet["components"]
    assert sorted(d["name"] for d in devices) == ["host-0", "host-1"]
    assert all(len(d["components"]) == 4 for d in devices)  # 2 models, 1 runtime, 1 package
    refs = [c["bom-ref"] for d in devices for c in d["components"]]
    assert len(refs) == len(set(refs))  # unique across hosts
    assert client.get(f"{FLEET}/cyclonedx?team=nobody", headers=auth()).json()["components"] == []
    _error(client.get(f"{FLEET}/hosts/nope/cyclonedx", headers=auth()), 404, "host_not_found")
