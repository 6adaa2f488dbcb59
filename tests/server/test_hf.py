"""The Hugging Face protocol against the real huggingface_hub and transformers on a live server.

One live server per database (module scope) holds a set of repositories in every state: approved
(with a tag and a real WordLevel tokenizer), in review, rejected, revoked, and one whose newest
revision was revoked. Tests that change state use repositories of their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.server.conftest import (
    ADMIN_TOKEN,
    LiveServer,
    _pg_schema_url,
    make_model_dir,
    publish,
    start_live,
)

REPO = "acme/tiny"

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ["HF_HUB_OFFLINE"] = "0"


@dataclass
class Hub:
    live: LiveServer
    folder: Path
    commit: str
    reader: str
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.live.url


def _once(hub: Hub) -> None:
    """Slow subprocess clients run on one database only: what they exercise does not depend on it."""
    if "postgresql" in hub.live.app.state.settings.effective_database_url:
        pytest.skip("run once, on SQLite: the client subprocess does not depend on the database")


def make_tokenizer(folder: Path) -> None:
    """A tiny real tokenizer (WordLevel) as transformers saves it: tokenizer.json + its config."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"[UNK]": 0, "[PAD]": 1, "hello": 2, "world": 3, "model": 4, "ward": 5}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()  # type: ignore[assignment]
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "unk_token": "[UNK]",
                "pad_token": "[PAD]",
                "model_max_length": 16,
            }
        )
    )


def _recorder(app: Any, log: list[tuple[str, str, str | None]]) -> None:
    """Record (method, raw path, Range header) of every request, to see what the client sent.

    ``app.state.cut = (path part, n)`` makes the next GET of a matching path send only ``n`` body
    bytes and drop the connection: a network failure in the middle of a download.
    """

    class Record:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.inner(scope, receive, send)
                return
            raw = scope.get("raw_path", b"").decode()
            rng = dict(scope["headers"]).get(b"range")
            log.append((scope["method"], raw, rng.decode() if rng else None))
            cut = getattr(app.state, "cut", None)
            if not (cut and scope["method"] == "GET" and cut[0] in raw):
                await self.inner(scope, receive, send)
                return
            app.state.cut = None
            sent = 0

            async def truncating(message: Any) -> None:
                nonlocal sent
                if message["type"] != "http.response.body":
                    await send(message)
                    return
                body = message["body"][: cut[1] - sent]
                sent += len(body)
                await send({**message, "body": body, "more_body": True})
                if sent >= cut[1]:
                    raise ConnectionAbortedError("test: connection dropped mid-body")

            await self.inner(scope, receive, truncating)

    app.add_middleware(Record)


@contextmanager
def _serve(db_url: str, root: Path, anonymous: bool = False) -> Iterator[tuple[Any, LiveServer]]:
    from modelward.server.app import create_app
    from modelward.server.settings import ServerSettings

    settings = ServerSettings(
        data_dir=root / "data",
        database_url=db_url,
        admin_token=ADMIN_TOKEN,
        anonymous_read=anonymous,
    )
    app = create_app(settings)
    log: list[tuple[str, str, str | None]] = []
    app.state.test_requests = log
    _recorder(app, log)
    live, server, thread = start_live(app)
    try:
        yield app, live
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.db.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("hf")
    with ExitStack() as stack:
        if request.param == "sqlite":
            db_url = f"sqlite:///{root / 'hub.db'}"
        else:
            db_url = stack.enter_context(contextmanager(_pg_schema_url)())
        app, live = stack.enter_context(_serve(db_url, root))
        h = live.hub
        folder = make_model_dir(root)
        make_tokenizer(folder)
        odd = folder / "docs" / "notes on ü"  # names clients percent-encode
        odd.mkdir(parents=True)
        (odd / "100% done #1?.txt").write_text("odd name\n")
        rev = publish(h, REPO, folder, tag="v1")
        publish(h, "acme/pending", make_model_dir(root, "pending"), approve=False)
        rej = publish(h, "acme/rejected", make_model_dir(root, "rejected"), approve=False)
        h.reject("acme/rejected", rej.commit, "rita", "license not allowed here")
        gone = publish(h, "acme/gone", make_model_dir(root, "gone"))
        h.revoke("acme/gone", gone.commit, "rita", "leaked a secret")
        yield Hub(live, folder, rev.commit, live.token("reader"), app.state.test_requests)


def api(hub: Hub, token: str | bool | None = None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.url, token=hub.reader if token is None else token)


def originals(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------------------- model info
def test_model_info_of_main_tag_and_commit(hub: Hub) -> None:
    a = api(hub)
    info = a.model_info(REPO)
    assert info.id == REPO and info.sha == hub.commit
    assert info.private is False and info.gated is False and info.disabled is False
    assert sorted(s.rfilename for s in info.siblings) == sorted(originals(hub.folder))
    assert info.library_name == "transformers"
    assert info.pipeline_tag == "feature-extraction"  # BertModel
    assert info.card_data is not None and info.card_data["license"] == "apache-2.0"
    assert "license:apache-2.0" in info.tags and "safetensors" in info.tags
    assert info.last_modified is not None
    for rev in ("v1", "refs/tags/v1", "main", "refs/heads/main", hub.commit):
        assert a.model_info(REPO, revision=rev).sha == hub.commit, rev
    detailed = a.model_info(REPO, files_metadata=True)
    files = originals(hub.folder)
    for s in detailed.siblings:
        data = files[s.rfilename]
        assert s.size == len(data)
        assert s.lfs is not None and s.lfs.sha256 == hashlib.sha256(data).hexdigest()
        assert s.lfs.size == len(data) and s.lfs.pointer_size > 100
        assert s.blob_id and len(s.blob_id) == 40


def test_model_info_carries_the_hubs_record(hub: Hub) -> None:
    r = httpx.get(f"{hub.url}/api/models/{REPO}", headers={"authorization": f"Bearer {hub.reader}"})
    mw = r.json()["modelward"]
    assert mw["commit"] == hub.commit and mw["state"] == "approved"
    assert mw["refs"] == ["main", "v1"]
    assert mw["provenance"]["kind"] == "upload"
    assert mw["license"]["id"] == "apache-2.0"
    assert mw["scan"]["summary"]["files"] == len(originals(hub.folder))
    assert mw["approval"]["by"] == "reviewer" and mw["approval"]["reason"] == "tests approve"
    assert mw["approval"]["at"].endswith("Z")
    sig = mw["signature"]
    assert sig["signed"] and sig["bundle"].startswith("sha256:")
    assert "BEGIN PUBLIC KEY" in sig["public_key"]
    assert sig["verify"].startswith(f"modelward hub verify <downloaded folder> --repo {REPO}")
    assert sig["url"].endswith(f"/api/v1/hub/repos/{REPO}/revisions/{hub.commit}/signature")


def test_repo_exists_refs_and_list_models(hub: Hub) -> None:
    a = api(hub)
    assert a.repo_exists(REPO) and not a.repo_exists("acme/nope")
    assert a.file_exists(REPO, "config.json") and not a.file_exists(REPO, "nope.json")
    refs = a.list_repo_refs(REPO)
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", hub.commit)]
    assert [(t.name, t.ref, t.target_commit) for t in refs.tags] == [
        ("v1", "refs/tags/v1", hub.commit)
    ]
    ids = [m.id for m in a.list_models()]
    assert REPO in ids and "acme/pending" not in ids and "acme/gone" not in ids
    assert [m.id for m in a.list_models(search="tin")] == [REPO]


def test_whoami_and_agent_harnesses(hub: Hub) -> None:
    who = api(hub).whoami()
    assert who["name"] == "test-reader" and who["orgs"] == []
    assert who["auth"]["accessToken"]["role"] == "read"
    r = httpx.get(f"{hub.url}/api/agent-harnesses")
    assert r.status_code == 404 and r.json()["error"]["status"] == 404


# ------------------------------------------------------------------------------------- tree
def test_tree_listing(hub: Hub) -> None:
    from huggingface_hub.hf_api import RepoFile, RepoFolder

    a = api(hub)
    assert sorted(a.list_repo_files(REPO)) == sorted(originals(hub.folder))
    top = {e.path: e for e in a.list_repo_tree(REPO)}
    assert isinstance(top["sub"], RepoFolder) and "sub/notes.txt" not in top
    cfg = top["config.json"]
    assert isinstance(cfg, RepoFile) and cfg.lfs is not None
    assert cfg.lfs.sha256 == hashlib.sha256((hub.folder / "config.json").read_bytes()).hexdigest()
    sub = list(a.list_repo_tree(REPO, path_in_repo="sub", revision="v1"))
    assert [e.path for e in sub] == ["sub/notes.txt"]
    expanded = list(a.list_repo_tree(REPO, recursive=True, expand=True))
    folders = {"sub", "docs", "docs/notes on ü"}
    assert {e.path for e in expanded} == set(originals(hub.folder)) | folders
    odd = list(a.list_repo_tree(REPO, path_in_repo="docs/notes on ü"))
    assert [e.path for e in odd] == ["docs/notes on ü/100% done #1?.txt"]
    f = next(e for e in expanded if isinstance(e, RepoFile))
    assert f.last_commit is not None and f.last_commit.oid == hub.commit
    assert f.security is not None and f.security["status"] == "safe"
    with pytest.raises(Exception) as exc:
        list(a.list_repo_tree(REPO, path_in_repo="additional_chat_templates"))
    from huggingface_hub.errors import EntryNotFoundError

    assert isinstance(exc.value, EntryNotFoundError)


def test_tree_pagination_follows_link_header(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelward.server.api import hf

    monkeypatch.setattr(hf, "TREE_PAGE_SIZE", 2)
    files = api(hub).list_repo_files(REPO)
    assert sorted(files) == sorted(originals(hub.folder))
    r = httpx.get(
        f"{hub.url}/api/models/{REPO}/tree/main?recursive=true",
        headers={"authorization": f"Bearer {hub.reader}"},
    )
    assert len(r.json()) == 2
    assert f"/tree/{hub.commit}?" in r.links["next"]["url"]
    cursor = httpx.get(f"{hub.url}/api/models/{REPO}/tree/main?cursor=%%%", headers=_h(hub))
    assert cursor.status_code == 400


def test_paths_info(hub: Hub) -> None:
    infos = api(hub).get_paths_info(REPO, ["config.json", "sub", "nope"])
    assert sorted(i.path for i in infos) == ["config.json", "sub"]


# -------------------------------------------------------------------------------- downloads
def _h(hub: Hub, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {hub.reader}", **extra}


def test_snapshot_download_every_byte(hub: Hub, tmp_path: Path) -> None:
    from huggingface_hub import snapshot_download

    for rev in (None, "v1"):
        path = snapshot_download(
            REPO, revision=rev, endpoint=hub.url, token=hub.reader, cache_dir=tmp_path / "c"
        )
        got = {
            p.relative_to(path).as_posix(): p.read_bytes()
            for p in sorted(Path(path).rglob("*"))
            if p.is_file()
        }
        assert got == originals(hub.folder)
        assert Path(path).name == hub.commit
    blobs = {p.name for p in (tmp_path / "c" / "models--acme--tiny" / "blobs").iterdir()}
    assert blobs == {hashlib.sha256(d).hexdigest() for d in originals(hub.folder).values()}
    # The snapshot verifies against the signature the hub made on approval (model_info names it).
    from modelward.hub.signing import verify_folder

    sig = api(hub).model_info(REPO).modelward["signature"]  # type: ignore[attr-defined]
    assert sig["signed"]
    with hub.live.hub.blobs.open(sig["bundle"].removeprefix("sha256:")) as fh:
        bundle = fh.read()
    result = verify_folder(Path(path), bundle, sig["public_key"].encode())
    assert result.ok, result.problems


def test_hf_hub_download_and_headers(hub: Hub, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download

    data = (hub.folder / "model.safetensors").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    p = hf_hub_download(
        REPO, "model.safetensors", endpoint=hub.url, token=hub.reader, cache_dir=tmp_path
    )
    assert Path(p).read_bytes() == data
    nested = hf_hub_download(
        REPO,
        "notes.txt",
        subfolder="sub",
        revision="v1",
        endpoint=hub.url,
        token=hub.reader,
        cache_dir=tmp_path,
    )
    assert Path(nested).read_bytes() == (hub.folder / "sub" / "notes.txt").read_bytes()
    url = f"{hub.url}/{REPO}/resolve/main/model.safetensors"
    head = httpx.head(url, headers=_h(hub, **{"accept-encoding": "identity"}))
    assert head.status_code == 200
    assert head.headers["x-repo-commit"] == hub.commit
    assert head.headers["etag"] == head.headers["x-linked-etag"] == f'"{sha}"'
    assert head.headers["x-linked-size"] == head.headers["content-length"] == str(len(data))
    assert head.headers["accept-ranges"] == "bytes"
    assert not [k for k in head.headers if k.lower().startswith("x-xet")]
    assert "xet" not in head.headers.get("link", "")
    part = httpx.get(url, headers=_h(hub, range="bytes=8-23"))
    assert part.status_code == 206 and part.content == data[8:24]
    assert part.headers["content-range"] == f"bytes 8-23/{len(data)}"
    tail = httpx.get(url, headers=_h(hub, range="bytes=-10"))
    assert tail.status_code == 206 and tail.content == data[-10:]
    beyond = httpx.get(url, headers=_h(hub, range=f"bytes={len(data) + 5}-"))
    assert beyond.status_code == 416
    for rev in (quote("refs/tags/v1", safe=""), "refs/tags/v1", hub.commit):
        r = httpx.get(f"{hub.url}/{REPO}/resolve/{rev}/sub/notes.txt", headers=_h(hub))
        assert r.status_code == 200 and r.headers["x-repo-commit"] == hub.commit, rev


def test_download_resumes_with_a_range(hub: Hub, tmp_path: Path) -> None:
    import random

    from huggingface_hub import constants, hf_hub_download

    # The client writes what it received in DOWNLOAD_CHUNK_SIZE (10 MiB) pieces, so drop the
    # connection after more than one piece and check it asks for the rest with a Range.
    piece = constants.DOWNLOAD_CHUNK_SIZE
    weights = random.Random(5).randbytes(piece + (1 << 20) * 2)
    folder = make_model_dir(tmp_path, "big", weights=weights)
    rev = publish(hub.live.hub, "acme/big", folder)
    data = (folder / "model.safetensors").read_bytes()
    before = len(hub.requests)
    hub.live.app.state.cut = ("/acme/big/resolve/", piece + 1000)
    p = hf_hub_download(
        "acme/big",
        "model.safetensors",
        revision=rev.commit,
        endpoint=hub.url,
        token=hub.reader,
        cache_dir=tmp_path / "c",
    )
    assert Path(p).read_bytes() == data
    gets = [r[2] for r in hub.requests[before:] if r[0] == "GET" and "/acme/big/" in r[1]]
    assert gets == [None, f"bytes={piece}-"]


def test_hf_download_cli(hub: Hub, tmp_path: Path) -> None:
    _once(hub)
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": hub.reader,
        "HF_HOME": str(tmp_path / "home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "0",
        "NO_COLOR": "1",
    }
    out = tmp_path / "out"
    hf = Path(sys.executable).with_name("hf")
    proc = subprocess.run(
        [str(hf), "download", REPO, "--local-dir", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".cache" not in p.parts
    }
    assert got == originals(hub.folder)


# ----------------------------------------------------------------------------------- errors
def test_errors_reach_the_client_as_its_own_exceptions(hub: Hub, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    a = api(hub)
    pending = hub.live.hub.revisions("acme/pending")[0].commit

    def dl(repo: str = REPO, filename: str = "config.json", **kw: Any) -> Any:
        kw.setdefault("token", hub.reader)
        return hf_hub_download(repo, filename, endpoint=hub.url, cache_dir=tmp_path, **kw)

    with pytest.raises(RepositoryNotFoundError):
        a.model_info("acme/nope")
    with pytest.raises(RepositoryNotFoundError):
        dl("acme/nope")
    with pytest.raises(RevisionNotFoundError):
        a.model_info(REPO, revision="nope")
    with pytest.raises(RevisionNotFoundError):
        dl(revision="0" * 40)
    with pytest.raises(EntryNotFoundError):
        dl(filename="nope.bin")
    with pytest.raises(GatedRepoError, match="blocked by policy: acme/pending has no approved"):
        a.model_info("acme/pending")
    with pytest.raises(GatedRepoError, match="blocked by policy: revision is in review"):
        a.model_info("acme/pending", revision=pending)
    with pytest.raises(GatedRepoError, match="blocked by policy"):
        dl("acme/pending")
    with pytest.raises(GatedRepoError, match="blocked by policy: license not allowed here"):
        dl("acme/rejected")
    # Revoked: X-Error-Message "Access to this resource is disabled." with the RevisionNotFound
    # code, so the client raises instead of falling back to a cached copy (see the next tests).
    with pytest.raises(RevisionNotFoundError, match="revoked: leaked a secret"):
        a.model_info("acme/gone")
    with pytest.raises(RevisionNotFoundError, match=r"disabled.*revoked: leaked a secret"):
        dl("acme/gone")
    for token in (False, "mw_wrong-token", "hf_not-ours"):
        with pytest.raises(RepositoryNotFoundError):
            api(hub, token).model_info(REPO)
        with pytest.raises(RepositoryNotFoundError):
            dl(token=token)


def test_error_responses_carry_hf_headers_and_the_envelope(hub: Hub) -> None:
    r = httpx.head(f"{hub.url}/{REPO}/resolve/main/nope.bin", headers=_h(hub))
    assert r.status_code == 404
    assert r.headers["x-error-code"] == "EntryNotFound"
    assert r.headers["x-repo-commit"] == hub.commit
    r = httpx.get(f"{hub.url}/{REPO}/resolve/main/nope.bin", headers=_h(hub))
    assert r.json()["error"]["code"] == "entry_not_found"
    r = httpx.get(f"{hub.url}/api/models/acme/rejected", headers=_h(hub))
    assert r.status_code == 403
    assert r.headers["x-error-message"].startswith("blocked by policy: license not allowed here")
    r = httpx.get(f"{hub.url}/api/models/acme/gone/revision/main", headers=_h(hub))
    assert r.status_code == 403
    assert r.headers["x-error-message"].startswith("Access to this resource is disabled. ")
    assert r.headers["x-error-message"].endswith("was revoked: leaked a secret")
    assert r.headers["x-error-code"] == "RevisionNotFound"
    assert r.json()["error"]["code"] == "revoked"
    assert "leaked a secret" in r.json()["error"]["message"]
    r = httpx.get(f"{hub.url}/{REPO}/resolve/main/config.json")
    assert r.status_code == 401 and r.headers["x-error-code"] == "RepoNotFound"
    assert r.json()["error"]["code"] == "unauthorized"


def test_every_route_needs_a_token_and_every_role_may_read(hub: Hub) -> None:
    routes = [
        ("GET", "/api/models"),
        ("GET", f"/api/models/{REPO}"),
        ("GET", f"/api/models/{REPO}/revision/v1"),
        ("GET", f"/api/models/{REPO}/tree/main"),
        ("GET", f"/api/models/{REPO}/refs"),
        ("GET", f"/api/models/{REPO}/commits/main"),
        ("POST", f"/api/models/{REPO}/paths-info/main"),
        ("HEAD", f"/{REPO}/resolve/main/config.json"),
        ("GET", f"/{REPO}/resolve/main/config.json"),
        ("GET", "/api/whoami-v2"),
    ]
    tokens = {role: hub.live.token(role) for role in ("admin", "reviewer", "publisher", "reader")}
    with httpx.Client(base_url=hub.url) as c:
        for method, path in routes:
            form = {"paths": "config.json"} if method == "POST" else None
            for headers in ({}, {"authorization": "Bearer mw_unknown"}):
                r = c.request(method, path, headers=headers, data=form)
                assert r.status_code == 401, (method, path)
                assert r.headers["x-error-code"] == "RepoNotFound"
                if method != "HEAD":
                    assert r.json()["error"]["code"] == "unauthorized"
            for role, token in tokens.items():
                r = c.request(method, path, headers={"authorization": f"Bearer {token}"}, data=form)
                assert r.status_code == 200, (method, path, role)


def test_an_override_is_announced_to_the_client(hub: Hub, tmp_path: Path) -> None:
    import zipfile

    from huggingface_hub import hf_hub_download

    folder = make_model_dir(tmp_path)
    with zipfile.ZipFile(folder / "extra.safetensors", "w") as z:  # a masquerade: high
        z.writestr("a.txt", "x")
    h = hub.live.hub
    rev = publish(h, "acme/override", folder, approve=False)
    h.approve("acme/override", rev.commit, "rita", "known false positive", override=True)
    head = httpx.head(f"{hub.url}/acme/override/resolve/main/config.json", headers=_h(hub))
    info = httpx.get(f"{hub.url}/api/models/acme/override", headers=_h(hub))
    for r in (head, info):
        assert r.status_code == 200
        assert r.headers["x-hf-warning"] == (
            f"modelward acme/override@{rev.commit[:12]}; acme/override@{rev.commit[:12]} was "
            "approved by rita despite a high scan finding: known false positive"
        )
    assert (
        "x-hf-warning"
        not in httpx.head(f"{hub.url}/{REPO}/resolve/main/config.json", headers=_h(hub)).headers
    )
    p = hf_hub_download(
        "acme/override", "config.json", endpoint=hub.url, token=hub.reader, cache_dir=tmp_path
    )
    assert Path(p).read_bytes() == (folder / "config.json").read_bytes()


def test_model_info_of_odd_metadata_files(hub: Hub, tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)  # deeper than json goes
    (folder / "README.md").write_text("---\nlibrary_name: gguf\ntags: [a, b]\n---\n")
    publish(hub.live.hub, "acme/odd", folder)
    info = api(hub).model_info("acme/odd")
    assert info.library_name == "gguf" and info.pipeline_tag is None
    assert {"a", "b", "gguf"} <= set(info.tags)
    (folder / "config.json").write_text(json.dumps({"architectures": 5, "model_type": ["x"]}))
    publish(hub.live.hub, "acme/odd", folder)
    info = api(hub).model_info("acme/odd")
    assert info.pipeline_tag is None and info.config == {"architectures": 5, "model_type": ["x"]}


def test_revoking_main_falls_back_and_disables_the_commit(hub: Hub, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RevisionNotFoundError

    h = hub.live.hub
    old = publish(h, "acme/moving", make_model_dir(tmp_path, "a"))
    b = make_model_dir(tmp_path, "b", weights=b"\1" * 64)
    new = publish(h, "acme/moving", b)
    a = api(hub)
    kw: dict[str, Any] = {"endpoint": hub.url, "token": hub.reader, "cache_dir": tmp_path / "c"}
    assert a.model_info("acme/moving").sha == new.commit
    first = hf_hub_download("acme/moving", "model.safetensors", **kw)
    assert Path(first).read_bytes() == (b / "model.safetensors").read_bytes()
    commits = a.list_repo_commits("acme/moving")
    assert [c.commit_id for c in commits] == [new.commit, old.commit]
    assert commits[0].authors == ["reviewer", "tests"] and "tests approve" in commits[0].title
    assert [c.commit_id for c in a.list_repo_commits("acme/moving", revision=old.commit)] == [
        old.commit
    ]
    h.revoke("acme/moving", new.commit, "rita", "bad weights")
    assert a.model_info("acme/moving").sha == old.commit
    assert [c.commit_id for c in a.list_repo_commits("acme/moving")] == [old.commit]
    again = hf_hub_download("acme/moving", "model.safetensors", **kw)
    assert Path(again).read_bytes() == (tmp_path / "a" / "model.safetensors").read_bytes()
    with pytest.raises(RevisionNotFoundError, match="Access to this resource is disabled"):
        a.model_info("acme/moving", revision=new.commit)
    with pytest.raises(RevisionNotFoundError, match="revoked: bad weights"):
        hf_hub_download("acme/moving", "config.json", revision=new.commit, **kw)


def test_a_revoked_model_is_not_served_from_the_developers_cache(hub: Hub, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import RevisionNotFoundError

    h = hub.live.hub
    rev = publish(h, "acme/cached", make_model_dir(tmp_path), tag="v1")
    kw: dict[str, Any] = {"endpoint": hub.url, "token": hub.reader, "cache_dir": tmp_path / "c"}
    snapshot_download("acme/cached", **kw)
    hf_hub_download("acme/cached", "config.json", revision="v1", **kw)
    h.revoke("acme/cached", rev.commit, "rita", "withdrawn")
    # Any other 403 makes huggingface_hub return the cached copy with a warning.
    for rev_name in ("main", "v1"):
        with pytest.raises(RevisionNotFoundError, match="disabled"):
            hf_hub_download("acme/cached", "config.json", revision=rev_name, **kw)
        with pytest.raises(RevisionNotFoundError, match="disabled"):
            snapshot_download("acme/cached", revision=rev_name, **kw)


# ------------------------------------------------------------------------ anonymous read on
def test_anonymous_read_when_enabled(tmp_path: Path) -> None:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError

    with _serve(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, anonymous=True) as (_app, live):
        folder = make_model_dir(tmp_path)
        rev = publish(live.hub, REPO, folder)
        assert HfApi(endpoint=live.url, token=False).model_info(REPO).sha == rev.commit
        p = hf_hub_download(
            REPO, "config.json", endpoint=live.url, token=False, cache_dir=tmp_path / "c"
        )
        assert Path(p).read_bytes() == (folder / "config.json").read_bytes()
        with pytest.raises(RepositoryNotFoundError):  # a wrong token is still refused
            HfApi(endpoint=live.url, token="mw_wrong").model_info(REPO)


# ------------------------------------------------------------------------------ transformers
TRANSFORMERS_SCRIPT = """
import json, sys
from transformers import AutoConfig, AutoTokenizer
repo, cache = sys.argv[1], sys.argv[2]
cfg = AutoConfig.from_pretrained(repo, cache_dir=cache)
tok = AutoTokenizer.from_pretrained(repo, cache_dir=cache)
print(json.dumps({"model_type": cfg.model_type, "hidden": cfg.hidden_size,
                  "ids": tok("hello model ward world oov")["input_ids"]}))
"""


def test_transformers_auto_config_and_tokenizer(hub: Hub, tmp_path: Path) -> None:
    _once(hub)
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": hub.reader,
        "HF_HOME": str(tmp_path / "home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-c", TRANSFORMERS_SCRIPT, REPO, str(tmp_path / "cache")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"model_type": "bert", "hidden": 4, "ids": [2, 4, 5, 3, 0]}
    snap = tmp_path / "cache" / "models--acme--tiny" / "snapshots" / hub.commit
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (snap / name).read_bytes() == (hub.folder / name).read_bytes()
