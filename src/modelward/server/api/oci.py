"""OCI distribution and Ollama routes under ``/v2/``: pull approved revisions, push into review.

Pull: a tag (``latest`` means ``main`` unless a tag of that name exists), ``main`` or a 40-hex
commit names a revision; :func:`modelward.hub.oci.negotiate` picks the rendering from ``Accept``
(OCI manifest -> the manifest that was pushed, else ModelPack; Docker v2 only, as ``ollama pull``
asks -> the Ollama manifest of a GGUF revision). Manifests and configs are rendered on request from
the revision, deterministically, so every replica serves the same digests without storing them.
A blob GET answers 200 with the bytes *and* ``Location: <signed URL>``: Ollama reads that header
and fetches ranges from it without ``Authorization``.

Auth: the Docker token flow. A 401 carries ``WWW-Authenticate: Bearer realm="<this host>/v2/token"``;
``/v2/token`` trades ``Basic any:<API token>`` (oras, docker) or an Ollama ed25519-signed request
from a registered key for a short-lived registry token. ``Bearer <API token>`` works directly too.

Push: uploads (monolithic, or chunked with PATCH; the session state travels signed in the upload
URL, so any replica can continue it) land in the blob store; ``PUT manifests/<tag>`` turns the
manifest's layers into a revision (provenance ``oci``) that is scanned and put in the review queue.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from modelward.errors import (
    BadRequest,
    BlobNotFound,
    DigestMismatch,
    HubError,
    NotFound,
    RevisionNotFound,
    TooLarge,
    Unauthorized,
)
from modelward.hub import oci, urlsign
from modelward.hub.names import is_commit, validate_repo, validate_tag
from modelward.hub.ollama_auth import parse_authorization, verify_token_request
from modelward.hub.revision import RevisionView
from modelward.hub.service import Hub, NewFile
from modelward.server.auth import (
    ANONYMOUS,
    Need,
    Principal,
    check,
    credentials,
    hash_token,
    lookup,
)
from modelward.server.streaming import blob_response, parse_range
from modelward.store.blobs import new_upload_id
from modelward.store.db import OllamaKey, Token, Upload

router = APIRouter(tags=["oci"])

API_VERSION: Final = {"Docker-Distribution-API-Version": "registry/2.0"}
SERVICE: Final = "modelward"
TOKEN_TTL: Final = 3600
_WRITE_BUFFER: Final = 1 << 20
_REFERRER_TITLES: Final = {
    "signature": "model.sig",
    "scan-report": "scan.json",
    "approval": "approval.json",
}


class BlobUploadUnknown(NotFound):
    code = "blob_upload_unknown"
    oci_code = "BLOB_UPLOAD_UNKNOWN"


class ManifestUnknown(NotFound):
    code = "manifest_unknown"
    oci_code = "MANIFEST_UNKNOWN"


class RangeInvalid(HubError):
    status = 416
    code = "range_invalid"
    oci_code = "BLOB_UPLOAD_INVALID"


# --------------------------------------------------------------------------- auth
def _key(request: Request) -> bytes:
    raw: str = request.app.state.url_key
    try:
        return bytes.fromhex(raw)
    except ValueError:
        return raw.encode()


def base_url(request: Request) -> str:
    """The URL clients reach this server at: ``public_url`` if set, else the request's host:port."""
    public = request.app.state.settings.public_url
    if public:
        return str(public).rstrip("/")
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


def challenge(request: Request, repo: str | None, need: Need) -> str:
    """The ``WWW-Authenticate`` value; the realm's host:port is the request's (Ollama insists)."""
    value = f'Bearer realm="{base_url(request)}/v2/token",service="{SERVICE}"'
    if repo:
        actions = "pull,push" if need == "publish" else "pull"
        value += f',scope="repository:{repo}:{actions}"'
    return value


def _registry_principal(request: Request) -> None:
    """Accept a ``/v2/token`` bearer token: check it and that what it stands for still exists."""
    token = credentials(request)
    if not token or not urlsign.is_registry_token(token):
        return
    try:
        claims = urlsign.verify_token(_key(request), token)
    except Unauthorized:
        return
    found = _still_valid(request, claims)
    if found is not None:
        request.state.principal = found


def _still_valid(request: Request, claims: urlsign.RegistryToken) -> Principal | None:
    kind, _, ident = claims.via.partition(":")
    if kind == "anonymous":
        return ANONYMOUS if request.app.state.settings.anonymous_read else None
    with request.app.state.db.session() as s:
        if kind == "token":
            row = s.scalar(select(Token).where(Token.token_hash == ident))
            if row is None or row.revoked_at is not None:
                return None
            return Principal(row.name, row.role)
        if kind == "ollama":
            key = s.scalar(select(OllamaKey).where(OllamaKey.public_key == ident))
            return Principal(f"ollama:{key.name}", key.role) if key is not None else None
    return None


def caller(request: Request, need: Need, repo: str | None = None) -> Principal:
    """The authenticated caller allowed ``need``; a 401 carries the token challenge."""
    _registry_principal(request)
    try:
        return check(request, need)
    except Unauthorized as exc:
        exc.headers = {"WWW-Authenticate": challenge(request, repo, need), **API_VERSION}  # type: ignore[attr-defined]
        raise


def _repo(ns: str, name: str) -> str:
    return validate_repo(f"{ns}/{name}")


def _digest_hex(digest: str) -> str:
    if not (digest.startswith("sha256:") and len(digest) == 71) or any(
        c not in "0123456789abcdef" for c in digest[7:]
    ):
        raise DigestMismatch(
            f"digest {digest[:80]!r} is not sha256:<64 lowercase hex>", digest=digest[:80]
        )
    return digest[7:]


@router.api_route("/v2/", methods=["GET", "HEAD"], include_in_schema=True)
@router.api_route("/v2", methods=["GET", "HEAD"], include_in_schema=False)
def ping(request: Request) -> Response:
    """OCI ``/v2/`` check: 200 for an authorised caller, else 401 with the token challenge."""
    caller(request, "read")
    return JSONResponse({}, headers=API_VERSION)


@router.get("/v2/token")
def token(request: Request) -> JSONResponse:
    """Docker/Ollama token endpoint: ``Basic any:<token>``, ``Bearer <token>`` or an Ollama key."""
    header = request.headers.get("authorization", "").strip()
    key = _key(request)
    scheme = header.partition(" ")[0].lower()
    if header and scheme not in ("basic", "bearer"):
        who, via = _ollama_principal(request, header)
    else:
        secret = credentials(request)
        if secret:
            found = lookup(request.app.state.db, secret)
            if found is None:
                raise Unauthorized("invalid or revoked token")
            who, via = found, "token:" + hash_token(secret)
        elif request.app.state.settings.anonymous_read:
            who, via = ANONYMOUS, "anonymous:"
        else:
            raise Unauthorized(
                "authentication required: log in with any user name and an API token as the "
                "password, or register this machine's Ollama key"
            )
    issued = urlsign.issue_token(key, who.name, who.role, ttl=TOKEN_TTL, via=via)
    return JSONResponse(
        {"token": issued, "access_token": issued, "expires_in": TOKEN_TTL},
        headers={"Cache-Control": "no-store"},
    )


def _ollama_principal(request: Request, header: str) -> tuple[Principal, str]:
    key, _sig = parse_authorization(header)
    with request.app.state.db.session() as s:
        row = s.scalar(select(OllamaKey).where(OllamaKey.public_key == key.blob_b64))
        registered = [key] if row is not None else []
        name, role = (row.name, row.role) if row is not None else ("", "")
    query = request.url.query
    candidates = [f"{base_url(request)}{request.url.path}?{query}", str(request.url)]
    verify_token_request(header, candidates, registered)
    return Principal(f"ollama:{name}", role), "ollama:" + key.blob_b64


# --------------------------------------------------------------------------- what a repo serves
@dataclass(frozen=True, slots=True)
class Doc:
    """A manifest or derived blob: bytes, media type, and the revision it belongs to."""

    data: bytes
    media_type: str
    rev: RevisionView

    @property
    def digest(self) -> str:
        return oci.sha256_digest(self.data)


def _pushed(hub: Hub, rev: RevisionView, atts: dict[str, tuple[str, str, int]]) -> Doc | None:
    att = atts.get("oci-manifest")
    if att is None or not hub.blobs.exists(att[0]):
        return None
    with hub.blobs.open(att[0]) as fh:
        return Doc(fh.read(oci.MAX_MANIFEST_BYTES + 1), att[1], rev)


def _manifests(hub: Hub, rev: RevisionView) -> Iterator[tuple[Doc, oci.Rendered | None]]:
    """Every manifest a revision is served as, with its rendering (None for the pushed one)."""
    atts = hub.attachments(rev.repo, rev.commit)
    pushed = _pushed(hub, rev, atts)
    if pushed is not None:
        yield pushed, None
    mp = oci.render_modelpack(rev)
    yield Doc(mp.manifest, mp.media_type, rev), mp
    ol = oci.render_ollama(rev)
    if ol is not None:
        yield Doc(ol.manifest, ol.media_type, rev), ol


def _referrers(hub: Hub, subject: Doc) -> list[oci.Rendered]:
    rev = subject.rev
    desc = oci.Descriptor(subject.media_type, subject.digest, len(subject.data))
    out = []
    atts = hub.attachments(rev.repo, rev.commit)
    for kind in ("signature", "scan-report", "approval"):
        if kind not in atts:
            continue
        sha, media_type, size = atts[kind]
        blob = oci.Descriptor(
            media_type, "sha256:" + sha, size, {oci.ANNOTATION_TITLE: _REFERRER_TITLES[kind]}
        )
        out.append(oci.render_referrer(desc, media_type, blob, {"dev.modelward.kind": kind}))
    return out


def _find_manifest(hub: Hub, repo: str, digest: str) -> Doc:
    """The manifest (of any revision's rendering, or a referrer) with this digest."""
    for rev in hub.revisions(repo):
        for doc, _ in _manifests(hub, rev):
            if doc.digest == digest:
                return _servable(hub, doc)
            if rev.state == "approved":
                for ref in _referrers(hub, doc):
                    if ref.digest == digest:
                        return Doc(ref.manifest, ref.media_type, rev)
    raise ManifestUnknown(f"manifest {digest} of {repo!r} not found", repo=repo, digest=digest)


def _servable(hub: Hub, doc: Doc) -> Doc:
    if doc.rev.state != "approved":
        hub.resolve(doc.rev.repo, doc.rev.commit)  # raises NotApproved / Revoked with the reason
    return doc


def _resolve(hub: Hub, repo: str, reference: str) -> RevisionView:
    if not is_commit(reference) and reference != "main":
        validate_tag(reference)
    try:
        return hub.resolve(repo, reference)
    except RevisionNotFound:
        if reference != "latest":
            raise
        return hub.resolve(repo, "main")


def _choose(hub: Hub, rev: RevisionView, accept: str | None) -> Doc:
    docs = list(_manifests(hub, rev))
    pushed = docs[0][0] if docs[0][1] is None else None
    # What `ollama push` sent (with Ollama's own config) wins over the rendering, as the pushed
    # OCI manifest does for OCI clients: a client that pushed gets back the digest it pushed.
    ollama = next(
        (d for d, r in docs if r is not None and d.media_type == oci.DOCKER_MANIFEST), None
    )
    if pushed is not None and pushed.media_type == oci.DOCKER_MANIFEST:
        ollama = pushed
    pick = oci.negotiate(accept, ollama_available=ollama is not None)
    if pick == "ollama" and ollama is not None:
        return ollama
    if pick == "modelpack":
        if pushed is not None and pushed.media_type == oci.OCI_MANIFEST:
            return pushed
        return next(d for d, r in docs if r is not None and d.media_type == oci.OCI_MANIFEST)
    raise ManifestUnknown(
        f"{rev.repo}@{rev.commit[:12]} has no manifest of the accepted types: the Docker v2 "
        "(Ollama) manifest exists only for revisions with one GGUF file; ask for "
        f"{oci.OCI_MANIFEST} to get the ModelPack manifest",
        repo=rev.repo,
        accept=(accept or "")[:200],
    )


def _derived_blob(hub: Hub, repo: str, digest: str) -> Doc | None:
    """Config blobs of rendered manifests (not stored: rendered again on request)."""
    for rev in hub.revisions(repo):
        if rev.state != "approved":
            continue
        for rendered in (oci.render_modelpack(rev), oci.render_ollama(rev)):
            if rendered is not None and rendered.config_digest == digest:
                return Doc(rendered.config, rendered.config_media_type, rev)
        if digest == oci.empty_config().digest:
            return Doc(oci.EMPTY_CONFIG_BYTES, oci.OCI_EMPTY, rev)
    return None


def _manifest_response(request: Request, doc: Doc) -> Response:
    headers = {
        "Docker-Content-Digest": doc.digest,
        "ETag": f'"{doc.digest}"',
        "X-Modelward-Revision": doc.rev.commit,
        **API_VERSION,
    }
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(doc.data))
        return Response(b"", media_type=doc.media_type, headers=headers)
    return Response(doc.data, media_type=doc.media_type, headers=headers)


# --------------------------------------------------------------------------- pull routes
@router.api_route("/v2/{ns}/{name}/manifests/{reference}", methods=["GET", "HEAD"])
def get_manifest(ns: str, name: str, reference: str, request: Request) -> Response:
    """A manifest by tag, ``main``, commit or digest (approved revisions only)."""
    repo = _repo(ns, name)
    caller(request, "read", repo)
    hub: Hub = request.app.state.hub
    if reference.startswith("sha256:"):
        _digest_hex(reference)
        return _manifest_response(request, _find_manifest(hub, repo, reference))
    rev = _resolve(hub, repo, reference)
    return _manifest_response(request, _choose(hub, rev, request.headers.get("accept")))


@router.api_route("/v2/{ns}/{name}/blobs/{digest}", methods=["GET", "HEAD"])
def get_blob(ns: str, name: str, digest: str, request: Request) -> Response:
    """A blob of an approved revision. With ``exp``/``sig`` (the signed URL) no token is needed."""
    repo = _repo(ns, name)
    hex_digest = _digest_hex(digest)
    q = request.query_params
    signed = "sig" in q or "exp" in q
    if signed:
        urlsign.verify_blob(_key(request), repo, digest, q.get("exp"), q.get("sig"))
    else:
        caller(request, "read", repo)
    hub: Hub = request.app.state.hub
    headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"', **API_VERSION}
    if not signed and request.method == "GET":
        ttl = request.app.state.settings.signed_url_ttl
        query = urlsign.signed_blob_query(_key(request), repo, digest, ttl=ttl)
        headers["Location"] = f"{base_url(request)}/v2/{repo}/blobs/{digest}?{query}"
    if hub.has_blob_in_repo(repo, hex_digest):
        return blob_response(request, hub.blobs, hex_digest, headers)
    doc = _derived_blob(hub, repo, digest)
    if doc is None:
        raise BlobNotFound(
            f"blob {digest} is not part of an approved revision of {repo!r}", digest=digest
        )
    return _bytes_response(request, doc.data, headers, doc.media_type)


def _bytes_response(
    request: Request, data: bytes, headers: dict[str, str], media_type: str
) -> Response:
    h = {"Accept-Ranges": "bytes", **headers}
    status, body = 200, data
    rng = request.headers.get("range")
    parsed = parse_range(rng, len(data)) if rng else None
    if parsed is not None:
        start, end = parsed
        status, body = 206, data[start : end + 1]
        h["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    h["Content-Length"] = str(len(body))
    if request.method == "HEAD":
        return Response(b"", status_code=status, headers=h, media_type=media_type)
    return Response(body, status_code=status, headers=h, media_type=media_type)


@router.get("/v2/{ns}/{name}/tags/list")
def tags_list(
    ns: str, name: str, request: Request, n: int | None = None, last: str = ""
) -> Response:
    """Tags of approved revisions, plus ``main`` and ``latest`` for the approved head."""
    repo = _repo(ns, name)
    caller(request, "read", repo)
    hub: Hub = request.app.state.hub
    tags: set[str] = set()
    for rev in hub.revisions(repo):
        if rev.state == "approved":
            tags.update(rev.tags)
            if rev.is_main:
                tags.update(("main", "latest"))
    ordered = sorted(t for t in tags if t > last)
    headers = dict(API_VERSION)
    if n is not None and n >= 0 and len(ordered) > n:
        ordered = ordered[:n]
        nxt = urllib.parse.urlencode({"n": n, "last": ordered[-1]}) if ordered else ""
        headers["Link"] = f'</v2/{repo}/tags/list?{nxt}>; rel="next"'
    return JSONResponse({"name": repo, "tags": ordered}, headers=headers)


@router.get("/v2/{ns}/{name}/referrers/{digest}")
def referrers(
    ns: str, name: str, digest: str, request: Request, artifactType: str | None = None
) -> Response:
    """Signature bundle, scan report and approval record of the revision a manifest renders."""
    repo = _repo(ns, name)
    caller(request, "read", repo)
    _digest_hex(digest)
    hub: Hub = request.app.state.hub
    found: list[oci.Descriptor] = []
    for rev in hub.revisions(repo):
        if rev.state != "approved":
            continue
        for doc, _ in _manifests(hub, rev):
            if doc.digest == digest:
                found = [r.descriptor() for r in _referrers(hub, doc)]
                break
        if found:
            break
    headers = dict(API_VERSION)
    if artifactType:
        found = [d for d in found if d.artifact_type == artifactType]
        headers["OCI-Filters-Applied"] = "artifactType"
    return Response(oci.render_index(found), media_type=oci.OCI_INDEX, headers=headers)


# --------------------------------------------------------------------------- push: blob uploads
def _upload_url(repo: str, upload_id: str, state: str, digest: str | None = None) -> str:
    query = {"_state": state} | ({"digest": digest} if digest else {})
    return f"/v2/{repo}/blobs/uploads/{upload_id}?{urllib.parse.urlencode(query)}"


async def _store_body(
    request: Request,
    hub: Hub,
    expected: str | None,
    prefix: list[str] | None = None,
    already: int = 0,
) -> tuple[str, int]:
    """Stream the chunk blobs ``prefix`` and then the request body into one new blob.

    ``already`` bytes of the upload exist elsewhere (earlier chunks): the size limit counts them.
    """
    limit = request.app.state.settings.max_upload_bytes - already
    if limit <= 0:
        raise TooLarge("upload is larger than the server's limit")
    writer = hub.blobs.writer(max_size=limit)
    with writer:
        for chunk_digest in prefix or []:
            await run_in_threadpool(_copy_blob, hub, chunk_digest, writer)
        buf = bytearray()
        async for piece in request.stream():
            buf += piece
            if len(buf) >= _WRITE_BUFFER:
                await run_in_threadpool(writer.write, bytes(buf))
                buf.clear()
        if buf:
            await run_in_threadpool(writer.write, bytes(buf))
        info = await run_in_threadpool(writer.commit, expected)
    await run_in_threadpool(hub.register_blob, info.sha256, info.size)
    return info.sha256, info.size


def _copy_blob(hub: Hub, digest: str, writer: Any) -> None:
    with hub.blobs.open(digest) as fh:
        while data := fh.read(_WRITE_BUFFER):
            writer.write(data)


def _chain(hub: Hub, head: str) -> list[str]:
    """The chunk digests of an upload, oldest first, from its linked chunk records."""
    out: list[str] = []
    while head:
        with hub.blobs.open(head) as fh:
            link = json.loads(fh.read(4096))
        out.append(link["chunk"])
        head = link["prev"]
    return out[::-1]


def _session(request: Request, repo: str, upload_id: str) -> None:
    with request.app.state.db.session() as s:
        row = s.get(Upload, upload_id)
        if row is None or row.repo != repo:
            raise BlobUploadUnknown(f"upload {upload_id[:64]!r} of {repo!r} is unknown or finished")


def _created(repo: str, digest: str) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"/v2/{repo}/blobs/{digest}",
            "Docker-Content-Digest": digest,
            **API_VERSION,
        },
    )


@router.post("/v2/{ns}/{name}/blobs/uploads/")
@router.post("/v2/{ns}/{name}/blobs/uploads", include_in_schema=False)
async def start_upload(ns: str, name: str, request: Request) -> Response:
    """Start an upload; ``?digest=`` with a body is a monolithic upload, ``?mount=`` a mount."""
    repo = _repo(ns, name)
    await run_in_threadpool(caller, request, "publish", repo)
    hub: Hub = request.app.state.hub
    q = request.query_params
    mount, source = q.get("mount"), q.get("from")
    if mount and source:
        hex_digest = _digest_hex(mount)
        src = validate_repo(source)
        if await run_in_threadpool(hub.has_blob_in_repo, src, hex_digest):
            return _created(repo, mount)
    digest = q.get("digest")
    has_body = int(
        request.headers.get("content-length") or 0
    ) > 0 or "chunked" in request.headers.get("transfer-encoding", "")
    if digest and has_body:
        hex_digest = _digest_hex(digest)
        await _store_body(request, hub, hex_digest)
        return _created(repo, digest)
    if digest:
        _digest_hex(digest)
    upload_id = new_upload_id()
    with request.app.state.db.session() as s:
        s.add(Upload(id=upload_id, repo=repo, size=0))
    state = urlsign.sign_upload_state(_key(request), upload_id, "", 0)
    return Response(
        status_code=202,
        headers={
            "Location": _upload_url(repo, upload_id, state, digest),
            "Range": "0-0",
            "Docker-Upload-UUID": upload_id,
            **API_VERSION,
        },
    )


@router.patch("/v2/{ns}/{name}/blobs/uploads/{upload_id}")
async def patch_upload(ns: str, name: str, upload_id: str, request: Request) -> Response:
    """Append a chunk (``Content-Range: <start>-<end>`` must continue where the upload stands)."""
    repo = _repo(ns, name)
    await run_in_threadpool(caller, request, "publish", repo)
    hub: Hub = request.app.state.hub
    _session(request, repo, upload_id)
    key = _key(request)
    head, size = urlsign.verify_upload_state(key, upload_id, request.query_params.get("_state"))
    crange = request.headers.get("content-range")
    if crange:
        start = crange.removeprefix("bytes ").split("-", 1)[0].strip()
        if not start.isdigit() or int(start) != size:
            raise RangeInvalid(
                f"chunk starts at {start[:20]!r} but the upload has {size} bytes",
                headers_range=f"0-{max(size - 1, 0)}",
            )
    chunk, n = await _store_body(request, hub, None, already=size)
    total = size + n
    if n:
        link = json.dumps({"prev": head, "chunk": chunk}, sort_keys=True).encode()
        head = await run_in_threadpool(hub.put_bytes, link)
    with request.app.state.db.session() as s:
        row = s.get(Upload, upload_id)
        if row is not None:
            row.size = total
    state = urlsign.sign_upload_state(key, upload_id, head, total)
    return Response(
        status_code=202,
        headers={
            "Location": _upload_url(repo, upload_id, state, request.query_params.get("digest")),
            "Range": f"0-{max(total - 1, 0)}",
            "Docker-Upload-UUID": upload_id,
            **API_VERSION,
        },
    )


@router.put("/v2/{ns}/{name}/blobs/uploads/{upload_id}")
async def finish_upload(ns: str, name: str, upload_id: str, request: Request) -> Response:
    """Close an upload with ``?digest=``: the bytes must hash to it, or nothing is stored."""
    repo = _repo(ns, name)
    await run_in_threadpool(caller, request, "publish", repo)
    hub: Hub = request.app.state.hub
    _session(request, repo, upload_id)
    head, _size = urlsign.verify_upload_state(
        _key(request), upload_id, request.query_params.get("_state")
    )
    digest = request.query_params.get("digest")
    if not digest:
        raise BadRequest("closing an upload needs ?digest=sha256:<hex>")
    hex_digest = _digest_hex(digest)
    chunks = await run_in_threadpool(_chain, hub, head)
    await _store_body(request, hub, hex_digest, chunks)
    with request.app.state.db.session() as s:
        row = s.get(Upload, upload_id)
        if row is not None:
            s.delete(row)
    return _created(repo, digest)


@router.get("/v2/{ns}/{name}/blobs/uploads/{upload_id}")
def upload_status(ns: str, name: str, upload_id: str, request: Request) -> Response:
    repo = _repo(ns, name)
    caller(request, "publish", repo)
    _session(request, repo, upload_id)
    _head, size = urlsign.verify_upload_state(
        _key(request), upload_id, request.query_params.get("_state")
    )
    return Response(
        status_code=204,
        headers={
            "Location": str(request.url.path) + "?" + request.url.query,
            "Range": f"0-{max(size - 1, 0)}",
            "Docker-Upload-UUID": upload_id,
        },
    )


@router.delete("/v2/{ns}/{name}/blobs/uploads/{upload_id}")
def cancel_upload(ns: str, name: str, upload_id: str, request: Request) -> Response:
    repo = _repo(ns, name)
    caller(request, "publish", repo)
    _session(request, repo, upload_id)
    with request.app.state.db.session() as s:
        row = s.get(Upload, upload_id)
        if row is not None:
            s.delete(row)
    return Response(status_code=204)


# --------------------------------------------------------------------------- push: manifests
@router.put("/v2/{ns}/{name}/manifests/{reference}")
async def put_manifest(ns: str, name: str, reference: str, request: Request) -> Response:
    """Turn a pushed manifest into a revision in the review queue (201; pull works once approved)."""
    repo = _repo(ns, name)
    who = await run_in_threadpool(caller, request, "publish", repo)
    hub: Hub = request.app.state.hub
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > oci.MAX_MANIFEST_BYTES:
            raise TooLarge(f"manifest is larger than {oci.MAX_MANIFEST_BYTES} bytes")
    data = bytes(body)
    pm = oci.parse_pushed_manifest(data, request.headers.get("content-type"))
    if pm.has_subject:
        raise oci.ManifestUnsupported(
            "pushing referrers is not supported: the hub attaches its own signature, scan "
            "report and approval record to approved revisions"
        )
    tag: str | None = None
    if reference.startswith("sha256:"):
        _digest_hex(reference)
        if reference != pm.digest:
            raise DigestMismatch(
                f"manifest bytes hash to {pm.digest}, not {reference}", declared=reference
            )
    else:
        tag = validate_tag(reference)
    cfg_hex = pm.config.digest.removeprefix("sha256:")
    if not await run_in_threadpool(hub.blobs.exists, cfg_hex):
        raise BlobNotFound(
            f"config blob {pm.config.digest} has not been uploaded", digest=pm.config.digest
        )
    files = [NewFile(f.path, f.sha256, f.size) for f in pm.files]
    provenance = {
        "kind": "oci",
        "uploader": who.name,
        "source": f"{base_url(request)}/v2/{repo}/manifests/{reference}",
        "repo": repo,
        "revision": pm.digest,
        "name": f"{repo}:{tag}" if tag else f"{repo}@{pm.digest}",
        "media_type": pm.media_type,
    }
    if pm.artifact_type:
        provenance["artifact_type"] = pm.artifact_type
    rev = await run_in_threadpool(hub.create_revision, repo, files, provenance, who.name, tag)
    manifest_hex = await run_in_threadpool(hub.put_bytes, data)
    await run_in_threadpool(
        hub.attach, repo, rev.commit, "oci-manifest", manifest_hex, pm.media_type
    )
    await run_in_threadpool(
        hub.attach, repo, rev.commit, "oci-config", cfg_hex, pm.config.media_type
    )
    return JSONResponse(
        {"repo": repo, "commit": rev.commit, "state": rev.state, "digest": pm.digest},
        status_code=201,
        headers={
            "Location": f"/v2/{repo}/manifests/{pm.digest}",
            "Docker-Content-Digest": pm.digest,
            "X-Modelward-Revision": rev.commit,
            "X-Modelward-State": rev.state,
            **API_VERSION,
        },
    )
