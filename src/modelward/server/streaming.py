"""Serving blob bytes: full bodies, HTTP ranges and HEAD, from any blob store, verified first.

Every protocol (Hugging Face ``/resolve``, OCI ``/v2/.../blobs``, signed Ollama URLs) goes through
:func:`blob_response`, so the integrity check and the range handling exist once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping

from fastapi import Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from modelward.errors import HubError
from modelward.store.blobs import BlobStore

CHUNK = 1 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)\Z")


class RangeNotSatisfiable(HubError):
    status = 416
    code = "range_not_satisfiable"
    oci_code = "UNSUPPORTED"


class _BlobFileResponse(FileResponse):
    chunk_size = CHUNK


def blob_response(
    request: Request,
    blobs: BlobStore,
    digest: str,
    headers: Mapping[str, str] | None = None,
    media_type: str = "application/octet-stream",
) -> Response:
    """The blob's bytes (or the requested range) with ``headers``; refuses changed bytes."""
    blobs.ensure_intact(digest)
    h = {"Accept-Ranges": "bytes", **(headers or {})}
    path = blobs.path(digest)
    if path is not None:
        return _BlobFileResponse(path, headers=h, media_type=media_type)
    size = blobs.size(digest)
    start, end = 0, size - 1
    status = 200
    rng = request.headers.get("range")
    if rng:
        parsed = parse_range(rng, size)
        if parsed is not None:
            start, end = parsed
            status = 206
            h["Content-Range"] = f"bytes {start}-{end}/{size}"
    h["Content-Length"] = str(max(0, end - start + 1))
    if request.method == "HEAD":
        return Response(status_code=status, headers=h, media_type=media_type)
    return StreamingResponse(
        _iter(blobs, digest, start, end), status_code=status, headers=h, media_type=media_type
    )


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` range as inclusive offsets; None for forms served as a full body."""
    m = _RANGE.match(header.strip())
    if m is None:
        return None
    a, b = m.groups()
    if not a and not b:
        return None
    if not a:
        start, end = max(0, size - int(b)), size - 1
    else:
        start = int(a)
        end = min(int(b), size - 1) if b else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiable(
            f"range {header!r} is outside the {size}-byte blob", headers_range=f"bytes */{size}"
        )
    return start, end


async def _iter(blobs: BlobStore, digest: str, start: int, end: int) -> AsyncIterator[bytes]:
    fh = await run_in_threadpool(blobs.open, digest)
    try:
        await run_in_threadpool(fh.seek, start)
        left = end - start + 1
        while left > 0:
            chunk = await run_in_threadpool(fh.read, min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        fh.close()
