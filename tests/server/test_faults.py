"""Faults during uploads: a server killed mid-upload, truncated bodies. Nothing half-visible ever.

The kill test runs the real ``modelward server`` in a child process and SIGKILLs it while a large
``PUT /api/v1/hub/blobs/{sha256}`` is streaming, then checks the blob store and the database,
restarts the server on the same data and uploads again.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from modelward.store.blobs import FsBlobStore
from modelward.store.db import Blob, Database, Revision
from tests.server.conftest import ADMIN_TOKEN, auth
from tests.server.procs import Server, servers  # noqa: F401  (servers: a fixture)

MIB = 1 << 20
TOTAL = 24 * MIB  # the "large" upload; the kill lands after SENT_BEFORE_KILL bytes
SENT_BEFORE_KILL = 6 * MIB


def _raw_put(port: int, digest: str, length: int, body: bytes) -> socket.socket:
    """Start a blob upload over a plain socket: headers claim ``length`` bytes, send ``body``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"PUT /api/v1/hub/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def _wait_for(cond: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _temp_files(blob_dir: Path) -> list[Path]:
    return sorted(p for p in (blob_dir / "tmp").iterdir() if p.is_file())


def _rows(db_url: str) -> tuple[int, int]:
    db = Database(db_url)
    try:
        with db.session() as s:
            blobs = s.scalar(sa.select(sa.func.count()).select_from(Blob)) or 0
            revisions = s.scalar(sa.select(sa.func.count()).select_from(Revision)) or 0
        return blobs, revisions
    finally:
        db.dispose()


def _truncated_upload(server: Server, blob_dir: Path, before: list[Path]) -> None:
    """The client stops sending before Content-Length bytes: a 4xx (or a closed connection)."""
    body = os.urandom(2 * MIB)
    sock = _raw_put(server.port, hashlib.sha256(body).hexdigest(), 2 * len(body), body)
    sock.shutdown(socket.SHUT_WR)  # the client stops sending: the body ends early
    try:
        reply = sock.recv(4096)
    except OSError:
        reply = b""
    finally:
        sock.close()
    if reply:  # the connection may also just be closed: both are fine, a 2xx is not
        status = int(reply.split(b" ", 2)[1])
        assert 400 <= status < 500, reply
    _wait_for(lambda: _temp_files(blob_dir) == before, "the server to discard its temp file")
    assert list(FsBlobStore(blob_dir).iter_digests()) == []


def test_server_killed_mid_upload_leaves_nothing_visible(
    db_url: str,
    tmp_path: Path,
    servers: list[Server],  # noqa: F811  (the fixture imported above)
) -> None:
    data_dir = tmp_path / "data"
    blob_dir = data_dir / "blobs"
    payload = os.urandom(TOTAL)
    digest = hashlib.sha256(payload).hexdigest()

    server = Server(data_dir, db_url, tmp_path / "server.log")
    servers.append(server)
    sock = _raw_put(server.port, digest, TOTAL, payload[:SENT_BEFORE_KILL])
    # Kill only once the server is really writing the upload to its temporary file.
    _wait_for(
        lambda: any(p.stat().st_size >= MIB for p in _temp_files(blob_dir)), "the upload to start"
    )
    server.kill()
    sock.close()

    store = FsBlobStore(blob_dir)
    assert list(store.iter_digests()) == []
    assert not store.exists(digest)
    assert _rows(db_url) == (0, 0)
    leftovers = _temp_files(blob_dir)
    assert leftovers, "SIGKILL leaves the partial temp file (gc removes it)"
    for p in leftovers:  # a day old by the time gc runs
        os.utime(p, (time.time() - 2 * 86_400,) * 2)

    server = Server(data_dir, db_url, tmp_path / "server.log")
    servers.append(server)
    _truncated_upload(server, blob_dir, leftovers)
    with httpx.Client(base_url=server.url, headers=auth(), timeout=60) as client:
        r = client.put(f"/api/v1/hub/blobs/{digest}", content=payload)
        assert r.status_code == 201, r.text
        assert r.json() == {"sha256": digest, "size": TOTAL, "created": True}
        r = client.post(
            "/api/v1/hub/repos/acme/after-crash/revisions",
            json={"files": [{"path": "weights.bin", "sha256": digest, "size": TOTAL}]},
        )
        assert r.status_code == 201, r.text
        assert store.exists(digest) and store.verify(digest)

        # gc removes what the killed upload left behind; the new blob stays.
        r = client.post("/api/v1/hub/gc", json={"apply": True})
        assert r.status_code == 200, r.text
        assert _temp_files(blob_dir) == []
        assert store.exists(digest)


def test_truncated_upload_is_a_400(client: Any, hub: Any) -> None:
    body = b"only part of the blob"
    digest = hashlib.sha256(body + b" and the rest").hexdigest()
    r = client.put(
        f"/api/v1/hub/blobs/{digest}",
        content=body,
        headers={**auth(), "Content-Length": str(len(body) + 13)},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert list(hub.blobs.iter_digests()) == []
    assert _temp_files(hub.blobs.root) == []


def test_gc_dry_run_keeps_temp_files(hub: Any) -> None:
    old = hub.blobs.tmp_dir / "upload-old"
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * 86_400,) * 2)
    hub.gc(dry_run=True)
    assert old.exists()
    hub.gc(dry_run=False)
    assert not old.exists()
