"""S3-only behaviour: multipart uploads, conditional writes and their fallback, verification cost,
version pinning, unfinished-upload clean-up, settings, and a hub serving blobs from a bucket."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request

from modelward.errors import Corrupt
from modelward.store.s3 import S3BlobStore
from tests.store.conftest import S3_KEYS
from tests.store.test_blobs import put, tamper

MIB = 1 << 20


@pytest.fixture
def store(s3_bucket: tuple[Any, str], tmp_path: Path) -> S3BlobStore:
    client, bucket = s3_bucket
    return S3BlobStore(client, bucket, prefix="p", tmp_dir=tmp_path / "tmp")


def _count(client: Any, operation: str) -> list[int]:
    calls = [0]

    def hook(**_: Any) -> None:
        calls[0] += 1

    client.meta.events.register(f"before-call.s3.{operation}", hook)
    return calls


def test_keys_layout_and_metadata(store: S3BlobStore) -> None:
    d = put(store, b"layout").sha256
    head = store.client.head_object(Bucket=store.bucket, Key=f"p/sha256/{d[:2]}/{d}")
    assert head["Metadata"] == {"sha256": d, "size": "6"}
    assert store.path(d) is None


def test_multipart_upload(store: S3BlobStore) -> None:
    store.part_size = 5 * MIB  # S3's smallest part
    data = os.urandom(11 * MIB + 7)
    info = put(store, data)
    assert info.created and info.size == len(data)
    with store.open(info.sha256) as fh:
        fh.seek(10 * MIB)
        assert fh.read() == data[10 * MIB :]
    assert store.verify(info.sha256)
    assert put(store, data).created is False
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_without_conditional_writes_head_then_put(store: S3BlobStore) -> None:
    store._conditional = False  # as on an endpoint without If-None-Match support
    calls = _count(store.client, "PutObject")
    d = put(store, b"plain put").sha256
    assert put(store, b"plain put").created is False
    assert calls[0] == 1
    assert store.verify(d)


def test_conditional_write_keeps_the_first_copy(store: S3BlobStore) -> None:
    data = b"first writer wins"
    d = hashlib.sha256(data).hexdigest()
    store.client.put_object(
        Bucket=store.bucket, Key=store._key(d), Body=data, Metadata={"sha256": d, "size": "17"}
    )
    # The HEAD said "absent" just before another replica wrote: the conditional PUT loses cleanly.
    store._head = lambda digest: None  # type: ignore[method-assign]
    assert put(store, data).created is False
    assert store._conditional is not False


def test_full_rehash_once_per_process(store: S3BlobStore, s3_endpoint: str) -> None:
    d = put(store, os.urandom(100_000)).sha256
    gets = _count(store.client, "GetObject")
    store.ensure_intact(d)
    store.ensure_intact(d)
    assert gets[0] == 0  # hashed while uploading
    from tests.store.conftest import s3_client

    other = S3BlobStore(s3_client(s3_endpoint), store.bucket, "p", store.tmp_dir)  # a new process
    gets = _count(other.client, "GetObject")
    for _ in range(3):
        other.ensure_intact(d)
    assert gets[0] == 1


def test_reads_are_pinned_to_the_verified_version(store: S3BlobStore) -> None:
    d = put(store, b"verified bytes").sha256
    store.ensure_intact(d)
    fh = store.open(d)
    tamper(store, d, b"swapped bytes!")
    with pytest.raises(Corrupt):
        fh.read()
    fh.close()


def test_metadata_mismatch_is_corrupt(store: S3BlobStore) -> None:
    d = put(store, b"abc").sha256
    store.client.put_object(
        Bucket=store.bucket, Key=store._key(d), Body=b"abcd", Metadata={"sha256": d, "size": "3"}
    )
    with pytest.raises(Corrupt):
        store.ensure_intact(d)


def test_purge_aborts_unfinished_multipart_uploads(store: S3BlobStore) -> None:
    key = store._key("cd" * 32)
    store.client.create_multipart_upload(Bucket=store.bucket, Key=key)
    # (moto reports every upload as initiated in 2010, so the age cut-off is not tested here.)
    assert store.purge_temp(timedelta(0)) == 1
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_from_settings_checks_the_bucket(s3_endpoint: str, tmp_path: Path) -> None:
    from modelward.server.settings import ServerSettings, SettingsError

    settings = ServerSettings(
        data_dir=tmp_path,
        blob_backend="s3",
        s3_endpoint_url=s3_endpoint,
        s3_bucket="no-such-bucket-here",
        s3_region="us-east-1",
        s3_access_key_id=S3_KEYS["aws_access_key_id"],
        s3_secret_access_key=S3_KEYS["aws_secret_access_key"],
    )
    with pytest.raises(SettingsError, match="no-such-bucket-here"):
        S3BlobStore.from_settings(settings)


def test_hub_on_s3_serves_downloads_and_ranges(
    s3_endpoint: str, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from modelward.server.app import create_app
    from modelward.server.settings import ServerSettings
    from modelward.server.streaming import blob_response
    from tests.server.conftest import make_model_dir, publish

    _, bucket = s3_bucket
    settings = ServerSettings(
        data_dir=tmp_path / "data",
        admin_token="mw_test-admin-token-0123456789abcdefghijklmnopqrs",
        blob_backend="s3",
        s3_endpoint_url=s3_endpoint,
        s3_bucket=bucket,
        s3_prefix="hub",
        s3_region="us-east-1",
        s3_access_key_id=S3_KEYS["aws_access_key_id"],
        s3_secret_access_key=S3_KEYS["aws_secret_access_key"],
    )
    app = create_app(settings)
    assert isinstance(app.state.blobs, S3BlobStore)

    @app.api_route("/test-blob/{digest}", methods=["GET", "HEAD"])
    def serve(request: Request, digest: str) -> Any:
        return blob_response(request, request.app.state.blobs, digest)

    try:
        weights = os.urandom(64 * 1024)
        rev = publish(app.state.hub, "acme/s3", make_model_dir(tmp_path, weights=weights))
        entry = next(f for f in rev.files if f.path == "model.safetensors")
        data = (tmp_path / "model" / "model.safetensors").read_bytes()
        with TestClient(app) as client:
            r = client.get(f"/test-blob/{entry.sha256}")
            assert r.status_code == 200 and r.content == data
            assert r.headers["content-length"] == str(len(data))
            r = client.get(f"/test-blob/{entry.sha256}", headers={"Range": "bytes=100-1099"})
            assert r.status_code == 206 and r.content == data[100:1100]
            assert r.headers["content-range"] == f"bytes 100-1099/{len(data)}"
            r = client.get(f"/test-blob/{entry.sha256}", headers={"Range": "bytes=-10"})
            assert r.content == data[-10:]
            r = client.head(f"/test-blob/{entry.sha256}")
            assert r.status_code == 200 and r.headers["content-length"] == str(len(data))
            tamper(app.state.blobs, entry.sha256, b"\0" * len(data))
            r = client.get(f"/test-blob/{entry.sha256}")
            assert r.status_code == 500 and r.json()["error"]["code"] == "blob_corrupt"
    finally:
        app.state.db.dispose()


_CHILD = """
import sys, time, boto3
from modelward.store.s3 import S3BlobStore

endpoint, bucket, tmp = sys.argv[1:4]
client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")

def parked(**_):
    print("part sent", flush=True)
    time.sleep(60)  # the parent kills us here, half-way through the multipart upload

client.meta.events.register("after-call.s3.UploadPart", parked)
store = S3BlobStore(client, bucket, "p", tmp, part_size=5 * 2**20)
with store.writer() as w:
    w.write(bytes(range(256)) * (12 * 2**20 // 256))
    w.commit()
"""


def test_killed_upload_leaves_nothing_visible(store: S3BlobStore, s3_endpoint: str) -> None:
    import signal
    import subprocess
    import sys

    data = bytes(range(256)) * (12 * MIB // 256)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, s3_endpoint, store.bucket, str(store.tmp_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "part sent\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    digest = hashlib.sha256(data).hexdigest()
    assert not store.exists(digest) and list(store.iter_digests()) == []
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == [store._key(digest)]
    assert list(store.tmp_dir.iterdir())  # the staged copy of the killed process
    assert store.purge_temp(timedelta(0)) == 2
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    assert list(store.tmp_dir.iterdir()) == []
    store.part_size = 5 * MIB
    assert put(store, data).created and store.verify(digest)
