"""Parcels on disk and on the wire: encrypting, the manifest, verifying, reading back.

A parcel is a folder of ciphertext files (``note.bin`` for the message, ``0.bin``,
``1.bin`` ... for documents) plus a manifest that the sending office signs. Each
file has its own key, sealed once to the recipient office and once to the sender
(who must be able to reread what it sent). The manifest lists, per file, the
plaintext name, media type, size and SHA-256, the ciphertext size and SHA-256, and
both sealed keys; see the plugin README for the exact format.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import queue
import re
import shutil
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import crypto
from .errors import IceError, Refused

FORMAT = "caseforum-ice/parcel/v1"
NOTE_PART = "note"
NOTE_NAME = "message.txt"
NOTE_MEDIA_TYPE = "text/plain; charset=utf-8"
MAX_FILES = 200
MAX_NOTE_CHARS = 20_000
MAX_NAME = 200
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}"
                         r"(; ?charset=[a-z0-9_-]{1,32})?$")
# C0 and C1 controls and the bidi overrides, embeddings, isolates and marks: a name
# such as "report\u202efdp.exe" shows as "reportexe.pdf"; none belongs in a file name
_CONTROL_OR_BIDI = "\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
_BAD_NAME_CHARS = re.compile(f"[{_CONTROL_OR_BIDI}/\\\\]")
_CONTROL_OR_BIDI_RE = re.compile(f"[{_CONTROL_OR_BIDI}]")


def hidden_characters(name: str) -> list[str]:
    """The control and bidi characters in ``name``, as ``U+202E`` labels (none: ``[]``)."""
    return sorted({f"U+{ord(c):04X}" for c in _CONTROL_OR_BIDI_RE.findall(name or "")})

# --------------------------------------------------------------------- manifest schema

_Hex64 = Field(pattern=r"^[0-9a-f]{64}$")


class FileEntry(BaseModel):
    """One encrypted file as the manifest describes it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(min_length=1, max_length=MAX_NAME)
    media_type: str = Field(min_length=3, max_length=160)
    size: int = Field(ge=0)
    sha256: str = _Hex64
    ciphertext_size: int = Field(ge=0)
    ciphertext_sha256: str = _Hex64
    sealed_key: str = Field(min_length=1, max_length=200)
    sender_sealed_key: str = Field(min_length=1, max_length=200)


class ApplicationRef(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    office: str = Field(pattern=r"^[A-Z]{2}$")
    number: str = Field(pattern=r"^[A-Z0-9]{1,40}$")
    kind: Literal["national", "pct"]
    display: str = Field(min_length=1, max_length=60)


class RequestInfo(BaseModel):
    """What a ``request`` parcel says about the exchange it opens."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    recipient_office: str = Field(pattern=r"^[A-Z]{2}$")
    donor_office: str = Field(pattern=r"^[A-Z]{2}$")
    application: ApplicationRef
    kind: str = Field(min_length=1, max_length=32)
    due_date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")


class Manifest(BaseModel):
    """The signed description of a parcel (validated before anything else is trusted)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    format: Literal["caseforum-ice/parcel/v1"]
    parcel_id: str = Field(pattern=UUID_PATTERN)
    exchange_id: str = Field(pattern=UUID_PATTERN)
    kind: Literal["request", "accept", "decline", "start", "report", "documents",
                  "acknowledge", "close"]
    sender: str = Field(pattern=r"^[A-Z]{2}$")
    recipient: str = Field(pattern=r"^[A-Z]{2}$")
    sequence: int = Field(ge=1, le=1_000_000_000)
    created_at: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
    sent_by: str = Field(max_length=120)
    request: RequestInfo | None
    note: FileEntry | None
    files: list[FileEntry] = Field(max_length=MAX_FILES)

    def entries(self) -> list[tuple[str, FileEntry]]:
        """(part name, entry) for the note and each file, in wire order."""
        parts: list[tuple[str, FileEntry]] = []
        if self.note is not None:
            parts.append((NOTE_PART, self.note))
        parts.extend((str(i), entry) for i, entry in enumerate(self.files))
        return parts

    @property
    def ciphertext_bytes(self) -> int:
        return sum(entry.ciphertext_size for _, entry in self.entries())

    @property
    def created(self) -> datetime:
        return parse_time(self.created_at)


def parse_manifest(raw: Any) -> Manifest:
    """Validate a received manifest's shape; ``Refused("malformed")`` says what is wrong."""
    if not isinstance(raw, dict):
        raise Refused("the manifest must be a JSON object", code="malformed", status=400)
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise Refused(f"malformed manifest: {where}: {first['msg']}",
                      code="malformed", status=400) from None
    names = [entry.name for entry in manifest.files]
    for name in names:
        hidden = hidden_characters(name)
        if hidden:
            raise Refused(f"malformed manifest: file name {name!r} contains control or bidi "
                          f"characters ({', '.join(hidden)})", code="malformed", status=400)
        if name != clean_name(name):
            raise Refused(f"malformed manifest: file name {name!r} is not allowed",
                          code="malformed", status=400)
    if len(set(names)) != len(names):
        raise Refused("malformed manifest: two files have the same name",
                      code="malformed", status=400)
    if (manifest.kind == "request") != (manifest.request is not None):
        raise Refused("malformed manifest: 'request' must be given for, and only for, "
                      "a request parcel", code="malformed", status=400)
    if manifest.sender == manifest.recipient:
        raise Refused("malformed manifest: sender and recipient are the same office",
                      code="malformed", status=400)
    return manifest


def time_text(moment: datetime) -> str:
    """Manifest time: UTC with microseconds, so parcels sort the same on both sides."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    layout = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in text else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.strptime(text, layout).replace(tzinfo=UTC)


# ------------------------------------------------------------------------- uploads


def clean_name(name: str) -> str:
    """A safe, displayable file name: no path, no control characters, bounded length."""
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _BAD_NAME_CHARS.sub("_", text).strip().strip(".")
    if len(text) > MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        keep = MAX_NAME - len(ext) - 1 if dot and len(ext) <= 16 else MAX_NAME
        text = (stem[:keep] + "." + ext) if dot and len(ext) <= 16 else text[:MAX_NAME]
    return text or "document"


def clean_media_type(value: str | None) -> str:
    text = (value or "").strip().lower().replace(" ", "")
    text = text.replace(";charset=", "; charset=")
    return text if _MEDIA_TYPE.match(text) else "application/octet-stream"


def unique_names(names: list[str]) -> list[str]:
    """Make names unique within a parcel: ``report.pdf``, ``report (2).pdf`` ..."""
    seen: set[str] = set()
    result = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            stem, dot, ext = name.rpartition(".")
            candidate = f"{stem} ({n}).{ext}" if dot and stem else f"{name} ({n})"
        seen.add(candidate)
        result.append(candidate)
    return result


@dataclass
class Upload:
    """A document to put in a parcel: a name, a media type and a readable stream."""

    name: str
    media_type: str
    stream: BinaryIO


class _Limited:
    """Reads from ``src`` and stops the parcel once the byte budget is spent."""

    def __init__(self, src: BinaryIO, budget: list[int], limit_mb: int) -> None:
        self.src, self.budget, self.limit_mb = src, budget, limit_mb

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.budget[0] -= len(data)
        if self.budget[0] < 0:
            raise IceError(f"the parcel is larger than the limit of {self.limit_mb} MB",
                           code="oversize", status=413)
        return data


class _HashingWriter:
    def __init__(self, dst: BinaryIO) -> None:
        self.dst, self.sha, self.size = dst, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.dst.write(data)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _encrypt_one(src: BinaryIO, path: Path, *, name: str, media_type: str,
                 recipient: crypto.PublicOfficeKeys, sender: crypto.OfficeKeys) -> dict[str, Any]:
    file_key = crypto.generate_file_key()
    with path.open("wb") as raw:
        writer = _HashingWriter(raw)
        digest = crypto.encrypt_stream(src, writer, file_key)  # type: ignore[arg-type]
    return {
        "name": name,
        "media_type": media_type,
        "size": digest.size,
        "sha256": digest.sha256,
        "ciphertext_size": writer.size,
        "ciphertext_sha256": writer.sha.hexdigest(),
        "sealed_key": _b64(crypto.seal_key(file_key, recipient.encryption_public)),
        "sender_sealed_key": _b64(crypto.seal_key(file_key, sender.encryption_public)),
    }


def encrypt_parcel(
    *,
    folder: Path,
    note: str,
    uploads: list[Upload],
    recipient: crypto.PublicOfficeKeys,
    sender: crypto.OfficeKeys,
    max_bytes: int,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Encrypt the note and each upload into ``folder``; returns the manifest entries.

    Streams 64 KiB at a time, so memory does not grow with file size; stops with
    ``oversize`` as soon as the plaintext passes ``max_bytes``.
    """
    if len(uploads) > MAX_FILES:
        raise IceError(f"a parcel holds at most {MAX_FILES} files", code="too_many_files")
    if len(note) > MAX_NOTE_CHARS:
        raise IceError(f"the message is longer than {MAX_NOTE_CHARS} characters",
                       code="note_too_long")
    folder.mkdir(parents=True, exist_ok=False, mode=0o700)
    budget = [max_bytes]
    limit_mb = max(1, max_bytes // (1024 * 1024))
    note_entry = None
    if note.strip():
        note_entry = _encrypt_one(io.BytesIO(note.strip().encode("utf-8")),
                                  folder / f"{NOTE_PART}.bin", name=NOTE_NAME,
                                  media_type=NOTE_MEDIA_TYPE, recipient=recipient, sender=sender)
    names = unique_names([clean_name(u.name) for u in uploads])
    files = []
    for index, (upload, name) in enumerate(zip(uploads, names, strict=True)):
        files.append(_encrypt_one(_Limited(upload.stream, budget, limit_mb),  # type: ignore[arg-type]
                                  folder / f"{index}.bin", name=name,
                                  media_type=clean_media_type(upload.media_type),
                                  recipient=recipient, sender=sender))
    return note_entry, files


def part_path(folder: Path, part: str) -> Path:
    return folder / f"{part}.bin"


# ------------------------------------------------------------------- verification


class _HashingReader:
    def __init__(self, src: BinaryIO) -> None:
        self.src, self.sha, self.size = src, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(f"{what} is not valid base64", code="malformed", status=400) from None


Opener = Callable[[], BinaryIO]


def verify_parts(manifest: Manifest, parts: dict[str, Opener],
                 keys: crypto.OfficeKeys) -> None:
    """Check every file of a parcel against the signed manifest, as its recipient.

    One streaming pass per file: the ciphertext is hashed while it is decrypted,
    every 64 KiB chunk is authenticated, and the plaintext is hashed and thrown
    away. Anything that does not match raises ``Refused("tampered")``.
    """
    expected = dict(manifest.entries())
    extra = sorted(set(parts) - set(expected))
    if extra:
        raise Refused(f"the parcel carries parts the manifest does not list: {', '.join(extra)}",
                      code="malformed", status=400)
    for part, entry in manifest.entries():
        opener = parts.get(part)
        if opener is None:
            raise Refused(f"file {entry.name!r} (part {part}) is missing from the parcel",
                          code="malformed", status=400)
        try:
            file_key = crypto.open_sealed_key(_unb64(entry.sealed_key, "a sealed key"), keys)
        except crypto.KeyUnwrapError as exc:
            raise Refused(f"file {entry.name!r}: {exc}", code="tampered") from None
        with opener() as src:
            reader = _HashingReader(src)
            try:
                digest = crypto.decrypt_stream(reader, _Discard(), file_key)  # type: ignore[arg-type]
            except crypto.TamperedError as exc:
                raise Refused(f"file {entry.name!r} was altered in transit or storage: {exc}",
                              code="tampered") from None
        ciphertext_ok = (reader.size == entry.ciphertext_size
                         and reader.sha.hexdigest() == entry.ciphertext_sha256)
        if not ciphertext_ok:
            raise Refused(f"file {entry.name!r}: the ciphertext does not match the manifest",
                          code="tampered")
        if digest.size != entry.size or digest.sha256 != entry.sha256:
            raise Refused(f"file {entry.name!r}: the decrypted content does not match the "
                          "size and SHA-256 in the signed manifest", code="tampered")


def store_parts(parts: dict[str, Opener], folder: Path) -> None:
    """Copy verified parts into the parcel's folder (written whole, then renamed)."""
    folder.mkdir(parents=True, exist_ok=False, mode=0o700)
    for part, opener in parts.items():
        temp = folder / f".{part}.part"
        with opener() as src, temp.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        temp.replace(part_path(folder, part))


# ------------------------------------------------------------------- reading back


def file_key_for(entry: dict[str, Any], *, keys: crypto.OfficeKeys, as_sender: bool) -> bytes:
    """Open a file's key with our office's private key (the sender keeps its own copy)."""
    sealed = entry["sender_sealed_key"] if as_sender else entry["sealed_key"]
    return crypto.open_sealed_key(base64.b64decode(sealed), keys)


def _opener(source: Path | Opener) -> Opener:
    if isinstance(source, Path):
        return lambda: source.open("rb")
    return source


def read_note(source: Path | Opener, entry: dict[str, Any], *, keys: crypto.OfficeKeys,
              as_sender: bool) -> str:
    """Decrypt a parcel's message (small by construction) from its file or opener."""
    out = io.BytesIO()
    with _opener(source)() as src:
        crypto.decrypt_stream(src, out, file_key_for(entry, keys=keys, as_sender=as_sender))
    return out.getvalue().decode("utf-8", errors="replace")


_END = object()


class _Stop(Exception):
    pass


def iter_plaintext(source: Path | Opener, file_key: bytes, *, depth: int = 8
                   ) -> Iterator[bytes]:
    """Yield a file's plaintext chunk by chunk, decrypting in a helper thread.

    ``crypto.decrypt_stream`` writes to a file object; a bounded queue turns that
    into an iterator for a streaming HTTP response, holding at most ``depth``
    chunks (512 KiB). A chunk that fails authentication raises here, which
    aborts the response before the altered data is sent.
    """
    chunks: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    open_source = _opener(source)

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _Stop

    class _Writer:
        def write(self, data: bytes) -> int:
            put(bytes(data))
            return len(data)

    def work() -> None:
        try:
            with open_source() as src:
                crypto.decrypt_stream(src, _Writer(), file_key)  # type: ignore[arg-type]
            put(_END)
        except _Stop:
            return
        except Exception as exc:  # handed to the reader, who raises it
            try:
                put(exc)
            except _Stop:
                return

    worker = threading.Thread(target=work, name="ice-decrypt", daemon=True)
    worker.start()
    try:
        while True:
            item = chunks.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
