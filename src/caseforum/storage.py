"""Content-addressed document files: streamed in and out, checked by content.

A file is written to a temporary name while its SHA-256 is computed, then
renamed to ``files/ab/cd/<sha256>``; the same content is stored once.  The
type comes from the first bytes (magic numbers), never from the client's
claim, and the size limit is enforced while streaming, so an oversize upload
is refused without ever being held in memory.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from caseforum import errors

CHUNK = 1024 * 1024


class StorageError(errors.InvalidInput):
    """The file was refused; the message says why."""


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    media_type: str
    path: Path
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


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise StorageError("not a SHA-256 digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def put(self, stream: BinaryIO, *, max_bytes: int) -> StoredFile:
        """Stream ``stream`` into the store; refuse empty, oversize or unknown types."""
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                head = stream.read(8192)
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
            sha = digest.hexdigest()
            final = self.path_for(sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            created = not final.exists()
            if created:
                os.replace(tmp, final)
            else:
                tmp.unlink()
                # fresh again: the sweeper leaves content younger than an hour alone, so an
                # old unused file that this upload is about to reference is not swept under it
                os.utime(final)
            return StoredFile(sha256=sha, size=size, media_type=media_type, path=final,
                              created=created)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def discard(self, stored: StoredFile) -> None:
        """Undo a ``put`` whose database write failed (only new content)."""
        if stored.created:
            stored.path.unlink(missing_ok=True)

    def open(self, sha256: str) -> BinaryIO:
        return self.path_for(sha256).open("rb")

    def iter_bytes(self, sha256: str) -> Iterator[bytes]:
        with self.open(sha256) as handle:
            while chunk := handle.read(CHUNK):
                yield chunk
