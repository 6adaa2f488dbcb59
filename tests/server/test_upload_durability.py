"""Uploads acknowledged before the disk has them (``blob_fsync: revision``), made durable by the
revision that references them: every path that records a revision waits for its blobs first.

Runs on SQLite and on PostgreSQL (the ``db_url`` fixture behind ``app``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from modelward.server.settings import ServerSettings, load_settings
from modelward.store.db import Attachment, Revision
from tests.server.conftest import auth

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Recorder:
    """Wraps the store's make_durable: which digests, and how many revisions existed then."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.store = app.state.blobs
        self.real = self.store.make_durable
        self.calls: list[tuple[list[str], int, int]] = []

    def __call__(self, digests: Iterable[str]) -> None:
        wanted = list(digests)
        with self.app.state.db.session() as s:
            revisions = s.scalar(sa.select(sa.func.count()).select_from(Revision)) or 0
            attachments = s.scalar(sa.select(sa.func.count()).select_from(Attachment)) or 0
        self.calls.append((wanted, revisions, attachments))
        self.real(wanted)

    def durable_before(self, digest: str) -> tuple[int, int]:
        """(revisions, attachments) recorded when ``digest`` was first made durable."""
        for digests, revisions, attachments in self.calls:
            if digest in digests:
                return revisions, attachments
        raise AssertionError(f"sha256:{digest} was never made durable")


@pytest.fixture
def recorder(app: Any, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder(app)
    monkeypatch.setattr(rec.store, "make_durable", rec)
    return rec


def test_the_default_is_revision(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServerSettings().blob_fsync == "revision"
    assert app.state.blobs.fsync == "revision"
    monkeypatch.setenv("MODELWARD_BLOB_FSYNC", "upload")
    assert load_settings(None).blob_fsync == "upload"


def test_a_revision_makes_its_blobs_durable_before_it_is_recorded(
    client: Any, app: Any, recorder: Recorder
) -> None:
    data = os.urandom(300_000)
    r = client.put(f"/api/v1/hub/blobs/{sha(data)}", content=data, headers=auth())
    assert r.status_code == 201, r.text
    assert recorder.calls == []  # the upload was acknowledged without waiting for the disk
    r = client.post(
        "/api/v1/hub/repos/acme/durable/revisions",
        json={"files": [{"path": "w.bin", "sha256": sha(data), "size": len(data)}]},
        headers=auth(),
    )
    assert r.status_code == 201, r.text
    assert recorder.durable_before(sha(data)) == (0, 0)
    report = next(a.sha256 for a in _attachments(app) if a.kind == "scan-report")
    assert recorder.durable_before(report)[1] == 0  # before it was attached


def test_an_oci_push_makes_its_blobs_durable_before_they_are_recorded(
    client: Any, app: Any, recorder: Recorder
) -> None:
    cfg, layer = b"{}", os.urandom(70_000)
    for blob in (cfg, layer):
        r = client.post(
            f"/v2/acme/pushed/blobs/uploads/?digest=sha256:{sha(blob)}",
            content=blob,
            headers=auth(),
        )
        assert r.status_code == 201, r.text
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": f"sha256:{sha(cfg)}",
                "size": len(cfg),
            },
            "layers": [
                {
                    "mediaType": "application/octet-stream",
                    "digest": f"sha256:{sha(layer)}",
                    "size": len(layer),
                    "annotations": {"org.opencontainers.image.title": "w.bin"},
                }
            ],
        }
    ).encode()
    r = client.put(
        "/v2/acme/pushed/manifests/v1",
        content=manifest,
        headers={"Content-Type": OCI_MANIFEST, **auth()},
    )
    assert r.status_code == 201, r.text
    assert recorder.durable_before(sha(layer)) == (0, 0)
    revisions, _ = recorder.durable_before(sha(manifest))
    assert revisions == 1  # the revision exists; its manifest is durable before it is attached
    attachments = {a.kind: a.sha256 for a in _attachments(app)}
    assert attachments["oci-manifest"] == sha(manifest)
    assert recorder.durable_before(sha(cfg))[1] < len(attachments)


def _attachments(app: Any) -> list[Any]:
    with app.state.db.session() as s:
        rows = list(s.scalars(sa.select(Attachment)))
        s.expunge_all()
        return rows


def test_a_power_loss_before_the_revision(settings: Any, tmp_path: Path) -> None:
    """The acknowledged blob did not reach the disk: the revision is refused with what to do,
    the damaged bytes are never served, and uploading again repairs it."""
    from modelward.server.app import create_app

    data = os.urandom(200_000)
    first = create_app(settings)
    try:
        with TestClient(first) as c:
            r = c.put(f"/api/v1/hub/blobs/{sha(data)}", content=data, headers=auth())
            assert r.status_code == 201, r.text
            path = Path(first.state.blobs.path(sha(data)))
    finally:
        first.state.db.dispose()
    st = path.stat()
    path.chmod(0o644)
    path.write_bytes(b"\x00" * len(data))  # what the disk holds after the power loss
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    second = create_app(settings)  # the restart
    try:
        with TestClient(second) as c:
            files = {"files": [{"path": "w.bin", "sha256": sha(data), "size": len(data)}]}
            r = c.post("/api/v1/hub/repos/acme/crashed/revisions", json=files, headers=auth())
            assert r.status_code == 500 and r.json()["error"]["code"] == "blob_corrupt", r.text
            assert "upload it again" in r.json()["error"]["message"]
            assert c.head(f"/api/v1/hub/blobs/{sha(data)}", headers=auth()).status_code == 404
            r = c.put(f"/api/v1/hub/blobs/{sha(data)}", content=data, headers=auth())
            assert r.status_code == 201 and r.json()["created"] is True, r.text
            r = c.post("/api/v1/hub/repos/acme/crashed/revisions", json=files, headers=auth())
            assert r.status_code == 201, r.text
            assert second.state.blobs.verify(sha(data))
    finally:
        second.state.db.dispose()
