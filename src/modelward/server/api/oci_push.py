"""OCI push routes: blob uploads (monolithic, chunked, mounts) and manifests into the review queue.

The state of a chunked upload (its chunks, stored as blobs and linked by small records) travels
HMAC-signed in the upload's ``Location``, so any replica can continue it. ``PUT manifests/<tag>``
turns the manifest's layers into a revision (provenance ``oci``) that is scanned and put in review.
"""

from __future__ import annotations

import json
import urllib.parse
from datetime import timedelta
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import delete
from starlette.concurrency import run_in_threadpool

from modelward.errors import (
    BadRequest,
    BlobNotFound,
    DigestMismatch,
    HubError,
    NotFound,
    TooLarge,
)
from modelward.hub import oci_parse, urlsign
from modelward.hub.names import validate_repo, validate_tag
from modelward.hub.service import Hub, NewFile
from modelward.server.api.oci_auth import (
    API_VERSION,
    base_url,
    caller,
    digest_hex,
    repo_name,
    url_key,
)
from modelward.server.upload import receive_into
from modelward.store.blobs import BlobWriter, new_upload_id
from modelward.store.db import Upload, utcnow

router = APIRouter(tags=["oci"])

_COPY_BUFFER: Final = 8 << 20
UPLOAD_TTL: Final = timedelta(days=1)


class BlobUploadUnknown(NotFound):
    code = "blob_upload_unknown"
    oci_code = "BLOB_UPLOAD_UNKNOWN"


class RangeInvalid(HubError):
    status = 416
    code = "range_invalid"
    oci_code = "BLOB_UPLOAD_INVALID"


# --------------------------------------------------------------------------- push: blob uploads
def _upload_url(
    request: Request, repo: str, upload_id: str, state: str, digest: str | None = None
) -> str:
    """The absolute URL of an upload session (Ollama parses it without resolving a relative one)."""
    query = {"_state": state} | ({"digest": digest} if digest else {})
    return (
        f"{base_url(request)}/v2/{repo}/blobs/uploads/{upload_id}?{urllib.parse.urlencode(query)}"
    )


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
    declared = request.headers.get("content-length") or ""
    hint = int(declared) if declared.isdigit() else None
    writer = await run_in_threadpool(hub.blobs.writer, limit, None if prefix else hint)
    with writer:
        for chunk_digest in prefix or []:
            await run_in_threadpool(_copy_blob, hub, chunk_digest, writer)
        left = limit - writer.size
        if hint is not None and hint > left:
            raise TooLarge(f"upload is larger than the server's limit of {limit + already} bytes")
        received = await receive_into(writer, request.stream(), limit=left)
        if hint is not None and received != hint:
            raise BadRequest(
                f"upload ended after {received} of {hint} bytes; nothing was stored",
                received=received,
            )
        info = await run_in_threadpool(writer.commit, expected)
    await run_in_threadpool(hub.register_blob, info.sha256, info.size)
    return info.sha256, info.size


def _copy_blob(hub: Hub, digest: str, writer: BlobWriter) -> None:
    with hub.blobs.open(digest) as fh:
        while data := fh.read(_COPY_BUFFER):
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


def _open_session(request: Request, upload_id: str, repo: str) -> None:
    """Record a new upload session; sessions idle for a day are dropped (their chunk blobs are
    unreferenced, so the hub's gc collects them)."""
    with request.app.state.db.session() as s:
        s.execute(delete(Upload).where(Upload.created_at < utcnow() - UPLOAD_TTL))
        s.add(Upload(id=upload_id, repo=repo, size=0))


def _session(request: Request, repo: str, upload_id: str) -> None:
    with request.app.state.db.session() as s:
        row = s.get(Upload, upload_id)
        if row is None or row.repo != repo:
            raise BlobUploadUnknown(f"upload {upload_id[:64]!r} of {repo!r} is unknown or finished")


def _created(request: Request, repo: str, digest: str) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"{base_url(request)}/v2/{repo}/blobs/{digest}",
            "Docker-Content-Digest": digest,
            **API_VERSION,
        },
    )


@router.post("/v2/{ns}/{name}/blobs/uploads/")
@router.post("/v2/{ns}/{name}/blobs/uploads", include_in_schema=False)
async def start_upload(ns: str, name: str, request: Request) -> Response:
    """Start an upload; ``?digest=`` with a body is a monolithic upload, ``?mount=`` a mount."""
    repo = repo_name(ns, name)
    await run_in_threadpool(caller, request, "publish", repo)
    hub: Hub = request.app.state.hub
    q = request.query_params
    mount, source = q.get("mount"), q.get("from")
    if mount and source:
        hex_digest = digest_hex(mount)
        src = validate_repo(source)
        if await run_in_threadpool(hub.has_blob_in_repo, src, hex_digest):
            return _created(request, repo, mount)
    digest = q.get("digest")
    has_body = int(
        request.headers.get("content-length") or 0
    ) > 0 or "chunked" in request.headers.get("transfer-encoding", "")
    if digest and has_body:
        hex_digest = digest_hex(digest)
        await _store_body(request, hub, hex_digest)
        return _created(request, repo, digest)
    if digest:
        digest_hex(digest)
    upload_id = new_upload_id()
    await run_in_threadpool(_open_session, request, upload_id, repo)
    state = urlsign.sign_upload_state(url_key(request), upload_id, "", 0)
    return Response(
        status_code=202,
        headers={
            "Location": _upload_url(request, repo, upload_id, state, digest),
            "Range": "0-0",
            "Docker-Upload-UUID": upload_id,
            **API_VERSION,
        },
    )


def _chunk_length(request: Request, size: int) -> int | None:
    """The body length a PATCH's ``Content-Range: <start>-<end>`` announces (None: no header).

    416 when the range does not continue the upload at ``size``, is malformed, or disagrees with
    ``Content-Length`` (the distribution spec: the chunk is exactly ``start`` to ``end``).
    """
    crange = request.headers.get("content-range")
    if not crange:
        return None
    start, _, end = crange.removeprefix("bytes ").partition("-")
    start, end = start.strip(), end.split("/", 1)[0].strip()
    if not start.isdigit() or int(start) != size:
        raise RangeInvalid(
            f"chunk starts at {start[:20]!r} but the upload has {size} bytes",
            headers_range=f"0-{max(size - 1, 0)}",
        )
    if not end.isdigit() or len(end) > 20 or int(end) < int(start):
        raise RangeInvalid(
            f"Content-Range {crange[:60]!r} is not '<start>-<end>' with end >= start",
            headers_range=f"0-{max(size - 1, 0)}",
        )
    want = int(end) - int(start) + 1
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) != want:
        raise RangeInvalid(
            f"Content-Range announces {want} bytes but Content-Length is {declared.strip()}",
            headers_range=f"0-{max(size - 1, 0)}",
        )
    return want


@router.patch("/v2/{ns}/{name}/blobs/uploads/{upload_id}")
async def patch_upload(ns: str, name: str, upload_id: str, request: Request) -> Response:
    """Append a chunk (``Content-Range: <start>-<end>`` must continue where the upload stands)."""
    repo = repo_name(ns, name)
    await run_in_threadpool(caller, request, "publish", repo)
    hub: Hub = request.app.state.hub
    _session(request, repo, upload_id)
    key = url_key(request)
    head, size = urlsign.verify_upload_state(key, upload_id, request.query_params.get("_state"))
    want = _chunk_length(request, size)
    chunk, n = await _store_body(request, hub, None, already=size)
    if want is not None and n != want:  # the chunk blob stays unlinked: gc collects it
        raise RangeInvalid(
            f"Content-Range announces {want} bytes but the body has {n}; nothing was appended",
            headers_range=f"0-{max(size - 1, 0)}",
        )
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
            "Location": _upload_url(
                request, repo, upload_id, state, request.query_params.get("digest")
            ),
            "Range": f"0-{max(total - 1, 0)}",
            "Docker-Upload-UUID": upload_id,
            **API_VERSION,
        },
    )


@router.put("/v2/{ns}/{name}/blobs/uploads/{upload_id}")
async def finish_upload(ns: str, name: str, upload_id: str, request: Request) -> Response:
    """Close an upload with ``?digest=``: the bytes must hash to it, or nothing is stored."""
    repo = repo_name(ns, name)
    await run_in_threadpool(caller, request, "publish", repo)
    hub: Hub = request.app.state.hub
    _session(request, repo, upload_id)
    head, _size = urlsign.verify_upload_state(
        url_key(request), upload_id, request.query_params.get("_state")
    )
    digest = request.query_params.get("digest")
    if not digest:
        raise BadRequest("closing an upload needs ?digest=sha256:<hex>")
    hex_digest = digest_hex(digest)
    chunks = await run_in_threadpool(_chain, hub, head)
    await _store_body(request, hub, hex_digest, chunks)
    with request.app.state.db.session() as s:
        row = s.get(Upload, upload_id)
        if row is not None:
            s.delete(row)
    return _created(request, repo, digest)


@router.get("/v2/{ns}/{name}/blobs/uploads/{upload_id}")
def upload_status(ns: str, name: str, upload_id: str, request: Request) -> Response:
    repo = repo_name(ns, name)
    caller(request, "publish", repo)
    _session(request, repo, upload_id)
    _head, size = urlsign.verify_upload_state(
        url_key(request), upload_id, request.query_params.get("_state")
    )
    return Response(
        status_code=204,
        headers={
            "Location": f"{base_url(request)}{request.url.path}?{request.url.query}",
            "Range": f"0-{max(size - 1, 0)}",
            "Docker-Upload-UUID": upload_id,
        },
    )


@router.delete("/v2/{ns}/{name}/blobs/uploads/{upload_id}")
def cancel_upload(ns: str, name: str, upload_id: str, request: Request) -> Response:
    repo = repo_name(ns, name)
    caller(request, "publish", repo)
    _session(request, repo, upload_id)
    with request.app.state.db.session() as s:
        row = s.get(Upload, upload_id)
        if row is not None:
            s.delete(row)
    return Response(status_code=204)


# --------------------------------------------------------------------------- push: manifests
def _is_json_config(hub: Hub, hex_digest: str, declared_size: int) -> bool:
    size = hub.blobs.size(hex_digest)
    if size != declared_size or size > oci_parse.MAX_MANIFEST_BYTES:
        return False
    hub.blobs.ensure_intact(hex_digest)
    with hub.blobs.open(hex_digest) as fh:
        data = fh.read(oci_parse.MAX_MANIFEST_BYTES + 1)
    try:
        json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False
    return True


@router.put("/v2/{ns}/{name}/manifests/{reference}")
async def put_manifest(ns: str, name: str, reference: str, request: Request) -> Response:
    """Turn a pushed manifest into a revision in the review queue (201; pull works once approved)."""
    repo = repo_name(ns, name)
    who = await run_in_threadpool(caller, request, "publish", repo)
    hub: Hub = request.app.state.hub
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > oci_parse.MAX_MANIFEST_BYTES:
            raise TooLarge(f"manifest is larger than {oci_parse.MAX_MANIFEST_BYTES} bytes")
    data = bytes(body)
    pm = oci_parse.parse_pushed_manifest(data, request.headers.get("content-type"))
    if pm.has_subject:
        raise oci_parse.ManifestUnsupported(
            "pushing referrers is not supported: the hub attaches its own signature, scan "
            "report and approval record to approved revisions"
        )
    tag: str | None = None
    if reference.startswith("sha256:"):
        digest_hex(reference)
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
    if not await run_in_threadpool(_is_json_config, hub, cfg_hex, pm.config.size):
        # The config is served with the revision's blobs but is no file of it and is not scanned:
        # only a small JSON document of the declared size, so no other bytes (say, a blob review
        # rejected elsewhere) can ride along under an approved revision.
        raise oci_parse.ManifestInvalid(
            f"config blob {pm.config.digest} must be a JSON document of its declared size "
            f"({pm.config.size} bytes) and at most {oci_parse.MAX_MANIFEST_BYTES} bytes",
            digest=pm.config.digest,
        )
    files = [NewFile(f.path, f.sha256, f.size) for f in pm.files]
    provenance = {
        "kind": "oci",
        "uploader": who.name,
        "verified": True,  # pushed to this registry by this caller: a fact, not a claim
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
            "Location": f"{base_url(request)}/v2/{repo}/manifests/{pm.digest}",
            "Docker-Content-Digest": pm.digest,
            "X-Modelward-Revision": rev.commit,
            "X-Modelward-State": rev.state,
            **API_VERSION,
        },
    )
