"""Blob-store fixtures: the filesystem store and the S3 store against moto's S3 server.

moto's ``ThreadedMotoServer`` is a real S3-compatible HTTP endpoint (signatures, multipart uploads,
conditional writes), so boto3 talks to it exactly as to AWS, MinIO or Ceph.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

S3_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of an S3 server on loopback, one per test process."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **S3_KEYS)


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> Iterator[tuple[Any, str]]:
    """A fresh, empty bucket (and a client for it); removed with its objects afterwards."""
    client = s3_client(s3_endpoint)
    name = "mw-" + uuid.uuid4().hex[:16]
    client.create_bucket(Bucket=name)
    try:
        yield client, name
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=obj["Key"])
        for up in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
        client.delete_bucket(Bucket=name)
        client.close()


@pytest.fixture(params=["fs", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Each blob store in turn: FsBlobStore on tmp_path, S3BlobStore on a fresh bucket."""
    if request.param == "fs":
        from modelward.store.blobs import FsBlobStore

        return FsBlobStore(tmp_path / "blobs")
    from modelward.store.s3 import S3BlobStore

    client, bucket = request.getfixturevalue("s3_bucket")
    return S3BlobStore(client, bucket, prefix="hub/", tmp_dir=tmp_path / "s3-tmp")
