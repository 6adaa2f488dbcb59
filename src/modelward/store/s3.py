"""Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...) through boto3.

Objects are ``<prefix>sha256/<aa>/<hex>`` with the digest and size in their metadata. An upload
streams to a local temporary file while it is hashed, is checked against the declared digest, and
only then is sent to the bucket, and only if the object is absent (``If-None-Match: *`` where the
endpoint supports conditional writes, else a HEAD before the PUT: the same bytes either way, since
keys are content addresses). A killed upload leaves at most a local temp file and an unfinished
multipart upload, both invisible and removed by :meth:`S3BlobStore.purge_temp` (``hub.gc``).

Serving: :meth:`S3BlobStore.ensure_intact` checks the object's size and digest metadata on every
call and re-hashes the full object once per process per object version (ETag); reads are pinned to
that version with ``If-Match``, so bytes that changed after the check are never streamed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, TypeVar

from modelward.errors import BlobNotFound, Corrupt, DigestMismatch, HubError, TooLarge
from modelward.store.blobs import CHUNK, BlobInfo, Bytes, check_digest

if TYPE_CHECKING:
    from modelward.server.settings import ServerSettings

MIB = 1 << 20
SINGLE_PUT_MAX = 64 * MIB  # larger blobs go up as a multipart upload
MAX_PARTS = 10_000  # S3's limit
UPLOAD_THREADS = 4

T = TypeVar("T")


class StorageUnavailable(HubError):
    """The object store failed or could not be reached (not the client's fault)."""

    status: ClassVar[int] = 503
    code: ClassVar[str] = "storage_unavailable"


def _errors() -> tuple[type[Exception], type[Exception]]:
    """botocore's (ClientError, BotoCoreError), imported when first needed."""
    from botocore.exceptions import (  # type: ignore[import-untyped]
        BotoCoreError,
        ClientError,
    )

    return ClientError, BotoCoreError


def _code(exc: Exception) -> tuple[str, int]:
    resp: dict[str, Any] = getattr(exc, "response", None) or {}
    err = resp.get("Error", {})
    status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(err.get("Code", "")), int(status or 0)


class _S3Writer:
    def __init__(self, store: S3BlobStore, max_size: int | None) -> None:
        self._store = store
        self._max = max_size
        fd, self._tmp = tempfile.mkstemp(dir=store.tmp_dir, prefix="upload-")
        self._fh = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self._done = False

    def write(self, data: Bytes) -> None:
        self.size += len(data)
        if self._max is not None and self.size > self._max:
            raise TooLarge(
                f"upload is larger than the server's limit of {self._max} bytes", limit=self._max
            )
        self._hash.update(data)
        self._fh.write(data)

    def writev(self, pieces: Sequence[Bytes]) -> None:
        for p in pieces:
            self.write(p)

    def commit(self, expected_sha256: str | None = None) -> BlobInfo:
        digest = self._hash.hexdigest()
        if expected_sha256 is not None and check_digest(expected_sha256) != digest:
            raise DigestMismatch(
                f"uploaded bytes hash to sha256:{digest}, not the declared {expected_sha256}",
                declared=expected_sha256,
                actual=digest,
            )
        self._fh.close()
        try:
            created = self._store._publish(self._tmp, digest, self.size)
        finally:
            self._discard()
        self._done = True
        return BlobInfo(digest, self.size, created)

    def _discard(self) -> None:
        self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

    def __enter__(self) -> _S3Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self._discard()


class _S3Reader(io.RawIOBase):
    """A seekable reader over one object: each seek re-opens the stream with a ``Range`` GET."""

    def __init__(self, store: S3BlobStore, digest: str, size: int, etag: str | None) -> None:
        super().__init__()
        self._store = store
        self._digest = digest
        self._size = size
        self._etag = etag
        self._pos = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = max(0, base + offset)
        if pos != self._pos:
            self._close_body()
            self._pos = pos
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size:
            return 0
        if self._body is None:
            self._body = self._store._get_body(self._digest, self._pos, self._etag)
        view = memoryview(buffer).cast("B")
        data = self._store._call(self._body.read, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _close_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._close_body()
        super().close()


class S3BlobStore:
    """The :class:`~modelward.store.blobs.BlobStore` protocol over one bucket (and key prefix)."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        tmp_dir: str | os.PathLike[str] | None = None,
        part_size: int = SINGLE_PUT_MAX,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        base = (
            Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir()) / "modelward-s3"
        )
        self.tmp_dir = base
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.part_size = part_size
        self._verified: dict[str, str] = {}  # digest -> ETag whose bytes were hashed here
        self._lock = threading.Lock()
        self._conditional: bool | None = None  # does the endpoint honour If-None-Match on PUT?

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> S3BlobStore:
        """A store from ``s3_*`` settings; checks at once that the bucket is reachable."""
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        from modelward.server.settings import SettingsError

        if not settings.s3_bucket:
            raise SettingsError("blob_backend is s3 but s3_bucket is not set (MODELWARD_S3_BUCKET)")
        config = Config(
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=32,
            # Self-hosted endpoints (MinIO, Ceph) rarely have per-bucket DNS names.
            s3={"addressing_style": "path"} if settings.s3_endpoint_url else None,
        )
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=config,
        )
        try:
            client.head_bucket(Bucket=settings.s3_bucket)
        except Exception as exc:
            where = settings.s3_endpoint_url or "AWS"
            raise SettingsError(
                f"cannot use S3 bucket {settings.s3_bucket!r} at {where}: {exc}"
            ) from None
        return cls(client, settings.s3_bucket, settings.s3_prefix, settings.data_dir / "s3-tmp")

    # ------------------------------------------------------------------ helpers
    def _key(self, digest: str) -> str:
        d = check_digest(digest)
        return f"{self.prefix}sha256/{d[:2]}/{d}"

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one S3 call; transport failures become :class:`StorageUnavailable`."""
        BotoCoreError = _errors()[1]

        try:
            return fn(*args, **kwargs)
        except BotoCoreError as exc:
            raise StorageUnavailable(f"object store unavailable: {exc}") from exc

    def _head(self, digest: str) -> dict[str, Any] | None:
        ClientError = _errors()[0]

        try:
            head: dict[str, Any] = self._call(
                self.client.head_object, Bucket=self.bucket, Key=self._key(digest)
            )
        except ClientError as exc:
            code, status = _code(exc)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageUnavailable(f"object store refused HEAD: {exc}") from exc
        return head

    def _head_or_404(self, digest: str) -> dict[str, Any]:
        head = self._head(digest)
        if head is None:
            raise BlobNotFound(f"blob sha256:{digest} is not stored", digest=digest)
        return head

    def _get_body(self, digest: str, start: int, etag: str | None) -> Any:
        ClientError = _errors()[0]

        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(digest)}
        if start:
            kwargs["Range"] = f"bytes={start}-"
        if etag:
            kwargs["IfMatch"] = etag
        try:
            return self._call(self.client.get_object, **kwargs)["Body"]
        except ClientError as exc:
            code, status = _code(exc)
            if status == 404 or code == "NoSuchKey":
                raise BlobNotFound(f"blob sha256:{digest} is not stored", digest=digest) from None
            if status == 412:
                raise Corrupt(
                    f"stored blob sha256:{digest} changed after it was verified; not served",
                    digest=digest,
                ) from None
            raise StorageUnavailable(f"object store refused GET: {exc}") from exc

    def _remember(self, digest: str, etag: str) -> None:
        with self._lock:
            self._verified[digest] = etag

    # ------------------------------------------------------------------ publish
    def _publish(self, path: str, digest: str, size: int) -> bool:
        """Upload ``path`` as blob ``digest`` unless present; True when this call created it."""
        if self._head(digest) is not None:
            return False
        meta = {"sha256": digest, "size": str(size)}
        if size <= self.part_size:
            etag = self._put_single(path, digest, meta)
        else:
            etag = self._put_multipart(path, digest, size, meta)
        if etag is None:
            return False
        self._remember(digest, etag)
        return True

    def _conditional_kwargs(self) -> dict[str, str]:
        return {} if self._conditional is False else {"IfNoneMatch": "*"}

    def _lost_race(self, exc: Exception) -> bool:
        """A conditional write found the object there (or being written): the other copy wins."""
        code, status = _code(exc)
        return status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict")

    def _unsupported(self, exc: Exception) -> bool:
        code, status = _code(exc)
        if self._conditional is False:
            return False
        message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")).lower()
        refused = code in ("InvalidArgument", "InvalidRequest") and (
            "none-match" in message or "conditional" in message
        )
        if status == 501 or code == "NotImplemented" or refused:
            self._conditional = False  # fall back to HEAD-then-PUT for this process
            return True
        return False

    def _put_single(self, path: str, digest: str, meta: dict[str, str]) -> str | None:
        ClientError = _errors()[0]

        checksum = base64.b64encode(bytes.fromhex(digest)).decode()
        while True:
            try:
                with open(path, "rb") as fh:
                    resp = self._call(
                        self.client.put_object,
                        Bucket=self.bucket,
                        Key=self._key(digest),
                        Body=fh,
                        Metadata=meta,
                        ContentType="application/octet-stream",
                        ChecksumSHA256=checksum,  # the store re-checks the bytes it received
                        **self._conditional_kwargs(),
                    )
            except ClientError as exc:
                if self._lost_race(exc):
                    return None
                if self._unsupported(exc):
                    continue
                code, _ = _code(exc)
                if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
                    raise Corrupt(
                        f"object store received damaged bytes for sha256:{digest}"
                    ) from exc
                raise StorageUnavailable(f"object store refused PUT: {exc}") from exc
            self._conditional = self._conditional if self._conditional is not None else True
            return str(resp["ETag"])

    def _put_multipart(self, path: str, digest: str, size: int, meta: dict[str, str]) -> str | None:
        # Hand-written rather than boto3's upload_file: s3transfer does not pass If-None-Match to
        # CompleteMultipartUpload, which is what keeps concurrent uploads to one copy.
        ClientError = _errors()[0]

        key = self._key(digest)
        part = max(self.part_size, math.ceil(size / MAX_PARTS))
        upload = self._call(
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            Metadata=meta,
            ContentType="application/octet-stream",
        )
        upload_id = upload["UploadId"]

        def send(number: int) -> dict[str, Any]:
            with open(path, "rb") as fh:
                fh.seek((number - 1) * part)
                data = fh.read(part)
            resp = self._call(
                self.client.upload_part,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
            )
            return {"ETag": resp["ETag"], "PartNumber": number}

        try:
            with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="s3-part") as pool:
                parts = list(pool.map(send, range(1, math.ceil(size / part) + 1)))
            while True:
                try:
                    resp = self._call(
                        self.client.complete_multipart_upload,
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": parts},
                        **self._conditional_kwargs(),
                    )
                except ClientError as exc:
                    if self._lost_race(exc):
                        self._abort(key, upload_id)
                        return None
                    if self._unsupported(exc):
                        continue
                    raise StorageUnavailable(f"object store refused the upload: {exc}") from exc
                return str(resp["ETag"])
        except BaseException:
            self._abort(key, upload_id)
            raise

    def _abort(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(Exception):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    # ------------------------------------------------------------------ BlobStore
    def writer(self, max_size: int | None = None, size_hint: int | None = None) -> _S3Writer:
        return _S3Writer(self, max_size)

    def exists(self, digest: str) -> bool:
        return self._head(digest) is not None

    def size(self, digest: str) -> int:
        return int(self._head_or_404(digest)["ContentLength"])

    def open(self, digest: str) -> BinaryIO:
        """A seekable, buffered stream of the blob (pinned to the verified version if any)."""
        head = self._head_or_404(digest)
        with self._lock:
            etag = self._verified.get(digest)
        if etag is not None and etag != head.get("ETag"):
            etag = None  # replaced since verified: ensure_intact decides; here just read
        raw = _S3Reader(self, check_digest(digest), int(head["ContentLength"]), etag)
        return io.BufferedReader(raw, CHUNK)

    def path(self, digest: str) -> str | None:
        return None

    @contextlib.contextmanager
    def local_copy(self, digest: str) -> Iterator[str]:
        """Download the blob to a temporary file (removed on exit)."""
        ClientError = _errors()[0]

        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="copy-")
        os.close(fd)
        try:
            try:
                self._call(self.client.download_file, self.bucket, self._key(digest), tmp)
            except ClientError as exc:
                code, status = _code(exc)
                if status == 404 or code in ("404", "NoSuchKey"):
                    raise BlobNotFound(
                        f"blob sha256:{digest} is not stored", digest=digest
                    ) from None
                raise StorageUnavailable(f"object store refused GET: {exc}") from exc
            yield tmp
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def delete(self, digest: str) -> None:
        self._call(self.client.delete_object, Bucket=self.bucket, Key=self._key(digest))
        with self._lock:
            self._verified.pop(digest, None)

    def iter_digests(self) -> Iterator[str]:
        root = f"{self.prefix}sha256/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=root
        )
        for page in pages:
            for obj in page.get("Contents", []):
                sub, _, name = obj["Key"][len(root) :].partition("/")
                with contextlib.suppress(DigestMismatch):
                    if check_digest(name) == name and sub == name[:2]:
                        yield name

    def _hash_object(self, digest: str, etag: str | None) -> tuple[bool, str | None]:
        head = self._head_or_404(digest) if etag is None else None
        etag = etag or (head or {}).get("ETag")
        h = hashlib.sha256()
        body = self._get_body(digest, 0, etag)
        try:
            while chunk := self._call(body.read, CHUNK):
                h.update(chunk)
        finally:
            body.close()
        return h.hexdigest() == digest, etag

    def verify(self, digest: str) -> bool:
        """Download and re-hash the stored bytes; True when they still match their digest."""
        ok, etag = self._hash_object(check_digest(digest), None)
        if ok and etag:
            self._remember(digest, etag)
        return ok

    def ensure_intact(self, digest: str) -> None:
        """Raise :class:`Corrupt` unless size and digest metadata match and the bytes hashed right
        (re-hashed once per process per object version)."""
        d = check_digest(digest)
        head = self._head_or_404(d)
        meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
        size = int(head["ContentLength"])
        if meta.get("sha256", d) != d or int(meta.get("size", size)) != size:
            raise Corrupt(
                f"stored blob sha256:{d} no longer matches its digest; it will not be served",
                digest=d,
            )
        etag = str(head.get("ETag", ""))
        with self._lock:
            if etag and self._verified.get(d) == etag:
                return
        ok, _ = self._hash_object(d, etag or None)
        if not ok:
            raise Corrupt(
                f"stored blob sha256:{d} no longer matches its digest; it will not be served",
                digest=d,
            )
        if etag:
            self._remember(d, etag)

    def make_durable(self, digests: Iterable[str]) -> None:
        """Nothing to wait for: S3 acknowledges an object only once it is stored durably."""

    def purge_temp(self, older_than: timedelta) -> int:
        """Remove local temp files and unfinished multipart uploads older than ``older_than``."""
        removed = 0
        cutoff = time.time() - older_than.total_seconds()
        for p in self.tmp_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if p.is_file() and p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
        since = datetime.now(UTC) - older_than
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}sha256/"
        )
        for page in pages:
            for up in page.get("Uploads", []):
                if up["Initiated"] < since:
                    self._abort(up["Key"], up["UploadId"])
                    removed += 1
        return removed


__all__ = ["S3BlobStore", "StorageUnavailable"]
