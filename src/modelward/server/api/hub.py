"""The hub's JSON API under ``/api/v1/hub/``: uploads, revisions, review, imports, tokens, keys, gc.

This is what ``modelward hub`` (:mod:`modelward.hub.client`) talks to. Every route checks its role
(publisher: push and import; reviewer: queue and decisions; admin: tokens and Ollama keys (create,
list, revoke), gc; any token: read) and every failure is the one JSON error envelope of
:mod:`modelward.server.errors`.
Request bodies are pydantic models here, at the edge; the work is done by :class:`Hub`.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from modelward.errors import BadRequest, Forbidden, NotFound, TooLarge, UsageError
from modelward.hub.ingest import IngestPlan, from_upstream
from modelward.hub.names import is_commit, validate_repo, validate_tag
from modelward.hub.revision import RevisionView
from modelward.hub.service import Hub, NewFile
from modelward.server.auth import (
    ROLES,
    Principal,
    create_token,
    id_of_token,
    list_ollama_keys,
    list_tokens,
    register_ollama_key,
    require,
    revoke_ollama_key,
    revoke_token,
)
from modelward.server.upload import receive_into
from modelward.store.blobs import check_digest

router = APIRouter(prefix="/api/v1/hub", tags=["hub"])

MAX_PROVENANCE_BYTES: Final = 64 << 10
CLIENT_KINDS: Final = ("upload", "hf-cache", "ollama", "huggingface")
"""Provenance kinds a client may declare (``oci`` is set by the registry routes only)."""
_COPY_BUFFER: Final = 8 << 20

Reader = Annotated[Principal, Depends(require("read"))]
Publisher = Annotated[Principal, Depends(require("publish"))]
Reviewer = Annotated[Principal, Depends(require("review"))]
Admin = Annotated[Principal, Depends(require("admin"))]


# ------------------------------------------------------------------------------------ request bodies
class FileIn(BaseModel):
    path: str = Field(max_length=4096)
    sha256: str = Field(max_length=71)
    size: int = Field(ge=0)


class RevisionIn(BaseModel):
    files: list[FileIn] = Field(max_length=100_000)
    provenance: dict[str, Any] = Field(default_factory=dict)
    tag: str | None = Field(default=None, max_length=1000)  # validate_tag: 80


class DecisionIn(BaseModel):
    reason: str = Field(min_length=1, max_length=10_000)
    override: bool = False


class TagIn(BaseModel):
    tag: str = Field(max_length=1000)  # validate_tag says why more than 80 is refused
    reason: str = Field(min_length=1, max_length=10_000)


class ImportIn(BaseModel):
    endpoint: str = Field(max_length=2000)
    repo_id: str = Field(max_length=200)
    repo: str = Field(max_length=200)
    revision: str | None = Field(default=None, max_length=200)
    tag: str | None = Field(default=None, max_length=1000)  # validate_tag: 80
    token: str | None = Field(default=None, max_length=2000)


class TokenIn(BaseModel):
    role: str
    name: str | None = Field(default=None, max_length=200)


class OllamaKeyIn(BaseModel):
    public_key: str = Field(max_length=2000)
    name: str = Field(min_length=1, max_length=200)
    role: str = "reader"


class GcIn(BaseModel):
    apply: bool = False


# ----------------------------------------------------------------------------------------- helpers
def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _repo(ns: str, name: str) -> str:
    return validate_repo(f"{ns}/{name}")


def _revision_doc(view: RevisionView, full: bool = False) -> dict[str, Any]:
    doc = view.to_dict()
    if full:
        doc["scan"] = view.scan
    return doc


def _provenance(declared: dict[str, Any], who: Principal) -> dict[str, Any]:
    """The client's provenance claim, bounded, with ``uploader`` always the authenticated caller
    and ``verified`` false: the hub did not fetch the model from where the claim says (a local
    Hugging Face cache or Ollama store is read on the uploader's machine), so the pages show it as
    the uploader's word. Server-side imports (``POST /import``) and OCI pushes are ``verified``."""
    try:
        size = len(json.dumps(declared))
    except (TypeError, ValueError):
        raise BadRequest("provenance must be a JSON object") from None
    if size > MAX_PROVENANCE_BYTES:
        raise BadRequest(f"provenance is larger than {MAX_PROVENANCE_BYTES} bytes")
    kind = declared.get("kind", "upload")
    if kind not in CLIENT_KINDS:
        raise BadRequest(
            f"provenance kind {kind!r} is not one of: {', '.join(CLIENT_KINDS)}", kind=str(kind)
        )
    return {**declared, "kind": kind, "uploader": who.name, "verified": False}


def _limit(request: Request) -> int:
    limit: int = request.app.state.settings.max_upload_bytes
    return limit


# ------------------------------------------------------------------------------------------- blobs
@router.head("/blobs/{sha256}")
def head_blob(sha256: str, request: Request, who: Publisher) -> Response:
    """200 with ``Content-Length`` when the store has the blob, else 404 (clients skip uploads)."""
    digest = check_digest(sha256)
    blobs = _hub(request).blobs
    if not blobs.exists(digest):
        return Response(status_code=404)
    return Response(
        status_code=200,
        headers={"Content-Length": str(blobs.size(digest)), "X-Sha256": digest},
    )


@router.put("/blobs/{sha256}", status_code=201)
async def put_blob(sha256: str, request: Request, who: Publisher) -> JSONResponse:
    """Stream the raw body into the store; the digest is verified before anything is published."""
    digest = check_digest(sha256)
    limit = _limit(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(
            f"upload of {declared} bytes is larger than the server's limit of {limit} bytes",
            limit=limit,
        )
    hub = _hub(request)
    expected = int(declared) if declared is not None and declared.isdigit() else None
    writer = await run_in_threadpool(hub.blobs.writer, limit, expected)
    with writer:
        received = await receive_into(writer, request.stream(), limit=limit)
        if expected is not None and received != expected:
            raise BadRequest(
                f"upload ended after {received} of {expected} bytes; nothing was stored",
                received=received,
            )
        info = await run_in_threadpool(writer.commit, digest)
    await run_in_threadpool(hub.register_blob, info.sha256, info.size)
    return JSONResponse(
        {"sha256": info.sha256, "size": info.size, "created": info.created},
        status_code=201 if info.created else 200,
    )


# --------------------------------------------------------------------------------------- revisions
@router.post("/repos/{ns}/{name}/revisions", status_code=201)
def create_revision(
    ns: str, name: str, body: RevisionIn, request: Request, who: Publisher
) -> dict[str, Any]:
    """Create (or return the identical) revision from uploaded blobs; it is scanned, then in review."""
    repo = _repo(ns, name)
    files = [NewFile(f.path, check_digest(f.sha256), f.size) for f in body.files]
    view = _hub(request).create_revision(
        repo, files, _provenance(body.provenance, who), who.name, tag=body.tag
    )
    return _revision_doc(view, full=True)


@router.get("/repos")
def list_repos(request: Request, who: Reader) -> dict[str, Any]:
    """Repositories with an approved ``main``; reviewers and admins also see ones still in review."""
    repos = _hub(request).list_repos(approved_only=not who.can("review"))
    return {"repos": [r.to_dict() for r in repos]}


def _read_revision(request: Request, who: Principal, repo: str, rev: str) -> RevisionView:
    hub = _hub(request)
    if who.can("publish") or who.can("review"):
        return hub.revision(repo, rev)
    return hub.resolve(repo, rev)  # readers: approved revisions only (403 with the reason)


@router.get("/repos/{ns}/{name}/revisions/{rev}")
def get_revision(ns: str, name: str, rev: str, request: Request, who: Reader) -> dict[str, Any]:
    """State, files, provenance, license, the full scan report and signature of one revision."""
    return _revision_doc(_read_revision(request, who, _repo(ns, name), rev), full=True)


@router.get("/repos/{ns}/{name}/revisions/{rev}/signature")
def get_signature(ns: str, name: str, rev: str, request: Request, who: Reader) -> dict[str, Any]:
    """The model-signing bundle (base64) and the hub's public key (PEM) of a signed revision."""
    repo = _repo(ns, name)
    view = _read_revision(request, who, repo, rev)
    sig = view.signature
    if not sig or not sig.get("bundle"):
        raise NotFound(
            f"{repo}@{view.commit[:12]} has no signature (it is {view.state}; "
            "revisions are signed when approved)",
            repo=repo,
            commit=view.commit,
        )
    hub = _hub(request)
    hub.blobs.ensure_intact(sig["bundle"])
    with hub.blobs.open(sig["bundle"]) as fh:
        bundle = fh.read()
    return {
        "repo": repo,
        "commit": view.commit,
        "state": view.state,
        "method": sig.get("method"),
        "bundle": base64.b64encode(bundle).decode(),
        "bundle_sha256": sig["bundle"],
        "public_key": sig.get("public_key", ""),
    }


# ------------------------------------------------------------------------------------------ review
@router.get("/review")
def review_queue(request: Request, who: Reviewer) -> dict[str, Any]:
    """Revisions waiting for a decision, oldest first, with scan summaries."""
    return {"revisions": [_revision_doc(v) for v in _hub(request).review_queue()]}


@router.post("/repos/{ns}/{name}/revisions/{rev}/approve")
def approve(
    ns: str, name: str, rev: str, body: DecisionIn, request: Request, who: Reviewer
) -> dict[str, Any]:
    """Approve (sign, move ``main``); 409 ``approval_refused`` on critical, or high without override."""
    view = _hub(request).approve(_repo(ns, name), rev, who.name, body.reason, body.override)
    return _revision_doc(view)


@router.post("/repos/{ns}/{name}/revisions/{rev}/reject")
def reject(
    ns: str, name: str, rev: str, body: DecisionIn, request: Request, who: Reviewer
) -> dict[str, Any]:
    return _revision_doc(_hub(request).reject(_repo(ns, name), rev, who.name, body.reason))


@router.post("/repos/{ns}/{name}/revisions/{rev}/revoke")
def revoke(
    ns: str, name: str, rev: str, body: DecisionIn, request: Request, who: Reviewer
) -> dict[str, Any]:
    return _revision_doc(_hub(request).revoke(_repo(ns, name), rev, who.name, body.reason))


@router.post("/repos/{ns}/{name}/revisions/{rev}/tags")
def tag(
    ns: str, name: str, rev: str, body: TagIn, request: Request, who: Reviewer
) -> dict[str, Any]:
    """Name an approved revision with a new tag (a reviewer's act: publishers tag by pushing)."""
    view = _hub(request).tag(_repo(ns, name), rev, body.tag, who.name, body.reason)
    return _revision_doc(view)


@router.get("/audit")
def audit(
    request: Request, who: Reviewer, repo: str | None = None, limit: int = 1000
) -> dict[str, Any]:
    """The append-only audit log, newest first."""
    events = _hub(request).audit(repo, limit=max(1, min(limit, 10_000)))
    return {"events": [e.to_dict() for e in events]}


# ------------------------------------------------------------------------------------------ import
@router.post("/import", status_code=201)
def import_upstream(body: ImportIn, request: Request, who: Publisher) -> dict[str, Any]:
    """Fetch a repo from a Hugging Face-compatible endpoint (huggingface_hub), store it, scan it."""
    repo = validate_repo(body.repo)
    if body.tag is not None:
        validate_tag(body.tag)
    hub = _hub(request)
    settings = request.app.state.settings
    allowed = settings.import_endpoints
    if allowed is not None and not any(
        body.endpoint.rstrip("/") == e.rstrip("/") or body.endpoint.startswith(e.rstrip("/") + "/")
        for e in allowed
    ):
        raise Forbidden(
            f"imports from {body.endpoint!r} are not allowed; the server's import_endpoints setting "
            f"lists: {', '.join(allowed) or '(none)'}",
            endpoint=body.endpoint,
        )
    if allowed is None:
        _refuse_link_local(body.endpoint)
    tmp_root = settings.data_dir / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(tmp_root).free
    commit, announced = _check_upstream_sizes(body, _limit(request), free)
    with tempfile.TemporaryDirectory(prefix="import-", dir=tmp_root) as tmp:
        try:  # by the commit whose sizes were checked: its files cannot change meanwhile
            plan = from_upstream(  # stopped past the announced bytes: a listing may lie
                body.endpoint,
                body.repo_id,
                tmp,
                commit or body.revision,
                body.token,
                max_bytes=announced if announced is not None else free,
            )
        except UsageError as exc:  # a bad endpoint URL or upstream repo id: the caller's input
            raise BadRequest(str(exc)) from None
        _store_plan(hub, plan, _limit(request))
        files = [NewFile(f.path, f.sha256, f.size) for f in plan.files]
        prov = {**plan.provenance, "uploader": who.name, "verified": True}  # fetched here
        if commit and body.revision and body.revision != prov.get("revision"):
            prov["ref"] = body.revision
        view = hub.create_revision(repo, files, prov, who.name, tag=body.tag)
    return _revision_doc(view, full=True)


def _refuse_link_local(endpoint: str) -> None:
    """Without an ``import_endpoints`` list any endpoint may be fetched, but never a link-local
    address (169.254.0.0/16, fe80::/10): that is where clouds answer instance metadata and
    credentials (169.254.169.254), the classic target of a server made to fetch a URL."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    host = urlsplit(endpoint).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return  # unresolvable: the import's own request reports it
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address.is_link_local:
            raise Forbidden(
                f"imports from {endpoint!r} are not allowed: {host} is a link-local address "
                f"({address}), where cloud instance metadata lives; list it in the server's "
                "import_endpoints setting if it really is a model hub",
                endpoint=endpoint,
            )


def _check_upstream_sizes(body: ImportIn, limit: int, free: int) -> tuple[str | None, int | None]:
    """Refuse (413) an upstream repo with a file over ``limit`` bytes, or more bytes in all than
    ``free``, from the upstream's file listing, before anything is downloaded.

    Returns the commit id the listing is of (the import then fetches exactly that commit) and the
    bytes it announces (the download stops past them), or ``(None, None)`` when the upstream gave
    no usable listing: the import's own request then reports what is wrong with the upstream, and
    the download stops when the data folder's free space is used up.
    """
    from huggingface_hub import HfApi

    auth: str | bool = body.token if body.token else False
    try:
        info = HfApi(endpoint=body.endpoint.rstrip("/")).model_info(
            body.repo_id, revision=body.revision, token=auth, files_metadata=True
        )
    except Exception:  # from_upstream makes the same request and reports its failure clearly
        return None, None
    sha = getattr(info, "sha", None)
    siblings = getattr(info, "siblings", None) or []
    total = 0
    for sib in siblings:
        size = getattr(sib, "size", None)
        name = str(getattr(sib, "rfilename", ""))[:300]
        if not isinstance(size, int):
            continue
        if size > limit:
            raise TooLarge(
                f"{body.repo_id} at {body.endpoint}: {name} has {size} bytes, more than the "
                f"server's limit of {limit} bytes (max_upload_bytes); nothing was downloaded",
                limit=limit,
                path=name,
                size=size,
            )
        total += size
    if total > free:
        raise TooLarge(
            f"{body.repo_id} at {body.endpoint} has {total} bytes in all, more than the {free} "
            "bytes free in the server's data folder; nothing was downloaded",
            size=total,
            free=free,
        )
    if not (isinstance(sha, str) and is_commit(sha)):
        return None, None
    return sha, total


def _store_plan(hub: Hub, plan: IngestPlan, limit: int) -> None:
    """Copy every file of ``plan`` into the blob store (verified against the digest it hashed to)."""
    for f in plan.files:
        if f.size > limit:
            raise TooLarge(
                f"{f.path} has {f.size} bytes, more than the server's limit of {limit}",
                limit=limit,
                path=f.path,
            )
        if hub.blobs.exists(f.sha256):
            hub.register_blob(f.sha256, f.size)
            continue
        buf = memoryview(bytearray(_COPY_BUFFER))
        w = hub.blobs.writer(max_size=limit, size_hint=f.size)
        with w, open(f.source, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                w.write(buf[:n])
            info = w.commit(f.sha256)
        hub.register_blob(info.sha256, info.size)


# ------------------------------------------------------------------------------------------- admin
def _check_role(role: str) -> str:
    if role not in ROLES:
        raise BadRequest(f"unknown role {role!r}; expected one of: {', '.join(ROLES)}", role=role)
    return role


@router.post("/tokens", status_code=201)
def new_token(body: TokenIn, request: Request, who: Admin) -> dict[str, Any]:
    """Create an API token; the response is the only time it is shown."""
    role = _check_role(body.role)
    name = body.name or f"{role} (created by {who.name})"
    token = create_token(request.app.state.db, name, role, who.name)
    _hub(request).record(who.name, "token-create", detail={"name": name, "role": role})
    return {
        "token": token,
        "role": role,
        "name": name,
        "id": id_of_token(request.app.state.db, token),
    }


def _audit_reason(reason: str) -> str:
    """A revocation's optional reason, checked before anything changes (the audit log keeps it)."""
    if "\0" in reason:
        raise BadRequest("the reason contains a NUL character", field="reason")
    return reason.strip()


@router.get("/tokens")
def tokens(request: Request, who: Admin) -> dict[str, Any]:
    """Every API token (revoked ones too): id, name, role, who made it when, when it was revoked.

    Never the token or its hash: a lost token cannot be recovered, only revoked and replaced."""
    return {"tokens": list_tokens(request.app.state.db)}


@router.delete("/tokens/{token_id}")
def delete_token(
    token_id: int, request: Request, who: Admin, reason: Annotated[str, Query(max_length=2000)] = ""
) -> dict[str, Any]:
    """Revoke an API token: every request with it is a 401 from now on (API, Hugging Face and OCI
    routes, the web UI), and so are the registry tokens ``/v2/token`` issued for it.

    404 for an unknown id; an already revoked token is left as it is (``already_revoked``); 409
    ``last_admin_token`` for the last active admin token, so the hub cannot be locked out."""
    reason = _audit_reason(reason)
    doc, changed = revoke_token(request.app.state.db, token_id)
    return _revoked(request, who, "token-revoke", reason, doc, changed, ("id", "name", "role"))


def _revoked(
    request: Request,
    who: Principal,
    action: str,
    reason: str,
    doc: dict[str, Any],
    changed: bool,
    fields: tuple[str, ...],
) -> dict[str, Any]:
    """The answer to a revocation, recorded in the audit log when it changed something."""
    if changed:
        _hub(request).record(who.name, action, reason, detail={k: doc[k] for k in fields})
    return {**doc, "already_revoked": not changed}


@router.post("/ollama-keys", status_code=201)
def add_ollama_key(body: OllamaKeyIn, request: Request, who: Admin) -> dict[str, Any]:
    """Register an Ollama ed25519 public key so ``ollama pull`` from that machine authenticates.

    A revoked key can be registered again this way (409 while it is active)."""
    from modelward.hub.ollama_auth import parse_public_key

    role = _check_role(body.role)
    key = parse_public_key(body.public_key)
    doc = register_ollama_key(request.app.state.db, key.blob_b64, body.name, role, who.name)
    _hub(request).record(
        who.name,
        "ollama-key-add",
        detail={"id": doc["id"], "name": body.name, "role": role, "fingerprint": key.fingerprint},
    )
    return doc


@router.get("/ollama-keys")
def ollama_keys(request: Request, who: Admin) -> dict[str, Any]:
    """Every registered Ollama key (revoked ones too): id, name, role, fingerprint, when, by whom."""
    return {"keys": list_ollama_keys(request.app.state.db)}


@router.delete("/ollama-keys/{key:path}")
def delete_ollama_key(
    key: str, request: Request, who: Admin, reason: Annotated[str, Query(max_length=2000)] = ""
) -> dict[str, Any]:
    """Revoke an Ollama key by id or fingerprint (``SHA256:...``, as ``ssh-keygen -lf`` prints).

    It no longer authenticates, and the registry tokens issued to it stop working at once; the
    record stays. 404 for an unknown key; an already revoked key is left as it is."""
    reason = _audit_reason(reason)
    doc, changed = revoke_ollama_key(request.app.state.db, key)
    fields = ("id", "name", "role", "fingerprint")
    return _revoked(request, who, "ollama-key-revoke", reason, doc, changed, fields)


@router.post("/gc")
def gc(body: GcIn, request: Request, who: Admin) -> dict[str, Any]:
    """Blobs no revision references: listed (dry run), or deleted with ``apply``."""
    garbage = _hub(request).gc(dry_run=not body.apply, actor=who.name)
    return {"dry_run": not body.apply, "blobs": garbage}
