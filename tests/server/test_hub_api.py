"""The /api/v1/hub/ JSON API: uploads, revisions, review workflow, imports, tokens, keys, roles."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.inventory.test_license import APACHE
from tests.server.conftest import ADMIN_TOKEN, auth, make_model_dir, publish, start_live

API = "/api/v1/hub"
EVIL_PICKLE = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
"""A pickle that would call os.system("true") if loaded (GLOBAL opcode, by hand); only scanned."""


def _tokens(live_or_app: Any) -> dict[str, str]:
    from modelward.server.auth import create_token

    db = live_or_app.state.db
    return {r: create_token(db, f"t-{r}", r, "tests") for r in ("reviewer", "publisher", "reader")}


@pytest.fixture
def tokens(app: Any) -> dict[str, str]:
    return {"admin": ADMIN_TOKEN, **_tokens(app)}


def _files(folder: Path) -> list[tuple[str, bytes]]:
    return [
        (p.relative_to(folder).as_posix(), p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def _push(client: Any, token: str, repo: str, folder: Path, tag: str | None = None) -> Any:
    body = []
    for path, data in _files(folder):
        digest = hashlib.sha256(data).hexdigest()
        head = client.head(f"{API}/blobs/{digest}", headers=auth(token))
        if head.status_code == 404:
            r = client.put(f"{API}/blobs/{digest}", content=data, headers=auth(token))
            assert r.status_code == 201, r.text
        body.append({"path": path, "sha256": digest, "size": len(data)})
    return client.post(
        f"{API}/repos/{repo}/revisions",
        json={"files": body, "provenance": {"kind": "upload", "source": "t"}, "tag": tag},
        headers=auth(token),
    )


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert err["status"] == status and err["code"] == code, err
    return err


# ------------------------------------------------------------------------------------ the workflow
def test_push_review_approve_sign_verify(
    client: Any, tokens: dict[str, str], tmp_path: Path
) -> None:
    from modelward.hub.signing import verify_folder

    folder = make_model_dir(tmp_path)
    r = _push(client, tokens["publisher"], "acme/tiny", folder, tag="v1")
    assert r.status_code == 201, r.text
    rev = r.json()
    assert rev["state"] == "in_review" and len(rev["commit"]) == 40
    assert rev["provenance"]["uploader"] == "t-publisher"  # the caller, whatever the client says
    assert rev["scan"]["summary"] is not None
    # idempotent: the same files are the same revision, nothing uploaded twice
    again = _push(client, tokens["publisher"], "acme/tiny", folder)
    assert again.json()["commit"] == rev["commit"]
    queue = client.get(f"{API}/review", headers=auth(tokens["reviewer"])).json()["revisions"]
    assert [q["commit"] for q in queue] == [rev["commit"]]
    # a reader sees nothing yet: not approved
    _error(
        client.get(
            f"{API}/repos/acme/tiny/revisions/{rev['commit']}", headers=auth(tokens["reader"])
        ),
        403,
        "not_approved",
    )
    assert client.get(f"{API}/repos", headers=auth(tokens["reader"])).json()["repos"] == []
    ok = client.post(
        f"{API}/repos/acme/tiny/revisions/{rev['commit']}/approve",
        json={"reason": "scan clean"},
        headers=auth(tokens["reviewer"]),
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["state"] == "approved" and ok.json()["main"] is True
    assert client.get(f"{API}/review", headers=auth(tokens["reviewer"])).json()["revisions"] == []
    repos = client.get(f"{API}/repos", headers=auth(tokens["reader"])).json()["repos"]
    assert [(x["name"], x["main"], x["tags"]) for x in repos] == [
        ("acme/tiny", rev["commit"], ["v1"])
    ]
    for ref in ("main", "v1", rev["commit"]):
        got = client.get(f"{API}/repos/acme/tiny/revisions/{ref}", headers=auth(tokens["reader"]))
        assert got.json()["commit"] == rev["commit"]
    sig = client.get(
        f"{API}/repos/acme/tiny/revisions/main/signature", headers=auth(tokens["reader"])
    ).json()
    bundle = base64.b64decode(sig["bundle"])
    assert verify_folder(folder, bundle, sig["public_key"].encode()).ok
    (folder / "config.json").write_text('{"model_type": "evil"}')
    bad = verify_folder(folder, bundle, sig["public_key"].encode())
    assert not bad.ok and [p.path for p in bad.problems] == ["config.json"]
    events = client.get(f"{API}/audit?repo=acme/tiny", headers=auth(tokens["reviewer"])).json()
    actions = [e["action"] for e in events["events"]]
    assert "approve" in actions and all(e["repo"] == "acme/tiny" for e in events["events"])


def test_reject_and_revoke(client: Any, tokens: dict[str, str], tmp_path: Path) -> None:
    one = _push(client, tokens["publisher"], "acme/m", make_model_dir(tmp_path, "a")).json()
    two = _push(
        client, tokens["publisher"], "acme/m", make_model_dir(tmp_path, "b", b"\0" * 8)
    ).json()
    rv = auth(tokens["reviewer"])
    r = client.post(
        f"{API}/repos/acme/m/revisions/{two['commit']}/reject", json={"reason": "no"}, headers=rv
    )
    assert r.json()["state"] == "rejected" and r.json()["reason"] == "no"
    _error(
        client.post(
            f"{API}/repos/acme/m/revisions/{two['commit']}/approve",
            json={"reason": "x"},
            headers=rv,
        ),
        409,
        "conflict",
    )
    client.post(
        f"{API}/repos/acme/m/revisions/{one['commit']}/approve", json={"reason": "ok"}, headers=rv
    )
    r = client.post(
        f"{API}/repos/acme/m/revisions/{one['commit']}/revoke", json={"reason": "CVE"}, headers=rv
    )
    assert r.json()["state"] == "revoked"
    _error(
        client.get(f"{API}/repos/acme/m/revisions/main", headers=auth(tokens["reader"])),
        403,
        "not_approved",
    )
    _error(
        client.get(f"{API}/repos/acme/m/revisions/{one['commit']}", headers=auth(tokens["reader"])),
        403,
        "revoked",
    )
    _error(
        client.post(f"{API}/repos/acme/m/revisions/main/approve", json={"reason": ""}, headers=rv),
        422,
        "invalid_request",
    )


def test_critical_refused_high_needs_override(
    client: Any, tokens: dict[str, str], tmp_path: Path
) -> None:
    rv = auth(tokens["reviewer"])
    evil = make_model_dir(tmp_path, "evil")
    (evil / "evil.pkl").write_bytes(EVIL_PICKLE)
    rev = _push(client, tokens["publisher"], "acme/evil", evil).json()
    assert rev["max_severity"] == "critical"
    err = _error(
        client.post(
            f"{API}/repos/acme/evil/revisions/{rev['commit']}/approve",
            json={"reason": "please", "override": True},
            headers=rv,
        ),
        409,
        "approval_refused",
    )
    assert "critical" in err["message"]
    masq = make_model_dir(tmp_path, "masq")
    with zipfile.ZipFile(masq / "extra.safetensors", "w") as z:
        z.writestr("a.txt", "x")
    rev = _push(client, tokens["publisher"], "acme/masq", masq).json()
    assert rev["max_severity"] == "high"
    url = f"{API}/repos/acme/masq/revisions/{rev['commit']}/approve"
    _error(client.post(url, json={"reason": "ok"}, headers=rv), 409, "approval_refused")
    r = client.post(url, json={"reason": "known zip", "override": True}, headers=rv)
    assert r.json()["state"] == "approved"


# ------------------------------------------------------------------------------------- bad input
def test_bad_digests_store_nothing(client: Any, app: Any) -> None:
    h = auth()
    wrong = hashlib.sha256(b"other").hexdigest()
    _error(client.put(f"{API}/blobs/{wrong}", content=b"payload", headers=h), 400, "digest_invalid")
    assert client.head(f"{API}/blobs/{wrong}", headers=h).status_code == 404
    real = hashlib.sha256(b"payload").hexdigest()
    assert client.head(f"{API}/blobs/{real}", headers=h).status_code == 404
    assert list(app.state.hub.blobs.iter_digests()) == []
    _error(client.put(f"{API}/blobs/not-a-digest", content=b"x", headers=h), 400, "digest_invalid")
    # a revision naming a blob that was never uploaded
    r = client.post(
        f"{API}/repos/acme/x/revisions",
        json={"files": [{"path": "a.bin", "sha256": real, "size": 7}]},
        headers=h,
    )
    _error(r, 404, "blob_unknown")
    ok = client.put(f"{API}/blobs/sha256:{real}", content=b"payload", headers=h)
    assert ok.status_code == 201 and ok.json() == {"sha256": real, "size": 7, "created": True}
    assert (
        client.put(f"{API}/blobs/{real}", content=b"payload", headers=h).json()["created"] is False
    )
    head = client.head(f"{API}/blobs/{real}", headers=h)
    assert head.status_code == 200 and head.headers["content-length"] == "7"
    _error(
        client.post(
            f"{API}/repos/acme/x/revisions",
            json={"files": [{"path": "a.bin", "sha256": real, "size": 8}]},
            headers=h,
        ),
        400,
        "bad_request",
    )


@pytest.fixture
def small_client(settings: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from modelward.server.app import create_app

    application = create_app(settings.model_copy(update={"max_upload_bytes": 1000}))
    with TestClient(application) as c:
        yield c, application
    application.state.db.dispose()


def test_oversized_upload_is_413_and_stores_nothing(small_client: Any) -> None:
    client, application = small_client
    data = b"x" * 1001
    digest = hashlib.sha256(data).hexdigest()
    _error(client.put(f"{API}/blobs/{digest}", content=data, headers=auth()), 413, "too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
        for _ in range(11):
            yield b"x" * 100

    _error(client.put(f"{API}/blobs/{digest}", content=chunks(), headers=auth()), 413, "too_large")
    assert list(application.state.hub.blobs.iter_digests()) == []
    fits = b"y" * 1000
    r = client.put(f"{API}/blobs/{hashlib.sha256(fits).hexdigest()}", content=fits, headers=auth())
    assert r.status_code == 201


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/abs/file", "a\\b", ".git/config", "a/../b", "a//b", "nul\x00"]
)
def test_path_traversal_names_refused(client: Any, app: Any, path: str) -> None:
    data = b"content"
    digest = hashlib.sha256(data).hexdigest()
    client.put(f"{API}/blobs/{digest}", content=data, headers=auth())
    r = client.post(
        f"{API}/repos/acme/x/revisions",
        json={"files": [{"path": path, "sha256": digest, "size": len(data)}]},
        headers=auth(),
    )
    _error(r, 400, "invalid_name")
    assert app.state.hub.list_repos(approved_only=False) == []


@pytest.mark.parametrize("repo", ["Acme/x", "acme.io/x", "acme/x/y", "acme/-x"])
def test_bad_repo_names_refused(client: Any, repo: str) -> None:
    r = client.post(f"{API}/repos/{repo}/revisions", json={"files": []}, headers=auth())
    assert r.status_code in (400, 404), r.text
    assert r.json()["error"]["code"] in ("invalid_name", "not_found")


# ----------------------------------------------------------------------------------- access rules
DIGEST = "0" * 64
ROUTES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    # (method, path under /api/v1/hub, body, least role): every route of the API, see the next test
    ("HEAD", "/blobs/{sha256}", None, "publisher"),
    ("PUT", "/blobs/{sha256}", None, "publisher"),
    ("POST", "/repos/{ns}/{name}/revisions", {"files": []}, "publisher"),
    ("GET", "/repos", None, "reader"),
    ("GET", "/repos/{ns}/{name}/revisions/{rev}", None, "reader"),
    ("GET", "/repos/{ns}/{name}/revisions/{rev}/signature", None, "reader"),
    ("GET", "/review", None, "reviewer"),
    ("POST", "/repos/{ns}/{name}/revisions/{rev}/approve", {"reason": "r"}, "reviewer"),
    ("POST", "/repos/{ns}/{name}/revisions/{rev}/reject", {"reason": "r"}, "reviewer"),
    ("POST", "/repos/{ns}/{name}/revisions/{rev}/revoke", {"reason": "r"}, "reviewer"),
    ("POST", "/repos/{ns}/{name}/revisions/{rev}/tags", {"tag": "v2", "reason": "r"}, "reviewer"),
    ("GET", "/audit", None, "reviewer"),
    (
        "POST",
        "/import",
        {"endpoint": "http://127.0.0.1:9", "repo_id": "a/b", "repo": "a/b"},
        "publisher",
    ),
    ("POST", "/tokens", {"role": "reader"}, "admin"),
    ("GET", "/tokens", None, "admin"),
    ("DELETE", "/tokens/{token_id}", None, "admin"),
    ("POST", "/ollama-keys", {"public_key": "x", "name": "n"}, "admin"),
    ("GET", "/ollama-keys", None, "admin"),
    ("DELETE", "/ollama-keys/{key}", None, "admin"),
    ("POST", "/gc", {}, "admin"),
]
ROUTE_PARAMS = {
    "sha256": DIGEST,
    "ns": "acme",
    "name": "x",
    "rev": "main",
    "token_id": "999999",  # unknown: the admin's request is a 404, nothing is revoked
    "key": "SHA256:unknown",
}


def test_the_role_matrix_lists_every_route(app: Any) -> None:
    """A route added to the API without a line in ROUTES fails here (its role would go untested)."""
    served = {
        (method.upper(), path.removeprefix(API))
        for path, ops in app.openapi()["paths"].items()
        if path.startswith(API + "/")
        for method in ops
    }
    assert served == {(method, path) for method, path, _, _ in ROUTES}


ALLOWED = {
    "reader": {"reader", "publisher", "reviewer", "admin"},
    "publisher": {"publisher", "admin"},
    "reviewer": {"reviewer", "admin"},
    "admin": {"admin"},
}


def test_every_route_checks_its_role(client: Any, tokens: dict[str, str]) -> None:
    for method, path, body, need in ROUTES:
        url = API + path.format(**ROUTE_PARAMS)
        r = client.request(method, url, json=body)
        assert r.status_code == 401, (method, url, r.status_code)
        if method != "HEAD":
            assert r.json()["error"]["code"] == "unauthorized"
        r = client.request(method, url, json=body, headers=auth("mw_" + "x" * 43))
        assert r.status_code == 401, (method, url, "bad token")
        for role, token in tokens.items():
            r = client.request(method, url, json=body, headers=auth(token))
            if role in ALLOWED[need]:
                assert r.status_code not in (401, 403) or r.json()["error"]["code"] in (
                    "not_approved",
                    "revoked",
                ), (method, url, role, r.text)
            else:
                assert r.status_code == 403, (method, url, role, r.status_code)
                if method != "HEAD":
                    assert r.json()["error"]["code"] == "forbidden"


# ------------------------------------------------------------------------------ tokens, keys, gc
def test_tokens_keys_and_gc(client: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from modelward.hub.ollama_auth import public_key_line

    r = client.post(f"{API}/tokens", json={"role": "reader", "name": "ci"}, headers=auth())
    assert r.status_code == 201 and r.json()["token"].startswith("mw_")
    assert client.get(f"{API}/repos", headers=auth(r.json()["token"])).status_code == 200
    _error(client.post(f"{API}/tokens", json={"role": "root"}, headers=auth()), 400, "bad_request")
    line = public_key_line(Ed25519PrivateKey.generate(), "alice@laptop")
    r = client.post(
        f"{API}/ollama-keys", json={"public_key": line, "name": "alice"}, headers=auth()
    )
    assert r.status_code == 201 and r.json()["fingerprint"].startswith("SHA256:")
    again = client.post(
        f"{API}/ollama-keys", json={"public_key": line, "name": "a2"}, headers=auth()
    )
    _error(again, 409, "conflict")
    bad = client.post(
        f"{API}/ollama-keys", json={"public_key": "ssh-rsa AAAA", "name": "b"}, headers=auth()
    )
    _error(bad, 400, "invalid_key")
    gc = client.post(f"{API}/gc", json={}, headers=auth()).json()
    assert gc == {"dry_run": True, "blobs": []}
    events = client.get(f"{API}/audit", headers=auth()).json()
    actions = {e["action"]: e for e in events["events"]}
    assert actions["token-create"]["detail"] == {"name": "ci", "role": "reader"}
    assert actions["ollama-key-add"]["detail"]["name"] == "alice"


def test_imports_only_from_allowed_endpoints(settings: Any) -> None:
    from fastapi.testclient import TestClient

    from modelward.server.app import create_app

    application = create_app(
        settings.model_copy(update={"import_endpoints": ["https://huggingface.co"]})
    )
    body = {"endpoint": "http://169.254.169.254", "repo_id": "a/b", "repo": "acme/b"}
    try:
        with TestClient(application) as c:
            r = c.post(f"{API}/import", json=body, headers=auth())
            _error(r, 403, "forbidden")
            assert "import_endpoints" in r.json()["error"]["message"]
            sneaky = {**body, "endpoint": "https://huggingface.co.evil.example"}
            _error(c.post(f"{API}/import", json=sneaky, headers=auth()), 403, "forbidden")
    finally:
        application.state.db.dispose()


# ---------------------------------------------------------------------------------------- import
@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Any]:
    """A second modelward server (SQLite) serving one approved model over the HF protocol."""
    from modelward.server.app import create_app
    from modelward.server.settings import ServerSettings

    settings = ServerSettings(
        data_dir=tmp_path / "upstream",
        database_url=f"sqlite:///{tmp_path / 'upstream.db'}",
        admin_token=ADMIN_TOKEN,
    )
    application = create_app(settings)
    live, server, thread = start_live(application)
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(10)
        application.state.db.dispose()


def test_import_from_an_upstream_modelward(client: Any, upstream: Any, tmp_path: Path) -> None:
    published = publish(upstream.hub, "team/tiny", make_model_dir(tmp_path, "up"))
    reader = upstream.token("reader")
    body = {
        "endpoint": upstream.url,
        "repo_id": "team/tiny",
        "repo": "acme/tiny",
        "revision": "main",
        "token": reader,
        "tag": "imported",
    }
    r = client.post(f"{API}/import", json=body, headers=auth())
    assert r.status_code == 201, r.text
    rev = r.json()
    assert rev["commit"] == published.commit  # same files, same deterministic commit id
    assert rev["state"] == "in_review"
    assert rev["provenance"] == {
        "kind": "huggingface",
        "source": upstream.url,
        "repo": "team/tiny",
        "revision": published.commit,
        "ref": "main",
        "uploader": "admin (MODELWARD_ADMIN_TOKEN)",
        "verified": True,  # the server fetched it itself
    }
    assert sorted(f["path"] for f in rev["files"]) == sorted(f.path for f in published.files)
    # without the upstream token: the upstream says no, clearly
    r = client.post(f"{API}/import", json={**body, "token": None}, headers=auth())
    assert r.status_code in (401, 404, 502), r.text
    assert "team/tiny" in r.json()["error"]["message"]
    r = client.post(f"{API}/import", json={**body, "repo_id": "team/absent"}, headers=auth())
    _error(r, 404, "repo_not_found")
    r = client.post(
        f"{API}/import", json={**body, "endpoint": "http://127.0.0.1:9"}, headers=auth()
    )
    _error(r, 502, "upstream_failed")


# ---------------------------------------------------------------------------------------- license


def test_detected_and_declared_license(live_server: Any, tmp_path: Path) -> None:
    """The LICENSE file's text is detected (Apache-2.0), the card's declaration kept apart (MIT)."""
    import httpx
    from huggingface_hub import HfApi

    folder = make_model_dir(tmp_path)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# a model with two licenses\n")
    (folder / "LICENSE").write_text(APACHE)
    rev = publish(live_server.hub, "acme/licensed", folder)
    r = httpx.get(
        f"{live_server.url}{API}/repos/acme/licensed/revisions/{rev.commit}", headers=auth()
    )
    assert r.status_code == 200, r.text
    lic = r.json()["license"]
    assert lic["detected"]["id"] == "apache-2.0" and lic["detected"]["source"] == "LICENSE"
    assert lic["declared"]["id"] == "mit" and lic["declared"]["source"] == "README.md"
    assert lic["id"] == "mit"  # what the model says it is; the mismatch stays visible
    info = HfApi(endpoint=live_server.url, token=ADMIN_TOKEN).model_info("acme/licensed")
    assert info.modelward["license"] == lic  # type: ignore[attr-defined]
    assert info.card_data is not None and info.card_data["license"] == "mit"
    assert "license:mit" in (info.tags or [])


# ------------------------------------------------------------------------------------------- tags
def test_tags_longer_than_80_characters_are_refused(
    client: Any, tokens: dict[str, str], tmp_path: Path
) -> None:
    """Ollama refuses a tag over 80 characters: the hub says so instead of storing an unpullable one."""
    folder = make_model_dir(tmp_path)
    for tag in ("t" * 81, "t" * 300):
        err = _error(
            _push(client, tokens["publisher"], "acme/tags", folder, tag=tag), 400, "invalid_name"
        )
        assert f"{len(tag)} characters long, more than 80" in err["message"]
        assert "pullable by every client" in err["message"]
    assert client.get(f"{API}/review", headers=auth()).json()["revisions"] == []
    rev = _push(client, tokens["publisher"], "acme/tags", folder, tag="t" * 80)
    assert rev.status_code == 201, rev.text
    commit = rev.json()["commit"]
    rv = auth(tokens["reviewer"])
    ok = client.post(
        f"{API}/repos/acme/tags/revisions/{commit}/approve", json={"reason": "ok"}, headers=rv
    )
    assert ok.status_code == 200, ok.text
    r = client.post(
        f"{API}/repos/acme/tags/revisions/{commit}/tags",
        json={"tag": "u" * 81, "reason": "release"},
        headers=rv,
    )
    assert "81 characters long, more than 80" in _error(r, 400, "invalid_name")["message"]
    body = {"endpoint": "http://127.0.0.1:9", "repo_id": "a/b", "repo": "acme/b", "tag": "v" * 81}
    r = client.post(f"{API}/import", json=body, headers=auth())  # refused before any download
    assert "81 characters long" in _error(r, 400, "invalid_name")["message"]


# ----------------------------------------------------------------------------- import size limit
class _Recorder:
    """An ASGI app that records the paths it is asked for, then lets ``app`` answer."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.paths.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


def test_import_over_the_size_limit_is_refused_before_downloading(
    settings: Any, tmp_path: Path
) -> None:
    """The upstream's listing (model_info with file sizes) is checked first: 413, no file fetched."""
    from fastapi.testclient import TestClient

    from modelward.server.app import create_app
    from modelward.server.settings import ServerSettings

    upstream_app = create_app(
        ServerSettings(
            data_dir=tmp_path / "upstream",
            database_url=f"sqlite:///{tmp_path / 'upstream.db'}",
            admin_token=ADMIN_TOKEN,
        )
    )
    recorder = _Recorder(upstream_app)
    live, server, thread = start_live(recorder)
    importer = create_app(settings.model_copy(update={"max_upload_bytes": 1000}))
    try:
        folder = make_model_dir(tmp_path, "big", weights=b"\0" * 4096)  # model.safetensors > 1000
        publish(upstream_app.state.hub, "team/big", folder)
        body = {
            "endpoint": live.url,
            "repo_id": "team/big",
            "repo": "acme/big",
            "token": live.token("reader"),
        }
        with TestClient(importer) as c:
            r = c.post(f"{API}/import", json=body, headers=auth())
            err = _error(r, 413, "too_large")
            assert "model.safetensors has" in err["message"]
            assert "limit of 1000 bytes" in err["message"]
            assert "nothing was downloaded" in err["message"]
            assert err["detail"]["path"] == "model.safetensors"
            assert not [p for p in recorder.paths if "/resolve/" in p], recorder.paths
            assert importer.state.hub.list_repos(approved_only=False) == []
            assert list(importer.state.hub.blobs.iter_digests()) == []
            assert list((settings.data_dir / "tmp").iterdir()) == []
            # small enough: the same import goes through, fetching the checked commit
            small = make_model_dir(tmp_path, "small")
            rev = publish(upstream_app.state.hub, "team/small", small)
            ok = c.post(
                f"{API}/import",
                json={**body, "repo_id": "team/small", "repo": "acme/small", "revision": "main"},
                headers=auth(),
            )
            assert ok.status_code == 201, ok.text
            prov = ok.json()["provenance"]
            assert prov["revision"] == rev.commit and prov["ref"] == "main"
            assert ok.json()["commit"] == rev.commit
    finally:
        server.should_exit = True
        thread.join(10)
        upstream_app.state.db.dispose()
        importer.state.db.dispose()


def test_an_upstream_that_sends_more_than_it_announced_is_stopped(
    upstream: Any, tmp_path: Path
) -> None:
    """The download stops as soon as more bytes come than the listing announced (here: the
    caller's cap is below the real size, as when an upstream's listing lies): 413, and nothing
    of the repository is kept beyond the bytes already received."""
    from modelward.errors import TooLarge
    from modelward.hub.ingest import from_upstream

    folder = make_model_dir(tmp_path, "lying", weights=b"\1" * 300_000)
    publish(upstream.hub, "team/lying", folder)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(TooLarge, match="sent more than the 100000 bytes it announced"):
        from_upstream(
            upstream.url, "team/lying", dest, token=upstream.token("reader"), max_bytes=100_000
        )
    written = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file() and not p.is_symlink())
    assert written < 300_000  # stopped within a chunk of the cap, not after the whole file
    plan = from_upstream(
        upstream.url, "team/lying", tmp_path / "ok", token=upstream.token("reader"), max_bytes=10**6
    )
    assert any(f.path == "model.safetensors" for f in plan.files)


def test_a_provenance_claim_is_shown_as_the_uploaders_word(
    client: Any, tokens: dict[str, str], tmp_path: Path
) -> None:
    """A publisher may say the files came from meta-llama/Llama-3.1-8B; the hub did not fetch them
    from there, so the revision records ``verified: false`` (whatever the client sends) and the
    pages say "declared by the uploader"; a server-side import is ``verified: true``."""
    folder = make_model_dir(tmp_path)
    body = []
    for path, data in _files(folder):
        digest = hashlib.sha256(data).hexdigest()
        client.put(f"{API}/blobs/{digest}", content=data, headers=auth(tokens["publisher"]))
        body.append({"path": path, "sha256": digest, "size": len(data)})
    claim = {
        "kind": "huggingface",
        "source": "https://huggingface.co",
        "repo": "meta-llama/Llama-3.1-8B",
        "revision": "0123456789abcdef0123456789abcdef01234567",
        "verified": True,
    }
    r = client.post(
        f"{API}/repos/acme/claimed/revisions",
        json={"files": body, "provenance": claim},
        headers=auth(tokens["publisher"]),
    )
    assert r.status_code == 201, r.text
    rev = r.json()
    assert rev["provenance"]["verified"] is False
    assert rev["provenance"]["repo"] == "meta-llama/Llama-3.1-8B"
    page = client.get("/review", headers=auth(tokens["reviewer"]))
    assert page.status_code == 200 and "declared by the uploader" in page.text


@pytest.mark.parametrize(
    "endpoint", ["http://169.254.169.254/latest/meta-data", "http://[fe80::1]:8080"]
)
def test_an_import_from_a_link_local_address_is_refused(client: Any, endpoint: str) -> None:
    """Cloud instance metadata answers at 169.254.169.254: without an import_endpoints list the
    server fetches from anywhere else, never from a link-local address."""
    body = {"endpoint": endpoint, "repo_id": "team/x", "repo": "acme/x"}
    err = _error(client.post(f"{API}/import", json=body, headers=auth()), 403, "forbidden")
    assert "link-local" in err["message"] and "import_endpoints" in err["message"]
