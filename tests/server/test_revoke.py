"""Listing and revoking API tokens and Ollama keys: revocation takes effect at once, everywhere.

A revoked API token gets 401 on the hub API, the Hugging Face routes, ``/v2/`` (Bearer and Basic),
``/v2/token`` and the web UI (session cookie); the registry tokens obtained with it before stop
working on their next use, and so do those of a revoked Ollama key, even after the key is
registered again. Every test runs on SQLite and on PostgreSQL (the ``db_url`` fixture).
"""

from __future__ import annotations

import base64
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelward.hub import ollama_auth as oa
from modelward.server.auth import create_token, revoke_token
from modelward.store import migrate
from modelward.store.db import Database
from tests.server.conftest import auth, make_model_dir, publish

API = "/api/v1/hub"
HTML = {"Accept": "text/html,application/xhtml+xml"}
ADMIN = "admin (MODELWARD_ADMIN_TOKEN)"  # the name of the tests' admin token


def _basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"any:{token}".encode()).decode()}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token_id(client: Any, name: str) -> int:
    rows = client.get(f"{API}/tokens", headers=auth()).json()["tokens"]
    (found,) = [r["id"] for r in rows if r["name"] == name]
    return int(found)


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert err["code"] == code, err
    return err


def _login_cookie(client: Any, token: str) -> str:
    page = client.get("/login", headers=HTML)
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert found, "the login page has no CSRF field"
    r = client.post(
        "/login",
        data={"csrf": found.group(1), "token": token, "next": "/review"},
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    cookie: str = r.cookies["modelward_session"]
    return cookie


def _ollama_token(client: Any, key: Ed25519PrivateKey) -> Any:
    """Ollama's signed token request (the realm is this test client's host)."""
    url = oa.token_request_url("http://testserver/v2/token", "modelward", "repository:acme/x:pull")
    return client.get(url, headers={"Authorization": oa.make_authorization(key, url)})


# ------------------------------------------------------------------------------------ API tokens
def test_list_and_revoke_tokens(client: Any) -> None:
    made = client.post(f"{API}/tokens", json={"role": "reader", "name": "ci"}, headers=auth())
    assert made.status_code == 201
    tid = made.json()["id"]
    rows = client.get(f"{API}/tokens", headers=auth()).json()["tokens"]
    assert [r["name"] for r in rows] == [ADMIN, "ci"]
    ci = rows[1]
    assert set(ci) == {"id", "name", "role", "created_at", "created_by", "revoked_at", "revoked"}
    assert (ci["id"], ci["role"], ci["created_by"], ci["revoked"]) == (tid, "reader", ADMIN, False)
    assert ci["revoked_at"] is None and ci["created_at"].endswith("+00:00")
    listing = client.get(f"{API}/tokens", headers=auth()).text
    assert made.json()["token"] not in listing  # never the token ...
    from modelward.server.auth import hash_token

    assert hash_token(made.json()["token"]) not in listing  # ... nor its hash

    r = client.delete(f"{API}/tokens/{tid}", params={"reason": "leaked"}, headers=auth())
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["revoked"] is True and doc["already_revoked"] is False and doc["revoked_at"]
    again = client.delete(f"{API}/tokens/{tid}", headers=auth())
    assert again.status_code == 200
    assert again.json()["already_revoked"] is True
    assert again.json()["revoked_at"] == doc["revoked_at"]  # idempotent: the first time stays
    _error(client.delete(f"{API}/tokens/999999", headers=auth()), 404, "not_found")
    _error(client.delete(f"{API}/tokens/99999999999999999999", headers=auth()), 404, "not_found")
    _error(client.delete(f"{API}/tokens/abc", headers=auth()), 422, "invalid_request")

    events = client.get(f"{API}/audit", headers=auth()).json()["events"]
    revokes = [e for e in events if e["action"] == "token-revoke"]
    assert len(revokes) == 1  # the no-op second revocation changed nothing
    assert revokes[0]["reason"] == "leaked" and revokes[0]["actor"] == ADMIN
    assert revokes[0]["detail"] == {"id": tid, "name": "ci", "role": "reader"}


def test_the_last_active_admin_token_cannot_be_revoked(client: Any) -> None:
    first = _token_id(client, ADMIN)
    err = _error(client.delete(f"{API}/tokens/{first}", headers=auth()), 409, "last_admin_token")
    assert (
        "last active admin token" in err["message"]
        and "token create --role admin" in err["message"]
    )
    second = client.post(f"{API}/tokens", json={"role": "admin", "name": "a2"}, headers=auth())
    other = second.json()["token"]
    # a reader or revoked admin does not count: only active admin tokens keep the hub open
    client.post(f"{API}/tokens", json={"role": "reader", "name": "r"}, headers=auth())
    r = client.delete(f"{API}/tokens/{first}", headers=auth(other))
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert client.get(f"{API}/tokens", headers=auth()).status_code == 401
    _error(
        client.delete(f"{API}/tokens/{second.json()['id']}", headers=auth(other)),
        409,
        "last_admin_token",
    )
    assert client.get(f"{API}/tokens", headers=auth(other)).status_code == 200


def test_two_admins_revoking_each_other_at_once_leave_one(app: Any) -> None:
    """The active admin rows are locked before counting: of two concurrent revocations of the
    last two admin tokens, exactly one succeeds (PostgreSQL row locks, SQLite's one writer)."""
    db = app.state.db
    create_token(db, "a2", "admin", "tests")
    from modelward.server.auth import list_tokens

    ids = [r["id"] for r in list_tokens(db) if r["role"] == "admin"]
    assert len(ids) == 2
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def revoke(tid: int) -> None:
        barrier.wait()
        try:
            revoke_token(db, tid)
            outcomes.append("revoked")
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=revoke, args=(tid,)) for tid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["LastAdminToken", "revoked"]
    assert sum(not r["revoked"] for r in list_tokens(db) if r["role"] == "admin") == 1


def test_a_revoked_token_gets_401_everywhere_at_once(client: Any, app: Any, tmp_path: Path) -> None:
    publish(app.state.hub, "acme/tiny", make_model_dir(tmp_path))
    made = client.post(f"{API}/tokens", json={"role": "reviewer", "name": "rv"}, headers=auth())
    token = made.json()["token"]
    # registry tokens obtained before the revocation, with Basic (oras, docker) and with Bearer
    via_basic = client.get("/v2/token", headers=_basic(token)).json()["token"]
    via_bearer = client.get("/v2/token", headers=_bearer(token)).json()["token"]
    cookie = _login_cookie(client, token)
    client.cookies.clear()
    session = {"Cookie": f"modelward_session={cookie}"}
    checks: list[tuple[str, dict[str, str]]] = [
        (f"{API}/repos", _bearer(token)),
        (f"{API}/review", _bearer(token)),
        ("/api/models/acme/tiny", _bearer(token)),
        ("/acme/tiny/resolve/main/config.json", _bearer(token)),
        ("/v2/", _bearer(token)),
        ("/v2/", _basic(token)),
        ("/v2/acme/tiny/tags/list", _basic(token)),
        ("/v2/", _bearer(via_basic)),
        ("/v2/acme/tiny/tags/list", _bearer(via_bearer)),
        ("/review", session),
    ]
    for url, headers in checks:
        r = client.get(url, headers=headers)
        assert r.status_code == 200, (url, r.status_code, r.text[:200])

    r = client.delete(f"{API}/tokens/{made.json()['id']}", headers=auth())
    assert r.status_code == 200 and r.json()["revoked"] is True

    for url, headers in checks:
        r = client.get(url, headers=headers)
        assert r.status_code == 401, (url, r.status_code, r.text[:200])
    for headers in (_basic(token), _bearer(token)):  # no new registry token either
        r = client.get("/v2/token", headers=headers)
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    # the web UI sends a browser with the revoked session to the log-in page, which refuses it
    r = client.get("/review", headers={**HTML, **session}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    page = client.get("/login", headers=HTML)
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert csrf
    r = client.post(
        "/login", data={"csrf": csrf.group(1), "token": token, "next": "/"}, headers=HTML
    )
    assert r.status_code == 401 and "unknown or revoked" in r.text


def test_revocation_is_seen_by_every_replica(settings: Any) -> None:
    """Two server processes on one database: a token revoked through one fails on the other."""
    from fastapi.testclient import TestClient

    from modelward.server.app import create_app

    one, two = create_app(settings), create_app(settings)
    try:
        with TestClient(one) as a, TestClient(two) as b:
            made = a.post(f"{API}/tokens", json={"role": "reader"}, headers=auth()).json()
            registry = b.get("/v2/token", headers=_basic(made["token"])).json()["token"]
            assert b.get("/v2/", headers=_bearer(registry)).status_code == 200
            assert a.delete(f"{API}/tokens/{made['id']}", headers=auth()).status_code == 200
            assert b.get(f"{API}/repos", headers=auth(made["token"])).status_code == 401
            assert b.get("/v2/", headers=_bearer(registry)).status_code == 401
    finally:
        one.state.db.dispose()
        two.state.db.dispose()


# ----------------------------------------------------------------------------------- Ollama keys
def test_ollama_keys_list_revoke_and_register_again(client: Any) -> None:
    key = Ed25519PrivateKey.generate()
    line = oa.public_key_line(key, "alice@laptop")
    fingerprint = oa.parse_public_key(line).fingerprint
    r = client.post(
        f"{API}/ollama-keys", json={"public_key": line, "name": "alice"}, headers=auth()
    )
    assert r.status_code == 201, r.text
    kid = r.json()["id"]
    other = client.post(
        f"{API}/ollama-keys",
        json={"public_key": oa.public_key_line(Ed25519PrivateKey.generate()), "name": "bob"},
        headers=auth(),
    ).json()
    keys = client.get(f"{API}/ollama-keys", headers=auth()).json()["keys"]
    assert [(k["id"], k["name"], k["fingerprint"], k["revoked"]) for k in keys] == [
        (kid, "alice", fingerprint, False),
        (other["id"], "bob", other["fingerprint"], False),
    ]
    assert keys[0]["role"] == "reader" and keys[0]["created_by"] == ADMIN
    assert keys[0]["revoked_at"] is None and keys[0]["public_key"] == " ".join(line.split()[:2])

    got = _ollama_token(client, key)
    assert got.status_code == 200, got.text
    registry = got.json()["token"]
    assert client.get("/v2/", headers=_bearer(registry)).status_code == 200

    # by fingerprint (it may hold '/' and '+': quoted, as the client does)
    from urllib.parse import quote

    r = client.delete(
        f"{API}/ollama-keys/{quote(fingerprint, safe='')}",
        params={"reason": "laptop stolen"},
        headers=auth(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["revoked"] is True and r.json()["already_revoked"] is False
    assert client.get("/v2/", headers=_bearer(registry)).status_code == 401  # at once
    refused = _ollama_token(client, key)
    assert refused.status_code == 401 and "was revoked" in refused.json()["error"]["message"]
    keys = client.get(f"{API}/ollama-keys", headers=auth()).json()["keys"]
    assert [k["revoked"] for k in keys] == [True, False]  # the record stays
    again = client.delete(f"{API}/ollama-keys/{kid}", headers=auth())  # by id: a no-op now
    assert again.status_code == 200 and again.json()["already_revoked"] is True
    _error(client.delete(f"{API}/ollama-keys/424242", headers=auth()), 404, "not_found")
    _error(client.delete(f"{API}/ollama-keys/SHA256:nope/x+y", headers=auth()), 404, "not_found")

    # registering it again is an explicit act; the tokens issued before stay dead
    r = client.post(
        f"{API}/ollama-keys",
        json={"public_key": line, "name": "alice-new", "role": "reviewer"},
        headers=auth(),
    )
    assert r.status_code == 201, r.text
    assert r.json()["id"] == kid and r.json()["revoked"] is False
    assert r.json()["role"] == "reviewer"
    dup = client.post(f"{API}/ollama-keys", json={"public_key": line, "name": "x"}, headers=auth())
    _error(dup, 409, "conflict")
    assert client.get("/v2/", headers=_bearer(registry)).status_code == 401
    fresh = _ollama_token(client, key)
    assert fresh.status_code == 200, fresh.text
    assert client.get("/v2/", headers=_bearer(fresh.json()["token"])).status_code == 200

    events = client.get(f"{API}/audit", headers=auth()).json()["events"]
    actions = [e["action"] for e in reversed(events) if e["action"].startswith("ollama-key")]
    assert actions == ["ollama-key-add", "ollama-key-add", "ollama-key-revoke", "ollama-key-add"]
    (revoked,) = [e for e in events if e["action"] == "ollama-key-revoke"]
    assert revoked["reason"] == "laptop stolen"
    assert revoked["detail"] == {
        "id": kid,
        "name": "alice",
        "role": "reader",
        "fingerprint": fingerprint,
    }


def test_registry_tokens_of_older_builds_follow_the_key(client: Any, app: Any) -> None:
    """A registry token issued before this build (``via`` without the registration time) works
    while its key is active and stops when the key is revoked."""
    from types import SimpleNamespace

    from modelward.hub import urlsign
    from modelward.server.api.oci_auth import TOKEN_TTL, url_key

    key = Ed25519PrivateKey.generate()
    line = oa.public_key_line(key)
    client.post(f"{API}/ollama-keys", json={"public_key": line, "name": "old"}, headers=auth())
    blob = line.split()[1]
    signing_key = url_key(SimpleNamespace(app=app))  # type: ignore[arg-type]
    old = urlsign.issue_token(
        signing_key,
        "ollama:old",
        "reader",
        ttl=TOKEN_TTL,
        via="ollama:" + blob,
    )
    assert client.get("/v2/", headers=_bearer(old)).status_code == 200
    assert client.delete(f"{API}/ollama-keys/1", headers=auth()).status_code == 200
    assert client.get("/v2/", headers=_bearer(old)).status_code == 401


# ------------------------------------------------------------------------------------- migration
def test_migration_adds_revoked_at_and_keeps_registered_keys(db_url: str) -> None:
    db = Database(db_url)
    try:
        migrate.upgrade(db, "0003")
        blob = oa.public_key_line(Ed25519PrivateKey.generate()).split()[1]
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO ollama_keys (name, public_key, role, created_at, created_by) "
                    "VALUES ('k', :b, 'reader', CURRENT_TIMESTAMP, 'tests')"
                ),
                {"b": blob},
            )
        migrate.upgrade(db)
        columns = {c["name"] for c in sa.inspect(db.engine).get_columns("ollama_keys")}
        assert "revoked_at" in columns
        from modelward.server.auth import list_ollama_keys

        (key,) = list_ollama_keys(db)
        assert key["name"] == "k" and key["revoked"] is False
    finally:
        db.dispose()


@pytest.mark.parametrize("ident", ["0", "-1", "SHA256:", "99999999999999999999"])
def test_odd_key_identifiers_are_not_found(client: Any, ident: str) -> None:
    r = client.delete(f"{API}/ollama-keys/{ident}", headers=auth())
    _error(r, 404, "not_found")


def test_a_bad_reason_changes_nothing(client: Any) -> None:
    """A reason the audit log cannot hold is refused before the token is revoked (PostgreSQL
    cannot store a NUL): no revocation without its audit record."""
    made = client.post(f"{API}/tokens", json={"role": "reader"}, headers=auth()).json()
    r = client.delete(f"{API}/tokens/{made['id']}", params={"reason": "a\0b"}, headers=auth())
    _error(r, 400, "bad_request")
    assert client.get(f"{API}/repos", headers=auth(made["token"])).status_code == 200
    r = client.delete(f"{API}/ollama-keys/1", params={"reason": "a\0b"}, headers=auth())
    _error(r, 400, "bad_request")
