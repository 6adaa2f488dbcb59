"""``server.upload.receive_into``: request pieces gathered into batches, stored by a thread.

A fake writer checks what the real ones rely on: the bytes arrive whole and in order, in large
batches, one batch at a time, and nothing is still writing once ``receive_into`` returns or raises.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from starlette.requests import ClientDisconnect

from modelward.errors import BadRequest, TooLarge
from modelward.server.upload import receive_into
from tests.server.conftest import auth


class SlowWriter:
    def __init__(self, fail_after: int | None = None, delay: float = 0.002) -> None:
        self.size = 0
        self.data = bytearray()
        self.active = 0
        self.overlaps = 0
        self.fail_after = fail_after
        self.delay = delay
        self.lock = threading.Lock()
        self.writes: list[int] = []

    def writev(self, pieces: list[bytes]) -> None:
        with self.lock:
            self.active += 1
            self.overlaps += self.active > 1
        try:
            time.sleep(self.delay)  # the loop goes on gathering the next batch meanwhile
            data = b"".join(pieces)
            self.data += data
            self.size += len(data)
            self.writes.append(len(data))
            if self.fail_after is not None and self.size > self.fail_after:
                raise TooLarge("writer says too large")
        finally:
            with self.lock:
                self.active -= 1


async def pieces(data: bytes, sizes: Iterable[int], fail: bool = False) -> AsyncIterator[bytes]:
    i = 0
    for n in sizes:
        if i >= len(data):
            break
        yield data[i : i + n]
        i += n
        await asyncio.sleep(0)
    if i < len(data):
        yield data[i:]
    if fail:
        raise ClientDisconnect()


def random_sizes(seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.choice([1, 7, 999, 1000, 1001, 4096, 65536, 300_000]) for _ in range(10_000)]


@pytest.mark.parametrize("seed", range(4))
def test_bytes_arrive_whole_and_in_order(seed: int) -> None:
    data = os.urandom(random.Random(seed).randrange(0, 3_000_000))
    w = SlowWriter(delay=0.0005)
    n = asyncio.run(receive_into(w, pieces(data, random_sizes(seed)), buffer_size=100_000))
    assert n == len(data) == w.size
    assert hashlib.sha256(w.data).digest() == hashlib.sha256(data).digest()
    assert w.overlaps == 0
    # batches of at least buffer_size bytes (or 1024 pieces), not one write per piece
    assert all(k >= 100_000 or k >= 1024 for k in w.writes[:-1])


def test_tiny_pieces_go_out_in_bounded_batches() -> None:
    w = SlowWriter(delay=0)
    data = os.urandom(5000)
    assert asyncio.run(receive_into(w, pieces(data, [1] * 5000))) == 5000
    assert w.writes == [1024] * 4 + [904] and bytes(w.data) == data


def test_the_limit_stops_the_upload_early() -> None:
    data = os.urandom(1_000_000)
    w = SlowWriter(delay=0.05)
    with pytest.raises(TooLarge):
        asyncio.run(
            receive_into(w, pieces(data, [10_000] * 200), limit=500_000, buffer_size=65_536)
        )
    assert w.active == 0  # no write still running
    assert w.size <= 500_000


def test_a_failing_write_surfaces_and_stops() -> None:
    data = os.urandom(1_000_000)
    w = SlowWriter(fail_after=200_000)
    with pytest.raises(TooLarge, match="writer says"):
        asyncio.run(receive_into(w, pieces(data, [10_000] * 200), buffer_size=65_536))
    assert w.active == 0
    assert w.size < 500_000


def test_a_client_that_goes_away_is_a_bad_request() -> None:
    data = os.urandom(700_000)
    w = SlowWriter(delay=0.05)
    with pytest.raises(BadRequest, match="after 700000 bytes"):
        asyncio.run(receive_into(w, pieces(data, [50_000] * 20, fail=True), buffer_size=65_536))
    assert w.active == 0


def test_a_cancelled_upload_waits_for_its_write() -> None:
    w = SlowWriter(delay=0.2)

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 65_536
            await asyncio.sleep(0)

    async def main() -> None:
        task = asyncio.create_task(receive_into(w, endless(), buffer_size=65_536))
        while not w.active:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert w.active == 0

    asyncio.run(main())


def test_chunked_put_without_a_length(client: Any, hub: Any) -> None:
    data = os.urandom(9 * (1 << 20) + 123)
    digest = hashlib.sha256(data).hexdigest()

    def body() -> Iterable[bytes]:
        for i in range(0, len(data), 100_000):
            yield data[i : i + 100_000]

    r = client.put(f"/api/v1/hub/blobs/{digest}", content=body(), headers=auth())
    assert r.status_code == 201, r.text
    assert r.json() == {"sha256": digest, "size": len(data), "created": True}
    with hub.blobs.open(digest) as fh:
        assert fh.read() == data
    assert list(hub.blobs.tmp_dir.iterdir()) == []


def test_the_loop_runs_ahead_of_a_slow_writer_by_a_bounded_number_of_batches() -> None:
    """While the writer is busy, the loop gathers and hands over up to QUEUED more batches (so
    the network keeps flowing), then waits: memory per upload stays bounded."""
    from modelward.server.upload import QUEUED

    batch = 65_536
    w = SlowWriter(delay=0.05)
    yielded = 0
    seen_at_first_write: list[int] = []
    real_writev = w.writev

    def writev(pieces: list[bytes]) -> None:
        real_writev(pieces)
        if not seen_at_first_write:
            seen_at_first_write.append(yielded)

    w.writev = writev  # type: ignore[method-assign]

    async def body() -> AsyncIterator[bytes]:
        nonlocal yielded
        for _ in range(40):
            yielded += batch
            yield b"y" * batch
            await asyncio.sleep(0.001)

    assert asyncio.run(receive_into(w, body(), buffer_size=batch)) == 40 * batch
    assert w.overlaps == 0 and w.size == 40 * batch
    ahead = seen_at_first_write[0] // batch
    assert 2 <= ahead <= QUEUED + 1, ahead


def test_a_cancelled_upload_leaves_no_write_running_on_a_closed_file(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """Cancelled while its last batch is being written (a slow disk), the upload returns only once
    that write is done: the writer then closes its file and a later upload, which may get the same
    file descriptor, is not written into by the old one (a blob stored under a digest its bytes do
    not match)."""
    from modelward.store import blobs

    store = blobs.FsBlobStore(tmp_path, fsync="revision")
    real = os.pwritev

    def slow(fd: int, views: Any, offset: int) -> int:
        time.sleep(0.3)
        return real(fd, views, offset)

    async def body() -> AsyncIterator[bytes]:
        yield b"A" * (1 << 20)

    async def main() -> None:
        monkeypatch.setattr(blobs.os, "pwritev", slow)
        with store.writer() as w:
            task = asyncio.ensure_future(receive_into(w, body()))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        monkeypatch.setattr(blobs.os, "pwritev", real)
        with store.writer() as later:
            later.write(b"B" * 100)
            await asyncio.sleep(0.5)  # an old write still running would land meanwhile
            info = later.commit(hashlib.sha256(b"B" * 100).hexdigest())
        with store.open(info.sha256) as fh:
            assert fh.read() == b"B" * 100

    asyncio.run(main())
