"""Server-rendered pages: the catalog, a model page with pull commands, the review queue, log in/out.

Jinja2 templates with autoescaping on (model names, file paths and findings are hostile input), one
small stylesheet and one small script (copy buttons), no front-end build. Pages authenticate with
the API token kept in an HttpOnly, SameSite=Strict cookie (see ``auth.session_token``); every form
carries a CSRF token: an HMAC, under the replicas' shared ``url_key``, of a random per-browser cookie
and of the session, so a page can only be posted from a page this hub rendered for that session.

Browsers (``Accept: text/html``) get HTML error pages and are sent to ``/login`` when a token is
needed; other clients get the usual JSON error envelope.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from modelward.errors import BadRequest, Forbidden, HubError, NotApproved, NotFound, Unauthorized
from modelward.hub.names import is_commit, validate_repo
from modelward.hub.oci import gguf_file
from modelward.hub.revision import AuditView, RevisionView
from modelward.hub.service import SEVERITY_ORDER, Hub
from modelward.server.auth import (
    SESSION_COOKIE,
    TOKEN_PREFIX,
    check,
    lookup,
    principal,
)

HERE = Path(__file__).parent
CSRF_COOKIE = "modelward_csrf"
MAX_FINDINGS_SHOWN = 200
STATIC = {
    "modelward.css": ("text/css", HERE / "static" / "modelward.css"),
    "modelward.js": ("text/javascript", HERE / "static" / "modelward.js"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every template, whatever its name: all variables are escaped
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["when"] = _when
_env.globals["SEVERITIES"] = tuple(reversed(SEVERITY_ORDER))


# ------------------------------------------------------------------------------------- helpers
def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def base_url(request: Request) -> str:
    """The URL clients reach the hub at: ``public_url`` if set, else the request's own."""
    public: str | None = request.app.state.settings.public_url
    return (public or str(request.base_url)).rstrip("/")


def _https(request: Request) -> bool:
    return base_url(request).startswith("https://")


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _csrf_token(request: Request, seed: str) -> str:
    session = request.cookies.get(SESSION_COOKIE, "")
    msg = f"modelward-csrf\0{seed}\0{hashlib.sha256(session.encode()).hexdigest()}"
    return hmac.new(request.app.state.url_key.encode(), msg.encode(), hashlib.sha256).hexdigest()


def _check_csrf(request: Request, token: str) -> None:
    """Refuse a form that this hub did not render for this browser and session."""
    seed = request.cookies.get(CSRF_COOKIE, "")
    if not seed or not hmac.compare_digest(token.encode(), _csrf_token(request, seed).encode()):
        raise Forbidden(
            "this form has expired or did not come from this hub; reload the page and try again"
        )
    request.state.csrf_ok = True  # lets auth.principal() use the session cookie on this POST


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    seed = request.cookies.get(CSRF_COOKIE, "")
    fresh = len(seed) < 32
    if fresh:
        seed = secrets.token_urlsafe(32)
    context.setdefault("notice", "")
    context.setdefault("error", "")
    html = _env.get_template(template).render(
        viewer=principal(request),
        anonymous_read=request.app.state.settings.anonymous_read,
        csrf=_csrf_token(request, seed),
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if fresh:
        response.set_cookie(
            CSRF_COOKIE, seed, httponly=True, samesite="strict", secure=_https(request)
        )
    return response


def _error_page(request: Request, exc: HubError) -> Response:
    """An HTML page for browsers (a log-in redirect when a token is needed); the envelope otherwise."""
    if not _wants_html(request):
        raise exc
    if isinstance(exc, Unauthorized) and request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return _page(request, "error.html", status=exc.status, problem=exc)


def _safe_next(target: str) -> str:
    """Only a path on this site (no scheme, no host, no ``//``): never an open redirect."""
    parts = urlsplit(target)
    if (
        not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or parts.scheme
        or parts.netloc
        or any(c in target for c in "\r\n\\")
    ):
        return "/"
    return target


# ------------------------------------------------------------------------- view-model helpers
@dataclass(frozen=True, slots=True)
class PullCommand:
    """One copy-paste command of a model page."""

    key: str
    title: str
    text: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class FindingRow:
    path: str
    rule: str
    severity: str
    message: str
    location: str
    evidence: str
    remediation: str


def findings(rev: RevisionView) -> list[FindingRow]:
    """Every finding of a revision's scan, most severe first."""
    rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    rows = [
        FindingRow(
            str(item.get("path", "")),
            str(f.get("rule", "")),
            str(f.get("severity", "")),
            str(f.get("message", "")),
            str(f.get("location", "") or ""),
            str(f.get("evidence", "") or ""),
            str(f.get("remediation", "") or ""),
        )
        for item in rev.scan.get("files", [])
        for f in item.get("findings", [])
    ]
    rows.sort(key=lambda r: (-rank.get(r.severity, -1), r.path, r.rule))
    return rows


def scan_errors(rev: RevisionView) -> list[tuple[str, str]]:
    return [
        (str(item.get("path", "")), str(err))
        for item in rev.scan.get("files", [])
        for err in item.get("errors", [])
    ]


def pull_ref(rev: RevisionView, requested: str) -> str:
    """The OCI/Ollama reference naming this revision: main, the requested tag, a tag, or the commit."""
    if requested == "main" and rev.is_main:
        return "main"
    if requested in rev.tags:
        return requested
    if rev.tags:
        return rev.tags[0]
    return "main" if rev.is_main else rev.commit


def pull_commands(request: Request, rev: RevisionView, requested: str) -> list[PullCommand]:
    """hf, transformers, ollama (GGUF only) and oras commands for a revision."""
    base = base_url(request)
    parts = urlsplit(base)
    host = parts.netloc + parts.path.rstrip("/")
    insecure = parts.scheme == "http"
    name = rev.repo.split("/", 1)[1]
    pinned = not (requested == "main" and rev.is_main)
    ref = pull_ref(rev, requested)
    token_note = (
        ""
        if request.app.state.settings.anonymous_read
        else "Needs a token: set HF_TOKEN to your modelward API token."
    )
    hf = f"HF_ENDPOINT={base} hf download {rev.repo} --local-dir ./{name}"
    if pinned:
        hf += f" --revision {rev.commit}"
    revision_arg = f', revision="{rev.commit}"' if pinned else ""
    transformers = (
        "import os\n"
        f'os.environ["HF_ENDPOINT"] = "{base}"  # before importing transformers\n'
        "from transformers import AutoModel, AutoTokenizer\n\n"
        f'tokenizer = AutoTokenizer.from_pretrained("{rev.repo}"{revision_arg})\n'
        f'model = AutoModel.from_pretrained("{rev.repo}"{revision_arg})'
    )
    out = [
        PullCommand("hf", "Hugging Face CLI", hf, token_note),
        PullCommand("transformers", "transformers (Python)", transformers, token_note),
    ]
    if gguf_file(rev) is not None:
        ollama = f"ollama pull {host}/{rev.repo}:{ref}" + (" --insecure" if insecure else "")
        note = (
            ""
            if request.app.state.settings.anonymous_read
            else (
                "Register your Ollama public key with the hub first: modelward hub ollama-key add."
            )
        )
        out.append(PullCommand("ollama", "Ollama", ollama, note))
    oras = f"oras pull {host}/{rev.repo}:{ref} -o ./{name}" + (" --plain-http" if insecure else "")
    oras_note = (
        ""
        if request.app.state.settings.anonymous_read
        else ("Log in first: oras login with any user name and your API token as the password.")
    )
    out.append(PullCommand("oras", "ORAS (OCI)", oras, oras_note))
    return out


def verify_command(request: Request, rev: RevisionView) -> str:
    name = rev.repo.split("/", 1)[1]
    return (
        f"modelward hub verify ./{name} --repo {rev.repo} --revision {rev.commit} "
        f"--server {base_url(request)}"
    )


def key_fingerprint(rev: RevisionView) -> str:
    """The signing key's fingerprint (model_signing's key hint), or "" when it cannot be read."""
    pem = (rev.signature or {}).get("public_key")
    if not isinstance(pem, str):
        return ""
    from modelward.hub.signing import SignatureError
    from modelward.hub.signing import key_fingerprint as fingerprint

    try:
        return fingerprint(pem.encode())
    except SignatureError:
        return ""


def _history(hub: Hub, rev: RevisionView) -> list[AuditView]:
    return [e for e in reversed(hub.audit(rev.repo)) if e.commit == rev.commit]


# ----------------------------------------------------------------------------------- routes
@router.get("/static/{name}")
def static(name: str) -> Response:
    found = STATIC.get(name)
    if found is None:
        raise NotFound(f"no static file {name!r}")
    media_type, path = found
    return FileResponse(
        path,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/")
@router.get("/models")
def catalog(request: Request) -> Response:
    """Approved models with license, provenance, scan result, signature and last approval."""
    try:
        check(request, "read")
        hub = _hub(request)
        models: list[RevisionView] = []
        for repo in hub.list_repos():
            if repo.main is None:
                continue
            try:
                models.append(hub.resolve(repo.name, repo.main))
            except (NotApproved, NotFound):  # revoked or rejected since the listing
                continue
    except HubError as exc:
        return _error_page(request, exc)
    return _page(request, "catalog.html", models=models)


@router.get("/models/{ns}/{name}")
def model_page(request: Request, ns: str, name: str, rev: str = "main") -> Response:
    """One revision of a model: files, provenance, license, findings, approval, pull commands."""
    try:
        who = check(request, "read")
        repo = validate_repo(f"{ns}/{name}")
        hub = _hub(request)
        reviewer = who.can("review")
        try:
            view = hub.resolve(repo, rev, approved_only=not reviewer)
        except NotApproved:
            # A reviewer opening a repository with nothing approved yet sees its latest revision.
            if not (reviewer and rev == "main"):
                raise
            view = hub.revisions(repo)[0]
        revisions = [r for r in hub.revisions(repo) if reviewer or r.state == "approved"]
        history = _history(hub, view)
    except HubError as exc:
        return _error_page(request, exc)
    return _page(
        request,
        "model.html",
        rev=view,
        requested=rev,
        revisions=revisions,
        history=history,
        findings=findings(view),
        scan_errors=scan_errors(view),
        max_shown=MAX_FINDINGS_SHOWN,
        commands=pull_commands(request, view, rev) if view.state == "approved" else [],
        verify=verify_command(request, view),
        fingerprint=key_fingerprint(view),
        base=base_url(request),
    )


def _review(request: Request, status: int = 200, notice: str = "", error: str = "") -> Response:
    check(request, "review")
    queue = _hub(request).review_queue()
    return _page(
        request,
        "review.html",
        status=status,
        queue=[(r, findings(r)) for r in queue],
        max_shown=MAX_FINDINGS_SHOWN,
        notice=notice,
        error=error,
    )


@router.get("/review")
def review_page(request: Request, done: str = "", repo: str = "", commit: str = "") -> Response:
    """The review queue (reviewer or admin); after a decision, what was decided (``done``)."""
    notice = ""
    if done in ("approved", "rejected") and is_commit(commit):
        try:  # only a well-formed name comes back in the page (the template escapes it too)
            notice = f"{done.capitalize()} {validate_repo(repo)} @ {commit[:12]}."
        except HubError:
            notice = ""
    try:
        return _review(request, notice=notice)
    except HubError as exc:
        return _error_page(request, exc)


@router.post("/review")
def review_action(
    request: Request,
    csrf: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "",
    repo: Annotated[str, Form()] = "",
    commit: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    override: Annotated[str, Form()] = "",
) -> Response:
    """Approve or reject a revision in review, with a reason, through the Hub API."""
    try:
        _check_csrf(request, csrf)
        who = check(request, "review")
    except HubError as exc:
        return _error_page(request, exc)
    hub = _hub(request)
    try:
        if action not in ("approve", "reject"):
            raise BadRequest("unknown action; expected approve or reject")
        if not reason.strip():
            raise BadRequest(f"a reason is required to {action}")
        if action == "approve":
            done = hub.approve(repo, commit, who.name, reason.strip(), override=bool(override))
        else:
            done = hub.reject(repo, commit, who.name, reason.strip())
    except HubError as exc:
        return _review(request, status=exc.status, error=exc.message)
    # Post/Redirect/Get: a refresh of the page shown next does not send the decision again
    verb = "approved" if action == "approve" else "rejected"
    query = urlencode({"done": verb, "repo": done.repo, "commit": done.commit})
    return RedirectResponse(f"/review?{query}", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return _page(request, "login.html", next=_safe_next(next))


@router.post("/login")
def login(
    request: Request,
    csrf: Annotated[str, Form()] = "",
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the API token and keep it in an HttpOnly cookie; it is never written into a page."""
    try:
        _check_csrf(request, csrf)
    except HubError as exc:
        return _error_page(request, exc)
    token = token.strip()
    found = lookup(request.app.state.db, token) if token.startswith(TOKEN_PREFIX) else None
    if found is None:
        return _page(
            request,
            "login.html",
            status=401,
            next=_safe_next(next),
            error="That token is unknown or revoked.",
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="strict", secure=_https(request)
    )
    return response


@router.api_route("/logout", methods=["GET", "POST"])
def logout(request: Request) -> Response:
    """Forget the session cookie (logging out needs no CSRF check: it only removes access)."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict", secure=_https(request))
    return response
