"""Content-addressed document files: streamed in and out, checked by content.

A file is written to a temporary name while its SHA-256 is computed, then
renamed to ``files/ab/cd/<sha256>``; the same content is stored once.  The
type comes from the first bytes (magic numbers), never from the client's
claim, and the size limit is enforced while streaming, so an oversize upload
is refused without ever being held in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from caseforum import errors

CHUNK = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


class StorageError(errors.InvalidInput):
    """The file was refused; the message says why."""


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    media_type: str
    path: Path | None  # where the local store keeps it; None in a bucket
    created: bool = True  # False when the same content was stored before


def sniff_media_type(head: bytes) -> str | None:
    """Tell the type from the first bytes; ``None`` for an unsupported type."""
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<") and b"\x00" not in head:
        return "application/xml"
    if head and b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # a multi-byte character cut at the end of the sample is fine
            if exc.start < len(head) - 4:
                return None
        return "text/plain"
    return None


# Types a browser shows without running anything the file brings along: a PDF (in the
# browser's own viewer) and raster images.  Everything else is handed over as a download.
PASSIVE_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "image/tiff"})
SNIFF_BYTES = 8192
_MARKUP = re.compile(rb"<\s*[!?a-zA-Z/]")


def served_media_type(head: bytes) -> str:
    """The type a response may give bytes beginning with ``head``, decided from the bytes.

    Whatever an uploader, sender or remote source declared is ignored: a stored
    "XML" file may be XHTML, SVG or HTML that would run script in our origin if a
    browser believed it.  So only PDF and raster images keep their own type; plain
    UTF-8 text without markup is ``text/plain``; markup and anything else is
    ``application/octet-stream``, which no browser renders.
    """
    kind = sniff_media_type(head)
    if kind in PASSIVE_TYPES:
        return kind
    if kind == "text/plain" and not _MARKUP.search(head):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


EXTENSIONS = {
    "application/pdf": ".pdf",
    "image/tiff": ".tif",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "application/xml": ".xml",
    "text/plain": ".txt",
}


def safe_filename(name: str, media_type: str) -> str:
    """A download name that is safe in a header and on any file system."""
    base = unicodedata.normalize("NFKC", Path(name or "document").name)
    base = re.sub(r"[^\w.\- ]+", "_", base).strip(" ._") or "document"
    stem = Path(base).stem[:100] or "document"
    return stem + EXTENSIONS.get(media_type, "")


@dataclass(frozen=True)
class Spooled:
    """An upload written whole to a temporary file and checked: ready to be stored."""

    path: Path
    sha256: str
    size: int
    media_type: str


def spool(stream: BinaryIO, *, max_bytes: int, tmp_dir: Path) -> Spooled:
    """Write ``stream`` to a temporary file in ``tmp_dir`` while hashing it.

    Refuses an empty file, an unknown type (told from the first bytes) and a file
    over ``max_bytes`` as soon as the limit is passed; a refused or failed spool
    leaves no file.  Every backend stores uploads through this, so the refusals
    and their messages are the same whatever keeps the files.
    """
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            head = stream.read(SNIFF_BYTES)
            media_type = sniff_media_type(head)
            if not head:
                raise StorageError("the file is empty")
            if media_type is None:
                raise StorageError(
                    "unsupported file type: send PDF, TIFF, PNG, JPEG, XML or UTF-8 text"
                )
            chunk = head
            while chunk:
                size += len(chunk)
                if size > max_bytes:
                    raise StorageError(
                        f"file too large: the limit is {max_bytes // (1024 * 1024)} MB",
                        status=413, code="too_large")
                digest.update(chunk)
                out.write(chunk)
                chunk = stream.read(CHUNK)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Spooled(path=tmp, sha256=digest.hexdigest(), size=size, media_type=media_type)


def check_sha256(sha256: str) -> str:
    if not _SHA256.fullmatch(sha256):
        raise StorageError("not a SHA-256 digest")
    return sha256


def content_key(sha256: str) -> str:
    """``ab/cd/<sha256>``: where content lives below the store's root or prefix."""
    check_sha256(sha256)
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def old_files(folder: Path, cutoff: float) -> Iterator[tuple[Path, int]]:
    """Regular files directly in ``folder`` last changed before ``cutoff``."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if path.is_file() and not path.is_symlink() and info.st_mtime < cutoff:
            yield path, info.st_size


class FileStore:
    """The ``local`` storage backend: content in ``<data_dir>/files/ab/cd/<sha256>``,
    blobs (ICE parcels) at their key below the data folder."""

    name = "local"
    local_paths = True

    def __init__(self, root: Path, *, blob_root: Path | None = None) -> None:
        self.root = root
        self.blob_root = blob_root if blob_root is not None else root.parent
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self.root / content_key(sha256)

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def put(self, stream: BinaryIO, *, max_bytes: int) -> StoredFile:
        """Stream ``stream`` into the store; refuse empty, oversize or unknown types."""
        spooled = spool(stream, max_bytes=max_bytes, tmp_dir=self.root / "tmp")
        try:
            final = self.path_for(spooled.sha256)
            final.parent.mkdir(parents=True, exist_ok=True)
            created = not final.exists()
            if created:
                os.replace(spooled.path, final)
            else:
                spooled.path.unlink()
                # fresh again: the sweeper leaves content younger than an hour alone, so an
                # old unused file that this upload is about to reference is not swept under it
                os.utime(final)
            return StoredFile(sha256=spooled.sha256, size=spooled.size,
                              media_type=spooled.media_type, path=final, created=created)
        except BaseException:
            spooled.path.unlink(missing_ok=True)
            raise

    def discard(self, stored: StoredFile) -> None:
        """Undo a ``put`` whose database write failed (only new content)."""
        if stored.created:
            self.path_for(stored.sha256).unlink(missing_ok=True)

    def open(self, sha256: str) -> BinaryIO:
        return self.path_for(sha256).open("rb")

    def iter_bytes(self, sha256: str) -> Iterator[bytes]:
        with self.open(sha256) as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    @contextlib.contextmanager
    def local_copy(self, sha256: str) -> Iterator[Path]:
        yield self.path_for(sha256)

    # sweeping ------------------------------------------------------------------

    def stale_content(self, cutoff: float) -> Iterator[tuple[str, int]]:
        for first in self.root.glob("[0-9a-f][0-9a-f]"):
            for second in first.glob("[0-9a-f][0-9a-f]"):
                for path, size in old_files(second, cutoff):
                    name = path.name
                    if _SHA256.fullmatch(name) and name.startswith(first.name + second.name):
                        yield name, size

    def remove_if_stale(self, sha256: str, cutoff: float) -> bool:
        path = self.path_for(sha256)
        try:
            if path.stat().st_mtime >= cutoff:  # an upload has reused it since
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def sweep_temporary(self, cutoff: float) -> tuple[int, int]:
        count = size = 0
        for path, length in old_files(self.root / "tmp", cutoff):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                count, size = count + 1, size + length
        return count, size

    # blobs ---------------------------------------------------------------------

    def _blob_path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts):
            raise StorageError(f"not a blob key: {key!r}")
        return self.blob_root.joinpath(*parts)

    def put_blob(self, key: str, path: Path) -> None:
        target = self._blob_path(key)
        if target == path:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    def open_blob(self, key: str) -> BinaryIO:
        return self._blob_path(key).open("rb")

    def delete_blobs(self, prefix: str) -> None:
        target = self._blob_path(prefix.rstrip("/"))
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)

    def blob_keys(self, prefix: str) -> Iterator[str]:
        top = self._blob_path(prefix.rstrip("/"))
        for path in sorted(top.rglob("*")) if top.is_dir() else []:
            if path.is_file() and not path.is_symlink():
                yield path.relative_to(self.blob_root).as_posix()

    # operations ----------------------------------------------------------------

    def check(self) -> str:
        """The folder exists and takes a new file (created and removed)."""
        if not self.root.is_dir():
            return f"the folder {self.root} is missing"
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=".ready-"):
            pass
        return "ok"

    def prepare(self) -> str:
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        return f"files are kept in {self.root}"
