"""Web pages through the in-process client: content, escaping, log in, CSRF, roles on every page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelward.hub.service import NewFile
from modelward.server.auth import SESSION_COOKIE, create_token
from tests.server.conftest import ADMIN_TOKEN, _pg_schema_url, auth, make_model_dir, publish

HTML = {"Accept": "text/html,application/xhtml+xml"}
HOSTILE = '<script>alert("x")</script>'
ROLES = ("admin", "reviewer", "publisher", "reader")


def _store(hub: Any, folder: Path) -> list[NewFile]:
    files = []
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            sha = hub.put_bytes(p.read_bytes())
            files.append(NewFile(p.relative_to(folder).as_posix(), sha, p.stat().st_size))
    return files


def seed_queue(hub: Any, root: Path) -> dict[str, Any]:
    """Three revisions in review: clean, with a high finding, with a critical one."""
    import zipfile

    pending = publish(hub, "acme/pending", make_model_dir(root, "pending", b"\1" * 16), False)
    masq_dir = make_model_dir(root, "masq", b"\2" * 16)
    with zipfile.ZipFile(masq_dir / "extra.safetensors", "w") as z:
        z.writestr("a.txt", "x")  # a zip under a safetensors name: reported high
    masq = publish(hub, "acme/masq", masq_dir, approve=False)
    evil_dir = make_model_dir(root, "evil", b"\3" * 16)
    # A pickle that would call os.system if loaded; it is only ever scanned.
    (evil_dir / "evil.pkl").write_bytes(b"cos\nsystem\n(S'echo harmless'\ntR.")
    evil = publish(hub, "acme/evil", evil_dir, approve=False)
    assert (masq.max_severity, evil.max_severity) == ("high", "critical")
    return {"pending": pending, "masq": masq, "evil": evil}


def seed(hub: Any, root: Path) -> dict[str, Any]:
    """An approved model with hostile provenance and file name, a GGUF model, and the queue."""
    from tests.inventory.homes import tiny_gguf

    tiny = make_model_dir(root, "tiny")
    (tiny / "<img src=x onerror=alert(1)>.txt").write_text("hostile name\n")
    rev = hub.create_revision(
        "acme/tiny",
        _store(hub, tiny),
        {"kind": "huggingface", "repo": HOSTILE, "revision": "abc123", "uploader": "ingest"},
        "ingest",
        tag="v1",
    )
    approved = hub.approve("acme/tiny", rev.commit, "rita", "clean scan <b>ok</b>")
    gg = root / "gg"
    gg.mkdir()
    tiny_gguf(gg / "model.gguf")
    llama = publish(hub, "acme/llama", gg, tag="q4")
    return {"tiny": approved, "llama": llama, **seed_queue(hub, root)}


@dataclass
class Site:
    """One seeded hub per database, shared by the read-only tests of this module."""

    app: Any
    seeded: dict[str, Any]
    tokens: dict[str, str]
    settings: Any


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web")
    with site_app(request.param, root) as (app, settings):
        seeded = seed(app.state.hub, root)
        tokens = {r: create_token(app.state.db, f"web-{r}", r, "tests") for r in ROLES}
        tokens["admin"] = ADMIN_TOKEN
        yield Site(app, seeded, tokens, settings)


@contextmanager
def site_app(database: str, root: Path) -> Iterator[tuple[Any, Any]]:
    """An app (and its settings) on a fresh ``sqlite`` file or ``postgresql`` schema under
    ``root``, for a module's shared site; its database is disposed of at the end."""
    from modelward.server.app import create_app
    from modelward.server.settings import ServerSettings

    with (
        contextmanager(_pg_schema_url)()
        if database == "postgresql"
        else nullcontext(f"sqlite:///{root / 'hub.db'}") as url
    ):
        settings = ServerSettings(data_dir=root / "data", database_url=url, admin_token=ADMIN_TOKEN)
        app = create_app(settings)
        try:
            yield app, settings
        finally:
            app.state.db.dispose()


@pytest.fixture
def client(site: Site) -> Iterator[Any]:
    """A browser-like client of the shared site with its own cookie jar."""
    from fastapi.testclient import TestClient

    with TestClient(site.app) as c:
        yield c


@pytest.fixture
def seeded(site: Site) -> dict[str, Any]:
    return site.seeded


@pytest.fixture
def tokens(site: Site) -> dict[str, str]:
    return site.tokens


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def login(client: Any, token: str, next: str = "/") -> Any:
    page = client.get("/login", headers=HTML)
    assert page.status_code == 200
    return client.post(
        "/login",
        data={"csrf": csrf_of(page.text), "token": token, "next": next},
        headers=HTML,
        follow_redirects=False,
    )


@pytest.fixture
def anon_client(site: Site) -> Iterator[Any]:
    """A second app on the same database, with anonymous read on."""
    from fastapi.testclient import TestClient

    from modelward.server.app import create_app

    app = create_app(site.settings.model_copy(update={"anonymous_read": True}))
    with TestClient(app) as c:
        yield c
    app.state.db.dispose()


# ------------------------------------------------------------------------------- permissions
PAGES = ["/", "/models", "/models/acme/tiny", "/models/acme/tiny?rev=v1", "/review"]


@pytest.mark.parametrize("page", PAGES)
def test_without_a_token_browsers_go_to_login_and_apis_get_the_envelope(
    client: Any, seeded: dict[str, Any], page: str
) -> None:
    r = client.get(page, headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=%2F")
    r = client.get(page)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


def test_anonymous_read_opens_the_catalog_but_not_the_review_queue(
    anon_client: Any, seeded: dict[str, Any]
) -> None:
    for page in PAGES[:-1]:
        r = anon_client.get(page, headers=HTML)
        assert r.status_code == 200, page
        assert "acme/tiny" in r.text
        assert "Log in" in r.text
    r = anon_client.get("/review", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Freview"
    # A model with nothing approved is still blocked for anonymous readers.
    r = anon_client.get("/models/acme/pending", headers=HTML)
    assert r.status_code == 403
    assert "blocked by policy" in r.text


@pytest.mark.parametrize("role", ROLES)
def test_every_page_with_each_role(
    client: Any, seeded: dict[str, Any], tokens: dict[str, str], role: str
) -> None:
    headers = HTML | auth(tokens[role])
    reviewer = role in ("admin", "reviewer")
    for page in PAGES[:-1]:
        r = client.get(page, headers=headers)
        assert r.status_code == 200, page
        assert f"web-{role}" in r.text or role == "admin"
        assert ("Review queue" in r.text) is reviewer
    r = client.get("/review", headers=headers)
    if reviewer:
        assert r.status_code == 200
        assert "acme/pending" in r.text and "acme/masq" in r.text
    else:
        assert r.status_code == 403
        assert "may not review" in r.text
        assert client.get("/review", headers=auth(tokens[role])).json()["error"]["code"] == (
            "forbidden"
        )
    # Revisions that are not approved: reviewers see them, the others are told why not.
    r = client.get("/models/acme/pending", headers=headers)
    assert r.status_code == (200 if reviewer else 403)
    if reviewer:
        assert "in review" in r.text and "Clients cannot pull it" in r.text
        assert "hf download" not in r.text


def test_bad_tokens_and_missing_models(client: Any, seeded: dict[str, Any]) -> None:
    r = client.get("/models", headers=HTML | auth("mw_nope"), follow_redirects=False)
    assert r.status_code == 303
    r = client.get("/models/acme/nothing", headers=HTML | auth())
    assert r.status_code == 404 and "not found" in r.text
    r = client.get("/models/Acme/x", headers=HTML | auth())
    assert r.status_code == 400
    r = client.get("/models/acme/tiny?rev=nope", headers=HTML | auth())
    assert r.status_code == 404
    assert client.get("/models/acme/tiny?rev=nope", headers=auth()).json()["error"]["code"] == (
        "revision_not_found"
    )


# ------------------------------------------------------------------------------------ content
def test_catalog_lists_approved_models_with_their_records(
    client: Any, seeded: dict[str, Any]
) -> None:
    r = client.get("/models", headers=HTML | auth())
    assert r.status_code == 200
    html = r.text
    assert "acme/tiny" in html and "acme/llama" in html
    for hidden in ("acme/pending", "acme/masq", "acme/evil"):
        assert hidden not in html
    assert "apache-2.0" in html  # declared in the model card
    assert "huggingface" in html and "abc123" in html  # provenance kind and upstream revision
    assert "signed" in html and "unsigned" not in html
    assert "rita" in html and seeded["tiny"].commit[:12] in html
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert r.headers["x-frame-options"] == "DENY"
    assert client.get("/", headers=HTML | auth()).text.count("acme/tiny") >= 1


def test_model_page_has_files_records_and_pull_commands(
    client: Any, seeded: dict[str, Any]
) -> None:
    tiny = seeded["tiny"]
    html = client.get("/models/acme/tiny", headers=HTML | auth()).text
    for f in tiny.files:
        assert f.sha256 in html
    assert "config.json" in html and "sub/notes.txt" in html
    assert "HF_ENDPOINT=http://testserver hf download acme/tiny --local-dir ./tiny" in html
    assert "from_pretrained(&#34;acme/tiny&#34;)" in html
    assert "oras pull testserver/acme/tiny:main -o ./tiny --plain-http" in html
    assert "ollama pull" not in html  # not a GGUF revision
    assert f"modelward hub verify ./tiny --repo acme/tiny --revision {tiny.commit}" in html
    assert "BEGIN PUBLIC KEY" in html
    assert "Needs a token" in html
    assert 'data-copy="cmd-hf"' in html and 'id="cmd-hf"' in html
    assert "approve" in html and "scan-done" in html  # the revision's history
    # a revision by tag or commit is pinned in the commands
    by_commit = client.get(f"/models/acme/tiny?rev={tiny.commit}", headers=HTML | auth()).text
    assert f"--revision {tiny.commit}" in by_commit
    assert f"revision=&#34;{tiny.commit}&#34;" in by_commit
    assert "oras pull testserver/acme/tiny:v1" in by_commit


def test_gguf_model_page_offers_ollama(client: Any, seeded: dict[str, Any]) -> None:
    html = client.get("/models/acme/llama", headers=HTML | auth()).text
    assert "ollama pull testserver/acme/llama:main --insecure" in html
    html = client.get("/models/acme/llama?rev=q4", headers=HTML | auth()).text
    assert "ollama pull testserver/acme/llama:q4 --insecure" in html


def test_hostile_names_and_findings_are_escaped(client: Any, seeded: dict[str, Any]) -> None:
    for page in ("/models", "/models/acme/tiny", "/review"):
        html = client.get(page, headers=HTML | auth()).text
        assert "<script>alert" not in html, page
        assert "<img src=x" not in html, page
        assert "<b>ok</b>" not in html, page
    html = client.get("/models/acme/tiny", headers=HTML | auth()).text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;.txt" in html
    assert "clean scan &lt;b&gt;ok&lt;/b&gt;" in html
    # a hostile rev is echoed only escaped
    r = client.get("/models/acme/tiny", params={"rev": "<i>x</i>"}, headers=HTML | auth())
    assert r.status_code == 404 and "<i>x</i>" not in r.text


def test_review_page_shows_findings_and_the_right_forms(
    client: Any, seeded: dict[str, Any]
) -> None:
    html = client.get("/review", headers=HTML | auth()).text
    assert "acme/tiny" not in html.split("<main", 1)[1]  # approved: not in the queue
    assert "Approve acme/pending" in html and "Reject acme/pending" in html
    assert "Approve acme/masq" in html and 'name="override"' in html
    assert "Approve acme/evil" not in html and "Reject acme/evil" in html
    assert "cannot be approved" in html
    assert "pickle" in html and "critical" in html  # the finding's rule and severity
    assert html.count('name="override"') == 1  # only the high one


# ------------------------------------------------------------------------ log in, CSRF, review
def test_login_sets_an_httponly_strict_cookie_and_never_echoes_the_token(
    client: Any, seeded: dict[str, Any], tokens: dict[str, str]
) -> None:
    token = tokens["reviewer"]
    r = login(client, "mw_wrong-token", next="/review")
    assert r.status_code == 401 and "unknown or revoked" in r.text
    assert "mw_wrong-token" not in r.text
    r = login(client, token, next="//evil.example/x")
    assert r.status_code == 303 and r.headers["location"] == "/"  # never an open redirect
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    for page in ("/", "/models/acme/tiny", "/review"):
        r = client.get(page, headers=HTML)
        assert r.status_code == 200, page
        assert "web-reviewer" in r.text
        assert token not in r.text
    # The cookie works on the model protocols' reads too (file links on the model page).
    r = client.get("/acme/tiny/resolve/main/config.json")
    assert r.status_code == 200 and b"bert" in r.content
    r = client.post("/logout", headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/review", headers=HTML, follow_redirects=False).status_code == 303


def test_login_needs_the_csrf_token(client: Any, seeded: dict[str, Any]) -> None:
    client.get("/login", headers=HTML)
    r = client.post("/login", data={"csrf": "0" * 64, "token": ADMIN_TOKEN}, headers=HTML)
    assert r.status_code == 403 and "expired" in r.text
    assert SESSION_COOKIE not in r.headers.get("set-cookie", "")


def test_review_with_the_session_cookie(app: Any, hub: Any, tmp_path: Path) -> None:
    """Approve and reject through the forms, on a fresh hub per database (this test changes it)."""
    from fastapi.testclient import TestClient

    seeded = seed_queue(hub, tmp_path)
    tokens = {"reviewer": create_token(app.state.db, "web-reviewer", "reviewer", "tests")}
    client = TestClient(app)
    assert login(client, tokens["reviewer"], "/review").headers["location"] == "/review"
    page = client.get("/review", headers=HTML)
    csrf = csrf_of(page.text)
    pending, masq, evil = seeded["pending"], seeded["masq"], seeded["evil"]

    def post(**form: str) -> Any:
        return client.post("/review", data=form, headers=HTML)

    # The session cookie alone never changes anything: the JSON API's POSTs ignore it.
    r = client.post(
        f"/api/v1/hub/repos/acme/pending/revisions/{pending.commit}/approve",
        json={"reason": "cookie only"},
    )
    assert r.status_code == 401
    # no CSRF token, a wrong one: refused, nothing changes
    for bad in ("", "f" * 64):
        r = post(csrf=bad, action="approve", repo="acme/pending", commit=pending.commit, reason="x")
        assert r.status_code == 403
    assert hub.revision("acme/pending", pending.commit).state == "in_review"
    # a reason is required
    r = post(csrf=csrf, action="approve", repo="acme/pending", commit=pending.commit, reason=" ")
    assert r.status_code == 400 and "reason is required" in r.text
    # high without override: refused with the hub's message; with it: approved
    r = post(csrf=csrf, action="approve", repo="acme/masq", commit=masq.commit, reason="ok")
    assert r.status_code == 409 and "override" in r.text
    r = post(
        csrf=csrf,
        action="approve",
        repo="acme/masq",
        commit=masq.commit,
        reason="zip is documentation",
        override="1",
    )
    assert r.status_code == 200 and f"Approved acme/masq @ {masq.commit[:12]}" in r.text
    # Post/Redirect/Get: the decision answered 303 to a plain GET, so a refresh sends nothing
    assert [h.status_code for h in r.history] == [303]
    assert r.url.path == "/review" and r.request.method == "GET"
    # critical: the hub refuses even if the form is forged
    r = post(csrf=csrf, action="approve", repo="acme/evil", commit=evil.commit, reason="please")
    assert r.status_code == 409 and "critical" in r.text
    r = post(csrf=csrf, action="reject", repo="acme/evil", commit=evil.commit, reason="rce")
    assert r.status_code == 200 and "Rejected acme/evil" in r.text
    r = post(csrf=csrf, action="approve", repo="acme/pending", commit=pending.commit, reason="ok")
    assert r.status_code == 200
    assert "Nothing to review" in r.text
    got = hub.revision("acme/masq", masq.commit)
    assert (got.state, got.decided_by, got.reason) == (
        "approved",
        "web-reviewer",
        "zip is documentation",
    )
    assert hub.revision("acme/evil", evil.commit).state == "rejected"
    events = [(e.action, e.actor) for e in hub.audit("acme/masq")]
    assert ("approve", "web-reviewer") in events


def test_readers_cannot_post_reviews_even_with_a_valid_form(
    client: Any, site: Site, seeded: dict[str, Any], tokens: dict[str, str]
) -> None:
    hub = site.app.state.hub
    login(client, tokens["publisher"])
    csrf = csrf_of(client.get("/login", headers=HTML).text)  # valid for this session
    pending = seeded["pending"]
    r = client.post(
        "/review",
        data={
            "csrf": csrf,
            "action": "approve",
            "repo": "acme/pending",
            "commit": pending.commit,
            "reason": "x",
        },
        headers=HTML,
    )
    assert r.status_code == 403
    assert hub.revision("acme/pending", pending.commit).state == "in_review"


def test_static_files(client: Any) -> None:
    r = client.get("/static/modelward.css")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
    assert client.get("/static/modelward.js").status_code == 200
    assert client.get("/static/..%2Fweb.py").status_code == 404
    assert client.get("/static/nope.css").json()["error"]["status"] == 404
