"""Hugging Face Hub protocol (read side) over approved revisions: model info, tree, resolve, refs.

What ``huggingface_hub`` 2.4 and ``transformers`` 5.24 need is recorded in research/hub.md section 1:
``/resolve`` answers 200 directly (no redirect) with ``X-Repo-Commit``, ``ETag``/``X-Linked-Etag`` =
the file's SHA-256, ``X-Linked-Size`` and ranges, never an ``X-Xet-*`` header; every file is marked
LFS so ``hf cache verify`` checks SHA-256 everywhere; errors carry ``X-Error-Code``/``X-Error-Message``
(see :mod:`modelward.server.errors`). Only approved revisions are ever served, to every role.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import mimetypes
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from modelward.errors import (
    BadRequest,
    EntryNotFound,
    HubError,
    NotApproved,
    NotFound,
    Revoked,
)
from modelward.hub.revision import FileEntry, RevisionView, lfs_pointer
from modelward.hub.service import Hub
from modelward.server.auth import Principal, require
from modelward.server.streaming import blob_response
from modelward.store.blobs import BlobStore

router = APIRouter(tags=["huggingface"])

TREE_PAGE_SIZE = 1000  # what the Hub itself caps a tree page at (50 with expand=true)
TREE_PAGE_SIZE_EXPANDED = 50
_MAX_CARD_BYTES = 256 * 1024
_MAX_CONFIG_BYTES = 1024 * 1024
_SEVERITY_STATUS = {"medium": "caution", "high": "unsafe", "critical": "unsafe"}
# Architecture suffix -> pipeline tag, for the common transformers heads (config.json "architectures").
_PIPELINES = (
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForMaskedLM", "fill-mask"),
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForImageClassification", "image-classification"),
    ("ForObjectDetection", "object-detection"),
    ("ForSpeechSeq2Seq", "automatic-speech-recognition"),
    ("ForCTC", "automatic-speech-recognition"),
    ("ForAudioClassification", "audio-classification"),
    ("ForImageTextToText", "image-text-to-text"),
)
_FEATURE_EXTRACTION = "feature-extraction"

Read = Depends(require("read"))


class _EntryMissing(EntryNotFound):
    """EntryNotFound that also tells the client the commit (it caches ``.no_exist/<commit>/<path>``)."""

    def __init__(self, message: str, commit: str, **detail: Any) -> None:
        super().__init__(message, commit=commit, **detail)
        self.headers = {"X-Repo-Commit": commit}


class _Disabled(Revoked):
    """A revoked revision, told to HF clients with the ``RevisionNotFound`` code.

    On any other 403 huggingface_hub quietly returns a cached copy, so a revoked model would keep
    loading from developers' caches; on RevisionNotFound it raises. The message still starts with
    "Access to this resource is disabled." and goes on with the reason (HEAD has no body).
    """

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message, **detail)
        text = message.encode("ascii", "replace").decode()[:1000]
        self.headers = {
            "X-Error-Code": "RevisionNotFound",
            "X-Error-Message": " ".join(text.split()),
        }


# ------------------------------------------------------------------------------------ helpers
def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _resolve(hub: Hub, repo: str, rev: str, with_scan: bool = True) -> RevisionView:
    """The approved revision ``rev`` names, or why not (the latest revision's reason for ``main``)."""
    try:
        return hub.resolve(repo, rev, with_scan=with_scan)
    except Revoked as exc:
        raise _Disabled(exc.message, **exc.detail) from None
    except NotApproved as exc:
        if "commit" in exc.detail or exc.detail.get("state") not in ("revoked", "rejected"):
            raise
        latest = hub.revisions(repo)[0]  # main is gone: say what happened to the latest revision
        where = f"{repo} has no approved revision; {latest.commit[:12]} was {latest.state}"
        if latest.state == "revoked":
            raise _Disabled(
                f"Access to this resource is disabled. {where}: {latest.reason}",
                repo=repo,
                commit=latest.commit,
            ) from None
        raise NotApproved(
            f"blocked by policy: {latest.reason} ({where} by {latest.decided_by})",
            repo=repo,
            commit=latest.commit,
            state=latest.state,
        ) from None


def _notice(rev: RevisionView) -> dict[str, str]:
    """``X-HF-Warning`` (huggingface_hub logs it once per topic) for a revision approved despite a
    high finding: the developer learns it was an override, by whom and why."""
    if rev.max_severity not in ("high", "critical"):
        return {}
    ref = f"{rev.repo}@{rev.commit[:12]}"
    text = (
        f"{ref} was approved by {rev.decided_by} despite a {rev.max_severity} scan finding: "
        f"{rev.reason}"
    )
    text = " ".join(text.encode("ascii", "replace").decode()[:1000].split())
    return {"X-HF-Warning": f"modelward {ref}; {text}"}


def _split_raw(request: Request, ns: str, name: str, marker: str, decoded: str) -> tuple[str, str]:
    """``(rev, path)`` after ``/{ns}/{name}/{marker}/`` in the raw (still percent-encoded) URL.

    The revision is one segment that clients percent-encode (``refs%2Fpr%2F1``) while the file path
    keeps its slashes; the server decodes both before routing, so split the raw path instead.
    """
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):
        segs = raw.decode("utf-8", "replace").split("/")
        for i in range(2, len(segs) - 1):
            if segs[i] == marker and unquote(segs[i - 1]) == name and unquote(segs[i - 2]) == ns:
                tail = segs[i + 1 :]
                break
        else:
            tail = decoded.split("/")
    else:
        tail = decoded.split("/")
    if tail and unquote(tail[0]) == "refs" and len(tail) >= 3:  # an unencoded refs/<kind>/<name>
        return "/".join(unquote(t) for t in tail[:3]), unquote("/".join(tail[3:]))
    rev = unquote(tail[0]) if tail else ""
    return rev, unquote("/".join(tail[1:]))


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _lfs(f: FileEntry) -> dict[str, Any]:
    return {"size": f.size, "pointerSize": len(lfs_pointer(f.sha256, f.size))}


def _read_small(blobs: BlobStore, f: FileEntry | None, limit: int) -> bytes | None:
    if f is None or f.size > limit:
        return None
    try:
        with blobs.open(f.sha256) as fh:
            return fh.read(limit)
    except (OSError, HubError):
        return None


def _card(blobs: BlobStore, rev: RevisionView) -> dict[str, list[str]]:
    from modelward.inventory.license import front_matter

    raw = _read_small(blobs, rev.file("README.md"), _MAX_CARD_BYTES)
    if raw is None:
        return {}
    return front_matter(raw.decode("utf-8", "replace")) or {}


def _config(blobs: BlobStore, rev: RevisionView) -> dict[str, Any]:
    raw = _read_small(blobs, rev.file("config.json"), _MAX_CONFIG_BYTES)
    if raw is None:
        return {}
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        return {}
    return doc if isinstance(doc, dict) else {}


def _pipeline_tag(config: dict[str, Any]) -> str | None:
    listed = config.get("architectures")
    archs = [a for a in listed if isinstance(a, str)] if isinstance(listed, list) else []
    for arch in archs:
        for suffix, tag in _PIPELINES:
            if arch.endswith(suffix):
                return tag
    if any(a.endswith("Model") for a in archs):
        return _FEATURE_EXTRACTION
    return None


def _first(card: dict[str, list[str]], key: str) -> str | None:
    values = card.get(key) or []
    return values[0] if values else None


def model_info(request: Request, rev: RevisionView, blobs_detail: bool) -> dict[str, Any]:
    """The ``/api/models/{repo}`` document: what huggingface_hub's ``ModelInfo`` parses, plus ours."""
    blobs: BlobStore = request.app.state.blobs
    card = _card(blobs, rev)
    config = _config(blobs, rev)
    names = [f.path for f in rev.files]
    library = _first(card, "library_name")
    if library is None:
        if config.get("model_type") or config.get("architectures"):
            library = "transformers"
        elif any(n.endswith(".gguf") for n in names):
            library = "gguf"
    pipeline = _first(card, "pipeline_tag") or _pipeline_tag(config)
    license_id = rev.license.get("id") if rev.license else None
    if license_id in (None, "", "unknown"):
        license_id = _first(card, "license")
    tags: list[str] = []
    for t in (
        library,
        *(
            fmt
            for fmt in ("safetensors", "gguf", "onnx")
            if any(n.endswith("." + fmt) for n in names)
        ),
        config.get("model_type") if isinstance(config.get("model_type"), str) else None,
        pipeline,
        *card.get("tags", []),
        f"license:{license_id}" if license_id else None,
    ):
        if t and t not in tags:
            tags.append(t)
    card_data: dict[str, Any] = {k: (v[0] if len(v) == 1 else v) for k, v in card.items() if v}
    if license_id:
        card_data["license"] = license_id
    siblings: list[dict[str, Any]] = []
    for f in rev.files:
        sib: dict[str, Any] = {"rfilename": f.path}
        if blobs_detail:
            sib.update(size=f.size, blobId=f.git_sha1, lfs={"sha256": f.sha256, **_lfs(f)})
        siblings.append(sib)
    ns = rev.repo.split("/")[0]
    doc: dict[str, Any] = {
        "_id": rev.commit,
        "id": rev.repo,
        "modelId": rev.repo,
        "author": ns,
        "sha": rev.commit,
        "lastModified": _iso(rev.decided_at or rev.created_at),
        "createdAt": _iso(rev.created_at),
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": tags,
        "cardData": card_data,
        "siblings": siblings,
        "usedStorage": rev.total_size,
        "securityRepoStatus": _security_repo_status(rev),
        "modelward": _provenance(request, rev),
    }
    if library:
        doc["library_name"] = library
    if pipeline:
        doc["pipeline_tag"] = pipeline
    cfg = {k: config[k] for k in ("architectures", "model_type") if k in config}
    if cfg:
        doc["config"] = cfg
    return doc


def _security_repo_status(rev: RevisionView) -> dict[str, Any]:
    flagged = [
        {"path": item.get("path"), "status": _file_status(item)}
        for item in rev.scan.get("files", [])
        if _file_status(item) != "safe"
    ]
    return {"scansDone": True, "filesWithIssues": flagged}


def _file_status(item: dict[str, Any]) -> str:
    worst = "safe"
    for finding in item.get("findings") or []:
        status = _SEVERITY_STATUS.get(str(finding.get("severity")), "safe")
        if status == "unsafe":
            return status
        if status == "caution":
            worst = status
    return worst


def _provenance(request: Request, rev: RevisionView) -> dict[str, Any]:
    """The hub's own record of a revision: where it came from, what the scan found, who approved it."""
    base = _base_url(request)
    sig = rev.signature or {}
    api = f"{base}/api/v1/hub/repos/{rev.repo}/revisions/{rev.commit}"
    signature: dict[str, Any] = {"signed": bool(sig)}
    if sig:
        signature.update(
            method=sig.get("method"),
            bundle=f"sha256:{sig.get('bundle')}" if sig.get("bundle") else None,
            bundle_size=sig.get("bundle_size"),
            public_key=sig.get("public_key"),
            url=f"{api}/signature",
            verify=(
                f"modelward hub verify <downloaded folder> --repo {rev.repo} --revision {rev.commit} "
                f"--server {base}"
            ),
        )
    return {
        "repo": rev.repo,
        "commit": rev.commit,
        "state": rev.state,
        "refs": (["main"] if rev.is_main else []) + list(rev.tags),
        "provenance": rev.provenance,
        "license": rev.license,
        "scan": {
            "summary": rev.scan.get("summary", {}),
            "max_severity": rev.max_severity,
            "schema": rev.scan.get("schema"),
        },
        "approval": {
            "state": rev.state,
            "by": rev.decided_by,
            "at": _iso(rev.decided_at),
            "reason": rev.reason,
            "submitted_by": rev.created_by,
            "submitted_at": _iso(rev.created_at),
        },
        "signature": signature,
    }


def _base_url(request: Request) -> str:
    public: str | None = request.app.state.settings.public_url
    return (public or str(request.base_url)).rstrip("/")


# ----------------------------------------------------------------------------- tree listing
def _tree_entries(
    rev: RevisionView, root: str, recursive: bool
) -> list[tuple[str, FileEntry | None]]:
    """``(path, file-or-None-for-a-folder)`` under ``root`` ('' = repo root), sorted by path."""
    prefix = root + "/" if root else ""
    out: dict[str, FileEntry | None] = {}
    for f in rev.files:
        if not f.path.startswith(prefix):
            continue
        rel = f.path[len(prefix) :]
        parts = rel.split("/")
        if recursive:
            for i in range(1, len(parts)):
                out.setdefault(prefix + "/".join(parts[:i]), None)
            out[f.path] = f
        elif len(parts) == 1:
            out[f.path] = f
        else:
            out.setdefault(prefix + parts[0], None)
    return sorted(out.items())


def _tree_oids(rev: RevisionView) -> dict[str, str]:
    """A stable id of every folder's content, in one pass (not git's tree hash: we keep no trees)."""
    hashes: dict[str, Any] = {}
    for f in rev.files:  # sorted by path
        line = f"{f.path}\0{f.sha256}\0{f.size}\n".encode()
        parts = f.path.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            h = hashes.get(folder)
            if h is None:
                h = hashes[folder] = hashlib.sha1(b"modelward-tree-v1\n", usedforsecurity=False)
            h.update(line)
    return {folder: h.hexdigest() for folder, h in hashes.items()}


def _tree_item(
    rev: RevisionView, path: str, f: FileEntry | None, expand: bool, oids: dict[str, str]
) -> dict[str, Any]:
    if f is None:
        item: dict[str, Any] = {"type": "directory", "path": path, "oid": oids.get(path, "")}
    else:
        item = {
            "type": "file",
            "path": path,
            "size": f.size,
            "oid": f.git_sha1,
            "lfs": {"oid": f.sha256, **_lfs(f)},
        }
    if expand:
        item["lastCommit"] = {
            "id": rev.commit,
            "title": f"approved by {rev.decided_by}: {rev.reason}",
            "date": _iso(rev.decided_at or rev.created_at),
        }
        if f is not None:
            scanned = next((i for i in rev.scan.get("files", []) if i.get("path") == path), None)
            item["securityFileStatus"] = {
                "status": _file_status(scanned) if scanned else "unscanned",
                "avScan": None,
                "pickleImportScan": None,
            }
    return item


def _cursor_encode(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def _cursor_decode(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest(f"invalid tree cursor {cursor!r}", cursor=cursor) from None


# ----------------------------------------------------------------------------------- routes
@router.get("/api/whoami-v2", summary="The caller (for `hf auth whoami`)")
def whoami(who: Principal = Read) -> dict[str, Any]:
    writes = who.can("publish") or who.can("review")
    return {
        "type": "user",
        "id": who.name,
        "name": who.name,
        "fullname": who.name,
        "email": None,
        "emailVerified": False,
        "isPro": False,
        "orgs": [],
        "auth": {
            "type": "access_token",
            "accessToken": {"displayName": who.name, "role": "write" if writes else "read"},
        },
        "modelward": {"role": who.role},
    }


@router.get("/api/agent-harnesses", include_in_schema=False)
def agent_harnesses() -> None:
    # huggingface_hub asks about once a day for agent detection and ignores any error.
    raise NotFound("not offered by this hub")


@router.get("/api/models", summary="Approved models")
def list_models(
    request: Request,
    search: str | None = None,
    author: str | None = None,
    limit: int | None = Query(None, ge=1),
    who: Principal = Read,
) -> JSONResponse:
    out: list[dict[str, Any]] = []
    for repo in _hub(request).list_repos(approved_only=True):
        ns = repo.name.partition("/")[0]
        if author is not None and ns != author.lower():
            continue
        if search is not None and search.lower() not in repo.name:
            continue
        out.append(
            {
                "_id": repo.main,
                "id": repo.name,
                "modelId": repo.name,
                "author": ns,
                "sha": repo.main,
                "lastModified": _iso(repo.updated_at),
                "private": False,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [f"license:{repo.license['id']}"] if repo.license.get("id") else [],
                "modelward": {"tags": list(repo.tags), "signed": repo.signed},
            }
        )
        if limit is not None and len(out) >= limit:
            break
    return JSONResponse(out)


@router.get("/api/models/{ns}/{name}", summary="Model info of the main (latest approved) revision")
def get_model(
    request: Request, ns: str, name: str, blobs: bool = False, who: Principal = Read
) -> JSONResponse:
    rev = _resolve(_hub(request), f"{ns}/{name}", "main")
    return JSONResponse(model_info(request, rev, blobs), headers=_notice(rev))


@router.get("/api/models/{ns}/{name}/revision/{rev:path}", summary="Model info of a revision")
def get_model_revision(
    request: Request, ns: str, name: str, rev: str, blobs: bool = False, who: Principal = Read
) -> JSONResponse:
    view = _resolve(_hub(request), f"{ns}/{name}", rev)
    return JSONResponse(model_info(request, view, blobs), headers=_notice(view))


@router.get("/api/models/{ns}/{name}/refs", summary="Branches (main) and approved tags")
def get_refs(request: Request, ns: str, name: str, who: Principal = Read) -> JSONResponse:
    repo = f"{ns}/{name}"
    hub = _hub(request)
    main = _resolve(hub, repo, "main")
    tags = [
        {"name": t, "ref": f"refs/tags/{t}", "targetCommit": r.commit}
        for r in hub.revisions(repo)
        if r.state == "approved"
        for t in r.tags
    ]
    return JSONResponse(
        {
            "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": main.commit}],
            "converts": [],
            "tags": sorted(tags, key=lambda t: str(t["name"])),
            "pullRequests": [],
        }
    )


@router.get("/api/models/{ns}/{name}/commits/{rev:path}", summary="Approved revisions up to rev")
def get_commits(
    request: Request, ns: str, name: str, rev: str, who: Principal = Read
) -> JSONResponse:
    repo = f"{ns}/{name}"
    hub = _hub(request)
    head = _resolve(hub, repo, rev)
    until = head.decided_at or head.created_at
    history = [
        r
        for r in hub.revisions(repo)
        if r.state == "approved" and (r.decided_at or r.created_at) <= until
    ]
    history.sort(key=lambda r: r.decided_at or r.created_at, reverse=True)
    out = []
    for r in history:
        kind = r.provenance.get("kind", "upload")
        out.append(
            {
                "id": r.commit,
                "title": f"Approved by {r.decided_by}: {r.reason}",
                "message": (
                    f"{r.repo}@{r.commit}: {len(r.files)} files ({kind}), submitted by "
                    f"{r.created_by} at {_iso(r.created_at)}; approved by {r.decided_by} at "
                    f"{_iso(r.decided_at)}: {r.reason}"
                ),
                "authors": [{"user": u} for u in dict.fromkeys((r.decided_by, r.created_by)) if u],
                "date": _iso(r.decided_at or r.created_at),
            }
        )
    return JSONResponse(out)


@router.get("/api/models/{ns}/{name}/tree/{rest:path}", summary="Files and folders of a revision")
def get_tree(
    request: Request,
    ns: str,
    name: str,
    rest: str,
    recursive: bool = False,
    expand: bool = False,
    cursor: str | None = None,
    limit: int | None = Query(None, ge=1, le=TREE_PAGE_SIZE),
    who: Principal = Read,
) -> JSONResponse:
    repo = f"{ns}/{name}"
    rev_name, root = _split_raw(request, ns, name, "tree", rest)
    root = root.strip("/")
    rev = _resolve(_hub(request), repo, rev_name)
    entries = _tree_entries(rev, root, recursive)
    if root and (not entries or rev.file(root) is not None):
        what = "is a file, not a folder" if rev.file(root) is not None else "does not exist"
        raise _EntryMissing(
            f"{root!r} {what} in {repo}@{rev.commit[:12]}", rev.commit, repo=repo, path=root
        )
    size = min(limit or TREE_PAGE_SIZE, TREE_PAGE_SIZE_EXPANDED if expand else TREE_PAGE_SIZE)
    start = 0
    if cursor is not None:
        after = _cursor_decode(cursor)
        start = next((i for i, (p, _f) in enumerate(entries) if p > after), len(entries))
    page = entries[start : start + size]
    headers: dict[str, str] = {}
    if start + size < len(entries):
        query = {"recursive": str(recursive).lower(), "expand": str(expand).lower()}
        if limit is not None:
            query["limit"] = str(limit)
        query["cursor"] = _cursor_encode(page[-1][0])
        # The next page names the commit, so a `main` that moves meanwhile cannot mix two revisions.
        path = f"/{quote(root)}" if root else ""
        url = f"{_base_url(request)}/api/models/{repo}/tree/{rev.commit}{path}?{urlencode(query)}"
        headers["Link"] = f'<{url}>; rel="next"'
    oids = _tree_oids(rev) if any(f is None for _p, f in page) else {}
    body = [_tree_item(rev, p, f, expand, oids) for p, f in page]
    return JSONResponse(body, headers=headers)


@router.post("/api/models/{ns}/{name}/paths-info/{rev:path}", summary="Info on given paths")
async def paths_info(
    request: Request, ns: str, name: str, rev: str, who: Principal = Read
) -> JSONResponse:
    # huggingface_hub's get_paths_info / HfFileSystem send a form (paths=..., expand=...).
    from starlette.concurrency import run_in_threadpool

    form = await request.form()
    wanted = [str(p).strip("/") for p in form.getlist("paths")]
    expand = str(form.get("expand", "false")).lower() == "true"
    view = await run_in_threadpool(_resolve, _hub(request), f"{ns}/{name}", rev)
    return JSONResponse(_paths_info(view, wanted, expand))


def _paths_info(rev: RevisionView, wanted: Iterable[str], expand: bool) -> list[dict[str, Any]]:
    oids = _tree_oids(rev)
    files = {f.path: f for f in rev.files}
    out = []
    for path in dict.fromkeys(wanted):
        f = files.get(path)
        if f is not None or path in oids:
            out.append(_tree_item(rev, path, f, expand, oids))
    return out


@router.api_route(
    "/{ns}/{name}/resolve/{rest:path}",
    methods=["GET", "HEAD"],
    summary="Download a file of an approved revision (ranges supported)",
)
def resolve_file(
    request: Request, ns: str, name: str, rest: str, who: Principal = Read
) -> Response:
    repo = f"{ns}/{name}"
    rev_name, path = _split_raw(request, ns, name, "resolve", rest)
    hub = _hub(request)
    rev = _resolve(hub, repo, rev_name, with_scan=False)
    f = rev.file(path)
    if f is None:
        raise _EntryMissing(
            f"{path!r} not found in {repo}@{rev.commit[:12]}", rev.commit, repo=repo, path=path
        )
    etag = f'"{f.sha256}"'
    headers = {
        "X-Repo-Commit": rev.commit,
        "ETag": etag,
        "X-Linked-Etag": etag,
        "X-Linked-Size": str(f.size),
        "Content-Disposition": _disposition(path),
        # Revalidate every time: a revocation must take effect at once, also behind a cache.
        "Cache-Control": "private, no-cache",
        **_notice(rev),
    }
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return blob_response(request, hub.blobs, f.sha256, headers, media_type)


def _disposition(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    ascii_name = base.encode("ascii", "replace").decode().replace('"', "_").replace("\\", "_")
    return f"inline; filename*=UTF-8''{quote(base)}; filename=\"{ascii_name}\""
