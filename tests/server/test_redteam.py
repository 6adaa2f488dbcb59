"""Red-team tests of the hub server: hostile input, auth edges, unapproved content, tampered blobs.

Each test pins a bug found by attacking the server (and fixed), or a property an attack tried and
failed to break. One SQLite server per module; PostgreSQL only where the database matters.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
import unicodedata
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelward.hub import oci
from tests.server.conftest import ADMIN_TOKEN, _pg_schema_url, auth, make_model_dir, publish

API = "/api/v1/hub"
H = auth()
EVIL_PICKLE = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
"""A pickle that would call os.system("true") if loaded (never loaded: only scanned and served)."""


@dataclass
class Env:
    app: Any
    client: Any
    root: Path

    @property
    def hub(self) -> Any:
        return self.app.state.hub


def _env(root: Path, db_url: str) -> Iterator[Env]:
    from fastapi.testclient import TestClient

    from modelward.server.app import create_app
    from modelward.server.settings import ServerSettings

    settings = ServerSettings(data_dir=root / "data", database_url=db_url, admin_token=ADMIN_TOKEN)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Env(app, client, root)
    app.state.db.dispose()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("redteam")
    yield from _env(root, f"sqlite:///{root / 'hub.db'}")


@pytest.fixture(scope="module")
def pg_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("redteam-pg")
    for url in _pg_schema_url():
        yield from _env(root, url)


def _envelope(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "errors"}, body
    err: dict[str, Any] = body["error"]
    assert set(err) == {"status", "code", "message", "detail"} and err["status"] == status, err
    assert isinstance(body["errors"], list) and body["errors"][0]["code"], body
    if code is not None:
        assert err["code"] == code, err
    return err


def _oci_upload(env: Env, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = env.client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data, headers=H)
    assert r.status_code == 201, r.text
    return digest


def _oci_push(
    env: Env,
    repo: str,
    ref: str,
    files: dict[str, bytes],
    config: bytes = b"{}",
    config_type: str = "application/vnd.oci.image.config.v1+json",
) -> Any:
    layers = [
        {
            "mediaType": "application/octet-stream",
            "digest": _oci_upload(env, repo, data),
            "size": len(data),
            "annotations": {oci.ANNOTATION_TITLE: path},
        }
        for path, data in files.items()
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": {
            "mediaType": config_type,
            "digest": _oci_upload(env, repo, config),
            "size": len(config),
        },
        "layers": layers,
    }
    return env.client.put(
        f"/v2/{repo}/manifests/{ref}",
        content=json.dumps(manifest).encode(),
        headers={**H, "Content-Type": oci.OCI_MANIFEST},
    )


def _tamper_keeping_mtime(path: Path) -> None:
    """Flip one byte in place (same inode, same size) and put the old mtime back (``cp -p``)."""
    st = path.stat()
    os.chmod(path, 0o644)
    with path.open("r+b") as fh:
        first = fh.read(1)
        fh.seek(0)
        fh.write(bytes([first[0] ^ 1]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.chmod(path, 0o444)


# ----------------------------------------------------------------------------- tampered blobs
def test_a_blob_changed_in_place_with_its_mtime_restored_is_not_served(env: Env) -> None:
    rev = publish(env.hub, "red/tamper", make_model_dir(env.root, "tamper", b"T" * 64))
    f = rev.file("model.safetensors")
    url = f"/red/tamper/resolve/{rev.commit}/model.safetensors"
    assert env.client.get(url, headers=H).status_code == 200  # verified once, then remembered
    _tamper_keeping_mtime(Path(env.hub.blobs.path(f.sha256)))
    r = env.client.get(url, headers=H)
    assert r.status_code != 200 or hashlib.sha256(r.content).hexdigest() == f.sha256
    _envelope(r, 500, "blob_corrupt")


def test_a_pushed_manifest_changed_on_disk_is_not_served(env: Env) -> None:
    r = _oci_push(env, "red/pushed", "v1", {"a.txt": b"pushed manifest test\n"})
    assert r.status_code == 201, r.text
    commit = r.json()["commit"]
    env.hub.approve("red/pushed", commit, "reviewer", "fine")
    accept = {**H, "Accept": oci.OCI_MANIFEST}
    good = env.client.get("/v2/red/pushed/manifests/v1", headers=accept)
    assert good.status_code == 200 and good.headers["docker-content-digest"] == r.json()["digest"]
    manifest_hex = env.hub.attachments("red/pushed", commit)["oci-manifest"][0]
    _tamper_keeping_mtime(Path(env.hub.blobs.path(manifest_hex)))
    r = env.client.get("/v2/red/pushed/manifests/v1", headers=accept)
    assert r.status_code != 200 or r.content == good.content, "a changed manifest was served"


# ------------------------------------------------------------------ unapproved content leaking
def test_a_rejected_blob_cannot_ride_along_as_an_oci_config(env: Env) -> None:
    """The config blob of a pushed manifest is neither a file of the revision nor scanned: it must
    not become a way to serve bytes that review rejected (here: a pickle) from an approved repo."""
    r = _oci_push(env, "red/evil", "v1", {"x.pkl": EVIL_PICKLE})
    assert r.status_code == 201, r.text
    env.hub.reject("red/evil", r.json()["commit"], "reviewer", "malicious pickle")
    evil = "sha256:" + hashlib.sha256(EVIL_PICKLE).hexdigest()
    r = _oci_push(
        env, "red/carrier", "v1", {"readme.txt": b"harmless\n"}, EVIL_PICKLE, "application/x"
    )
    if r.status_code == 201:  # accepted: then approving the harmless file must not serve the pickle
        env.hub.approve("red/carrier", r.json()["commit"], "reviewer", "only a readme")
        served = env.client.get(f"/v2/red/carrier/blobs/{evil}", headers=H)
        assert served.status_code == 404, "rejected bytes are served as the config blob"
    else:
        _envelope(r, 400)


def test_pushing_latest_into_review_does_not_break_pulls_of_main(env: Env) -> None:
    """``ollama push`` tags ``latest`` by default; until that revision is approved, ``latest`` must
    keep naming the approved ``main`` (as when no such tag exists), not answer 403 to everyone."""
    main = publish(env.hub, "red/latest", make_model_dir(env.root, "latest", b"L" * 64))
    accept = {**H, "Accept": oci.OCI_MANIFEST}
    before = env.client.get("/v2/red/latest/manifests/latest", headers=accept)
    assert before.status_code == 200 and before.headers["x-modelward-revision"] == main.commit
    pushed = _oci_push(env, "red/latest", "latest", {"next.txt": b"next version\n"})
    assert pushed.status_code == 201 and pushed.json()["state"] == "in_review", pushed.text
    after = env.client.get("/v2/red/latest/manifests/latest", headers=accept)
    assert after.status_code == 200, after.text
    assert after.headers["x-modelward-revision"] == main.commit


def test_unapproved_content_does_not_leak_through_any_route(env: Env) -> None:
    """Revoked, rejected and in-review revisions: every read route refuses them (this held)."""
    hub, c = env.hub, env.client
    folder = make_model_dir(env.root, "leak", b"Q" * 64)
    good = publish(hub, "red/leak", folder)
    make_model_dir(env.root, "leak", b"R" * 64)
    bad = publish(hub, "red/leak", folder)
    blob = bad.file("model.safetensors").sha256
    digest = "sha256:" + blob
    accept = {**H, "Accept": oci.OCI_MANIFEST}
    manifest = c.get(f"/v2/red/leak/manifests/{bad.commit}", headers=accept)
    assert manifest.status_code == 200
    served = c.get(f"/v2/red/leak/blobs/{digest}", headers=H)
    assert served.status_code == 200
    signed = urllib.parse.urlsplit(served.headers["location"])
    signed_url = f"{signed.path}?{signed.query}"
    hub.revoke("red/leak", bad.commit, "reviewer", "found a backdoor")
    other = publish(hub, "red/leak2", make_model_dir(env.root, "leak2", b"S" * 64))
    for url in (
        f"/red/leak/resolve/{bad.commit}/model.safetensors",
        f"/api/models/red/leak/revision/{bad.commit}",
        f"/api/models/red/leak/tree/{bad.commit}",
        f"/v2/red/leak/manifests/{bad.commit}",
        f"/v2/red/leak/manifests/{manifest.headers['docker-content-digest']}",
        f"/v2/red/leak/blobs/{digest}",
        f"/v2/red/leak2/blobs/{digest}",
        signed_url,  # signed before the revocation
        signed_url.replace("/red/leak/", "/red/leak2/"),  # signed for another repo
    ):
        r = c.get(url, headers=accept)
        assert r.status_code in (403, 404), (url, r.status_code)
        _envelope(r, r.status_code)
    r = c.get(f"/v2/red/leak/referrers/{manifest.headers['docker-content-digest']}", headers=H)
    assert r.status_code == 200 and r.json()["manifests"] == []
    r = c.get(f"/models/red/leak?rev={bad.commit}", headers=auth(_reader(env)))
    assert r.status_code == 403 and blob not in r.text
    # main went back to the good revision; the other repo's blobs are its own
    assert c.get("/api/models/red/leak", headers=H).json()["sha"] == good.commit
    assert other.commit != bad.commit


def _reader(env: Env) -> str:
    from modelward.server.auth import create_token

    return create_token(env.app.state.db, "red-reader", "reader", "tests")


# ------------------------------------------------------------------------------ hostile names
def test_paths_that_clash_after_unicode_normalisation_are_refused(env: Env) -> None:
    """macOS file systems fold NFC and NFD names together: like the case-fold clash already refused,
    two such paths would download into one file, and which bytes win is up to the client."""
    nfc = unicodedata.normalize("NFC", "caf\u00e9.txt")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    files = []
    for path, data in ((nfc, b"benign\n"), (nfd, b"other\n")):
        d = hashlib.sha256(data).hexdigest()
        assert c_put(env, d, data)
        files.append({"path": path, "sha256": d, "size": len(data)})
    r = env.client.post(f"{API}/repos/red/nfc/revisions", json={"files": files}, headers=H)
    _envelope(r, 400, "bad_request")


def c_put(env: Env, digest: str, data: bytes) -> bool:
    r = env.client.put(f"{API}/blobs/{digest}", content=data, headers=H)
    return bool(r.status_code in (200, 201))


def test_many_files_are_checked_in_linear_time(env: Env) -> None:
    """A publisher's file list of several thousand entries must not cost a worker seconds of CPU
    (the folder/file clash check compared every pair: 28 s for 10,000 files). Counted, not timed:
    the lines the hub's service module runs for the list grow with the number of files."""
    from modelward.hub import service
    from modelward.hub.service import NewFile

    data = b"many\n"
    digest = hashlib.sha256(data).hexdigest()
    assert c_put(env, digest, data)
    files = [NewFile(f"d{i // 100}/f{i}.txt", digest, len(data)) for i in range(9999)]
    files.append(NewFile("d3", digest, len(data)))  # a file that is also a folder: still refused
    lines = 0

    def count(frame: Any, event: str, arg: Any) -> Any:
        nonlocal lines
        lines += event == "line"
        return count

    def calls(frame: Any, event: str, arg: Any) -> Any:
        return count if frame.f_code.co_filename == service.__file__ else None

    sys.settrace(calls)
    try:
        with pytest.raises(Exception, match="also a folder"):
            env.hub._entries(files)
    finally:
        sys.settrace(None)
    # linear: a few dozen lines per file; comparing every pair would run ~50 million
    assert lines < 100 * len(files), lines


# ------------------------------------------------------------------------------------- limits
def test_huge_bodies_are_refused_before_they_are_buffered(env: Env) -> None:
    """JSON and form routes read the whole body before checking the token: without a bound an
    anonymous client makes the server hold any amount of memory. Uploads stream and keep working."""
    big = b"x" * (40 << 20)
    for path, ctype in (
        (f"{API}/tokens", "application/json"),
        (f"{API}/repos/red/big/revisions", "application/json"),
        ("/login", "application/x-www-form-urlencoded"),
    ):
        r = env.client.post(path, content=big, headers={"Content-Type": ctype})
        _envelope(r, 413)

        def chunks() -> Iterator[bytes]:
            for _ in range(40):
                yield b"y" * (1 << 20)

        r = env.client.post(path, content=chunks(), headers={"Content-Type": ctype})
        _envelope(r, 413)
    # uploads are limited by max_upload_bytes only (default 100 GiB)
    digest = hashlib.sha256(big).hexdigest()
    r = env.client.put(f"{API}/blobs/{digest}", content=big, headers=H)
    assert r.status_code in (200, 201), r.text
    big2 = big + b"2"
    r = env.client.post(
        f"/v2/red/big/blobs/uploads/?digest=sha256:{hashlib.sha256(big2).hexdigest()}",
        content=big2,
        headers=H,
    )
    assert r.status_code == 201, r.text


# --------------------------------------------------------------------------------- PostgreSQL
NUL_URLS = (
    "/api/models/red/m%00/revision/main",
    "/api/models/red/m/revision/ma%00in",
    "/red/m/resolve/ma%00in/config.json",
    f"{API}/repos/red/m/revisions/ma%00in",
    "/v2/red/m/blobs/uploads/a%00b",
    "/models/red/m?rev=a%00",
)


def test_nul_characters_are_a_400_not_a_server_error(pg_env: Env) -> None:
    """PostgreSQL text cannot hold NUL: such input must be refused as bad input, not crash."""
    rev = publish(pg_env.hub, "red/m", make_model_dir(pg_env.root, "nul", b"N" * 64))
    c = pg_env.client
    for url in NUL_URLS:
        r = c.get(url, headers=H)
        assert r.status_code < 500, (url, r.text)
        _envelope(r, r.status_code)
    r = c.post(
        f"{API}/repos/red/m/revisions/{rev.commit}/revoke", json={"reason": "a\0b"}, headers=H
    )
    _envelope(r, 400)
    r = c.post(f"{API}/tokens", json={"role": "reader", "name": "a\0b"}, headers=H)
    _envelope(r, 400)
    assert pg_env.hub.resolve("red/m").commit == rev.commit  # nothing changed


def test_concurrent_decisions_take_effect_once(pg_env: Env) -> None:
    """Two reviewers deciding the same revision at the same moment: one wins, the other gets 409,
    and the audit log records one decision (PostgreSQL runs the two transactions in parallel)."""
    from modelward.errors import Conflict

    hub = pg_env.hub
    for trial, second in enumerate(("approve", "approve", "reject", "approve", "reject")):
        repo = f"red/race{trial}"
        rev = publish(
            hub, repo, make_model_dir(pg_env.root, f"race{trial}", bytes([trial]) * 64), False
        )
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def decide(
            action: str,
            repo: str = repo,
            commit: str = rev.commit,
            barrier: threading.Barrier = barrier,
            outcomes: list[str] = outcomes,
        ) -> None:
            barrier.wait()
            try:
                getattr(hub, action)(repo, commit, f"rv-{action}", "race")
                outcomes.append(action)
            except Conflict:
                outcomes.append("conflict")

        threads = [threading.Thread(target=decide, args=(a,)) for a in ("approve", second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        decisions = [e for e in hub.audit(repo) if e.action in ("approve", "reject")]
        assert sorted(outcomes).count("conflict") == 1, (trial, outcomes)
        assert len(decisions) == 1, (trial, [e.action for e in decisions])
        final = hub.revision(repo, rev.commit).state
        assert final == ("approved" if "approve" in outcomes else "rejected")


def test_a_bad_import_endpoint_or_upstream_repo_id_is_a_400(env: Env) -> None:
    for body in (
        {"endpoint": "file:///etc", "repo_id": "a/b", "repo": "red/imp"},
        {"endpoint": "http://127.0.0.1:9", "repo_id": "../../x", "repo": "red/imp"},
    ):
        r = env.client.post(f"{API}/import", json=body, headers=H)
        _envelope(r, 400, "bad_request")


def test_concurrent_approvals_of_two_revisions_both_land(pg_env: Env) -> None:
    """The first approvals of a repository, at the same moment: both create ``main`` (PostgreSQL
    ran both inserts; one reviewer got a server error and lost the decision)."""
    hub = pg_env.hub
    for trial in range(3):
        repo = f"red/pair{trial}"
        revs = [
            publish(
                hub, repo, make_model_dir(pg_env.root, f"pair{trial}{i}", bytes([i]) * 64), False
            )
            for i in (1, 2)
        ]
        barrier = threading.Barrier(2)
        failures: list[BaseException] = []

        def approve(
            commit: str,
            repo: str = repo,
            barrier: threading.Barrier = barrier,
            failures: list[BaseException] = failures,
        ) -> None:
            barrier.wait()
            try:
                hub.approve(repo, commit, "reviewer", "race")
            except Exception as exc:  # any failure is the finding
                failures.append(exc)

        threads = [threading.Thread(target=approve, args=(r.commit,)) for r in revs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures
        assert {hub.revision(repo, r.commit).state for r in revs} == {"approved"}
        assert hub.resolve(repo).commit in {r.commit for r in revs}


class _HostileUpstream(BaseHTTPRequestHandler):
    """A Hugging Face-compatible endpoint whose repository lists a file named ``NAME``."""

    NAME = "../../../evil.txt"
    SHA = "a" * 40

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        names = (self.NAME, "ok.txt")
        if "/tree/" in self.path:
            items = [{"type": "file", "path": n, "size": 6, "oid": "b" * 40} for n in names]
            self._send(json.dumps(items).encode(), "application/json")
        elif self.path.startswith("/api/models/"):
            doc = {"id": "a/b", "sha": self.SHA, "siblings": [{"rfilename": n} for n in names]}
            self._send(json.dumps(doc).encode(), "application/json")
        else:
            body = b"pwned\n"
            etag = f'"{hashlib.sha256(body).hexdigest()}"'
            headers = {"X-Repo-Commit": self.SHA, "ETag": etag, "X-Linked-Size": "6"}
            self._send(body, "application/octet-stream", headers)

    do_HEAD = do_GET


def test_an_upstream_with_a_traversal_file_name_is_a_clear_error(env: Env) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}"
        body = {"endpoint": endpoint, "repo_id": "a/b", "repo": "red/upstream"}
        r = env.client.post(f"{API}/import", json=body, headers=H)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert r.status_code < 500 or r.status_code == 502, r.text
    err = _envelope(r, r.status_code)
    assert "evil.txt" in err["message"]
    assert not list(env.root.rglob("evil.txt"))


@pytest.mark.parametrize(
    "path",
    [".GIT/config", ".Git/hooks/post-checkout", "sub/.git/config", ".git./config", "GIT~1/x"],
)
def test_git_folders_in_any_spelling_are_refused(env: Env, path: str) -> None:
    """On macOS and Windows these are ``.git/...``: a model download would write git config or
    hooks into the developer's checkout (or make ``sub/`` a repository that runs them)."""
    data = b"[core]\n\tfsmonitor = touch /tmp/pwned\n"
    digest = hashlib.sha256(data).hexdigest()
    assert c_put(env, digest, data)
    files = [{"path": path, "sha256": digest, "size": len(data)}]
    r = env.client.post(f"{API}/repos/red/git/revisions", json={"files": files}, headers=H)
    _envelope(r, 400, "invalid_name")
    r = _oci_push(env, "red/git", "v1", {path: data})
    _envelope(r, 400, "invalid_name")


# ====================================================================== issue 5 review follow-ups
@pytest.fixture(params=["sqlite", "postgresql"])
def any_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """A fresh server per test, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield from _env(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}")
    else:
        for url in _pg_schema_url():
            yield from _env(tmp_path, url)


# --------------------------------------------------------------------------- Ollama token replay
def _ollama_key(env: Env, role: str = "reader") -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from modelward.hub import ollama_auth as oa

    key = Ed25519PrivateKey.generate()
    r = env.client.post(
        f"{API}/ollama-keys",
        json={"public_key": oa.public_key_line(key), "name": f"laptop-{role}", "role": role},
        headers=H,
    )
    assert r.status_code == 201, r.text
    return key


def _signed_token_request(key: Any, repo: str) -> tuple[str, dict[str, str]]:
    from modelward.hub import ollama_auth as oa

    url = oa.token_request_url("http://testserver/v2/token", "modelward", f"repository:{repo}:pull")
    return url, {"Authorization": oa.make_authorization(key, url)}


def test_a_signed_ollama_token_request_is_good_for_one_token(any_env: Env) -> None:
    """Replaying a captured token request (same ts, nonce, signature) within its 300 s used to get
    a fresh token each time; now the second use is a 401, and a new request still works."""
    key = _ollama_key(any_env)
    url, headers = _signed_token_request(key, "red/replay")
    first = any_env.client.get(url, headers=headers)
    assert first.status_code == 200, first.text
    again = any_env.client.get(url, headers=headers)
    err = _envelope(again, 401, "unauthorized")
    assert "already used" in err["message"]
    url2, headers2 = _signed_token_request(key, "red/replay")
    assert any_env.client.get(url2, headers=headers2).status_code == 200


def test_replicas_agree_that_a_signed_request_was_used(tmp_path: Path) -> None:
    """Two server processes behind a load balancer share only the database: a request used on one
    is refused by the other, and the same request sent to both at once gets one token."""
    for url in _pg_schema_url():
        envs = [_env(tmp_path / "a", url), _env(tmp_path / "b", url)]
        a, b = (next(e) for e in envs)
        try:
            key = _ollama_key(a)
            req, headers = _signed_token_request(key, "red/replicas")
            assert a.client.get(req, headers=headers).status_code == 200
            _envelope(b.client.get(req, headers=headers), 401)
            for _ in range(3):
                req, headers = _signed_token_request(key, "red/replicas")
                barrier = threading.Barrier(2)
                codes: list[int] = []

                def get(
                    e: Env,
                    req: str = req,
                    h: dict[str, str] = headers,
                    barrier: threading.Barrier = barrier,
                    codes: list[int] = codes,
                ) -> None:
                    barrier.wait()
                    codes.append(e.client.get(req, headers=h).status_code)

                threads = [threading.Thread(target=get, args=(e,)) for e in (a, b)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                assert sorted(codes) == [200, 401], codes
        finally:
            for e in envs:
                next(e, None)  # runs the teardown after the yield


def test_used_requests_are_forgotten_once_stale(env: Env) -> None:
    from modelward.server.api.oci_auth import remember_challenge
    from modelward.store.db import UsedChallenge

    db = env.app.state.db
    now = int(time.time())
    assert remember_challenge(db, "f" * 64, now - 10)  # already expired when recorded
    assert remember_challenge(db, "e" * 64, now + 300)
    assert not remember_challenge(db, "e" * 64, now + 300)
    with db.session() as s:  # the next record dropped the stale one
        assert s.get(UsedChallenge, "f" * 64) is None


# ----------------------------------------------------------------------------------- tags, latest
def _manifest_rev(env: Env, repo: str, ref: str) -> Any:
    r = env.client.get(f"/v2/{repo}/manifests/{ref}", headers={**H, "Accept": oci.OCI_MANIFEST})
    return r.headers.get("x-modelward-revision") if r.status_code == 200 else r.status_code


def test_repeated_pushes_of_latest_wait_for_review(any_env: Env) -> None:
    """``ollama push x`` / ``oras push x:latest`` again and again: each new content is reviewed
    and ``latest`` serves the approved revision meanwhile; it never turns into a 409."""
    env, repo = any_env, "red/latest-again"
    hub = env.hub
    one = _oci_push(env, repo, "latest", {"a.txt": b"one\n"}).json()["commit"]
    assert _manifest_rev(env, repo, "latest") == 403  # nothing approved yet: blocked, not 404
    hub.approve(repo, one, "reviewer", "ok")
    assert _manifest_rev(env, repo, "latest") == one
    r = _oci_push(env, repo, "latest", {"a.txt": b"two\n"})
    assert r.status_code == 201 and r.json()["state"] == "in_review", r.text
    two = r.json()["commit"]
    assert _manifest_rev(env, repo, "latest") == one  # still the approved one
    hub.approve(repo, two, "reviewer", "ok")
    assert _manifest_rev(env, repo, "latest") == two
    # pushing the old content as `latest` again does not roll `latest` back
    r = _oci_push(env, repo, "latest", {"a.txt": b"one\n"})
    assert r.status_code == 201 and r.json()["commit"] == one
    assert _manifest_rev(env, repo, "latest") == two
    assert hub.resolve(repo, "latest").commit == two  # the same on every protocol
    tags = env.client.get(f"/v2/{repo}/tags/list", headers=H).json()["tags"]
    assert tags == ["latest", "main"]


def test_a_publisher_cannot_tag_an_approved_revision(any_env: Env) -> None:
    """Pushing the content of an approved revision again under a new tag used to tag it at once:
    a publisher could publish any approved revision (an old one, say) under a name clients pull."""
    from modelward.server.auth import create_token

    env, repo = any_env, "red/retag"
    db = env.app.state.db
    pub = auth(create_token(db, "pub", "publisher", "tests"))
    rev_h = auth(create_token(db, "rev", "reviewer", "tests"))
    old = _oci_push(env, repo, "v1", {"m.txt": b"old\n"}).json()["commit"]
    env.hub.approve(repo, old, "reviewer", "ok")
    new = _oci_push(env, repo, "v2", {"m.txt": b"new\n"}).json()["commit"]
    env.hub.approve(repo, new, "reviewer", "ok")
    files = [
        {"path": "m.txt", "sha256": hashlib.sha256(b"old\n").hexdigest(), "size": 4},
    ]
    for tag in ("stable", "v2"):
        r = env.client.post(
            f"{API}/repos/{repo}/revisions", json={"files": files, "tag": tag}, headers=pub
        )
        _envelope(r, 403 if tag == "stable" else 409)
    r = _oci_push(env, repo, "stable", {"m.txt": b"old\n"})
    err = _envelope(r, 403, "needs_review")
    assert "reviewer" in err["message"]
    assert _manifest_rev(env, repo, "stable") == 404
    # the reviewer's way, recorded with a reason; publishers may not take it
    url = f"{API}/repos/{repo}/revisions/{old}/tags"
    _envelope(env.client.post(url, json={"tag": "stable", "reason": "lts"}, headers=pub), 403)
    r = env.client.post(url, json={"tag": "stable", "reason": "lts"}, headers=rev_h)
    assert r.status_code == 200 and "stable" in r.json()["tags"], r.text
    assert _manifest_rev(env, repo, "stable") == old
    # approved tags still never move, not even by a reviewer
    url = f"{API}/repos/{repo}/revisions/{new}/tags"
    _envelope(env.client.post(url, json={"tag": "stable", "reason": "x"}, headers=rev_h), 409)
    _envelope(env.client.post(url, json={"tag": "latest", "reason": "x"}, headers=rev_h), 400)
    events = [e for e in env.hub.audit(repo) if e.action == "tag"]
    assert any(e.actor == "rev" and e.reason == "lts" for e in events)


def test_a_tag_pushed_with_new_content_waits_for_its_review(env: Env) -> None:
    repo = "red/pending-tag"
    r = _oci_push(env, repo, "v1", {"p.txt": b"first\n"})
    first = r.json()["commit"]
    assert _manifest_rev(env, repo, "v1") == 403
    # still unapproved: a new push may take the tag over
    second = _oci_push(env, repo, "v1", {"p.txt": b"second\n"}).json()["commit"]
    assert env.hub.revision(repo, "v1").commit == second != first
    env.hub.approve(repo, second, "reviewer", "ok")
    assert _manifest_rev(env, repo, "v1") == second
    _envelope(_oci_push(env, repo, "v1", {"p.txt": b"third\n"}), 409)
    assert _manifest_rev(env, repo, "v1") == second


# ------------------------------------------------------------------------------ gc and uploads
def _age(env: Env, hours: float, digests: list[str] | None = None) -> None:
    """Make blobs (default: all), their files and open upload sessions ``hours`` older."""
    from datetime import timedelta

    from modelward.store.db import Blob, Upload

    delta = timedelta(hours=hours)
    with env.app.state.db.session() as s:
        for b in s.query(Blob).all():
            if digests is None or b.sha256 in digests:
                b.created_at = b.created_at - delta
        if digests is None:
            for u in s.query(Upload).all():
                u.created_at = u.created_at - delta
    for d in digests if digests is not None else list(env.hub.blobs.iter_digests()):
        p = env.hub.blobs.path(d)
        st = os.stat(p)
        os.utime(p, (st.st_atime - hours * 3600, st.st_mtime - hours * 3600))


def _upload_ids(env: Env) -> list[str]:
    from modelward.store.db import Upload

    with env.app.state.db.session() as s:
        return [u.id for u in s.query(Upload).all()]


def test_gc_keeps_the_chunks_of_an_upload_still_in_progress(any_env: Env) -> None:
    """A chunked upload slower than an hour: gc deleted its chunks and the final PUT failed."""
    env = any_env
    data = b"slow upload " * 1000
    start = env.client.post("/v2/red/slow/blobs/uploads/", headers=H)
    loc = start.headers["location"]
    r = env.client.patch(loc, content=data[:5000], headers={**H, "Content-Range": "0-4999"})
    assert r.status_code == 202, r.text
    _age(env, 2)
    assert env.hub.gc(dry_run=False) == []
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    done = env.client.put(
        r.headers["location"] + f"&digest={digest}", content=data[5000:], headers=H
    )
    assert done.status_code == 201, done.text
    assert env.hub.blobs.exists(digest[7:])


def test_gc_keeps_blobs_pushed_before_an_upload_in_progress(any_env: Env) -> None:
    """``ollama push``: the first layer is done two hours ago, the next one's upload is still
    running (for an hour and a half); the first must still be there when the manifest comes."""
    env = any_env
    first = _oci_upload(env, "red/layers", b"first layer\n")[7:]
    _age(env, 0.5)
    env.client.post("/v2/red/layers/blobs/uploads/", headers=H)  # the next layer: in progress
    _age(env, 1.5)
    assert first not in env.hub.gc(dry_run=False)
    assert env.hub.blobs.exists(first)
    # without the upload in progress, it is garbage like any orphan of two hours
    env.client.delete(f"/v2/red/layers/blobs/uploads/{_upload_ids(env)[0]}", headers=H)
    assert env.hub.gc(dry_run=False) == [first]


def test_gc_keeps_a_blob_committed_again_just_now(any_env: Env) -> None:
    """An old orphan uploaded again (same bytes, nothing new written): its record's time is when it
    was first stored, so gc took it from under the push that had just uploaded it."""
    env = any_env
    data = b"uploaded long ago, and again now\n"
    digest = hashlib.sha256(data).hexdigest()
    assert c_put(env, digest, data)
    _age(env, 3)
    assert c_put(env, digest, data)
    assert digest not in env.hub.gc(dry_run=False)
    assert env.hub.blobs.exists(digest)
    # an orphan nobody touched for three hours and no upload in progress: collected as before
    _age(env, 3)
    assert env.hub.gc(dry_run=False) == [digest]
    assert not env.hub.blobs.exists(digest)


def test_gc_keeps_a_blob_committed_but_not_yet_recorded(env: Env) -> None:
    from modelward.store.db import Blob

    data = b"committed a moment ago\n"
    with env.hub.blobs.writer() as w:
        w.write(data)
        info = w.commit()
    with env.app.state.db.session() as s:  # as if gc ran between commit and register_blob
        assert s.get(Blob, info.sha256) is None
    assert info.sha256 not in env.hub.gc(dry_run=True)


# ------------------------------------------------------------------------------------------ names
BAD_PATHS = (
    "CON",
    "sub/nul.txt",
    "models/com1.json",
    "LPT9",
    "a:b.txt",
    "weights.bin:Zone.Identifier",  # an NTFS alternate data stream of weights.bin
    "trailing.",
    "gpj\u202eexe.bin",  # right-to-left override: shows as "binexe.gpj"
    "model\u200b.safetensors",  # zero-width space
    "a\u2066b",  # bidi isolate
    "m\u00a0.bin",  # no-break space
    "\u2024\u2024/x.bin",  # one dot leaders: look like ".."
    "sub\u2215x.bin",  # division slash
    "\uff4dodel.bin",  # fullwidth m
    "m\u043edel.bin",  # Cyrillic o in a Latin word
    "x\ufe0f.bin",  # variation selector
    "\u3164.bin",  # Hangul filler (an invisible letter)
    "p\ue000.bin",  # private use
    "a\u009b31mb.bin",  # C1 control: CSI, a terminal escape
)


@pytest.mark.parametrize("path", BAD_PATHS)
def test_hostile_file_names_are_refused_on_both_protocols(env: Env, path: str) -> None:
    data = b"named badly\n"
    digest = hashlib.sha256(data).hexdigest()
    assert c_put(env, digest, data)
    files = [{"path": path, "sha256": digest, "size": len(data)}]
    r = env.client.post(f"{API}/repos/red/names/revisions", json={"files": files}, headers=H)
    err = _envelope(r, 400, "invalid_name")
    assert "not allowed" in err["message"]
    r = _oci_push(env, "red/names", "v1", {path: data})
    assert r.json()["errors"][0]["code"] == "NAME_INVALID"
    _envelope(r, 400, "invalid_name")


def test_good_non_ascii_names_still_work(env: Env) -> None:
    data = b"fine\n"
    digest = hashlib.sha256(data).hexdigest()
    assert c_put(env, digest, data)
    names = (
        "caf\u00e9.txt",
        "\u6a21\u578b/\u6743\u91cd.bin",
        "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac.txt",
        "config.json",
        "coma.txt",
    )
    files = [{"path": n, "sha256": digest, "size": len(data)} for n in names]
    r = env.client.post(f"{API}/repos/red/goodnames/revisions", json={"files": files}, headers=H)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("repo", ["red/con", "nul/model", "red/com3", "aux/lpt1"])
def test_windows_device_repo_names_are_refused(env: Env, repo: str) -> None:
    data = b"x\n"
    digest = hashlib.sha256(data).hexdigest()
    files = [{"path": "x.txt", "sha256": digest, "size": len(data)}]
    r = env.client.post(f"{API}/repos/{repo}/revisions", json={"files": files}, headers=H)
    _envelope(r, 400, "invalid_name")
    r = env.client.post(f"/v2/{repo}/blobs/uploads/", headers=H)
    err = _envelope(r, 400, "invalid_name")
    assert "Windows device" in err["message"]
    assert r.json()["errors"][0]["code"] == "NAME_INVALID"
    r = env.client.get(f"/api/models/{repo}", headers=H)  # the HF read side: not found, not 5xx
    assert 400 <= r.status_code < 500
    for tag in ("CON", "nul", "v1."):
        r = env.client.put(f"/v2/red/ok/manifests/{tag}", content=b"{}", headers=H)
        assert r.status_code == 400, (tag, r.text)


# ------------------------------------------------------------------------- malformed upstream JSON
class _MalformedUpstream(BaseHTTPRequestHandler):
    """A Hugging Face-compatible endpoint that answers the repo's API with ``BODY``."""

    BODY = b"{not json"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/api/models/") and "/tree/" not in self.path:
            body = self.BODY
        else:
            tree = [{"type": "file", "path": "ok.txt", "size": 3, "oid": "b" * 40}]
            body = json.dumps(tree).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"<html>proxy error</html>",
        b"[1, 2, 3]",
        b'{"id": "a/b", "sha": 5}',
        b'{"id": "a/b"}',
        b'{"id": "a/b", "sha": "../../../../../../tmp/modelward-redteam-escape"}',
    ],
)
def test_an_upstream_answering_malformed_json_is_a_502(env: Env, body: bytes) -> None:
    handler = type("H", (_MalformedUpstream,), {"BODY": body})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}"
        req = {"endpoint": endpoint, "repo_id": "a/b", "repo": "red/malformed"}
        r = env.client.post(f"{API}/import", json=req, headers=H)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    err = _envelope(r, 502, "upstream_failed")
    assert "a/b" in err["message"]
    # the commit id named folders and files: "../" in it wrote outside the download folder
    assert not Path("/tmp/modelward-redteam-escape.json").exists()
    assert not Path("/tmp/modelward-redteam-escape").exists()


# --------------------------------------------------------------------------- OCI chunked uploads
def test_a_chunk_whose_range_end_disagrees_with_its_body_is_a_416(env: Env) -> None:
    c = env.client
    start = c.post("/v2/red/ranges/blobs/uploads/", headers=H)
    loc = start.headers["location"]
    ok = c.patch(loc, content=b"0123456789", headers={**H, "Content-Range": "0-9"})
    assert ok.status_code == 202 and ok.headers["range"] == "0-9"
    loc = ok.headers["location"]

    def chunks(data: bytes) -> Iterator[bytes]:
        yield data

    for content, crange in (
        (b"abc", "10-19"),  # says ten bytes, sends three
        (b"abcdefghijklmnop", "10-12"),  # says three, sends sixteen
        (chunks(b"abc"), "10-19"),  # chunked: no Content-Length to compare with up front
        (b"abc", "10-9"),  # end before start
        (b"abc", "10-x"),
    ):
        r = c.patch(loc, content=content, headers={**H, "Content-Range": crange})
        _envelope(r, 416, "range_invalid")
        assert r.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
        status = c.get(loc, headers=H)
        assert status.status_code == 204 and status.headers["range"] == "0-9"  # nothing appended
    r = c.patch(loc, content=b"abc", headers={**H, "Content-Range": "10-12"})
    assert r.status_code == 202 and r.headers["range"] == "0-12"
    data = b"0123456789abc"
    done = c.put(
        r.headers["location"] + "&digest=sha256:" + hashlib.sha256(data).hexdigest(), headers=H
    )
    assert done.status_code == 201, done.text


@pytest.mark.parametrize(
    "path", [".cache/huggingface/notes.txt", ".Cache/HuggingFace/download/x.metadata"]
)
def test_huggingface_download_records_cannot_be_repository_files(env: Env, path: str) -> None:
    """``hf download --local-dir`` keeps its records in .cache/huggingface/: a repository file
    there would overwrite them (and make ``hub verify`` of a clean copy fail)."""
    data = b"not a record\n"
    digest = hashlib.sha256(data).hexdigest()
    assert c_put(env, digest, data)
    files = [{"path": path, "sha256": digest, "size": len(data)}]
    r = env.client.post(f"{API}/repos/red/cache/revisions", json={"files": files}, headers=H)
    assert (
        "huggingface_hub keeps its download records" in _envelope(r, 400, "invalid_name")["message"]
    )
    r = _oci_push(env, "red/cache", "v1", {path: data})
    _envelope(r, 400, "invalid_name")
    ok = [{"path": ".cache/notes.txt", "sha256": digest, "size": len(data)}]
    r = env.client.post(f"{API}/repos/red/cache/revisions", json={"files": ok}, headers=H)
    assert r.status_code == 201, r.text
