"""Stream a request body into a blob writer: the event loop gathers, a writer thread stores.

Ingest speed (issue 5: hash + store >= 70% of ``openssl dgst -sha256``). The event loop only
collects the body's pieces (about 256 KiB each under uvicorn) into a batch of about 4 MiB, without
copying them; a full batch goes to a writer thread that hashes the pieces and writes them with one
``os.writev`` (hashlib and the write release the GIL) while the loop gathers the next batch. At most
two batches per upload exist: the loop waits for the thread before it hands over another, so a slow
disk slows the client down (TCP back-pressure) instead of filling memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator
from typing import Final

from starlette.requests import ClientDisconnect

from modelward.errors import BadRequest, TooLarge
from modelward.store.blobs import BlobWriter

BUFFER: Final = 4 << 20
_MAX_PIECES: Final = 1024  # a trickle of tiny pieces still goes out in bounded batches
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="blob-ingest")
        return _pool


async def receive_into(
    writer: BlobWriter,
    body: AsyncIterator[bytes],
    *,
    limit: int | None = None,
    buffer_size: int = BUFFER,
) -> int:
    """Feed ``body`` to ``writer`` and return the number of bytes received.

    ``limit`` bounds the body (:class:`TooLarge` as soon as it is passed). A client that goes away
    is a :class:`BadRequest`. Whatever happens, no write is still running when this returns or
    raises, so the caller may discard the writer at once.
    """
    batch: list[bytes] = []
    batched = 0
    received = 0
    inflight: concurrent.futures.Future[None] | None = None
    pool = _executor()
    try:
        async for piece in body:
            if not piece:
                continue
            received += len(piece)
            if limit is not None and received > limit:
                raise TooLarge(
                    f"upload is larger than the server's limit of {limit} bytes", limit=limit
                )
            batch.append(piece)
            batched += len(piece)
            if batched >= buffer_size or len(batch) >= _MAX_PIECES:
                if inflight is not None:  # back-pressure: one batch in flight at a time
                    await asyncio.wrap_future(inflight)
                inflight = pool.submit(writer.writev, batch)
                batch, batched = [], 0
        if inflight is not None:
            await asyncio.wrap_future(inflight)
        if batch:
            inflight = pool.submit(writer.writev, batch)
            await asyncio.wrap_future(inflight)
    except ClientDisconnect:
        raise BadRequest(
            f"the client went away after {received} bytes; nothing was stored", received=received
        ) from None
    finally:
        if inflight is not None and not inflight.done():
            # Leaving early (an error, a cancellation): the writer thread must be done with the
            # temporary file before the caller discards it. At most one batch's worth.
            concurrent.futures.wait([inflight])
    return received


__all__ = ["BUFFER", "receive_into"]
