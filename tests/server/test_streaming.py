"""Blob downloads through ``streaming.blob_response``: bodies and ranges across mapping windows."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelward.server import streaming
from tests.server.conftest import auth, make_model_dir, publish

REPO = "acme/big"


@pytest.fixture(params=["sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """These tests are about bytes on the wire, not the database: SQLite only."""
    return f"sqlite:///{tmp_path / 'hub.db'}"


def test_bodies_and_ranges_across_windows(live_server: Any, tmp_path: Path) -> None:
    weights = os.urandom(2 * streaming.WINDOW + 12345)  # three windows, the last one partial
    folder = make_model_dir(tmp_path, weights=weights)
    publish(live_server.hub, REPO, folder)
    data = (folder / "model.safetensors").read_bytes()
    url = f"{live_server.url}/{REPO}/resolve/main/model.safetensors"
    with httpx.Client(headers=auth(), timeout=60) as c:
        full = c.get(url)
        assert full.status_code == 200
        assert hashlib.sha256(full.content).digest() == hashlib.sha256(data).digest()
        assert full.headers["content-length"] == str(len(data))
        w = streaming.WINDOW
        for a, b in [
            (0, 0),
            (w - 3, w + 3),
            (w, 2 * w - 1),
            (w - 1, len(data) - 1),
            (5, w * 2 + 7),
        ]:
            part = c.get(url, headers={"Range": f"bytes={a}-{b}"})
            assert part.status_code == 206, (a, b)
            assert part.content == data[a : b + 1], (a, b)
            assert part.headers["content-range"] == f"bytes {a}-{b}/{len(data)}"
        tail = c.get(url, headers={"Range": "bytes=-100"})
        assert tail.status_code == 206 and tail.content == data[-100:]
        beyond = c.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(data)}"
        head = c.head(url)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
        # A client that hangs up mid-body leaves the server serving the next request normally.
        with c.stream("GET", url) as r:
            next(r.iter_raw(65536))
        again = c.get(url, headers={"Range": "bytes=10-19"})
        assert again.status_code == 206 and again.content == data[10:20]


def test_a_changed_blob_is_refused(live_server: Any, tmp_path: Path) -> None:
    folder = make_model_dir(tmp_path, weights=os.urandom(64 * 1024))
    rev = publish(live_server.hub, REPO, folder)
    sha = next(f.sha256 for f in rev.files if f.path == "model.safetensors")
    url = f"{live_server.url}/{REPO}/resolve/main/model.safetensors"
    assert httpx.get(url, headers=auth()).status_code == 200
    blob = Path(live_server.hub.blobs.path(sha))
    blob.chmod(0o644)
    with blob.open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00" if fh.read(1) != b"\x00" else b"\x01")
    assert httpx.get(url, headers=auth()).status_code == 500
