"""The ``s3`` storage backend: files in an S3-compatible bucket (AWS S3, MinIO, Ceph ...).

An upload is spooled to a temporary file on this host while it is hashed and checked
(:func:`caseforum.storage.spool`, the same refusals as the local store), then sent
to ``files/ab/cd/<sha256>`` with boto3's managed transfer, which switches to a
multipart upload above ``s3_part_size_mb``: nothing is ever held whole in memory, and
a refused upload never reaches the bucket.  The spooled copy of a PDF or text file is
kept for the text extraction that follows, so it is not downloaded again (a copy
nobody takes is removed by the sweep with the other temporary files).  Content
already in the bucket is not sent again; it is copied onto itself instead, which
makes it new for the sweeper (the local store touches the file for the same reason).
Downloads stream the object's body chunk by chunk.  ICE parcels are blobs under
``ice/parcels/...``.

boto3 is imported when an ``s3`` store is opened, so instances on the local store
never load it.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from caseforum.storage import (
    CHUNK,
    StorageError,
    StoredFile,
    check_sha256,
    content_key,
    old_files,
    spool,
)

if TYPE_CHECKING:
    from caseforum.config import Settings

MB = 1024 * 1024
#: how long a request to the object store may wait to connect, and for an answer
CONNECT_SECONDS = 3.0
READ_SECONDS = 60.0
PROBE_SECONDS = 2.0
#: types whose text is extracted right after they are stored (dossiers/service.py)
TEXT_TYPES = frozenset({"application/pdf", "text/plain", "application/xml"})


class _Body(io.RawIOBase):
    """An object's body as a read-only stream that knows its length.

    botocore's body hands out its socket's ``fileno``, so a reader that sizes a file
    by ``fstat`` (httpx, sending an ICE parcel's part on with a Content-Length) would
    take it as empty.  This one has no ``fileno``; asked for its end with
    ``seek(0, SEEK_END)`` it gives the object's length, and seeking back to where it
    is reading is allowed; any other move is refused, the body is read once."""

    def __init__(self, body: Any, length: int) -> None:
        self._body, self._length, self._read = body, length, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[:len(data)] = data
        self._read += len(data)
        return len(data)

    def tell(self) -> int:
        return self._read

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END and offset == 0:
            return self._length
        if whence == io.SEEK_SET and offset == self._read:
            return self._read
        raise io.UnsupportedOperation("an object's body is read once, from the start")

    def close(self) -> None:
        self._body.close()
        super().close()


class S3Store:
    """Content and blobs in one bucket; spooling in ``<data_dir>/files/tmp``."""

    name = "s3"
    local_paths = False

    def __init__(self, *, bucket: str, tmp_dir: Path, endpoint: str = "", region: str = "",
                 access_key: str = "", secret_key: str = "", sse: str = "",
                 part_size_mb: int = 8) -> None:
        self.bucket, self.tmp_dir, self.region = bucket, tmp_dir, region or "us-east-1"
        self.endpoint = endpoint
        self._credentials = (access_key or None, secret_key or None)
        tmp_dir.mkdir(parents=True, exist_ok=True)
        #: requests to the store by (operation, outcome), for ``/metrics``
        self.request_counts: dict[tuple[str, str], int] = {}
        self._on_count: Callable[[str, str, int], None] | None = None  # report_counts
        self._counting = threading.Lock()
        self.client = self._client(connect=CONNECT_SECONDS, read=READ_SECONDS, attempts=3)
        #: for /readyz: one try, answered within the readiness check's time
        self.probe = self._client(connect=PROBE_SECONDS, read=PROBE_SECONDS, attempts=1)
        from boto3.s3.transfer import TransferConfig

        part = part_size_mb * MB
        self.transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part,
                                       max_concurrency=4)
        self.extra: dict[str, str] = {"ServerSideEncryption": sse} if sse else {}

    def _count(self, operation: str, outcome: str) -> None:
        with self._counting:
            key = (operation, outcome)
            count = self.request_counts[key] = self.request_counts.get(key, 0) + 1
            if self._on_count is not None:
                self._on_count(operation, outcome, count)

    def report_counts(self, to: Callable[[str, str, int], None]) -> None:
        """Tell ``to`` every (operation, outcome, count) so far and each new count from
        now on (with several workers: into the worker's file, web/worker_metrics.py)."""
        with self._counting:
            self._on_count = to
            for (operation, outcome), count in self.request_counts.items():
                to(operation, outcome, count)

    def _answered(self, event_name: str = "", http_response: Any = None, **_: Any) -> None:
        status = getattr(http_response, "status_code", 0)
        outcome = "ok" if status < 400 else "not_found" if status == 404 else "error"
        self._count(event_name.rsplit(".", 1)[-1], outcome)

    def _unreachable(self, event_name: str = "", **_: Any) -> None:
        self._count(event_name.rsplit(".", 1)[-1], "unreachable")

    def _client(self, *, connect: float, read: float, attempts: int) -> Any:
        client = self._new_client(connect=connect, read=read, attempts=attempts)
        client.meta.events.register("after-call.s3", self._answered)
        client.meta.events.register("after-call-error.s3", self._unreachable)
        return client

    def _new_client(self, *, connect: float, read: float, attempts: int) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint or None, region_name=self.region,
            aws_access_key_id=self._credentials[0], aws_secret_access_key=self._credentials[1],
            config=Config(connect_timeout=connect, read_timeout=read,
                          retries={"max_attempts": attempts, "mode": "standard"},
                          # MinIO and most self-hosted stores answer on one host name
                          s3={"addressing_style": "path"} if self.endpoint else {},
                          # checksums only where S3 asks for them: not every
                          # S3-compatible server knows the newer checksum headers
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        s = settings.storage
        return cls(bucket=s.s3_bucket, tmp_dir=settings.storage_dir / "tmp",
                   endpoint=s.s3_endpoint, region=s.s3_region, access_key=s.s3_access_key,
                   secret_key=s.s3_secret_key, sse=s.s3_sse, part_size_mb=s.s3_part_size_mb)

    @staticmethod
    def key_for(sha256: str) -> str:
        return "files/" + content_key(sha256)

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head

    def exists(self, sha256: str) -> bool:
        return self._head(self.key_for(sha256)) is not None

    def put(self, stream: BinaryIO, *, max_bytes: int) -> StoredFile:
        spooled = spool(stream, max_bytes=max_bytes, tmp_dir=self.tmp_dir)
        key = self.key_for(spooled.sha256)
        try:
            created = self._head(key) is None
            if created:
                self._upload(spooled.path, key)
            else:  # fresh again for the sweeper, as the local store touches the file
                self.client.copy({"Bucket": self.bucket, "Key": key}, self.bucket, key,
                                 ExtraArgs={"MetadataDirective": "REPLACE",
                                            "ContentType": "application/octet-stream",
                                            **self.extra},
                                 Config=self.transfer)
            if spooled.media_type in TEXT_TYPES:  # its text is read next: keep the copy
                os.replace(spooled.path, self._kept(spooled.sha256))
        finally:
            spooled.path.unlink(missing_ok=True)
        return StoredFile(sha256=spooled.sha256, size=spooled.size,
                          media_type=spooled.media_type, path=None, created=created)

    def _upload(self, path: Path, key: str) -> None:
        # the stored type is never served (responses tell it from the bytes): a neutral one
        self.client.upload_file(str(path), self.bucket, key, Config=self.transfer,
                                ExtraArgs={"ContentType": "application/octet-stream",
                                           **self.extra})

    def discard(self, stored: StoredFile) -> None:
        """Nothing is deleted here: another host may have stored the same bytes a
        moment ago and committed a document that names them, which this host cannot
        see.  Unused content is the sweeper's, which asks the database and leaves
        anything younger than its grace period alone."""

    def _body_chunks(self, key: str) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def iter_bytes(self, sha256: str) -> Iterator[bytes]:
        return self._body_chunks(self.key_for(sha256))

    def _kept(self, sha256: str) -> Path:
        return self.tmp_dir / f"kept-{check_sha256(sha256)}"

    @contextlib.contextmanager
    def local_copy(self, sha256: str) -> Iterator[Path]:
        """The copy ``put`` kept of a file whose text is read right after storing it
        (taken by one reader, then removed), else a download of the object."""
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, prefix="read-")
        os.close(fd)
        path = Path(name)
        try:
            try:
                os.replace(self._kept(sha256), path)
            except FileNotFoundError:
                self.client.download_file(self.bucket, self.key_for(sha256), name,
                                          Config=self.transfer)
            yield path
        finally:
            path.unlink(missing_ok=True)

    # sweeping ------------------------------------------------------------------

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            yield from page.get("Contents", [])

    def stale_content(self, cutoff: float) -> Iterator[tuple[str, int]]:
        for item in self._objects("files/"):
            sha = item["Key"].rsplit("/", 1)[-1]
            with contextlib.suppress(StorageError):
                if (item["Key"] == self.key_for(check_sha256(sha))
                        and item["LastModified"].timestamp() < cutoff):
                    yield sha, int(item["Size"])

    def remove_if_stale(self, sha256: str, cutoff: float) -> bool:
        key = self.key_for(sha256)
        head = self._head(key)
        if head is None or head["LastModified"].timestamp() >= cutoff:
            return False
        self.client.delete_object(Bucket=self.bucket, Key=key)
        return True

    def sweep_temporary(self, cutoff: float) -> tuple[int, int]:
        """Spooled files this host left, and multipart uploads a crash left open."""
        count = size = 0
        for path, length in old_files(self.tmp_dir, cutoff):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                count, size = count + 1, size + length
        paginator = self.client.get_paginator("list_multipart_uploads")
        # only our own keys: a bucket shared with other software keeps its uploads
        for prefix in ("files/", "ice/"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].timestamp() < cutoff:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                        count += 1
        return count, size

    # blobs ---------------------------------------------------------------------

    def put_blob(self, key: str, path: Path) -> None:
        self._upload(path, key)

    def open_blob(self, key: str) -> BinaryIO:
        answer = self.client.get_object(Bucket=self.bucket, Key=key)
        return cast(BinaryIO, _Body(answer["Body"], int(answer["ContentLength"])))

    def delete_blobs(self, prefix: str) -> None:
        keys = [{"Key": item["Key"]} for item in self._objects(prefix)]
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=self.bucket,
                                       Delete={"Objects": keys[start:start + 1000]})

    def blob_keys(self, prefix: str) -> Iterator[str]:
        for item in self._objects(prefix):
            yield str(item["Key"])

    # operations ----------------------------------------------------------------

    def check(self) -> str:
        """The bucket answers (``HeadBucket``) with these credentials."""
        self.probe.head_bucket(Bucket=self.bucket)
        return "ok"

    def prepare(self) -> str:
        """Create the bucket when it is missing."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return f"bucket {self.bucket} is there"
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise
        args: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.client.create_bucket(**args)
        return f"bucket {self.bucket} created"
