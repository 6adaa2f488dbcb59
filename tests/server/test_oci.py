"""OCI distribution and Ollama routes with real clients: oras-py push/pull, Ollama's exact pull sequence.

Every test runs on SQLite and on PostgreSQL (the ``db_url`` fixture behind ``app``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import oras.client
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelward.hub import oci
from modelward.hub import ollama_auth as oa
from modelward.store.db import OllamaKey
from tests.inventory.homes import tiny_gguf
from tests.server.conftest import ADMIN_TOKEN, LiveServer, auth, make_model_dir, publish

OLLAMA_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def oras_client(live: LiveServer, token: str) -> oras.client.OrasClient:
    host = live.url.removeprefix("http://")
    c = oras.client.OrasClient(hostname=host, insecure=True)
    c.auth.set_basic_auth("any", token)  # what `oras login -u any -p <token>` sets up
    return c


def gguf_dir(root: Path) -> Path:
    d = root / "llm"
    (d / "ollama").mkdir(parents=True)
    tiny_gguf(d / "tiny.gguf")
    (d / "ollama" / "template").write_text("{{ .System }} {{ .Prompt }}")
    (d / "ollama" / "params").write_text(json.dumps({"stop": ["</s>"]}))
    (d / "ollama" / "license").write_text("MIT License\n")
    return d


def ollama_challenge(header: str) -> dict[str, str]:
    """What Ollama's parseRegistryChallenge reads out of WWW-Authenticate."""
    out = {}
    body = header.removeprefix("Bearer ")
    for key in ("realm", "service", "scope"):
        i = body.find(key + '="')
        assert i >= 0, header
        j = body.index('"', i + len(key) + 2)
        out[key] = body[i + len(key) + 2 : j]
    return out


def register_key(live: LiveServer, key: Ed25519PrivateKey, role: str = "reader") -> None:
    with live.app.state.db.session() as s:
        s.add(
            OllamaKey(name="dev-laptop", public_key=oa.public_key_line(key).split()[1], role=role)
        )


# --------------------------------------------------------------------------- basics
def test_ping_and_challenge(client: Any) -> None:
    r = client.get("/v2/")
    assert r.status_code == 401
    assert (
        r.headers["www-authenticate"]
        == 'Bearer realm="http://testserver/v2/token",service="modelward"'
    )
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    r = client.get("/v2/", headers=auth())
    assert r.status_code == 200 and r.json() == {}
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    r = client.get("/v2/org/x/manifests/latest")
    assert r.status_code == 401
    assert 'scope="repository:org/x:pull"' in r.headers["www-authenticate"]


def test_token_endpoint_basic_and_revocation(client: Any, app: Any) -> None:
    from modelward.server.auth import create_token

    reader = create_token(app.state.db, "r", "reader", "tests")
    basic = "Basic " + base64.b64encode(f"any:{reader}".encode()).decode()
    r = client.get(
        "/v2/token?service=modelward&scope=repository:org/x:pull", headers={"Authorization": basic}
    )
    assert r.status_code == 200, r.text
    tok = r.json()["token"]
    assert r.json()["access_token"] == tok and tok.startswith("mwr_")
    assert client.get("/v2/", headers={"Authorization": f"Bearer {tok}"}).status_code == 200
    bad = "Basic " + base64.b64encode(b"any:mw_nope").decode()
    assert client.get("/v2/token", headers={"Authorization": bad}).status_code == 401
    assert client.get("/v2/token").status_code == 401
    # revoking the API token (as `modelward hub token revoke` does) ends the registry tokens
    # made from it, on their next request
    from modelward.server.auth import id_of_token

    r = client.delete(f"/api/v1/hub/tokens/{id_of_token(app.state.db, reader)}", headers=auth())
    assert r.status_code == 200 and r.json()["revoked"] is True
    r = client.get("/v2/", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 401 and "www-authenticate" in r.headers
    assert client.get("/v2/token", headers={"Authorization": basic}).status_code == 401


# --------------------------------------------------------------------------- oras
def test_oras_push_review_approve_pull(live_server: LiveServer, tmp_path: Path) -> None:
    src = make_model_dir(tmp_path)
    files = [src / "model.safetensors", src / "config.json", src / "README.md"]
    publisher = oras_client(live_server, live_server.token("publisher"))
    host = live_server.url.removeprefix("http://")
    target = f"{host}/acme/pushed:v1"
    resp = publisher.push(
        target=target, files=[str(f) for f in files], disable_path_validation=True
    )
    assert resp.status_code == 201
    pushed_digest = resp.headers["Docker-Content-Digest"]
    assert resp.headers["X-Modelward-State"] == "in_review"

    hub = live_server.hub
    rev = hub.revision("acme/pushed", "v1")
    assert rev.state == "in_review"
    assert rev.provenance["kind"] == "oci" and rev.provenance["revision"] == pushed_digest
    assert {f.path: f.sha256 for f in rev.files} == {f.name: sha(f.read_bytes()) for f in files}

    reader = oras_client(live_server, live_server.token("reader"))
    with pytest.raises(ValueError):  # 403 blocked by policy: in review
        reader.pull(target=target, outdir=str(tmp_path / "early"))
    assert not (tmp_path / "early" / "config.json").exists()

    hub.approve("acme/pushed", rev.commit, "rita", "looks fine", override=True)
    out = tmp_path / "pulled"
    pulled = reader.pull(target=target, outdir=str(out))
    assert sorted(Path(p).name for p in pulled) == sorted(f.name for f in files)
    for f in files:
        assert (out / f.name).read_bytes() == f.read_bytes()
    # the pushed manifest comes back byte for byte (same digest), by tag and by digest
    r = httpx.get(
        f"{live_server.url}/v2/acme/pushed/manifests/v1",
        headers={"Accept": oci.OCI_MANIFEST, **auth()},
    )
    assert r.headers["docker-content-digest"] == pushed_digest == "sha256:" + sha(r.content)
    r2 = httpx.get(f"{live_server.url}/v2/acme/pushed/manifests/{pushed_digest}", headers=auth())
    assert r2.content == r.content
    assert sorted(reader.get_tags(f"{host}/acme/pushed")) == ["latest", "main", "v1"]


def test_oras_pulls_modelpack_of_uploaded_revision(live_server: LiveServer, tmp_path: Path) -> None:
    src = make_model_dir(tmp_path)
    publish(live_server.hub, "acme/tiny", src)
    host = live_server.url.removeprefix("http://")
    reader = oras_client(live_server, live_server.token("reader"))
    manifest = reader.get_manifest(f"{host}/acme/tiny:main")
    assert manifest["artifactType"] == oci.MODELPACK_ARTIFACT
    out = tmp_path / "out"
    reader.pull(target=f"{host}/acme/tiny:latest", outdir=str(out))
    expected = {
        p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file()
    }
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == expected  # nested paths included
    # the config blob is rendered, not stored, and still served with its digest
    cfg = manifest["config"]
    r = httpx.get(f"{live_server.url}/v2/acme/tiny/blobs/{cfg['digest']}", headers=auth())
    assert r.status_code == 200 and "sha256:" + sha(r.content) == cfg["digest"]
    assert json.loads(r.content)["descriptor"]["name"] == "acme/tiny"


def test_referrers(live_server: LiveServer, tmp_path: Path) -> None:
    rev = publish(live_server.hub, "acme/ref", make_model_dir(tmp_path))
    base = live_server.url
    m = httpx.get(f"{base}/v2/acme/ref/manifests/main", headers=auth())
    digest = m.headers["docker-content-digest"]
    head = httpx.head(f"{base}/v2/acme/ref/manifests/main", headers=auth())  # through uvicorn
    assert head.status_code == 200 and head.headers["docker-content-digest"] == digest
    assert int(head.headers["content-length"]) == len(m.content) and head.content == b""
    r = httpx.get(f"{base}/v2/acme/ref/referrers/{digest}", headers=auth())
    assert r.status_code == 200 and r.headers["content-type"].startswith(oci.OCI_INDEX)
    index = r.json()
    types = {d["artifactType"] for d in index["manifests"]}
    assert {oci.SCAN_ARTIFACT, oci.APPROVAL_ARTIFACT} <= types
    if rev.signature:
        assert oci.SIGNATURE_ARTIFACT in types
    for desc in index["manifests"]:
        ref = httpx.get(f"{base}/v2/acme/ref/manifests/{desc['digest']}", headers=auth())
        assert ref.status_code == 200 and "sha256:" + sha(ref.content) == desc["digest"]
        body = ref.json()
        assert body["subject"]["digest"] == digest
        layer = body["layers"][0]
        blob = httpx.get(f"{base}/v2/acme/ref/blobs/{layer['digest']}", headers=auth())
        assert blob.status_code == 200 and "sha256:" + sha(blob.content) == layer["digest"]
    only = httpx.get(
        f"{base}/v2/acme/ref/referrers/{digest}",
        params={"artifactType": oci.SCAN_ARTIFACT},
        headers=auth(),
    )
    assert [d["artifactType"] for d in only.json()["manifests"]] == [oci.SCAN_ARTIFACT]
    assert only.headers["oci-filters-applied"] == "artifactType"
    scan = httpx.get(
        f"{base}/v2/acme/ref/blobs/{next(d for d in index['manifests'] if d['artifactType'] == oci.SCAN_ARTIFACT)['digest']}",
        headers=auth(),
    )
    assert scan.status_code == 404  # a manifest digest is not a blob of the repo


# --------------------------------------------------------------------------- Ollama
def test_ollama_pull_sequence(live_server: LiveServer, tmp_path: Path) -> None:
    """Replays `ollama pull --insecure host:port/acme/llm` request by request (server/images.go,
    server/download.go, server/auth.go), then checks every digest as Ollama does."""
    src = gguf_dir(tmp_path)
    publish(live_server.hub, "acme/llm", src)
    key = Ed25519PrivateKey.generate()
    register_key(live_server, key)
    base = live_server.url
    with httpx.Client(headers={"User-Agent": "ollama/0.12.0 (amd64 linux) Go/go1.24"}) as http:
        # 1. manifest with Docker v2 only -> 401 challenge
        url = f"{base}/v2/acme/llm/manifests/latest"
        r = http.get(url, headers={"Accept": OLLAMA_ACCEPT})
        assert r.status_code == 401
        ch = ollama_challenge(r.headers["www-authenticate"])
        realm = urllib.parse.urlsplit(ch["realm"])
        assert realm.netloc == urllib.parse.urlsplit(base).netloc  # Ollama requires the same host
        assert ch["scope"] == "repository:acme/llm:pull"
        # 2. the signed token request
        token_url = oa.token_request_url(ch["realm"], ch["service"], ch["scope"])
        r = http.get(token_url, headers={"Authorization": oa.make_authorization(key, token_url)})
        assert r.status_code == 200, r.text
        bearer = {"Authorization": "Bearer " + r.json()["token"]}
        # 3. retry the manifest with the token
        r = http.get(url, headers={"Accept": OLLAMA_ACCEPT, **bearer})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith(OLLAMA_ACCEPT)
        manifest = r.json()
        assert r.headers["docker-content-digest"] == "sha256:" + sha(r.content)
        kinds = [layer["mediaType"].rsplit(".", 1)[-1] for layer in manifest["layers"]]
        assert kinds == ["model", "license", "template", "params"]
        wanted = {
            "model": (src / "tiny.gguf").read_bytes(),
            **{k: (src / "ollama" / k).read_bytes() for k in ("license", "template", "params")},
        }
        config = json.loads(
            http.get(
                f"{base}/v2/acme/llm/blobs/{manifest['config']['digest']}", headers=bearer
            ).content
        )
        assert config["model_format"] == "gguf" and config["model_family"] == "llama"
        # 4. per layer (and the config): HEAD for Content-Length, GET for Location, ranged GETs
        for layer in [*manifest["layers"], manifest["config"]]:
            blob_url = f"{base}/v2/acme/llm/blobs/{layer['digest']}"
            head = http.head(blob_url, headers=bearer)
            assert head.status_code == 200
            size = int(head.headers["content-length"])
            assert size == layer["size"]
            get = http.get(blob_url, headers=bearer)  # httpx does not follow: like CheckRedirect
            assert get.status_code == 200
            location = get.headers["location"]
            assert urllib.parse.urlsplit(location).hostname == "127.0.0.1"
            parts = []
            step = max(1, size // 3)
            for start in range(0, size, step):
                end = min(start + step, size) - 1
                part = httpx.get(location, headers={"Range": f"bytes={start}-{end}"})  # no auth
                assert part.status_code == 206, part.text
                assert part.headers["content-range"] == f"bytes {start}-{end}/{size}"
                parts.append(part.content)
            data = b"".join(parts)
            assert "sha256:" + sha(data) == layer["digest"]  # verifyBlob
            if layer is not manifest["config"]:
                assert data == wanted[layer["mediaType"].rsplit(".", 1)[-1]]
        # a tampered or foreign signed URL is refused
        forged = location.replace("sig=", "sig=0")
        assert httpx.get(forged).status_code == 403
        other = location.replace("/acme/llm/", "/acme/other/")
        assert httpx.get(other).status_code == 403


def test_ollama_unknown_key_and_stale_request(live_server: LiveServer) -> None:
    key = Ed25519PrivateKey.generate()
    realm = f"{live_server.url}/v2/token"
    url = oa.token_request_url(realm, "modelward", "repository:acme/llm:pull")
    r = httpx.get(url, headers={"Authorization": oa.make_authorization(key, url)})
    assert r.status_code == 401 and "not registered" in r.json()["error"]["message"]
    register_key(live_server, key)
    old = oa.token_request_url(realm, "modelward", "repository:acme/llm:pull", ts=1_000_000_000)
    r = httpx.get(old, headers={"Authorization": oa.make_authorization(key, old)})
    assert r.status_code == 401 and "timestamp" in r.json()["error"]["message"]
    # a signature over another URL (replayed to a different query) fails
    r = httpx.get(url + "&x=1", headers={"Authorization": oa.make_authorization(key, url)})
    assert r.status_code == 401


def test_ollama_push_then_pull_same_digest(live_server: LiveServer, tmp_path: Path) -> None:
    """Replays `ollama push --insecure` (server/upload.go, server/images.go): HEAD the blob, POST an
    upload, PATCH parts with `Content-Range: a-b` to each returned absolute Location, PUT
    `?digest=&etag=` with no body, then `PUT manifests/<tag>` with the Docker v2 type."""
    src = gguf_dir(tmp_path)
    key = Ed25519PrivateKey.generate()
    register_key(live_server, key, role="publisher")
    base = live_server.url
    http = httpx.Client()
    token: dict[str, str] = {}

    def request(method: str, url: str, **kw: Any) -> httpx.Response:
        """makeRequestWithRetry: on 401 get a token with the key-signed request, retry once."""
        r = http.request(method, url, headers={**kw.pop("headers", {}), **token}, **kw)
        if r.status_code == 401:
            ch = ollama_challenge(r.headers["www-authenticate"])
            turl = oa.token_request_url(ch["realm"], ch["service"], ch["scope"])
            t = http.get(turl, headers={"Authorization": oa.make_authorization(key, turl)})
            assert t.status_code == 200, t.text
            token["Authorization"] = "Bearer " + t.json()["token"]
            r = http.request(method, url, headers={**kw.pop("headers", {}), **token}, **kw)
        return r

    blobs = [
        ("model", (src / "tiny.gguf").read_bytes()),
        ("template", (src / "ollama/template").read_bytes()),
    ]
    config = json.dumps({"model_format": "gguf", "model_family": "llama"}).encode()
    for _kind, data in [*blobs, ("config", config)]:
        d = "sha256:" + sha(data)
        assert request("HEAD", f"{base}/v2/acme/pushed-llm/blobs/{d}").status_code == 404
        start = request("POST", f"{base}/v2/acme/pushed-llm/blobs/uploads/")
        assert start.status_code == 202
        location = start.headers["location"]
        assert location.startswith(base + "/")  # Go's url.Parse: a relative URL would not do
        part = max(1, len(data) // 2)
        for offset in range(0, len(data), part):
            chunk = data[offset : offset + part]
            r = request(
                "PATCH",
                location,
                content=chunk,
                headers={
                    "Content-Type": "application/octet-stream",
                    "X-Redirect-Uploads": "1",
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                },
            )
            assert r.status_code == 202, r.text
            location = r.headers["location"]
        parts = urllib.parse.urlsplit(location)
        query = urllib.parse.parse_qs(parts.query)
        query.update({"digest": [d], "etag": ["0123abcd-2"]})
        final = parts._replace(query=urllib.parse.urlencode(query, doseq=True)).geturl()
        put = request("PUT", final, headers={"Content-Length": "0"})
        assert put.status_code == 201, put.text
        assert put.headers["docker-content-digest"] == d
    layers = [
        {
            "mediaType": f"application/vnd.ollama.image.{kind}",
            "digest": "sha256:" + sha(data),
            "size": len(data),
        }
        for kind, data in blobs
    ]
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OLLAMA_ACCEPT,
            "config": {
                "mediaType": oci.DOCKER_CONFIG,
                "digest": "sha256:" + sha(config),
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    r = request(
        "PUT",
        f"{base}/v2/acme/pushed-llm/manifests/q4",
        content=manifest,
        headers={"Content-Type": OLLAMA_ACCEPT},
    )
    assert r.status_code == 201, r.text
    http.close()
    rev = live_server.hub.revision("acme/pushed-llm", "q4")
    assert [f.path for f in rev.files] == ["model.gguf", "ollama/template"]
    assert rev.state == "in_review" and rev.provenance["kind"] == "oci"
    assert {f.path: f.sha256 for f in rev.files} == {
        "model.gguf": sha(blobs[0][1]),
        "ollama/template": sha(blobs[1][1]),
    }
    live_server.hub.approve("acme/pushed-llm", rev.commit, "rita", "ok", override=True)
    got = httpx.get(
        f"{base}/v2/acme/pushed-llm/manifests/q4", headers={"Accept": OLLAMA_ACCEPT, **auth()}
    )
    assert got.content == manifest  # the pushed bytes, so the digest Ollama pushed
    cfg = httpx.get(f"{base}/v2/acme/pushed-llm/blobs/sha256:{sha(config)}", headers=auth())
    assert cfg.status_code == 200 and cfg.content == config


# --------------------------------------------------------------------------- uploads and errors
def test_chunked_upload_and_bad_digest(client: Any, app: Any) -> None:
    h = auth()
    data = b"0123456789" * 1000
    start = client.post("/v2/acme/chunky/blobs/uploads/", headers=h)
    assert start.status_code == 202 and start.headers["range"] == "0-0"
    loc = start.headers["location"]
    r = client.patch(loc, content=data[:4000], headers={"Content-Range": "0-3999", **h})
    assert r.status_code == 202 and r.headers["range"] == "0-3999"
    bad = client.patch(r.headers["location"], content=b"x", headers={"Content-Range": "10-10", **h})
    assert bad.status_code == 416
    r = client.patch(r.headers["location"], content=data[4000:9000], headers=h)
    assert r.status_code == 202 and r.headers["range"] == "0-8999"
    status = client.get(r.headers["location"], headers=h)
    assert status.status_code == 204 and status.headers["range"] == "0-8999"
    wrong = client.put(
        r.headers["location"] + "&digest=sha256:" + "0" * 64, content=data[9000:], headers=h
    )
    assert wrong.status_code == 400 and wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert not app.state.blobs.exists("0" * 64)
    done = client.put(
        r.headers["location"] + "&digest=sha256:" + sha(data), content=data[9000:], headers=h
    )
    assert done.status_code == 201, done.text
    assert app.state.blobs.exists(sha(data))
    again = client.put(r.headers["location"] + "&digest=sha256:" + sha(data), headers=h)
    assert again.status_code == 404 and again.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    forged = loc.replace("_state=", "_state=x")
    assert client.patch(forged, content=b"x", headers=h).status_code in (403, 404)
    # monolithic POST ?digest= with a body
    mono = b"single shot"
    r = client.post(
        f"/v2/acme/chunky/blobs/uploads/?digest=sha256:{sha(mono)}", content=mono, headers=h
    )
    assert (
        r.status_code == 201
        and r.headers["location"] == f"http://testserver/v2/acme/chunky/blobs/sha256:{sha(mono)}"
    )


def test_upload_size_limit(client: Any, app: Any) -> None:
    app.state.settings.max_upload_bytes = 10
    h = auth()
    big = b"x" * 11
    r = client.post(f"/v2/acme/big/blobs/uploads/?digest=sha256:{sha(big)}", content=big, headers=h)
    assert r.status_code == 413 and r.json()["errors"][0]["code"] == "SIZE_INVALID"
    assert not app.state.blobs.exists(sha(big))


@pytest.mark.parametrize(
    ("manifest", "code"),
    [
        (b"not json", "MANIFEST_INVALID"),
        (
            json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": []}).encode(),
            "UNSUPPORTED",
        ),
    ],
)
def test_bad_manifest_push(client: Any, manifest: bytes, code: str) -> None:
    r = client.put(
        "/v2/acme/x/manifests/v1",
        content=manifest,
        headers={"Content-Type": oci.OCI_MANIFEST, **auth()},
    )
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == code


def test_push_with_traversal_path_and_missing_blob(client: Any) -> None:
    h = {"Content-Type": oci.OCI_MANIFEST, **auth()}
    cfg = b"{}"
    client.post(f"/v2/acme/x/blobs/uploads/?digest=sha256:{sha(cfg)}", content=cfg, headers=auth())

    def manifest(title: str, digest: str) -> bytes:
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": oci.OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": "sha256:" + sha(cfg),
                    "size": 2,
                },
                "layers": [
                    {
                        "mediaType": "application/octet-stream",
                        "digest": digest,
                        "size": 3,
                        "annotations": {"org.opencontainers.image.title": title},
                    }
                ],
            }
        ).encode()

    r = client.put(
        "/v2/acme/x/manifests/v1",
        content=manifest("../../etc/passwd", "sha256:" + sha(b"abc")),
        headers=h,
    )
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "NAME_INVALID"
    r = client.put(
        "/v2/acme/x/manifests/v1", content=manifest("a.bin", "sha256:" + sha(b"abc")), headers=h
    )
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    r = client.put(
        f"/v2/acme/x/manifests/sha256:{'1' * 64}",
        content=manifest("a.bin", "sha256:" + sha(b"abc")),
        headers=h,
    )
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"


def test_pull_errors(client: Any, hub: Any, tmp_path: Path) -> None:
    h = auth()
    r = client.get("/v2/nobody/nothing/manifests/latest", headers=h)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    rev = publish(hub, "acme/m", make_model_dir(tmp_path), tag="v1")
    r = client.get("/v2/acme/m/manifests/v9", headers=h)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    r = client.get("/v2/acme/m/manifests/v1", headers={"Accept": OLLAMA_ACCEPT, **h})
    assert r.status_code == 404 and "GGUF" in r.json()["errors"][0]["message"]
    r = client.head("/v2/acme/m/manifests/v1", headers=h)
    assert r.status_code == 200 and int(r.headers["content-length"]) > 0 and r.content == b""
    digest = r.headers["docker-content-digest"]
    r = client.get("/v2/acme/m/blobs/sha256:" + "a" * 64, headers=h)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    r = client.get("/v2/acme/m/blobs/sha256:XYZ", headers=h)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    r = client.get("/v2/Acme/m/manifests/v1", headers=h)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "NAME_INVALID"
    # a second revision in review: blocked by policy
    pending = publish(
        hub, "acme/m", make_model_dir(tmp_path, "m2", weights=b"\x00" * 64), approve=False, tag="v2"
    )
    r = client.get("/v2/acme/m/manifests/v2", headers=h)
    assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED"
    assert "blocked by policy" in r.json()["error"]["message"]
    # a blob only the pending revision has is not served
    only_pending = next(f for f in pending.files if f.path == "model.safetensors")
    r = client.get(f"/v2/acme/m/blobs/sha256:{only_pending.sha256}", headers=h)
    assert r.status_code == 404
    # revoked: the tag and the digest both refuse
    hub.revoke("acme/m", rev.commit, "rita", "license problem")
    r = client.get("/v2/acme/m/manifests/v1", headers=h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "revoked"
    r = client.get(f"/v2/acme/m/manifests/{digest}", headers=h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "revoked"
    f = rev.files[0]
    assert client.get(f"/v2/acme/m/blobs/sha256:{f.sha256}", headers=h).status_code == 404


BLOB = f"sha256:{'a' * 64}"
OCI_ROUTES: list[tuple[str, str, str]] = [
    # (method, path, need): every /v2 route (and the aliases the schema leaves out)
    ("GET", "/v2/", "read"),
    ("HEAD", "/v2/", "read"),
    ("GET", "/v2", "read"),
    ("HEAD", "/v2", "read"),
    ("GET", "/v2/token", "token"),
    ("GET", "/v2/{ns}/{name}/manifests/{reference}", "read"),
    ("HEAD", "/v2/{ns}/{name}/manifests/{reference}", "read"),
    ("PUT", "/v2/{ns}/{name}/manifests/{reference}", "publish"),
    ("GET", "/v2/{ns}/{name}/blobs/{digest}", "read"),
    ("HEAD", "/v2/{ns}/{name}/blobs/{digest}", "read"),
    ("GET", "/v2/{ns}/{name}/tags/list", "read"),
    ("GET", "/v2/{ns}/{name}/referrers/{digest}", "read"),
    ("POST", "/v2/{ns}/{name}/blobs/uploads/", "publish"),
    ("POST", "/v2/{ns}/{name}/blobs/uploads", "publish"),
    ("PATCH", "/v2/{ns}/{name}/blobs/uploads/{upload_id}", "publish"),
    ("PUT", "/v2/{ns}/{name}/blobs/uploads/{upload_id}", "publish"),
    ("GET", "/v2/{ns}/{name}/blobs/uploads/{upload_id}", "publish"),
    ("DELETE", "/v2/{ns}/{name}/blobs/uploads/{upload_id}", "publish"),
]
OCI_PARAMS = {
    "ns": "acme",
    "name": "x",
    "reference": "v1",
    "digest": BLOB,
    "upload_id": "0" * 32,
}
GRANTS = {
    "read": {"admin", "reviewer", "publisher", "reader"},
    "publish": {"admin", "publisher"},
    "token": {"admin", "reviewer", "publisher", "reader"},  # any valid token gets a registry token
}


def test_the_oci_role_matrix_lists_every_route(app: Any) -> None:
    served = {
        (method.upper(), path)
        for path, ops in app.openapi()["paths"].items()
        if path == "/v2" or path.startswith("/v2/")
        for method in ops
    }
    assert served <= {(method, path) for method, path, _ in OCI_ROUTES}


def _oci_tokens(app: Any) -> dict[str, str]:
    from modelward.server.auth import create_token

    made = {r: create_token(app.state.db, f"t-{r}", r, "t") for r in ("reviewer", "publisher")}
    return {"admin": ADMIN_TOKEN, "reader": create_token(app.state.db, "r", "reader", "t"), **made}


def _challenged(r: Any, method: str, path: str) -> None:
    assert r.status_code == 401, (method, path, r.status_code, r.text)
    if path == "/v2/token":  # the token service itself asks for Basic credentials
        assert r.headers["www-authenticate"] == 'Basic realm="modelward"', (method, path)
    else:
        assert r.headers["www-authenticate"].startswith("Bearer realm="), (method, path)
    if method != "HEAD":
        assert r.json()["error"]["code"] == "unauthorized", (method, path)


def test_roles(client: Any, app: Any) -> None:
    """Every /v2 route: no token and a wrong token 401 (with the challenge), each wrong role 403."""
    tokens = _oci_tokens(app)
    for method, template, need in OCI_ROUTES:
        path = template.format(**OCI_PARAMS)
        body = b"{}" if method in ("PUT", "PATCH") else None
        _challenged(client.request(method, path, content=body), method, path)
        for bad in (f"{ADMIN_TOKEN}x", "mw_" + "x" * 43, "mwr_forged.token"):
            r = client.request(method, path, content=body, headers=auth(bad))
            _challenged(r, method, path)
        for role, token in tokens.items():
            r = client.request(method, path, content=body, headers=auth(token))
            if role in GRANTS[need]:
                assert r.status_code not in (401, 403), (method, path, role, r.text)
                continue
            assert r.status_code == 403, (method, path, role, r.status_code, r.text)
            assert "may not publish" in r.headers["x-error-message"], (method, path, role)
            if method != "HEAD":
                assert r.json()["errors"][0]["code"] == "DENIED", (method, path, role)
                assert r.json()["error"]["code"] == "forbidden", (method, path, role)


def test_roles_with_anonymous_read(client: Any, app: Any) -> None:
    """Anonymous read on: reads need no token, publishing still answers 401 with the challenge."""
    app.state.settings.anonymous_read = True
    for method, template, need in OCI_ROUTES:
        path = template.format(**OCI_PARAMS)
        body = b"{}" if method in ("PUT", "PATCH") else None
        r = client.request(method, path, content=body)
        if need == "publish":
            _challenged(r, method, path)
        else:
            assert r.status_code not in (401, 403), (method, path, r.text)


def test_anonymous_read(client: Any, app: Any, hub: Any, tmp_path: Path) -> None:
    app.state.settings.anonymous_read = True
    publish(hub, "acme/open", make_model_dir(tmp_path))
    assert client.get("/v2/acme/open/manifests/latest").status_code == 200
    tok = client.get("/v2/token").json()["token"]
    assert client.get("/v2/acme/open/tags/list", headers={"Authorization": f"Bearer {tok}"}).json()[
        "tags"
    ] == [
        "latest",
        "main",
    ]
    assert client.post("/v2/acme/open/blobs/uploads/").status_code == 401


def test_stale_upload_sessions_are_dropped(client: Any, app: Any) -> None:
    from datetime import timedelta

    from modelward.store.db import Upload, utcnow

    h = auth()
    old = client.post("/v2/acme/stale/blobs/uploads/", headers=h)
    upload_id = old.headers["docker-upload-uuid"]
    with app.state.db.session() as s:
        s.get(Upload, upload_id).created_at = utcnow() - timedelta(days=2)
    assert client.post("/v2/acme/stale/blobs/uploads/", headers=h).status_code == 202
    r = client.patch(old.headers["location"], content=b"x", headers=h)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_push_with_a_tag_longer_than_ollama_allows(client: Any, hub: Any) -> None:
    """80 characters is the most Ollama pulls; 81 is refused (OCI's 128 would not be pullable)."""
    cfg, data = b"{}", b"abc"
    for blob in (cfg, data):
        r = client.post(
            f"/v2/acme/x/blobs/uploads/?digest=sha256:{sha(blob)}", content=blob, headers=auth()
        )
        assert r.status_code == 201, r.text
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": "sha256:" + sha(cfg),
                "size": len(cfg),
            },
            "layers": [
                {
                    "mediaType": "application/octet-stream",
                    "digest": "sha256:" + sha(data),
                    "size": len(data),
                    "annotations": {"org.opencontainers.image.title": "a.bin"},
                }
            ],
        }
    ).encode()
    h = {"Content-Type": oci.OCI_MANIFEST, **auth()}
    r = client.put(f"/v2/acme/x/manifests/{'t' * 81}", content=manifest, headers=h)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["code"] == "NAME_INVALID"
    message = r.json()["error"]["message"]
    assert "81 characters long, more than 80" in message and "Ollama" in message
    assert hub.list_repos(approved_only=False) == []
    r = client.put(f"/v2/acme/x/manifests/{'t' * 80}", content=manifest, headers=h)
    assert r.status_code == 201, r.text
