"""Stream a request body into a blob writer: the event loop gathers, a writer thread stores.

Ingest speed (issue 5: hash + store >= 70% of ``openssl dgst -sha256``). The event loop only copies
the body's pieces (tens of KiB each) into one of two large preallocated buffers; a full buffer goes
to a writer thread that hashes and writes it (hashlib and ``os.write`` release the GIL) while the
loop fills the other one. At most two buffers per upload exist, and the loop waits for the thread
before it reuses a buffer, so a slow disk slows the client down (TCP back-pressure) instead of
filling memory.
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
_MIN_BUFFER: Final = 64 << 10
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
    size_hint: int | None = None,
    buffer_size: int = BUFFER,
) -> int:
    """Feed ``body`` to ``writer`` and return the number of bytes received.

    ``limit`` bounds the body (:class:`TooLarge` as soon as it is passed); ``size_hint`` (the
    declared length) shrinks the buffers of small uploads. A client that goes away is a
    :class:`BadRequest`. Whatever happens, no write is still running when this returns or raises,
    so the caller may discard the writer at once.
    """
    if size_hint is not None and size_hint >= 0:
        buffer_size = max(min(buffer_size, size_hint), _MIN_BUFFER)
    buffers = [bytearray(buffer_size)]
    current = 0
    fill = 0
    received = 0
    inflight: concurrent.futures.Future[None] | None = None
    pool = _executor()
    try:
        async for piece in body:
            n = len(piece)
            received += n
            if limit is not None and received > limit:
                raise TooLarge(
                    f"upload is larger than the server's limit of {limit} bytes", limit=limit
                )
            view = memoryview(piece)
            offset = 0
            while offset < n:
                k = min(n - offset, buffer_size - fill)
                buffers[current][fill : fill + k] = view[offset : offset + k]
                fill += k
                offset += k
                if fill < buffer_size:
                    continue
                if inflight is not None:  # the other buffer: its write must be over
                    await asyncio.wrap_future(inflight)
                inflight = pool.submit(writer.write, memoryview(buffers[current]))
                current ^= 1
                if len(buffers) == 1:
                    buffers.append(bytearray(buffer_size))
                fill = 0
        if inflight is not None:
            await asyncio.wrap_future(inflight)
        if fill:
            inflight = pool.submit(writer.write, memoryview(buffers[current])[:fill])
            await asyncio.wrap_future(inflight)
    except ClientDisconnect:
        raise BadRequest(
            f"the client went away after {received} bytes; nothing was stored", received=received
        ) from None
    finally:
        if inflight is not None and not inflight.done():
            # Leaving early (an error, a cancellation): the writer thread must be done with the
            # buffer and the temporary file before the caller discards them. One buffer's worth.
            concurrent.futures.wait([inflight])
    return received


__all__ = ["BUFFER", "receive_into"]
