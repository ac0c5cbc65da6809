"""Bulk packages: a ZIP with ``manifest.json`` and the document files.

The whole package lands in one transaction or not at all: everything is
checked before the first write, files added by a failed import are removed,
and a package already imported (same SHA-256) changes nothing.

A package is untrusted input that can ask for far more work than its size
suggests (a 358 KiB ZIP once inflated to 9.1 GB while holding the SQLite write
lock for 31 s).  So the work is bounded in three places: the ZIP directory is
checked against :class:`PackageLimits` before a byte is inflated; the bytes
actually inflated are counted while streaming (a member may lie about its
size); and the write transaction begins only after every file is stored and
its text extracted, so it holds the lock for the rows alone.

Manifest (UTF-8, a byte-order mark is allowed)::

    {"office": "JP",
     "dossiers": [{<dossier fields as for POST /api/v1/dossiers>,
                   "documents": [{"file": "docs/sr.pdf", "code": "SRPT",
                                  "date": "2018-05-01", "language": "ja",
                                  "visibility": "offices", "offices": [],
                                  "is_translation": false},
                                 {"file": "docs/sr-en.pdf", "code": "SRPT",
                                  "date": "2018-05-01", "language": "en",
                                  "translation_of": "docs/sr.pdf"}],
                   "citations": [{"cited": "WO 2016/123456 A1", "category": "X",
                                  "claims": "1-3", "phase": "search",
                                  "document": "docs/sr.pdf"}]}]}

A translation names its original with ``translation_of``: the package path of another
document of the same dossier entry, or the id of a document that dossier already has
(checked as an upload's is: ``service.check_original``).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass
from datetime import date
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from caseforum.doccodes import DocTypeRegistry
from caseforum.dossiers import service
from caseforum.dossiers.access import Access
from caseforum.dossiers.schemas import CitationIn, DossierError, DossierIn
from caseforum.models import Application, Document, ImportRecord
from caseforum.storage import StorageError, StoredFile
from caseforum.storage_backends import StorageBackend

MB = 1024 * 1024
MAX_MANIFEST_BYTES = 16 * MB
# what a damaged or lying member raises while it is inflated
_INFLATE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class PackageLimits:
    """How much work one package may ask for (settings ``package_*``)."""

    max_total_bytes: int = 2048 * MB  # all documents inflated, each use counted
    max_members: int = 10_000
    max_ratio: int = 200  # inflated size / compressed size, per member

    @classmethod
    def from_settings(cls, settings: Any) -> PackageLimits:
        return cls(max_total_bytes=settings.package_max_total_mb * MB,
                   max_members=settings.package_max_members,
                   max_ratio=settings.package_max_ratio)


class _CountingReader:
    """Reads a ZIP member and refuses it the moment it inflates to more bytes
    than it declared or than the package's budget has left: the declared size
    in the ZIP directory is the sender's claim, the count is ours."""

    def __init__(self, member: BinaryIO, *, name: str, declared: int, budget: int) -> None:
        self._member, self.name, self._declared, self._budget = member, name, declared, budget
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        try:
            chunk = self._member.read(size if size > 0 else 1 << 20)
        except _INFLATE_ERRORS as exc:
            raise DossierError(f"{self.name} is damaged or not what the package's directory "
                               f"says ({exc})", "package") from None
        self.count += len(chunk)
        if self.count > self._declared:
            raise DossierError(f"{self.name} holds more data than the package's directory "
                               f"declares ({self._declared} bytes): refused", "package")
        if self.count > self._budget:
            raise DossierError("the package inflates to more than the limit of "
                               "package_max_total_mb", "package")
        return chunk


class PackageDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    file: str = Field(min_length=1, max_length=500)
    code: str
    label: str = ""  # the office's own label for its code
    date: date
    language: str = "en"
    visibility: str = "offices"
    offices: list[str] = Field(default_factory=list)
    is_translation: bool = False
    #: a translation's original: a package path in the same dossier entry, or the id of a
    #: document the dossier already has
    translation_of: str | int | None = Field(default=None, union_mode="left_to_right")

    @field_validator("translation_of")
    @classmethod
    def _an_id_or_a_path(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, int) and not 1 <= value <= 2**31 - 1:
            raise ValueError("a document id is a positive number below 2**31")
        if isinstance(value, str) and not value:
            return None
        return value


class PackageCitation(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    cited: str
    category: str
    claims: str = ""
    phase: str = ""
    document: str | None = None  # the package path of the citing document


class PackageDossier(DossierIn):
    documents: list[PackageDocument] = Field(default_factory=list)
    citations: list[PackageCitation] = Field(default_factory=list)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    office: str = Field(min_length=2, max_length=2)
    dossiers: list[PackageDossier] = Field(min_length=1, max_length=5000)


def _safe_member(name: str) -> str:
    path = PurePosixPath(name)
    if (name.startswith(("/", "\\")) or ".." in path.parts or "\\" in name
            or ":" in name or not name.strip()):
        raise DossierError(f"unsafe path {name!r} in the package", "package")
    return str(path)


def _check_package_original(documents: list[PackageDocument], j: int, where: str) -> None:
    """A ``translation_of`` given as a package path names another document of the same
    dossier entry, an original (no chains), in another language."""
    ref = documents[j].translation_of
    if not isinstance(ref, str):
        return  # none, or a held document's id: checked with the dossier (_add_documents)
    field = f"{where}.translation_of"
    if ref == documents[j].file:
        raise DossierError(f"{ref} cannot be a translation of itself: name its original",
                           field)
    original = next((doc for doc in documents if doc.file == ref), None)
    if original is None:
        raise DossierError(f"{ref} is not a document of this dossier in the package: name "
                           "the original by its package path or by its document id", field)
    if original.translation_of is not None or original.is_translation:
        raise DossierError(f"{ref} is a translation itself: name its original", field)
    if original.language.strip().lower() == documents[j].language.strip().lower():
        raise DossierError(f"{ref} is in {original.language} too: a translation is in "
                           "another language than its original", field)


def check_directory(archive: zipfile.ZipFile, *, max_bytes: int,
                    limits: PackageLimits) -> dict[str, zipfile.ZipInfo]:
    """Refuse a package from its directory alone, before anything is inflated."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise DossierError(f"too many files in the package: {len(infos)} (limit "
                           f"{limits.max_members}, setting package_max_members)", "package")
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = _safe_member(info.filename)
        if info.external_attr >> 16 & 0o170000 == 0o120000:
            raise DossierError(f"symbolic link {info.filename!r} in the package", "package")
        if name in by_name:
            raise DossierError(f"{info.filename} is in the package twice", "package")
        if info.flag_bits & 0x1:
            raise DossierError(f"{info.filename} is encrypted: send plain ZIP files",
                               "package")
        if info.file_size > max_bytes:
            raise DossierError(f"{info.filename} is larger than the upload limit", "package")
        if info.file_size > limits.max_ratio * max(info.compress_size, 1) and \
                info.file_size > 1024:
            raise DossierError(
                f"{info.filename} expands {info.file_size // max(info.compress_size, 1)} "
                f"times (limit {limits.max_ratio}, setting package_max_ratio): a ZIP bomb?",
                "package")
        by_name[name] = info
    return by_name


def read_manifest(archive: zipfile.ZipFile, *, max_bytes: int,
                  limits: PackageLimits | None = None) -> Manifest:
    limits = limits or PackageLimits()
    by_name = check_directory(archive, max_bytes=max_bytes, limits=limits)
    info = by_name.get("manifest.json")
    if info is None:
        raise DossierError("the package has no manifest.json at its top level", "package")
    if info.file_size > MAX_MANIFEST_BYTES:
        raise DossierError(f"manifest.json is larger than {MAX_MANIFEST_BYTES // MB} MB",
                           "manifest")
    with archive.open(info) as member:
        reader = _CountingReader(member, name="manifest.json", declared=info.file_size,
                                 budget=MAX_MANIFEST_BYTES)
        raw = b"".join(iter(lambda: reader.read(1 << 20), b""))
    try:
        data = json.loads(raw.decode("utf-8-sig"))  # a byte-order mark is fine
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DossierError(f"manifest.json is not valid UTF-8 JSON: {exc}",
                           "manifest") from None
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DossierError(first["msg"], f"manifest.{where}") from None
    names = set(by_name)
    for i, d in enumerate(manifest.dossiers):
        if d.office.upper() != manifest.office.upper():
            raise DossierError(f"dossier of {d.office} in a package of {manifest.office}",
                               f"manifest.dossiers.{i}.office")
        docs = {doc.file for doc in d.documents}
        for j, doc in enumerate(d.documents):
            if _safe_member(doc.file) not in names:
                raise DossierError(f"{doc.file} is not in the package",
                                   f"manifest.dossiers.{i}.documents.{j}.file")
            _check_package_original(d.documents, j, f"manifest.dossiers.{i}.documents.{j}")
        for j, c in enumerate(d.citations):
            if c.document and c.document not in docs:
                raise DossierError(f"{c.document} is not a document of this dossier",
                                   f"manifest.dossiers.{i}.citations.{j}.document")
    total = sum(by_name[_safe_member(doc.file)].file_size
                for d in manifest.dossiers for doc in d.documents)
    if total > limits.max_total_bytes:
        raise DossierError(
            f"the package's documents inflate to {total // MB} MB (limit "
            f"{limits.max_total_bytes // MB} MB, setting package_max_total_mb)", "package")
    return manifest


def import_package(
    session: Session,
    store: StorageBackend,
    *,
    stream: BinaryIO,
    office: str | None,
    registry: DocTypeRegistry,
    max_bytes: int,
    actor_id: int | None,
    limits: PackageLimits | None = None,
    access: Access | None = None,
) -> dict[str, Any]:
    """Import a package for ``office`` (``None``: the manifest's office, CLI use).
    ``access``: what the importer may see, for a ``translation_of`` naming a held
    document (``None``: a trusted operator).

    Returns a summary; commits on success, rolls back and removes new files
    on failure (re-raising the :class:`DossierError`).
    """
    limits = limits or PackageLimits()
    digest = hashlib.sha256()
    stream.seek(0)
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
    sha = digest.hexdigest()
    stream.seek(0)
    previous = session.get(ImportRecord, sha)
    if previous is not None:
        return {**previous.summary, "already_imported": True}
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise DossierError("not a ZIP file (or a damaged one)", "package") from None
    stored: dict[str, StoredFile] = {}
    try:
        with archive:
            manifest = read_manifest(archive, max_bytes=max_bytes, limits=limits)
            if office is not None and manifest.office.upper() != office:
                raise DossierError(
                    f"your office is {office}; this package is for {manifest.office}",
                    "manifest.office")
            metas = _check_rows(session, manifest, registry)
            # files first, outside any transaction: inflating and hashing take time
            texts = _store_files(archive, store, manifest, stored, max_bytes=max_bytes,
                                 limits=limits)
        # then one short transaction for the rows
        counts = {"dossiers": 0, "documents": 0, "citations": 0}
        for i, d in enumerate(manifest.dossiers):
            bib = DossierIn.model_validate(d.model_dump(exclude={"documents", "citations"}))
            try:
                app, _ = service.upsert_dossier(session, data=bib, actor_id=actor_id)
            except DossierError as exc:
                raise DossierError(str(exc).split(": ", 1)[-1],
                                   f"manifest.dossiers.{i}.{exc.field}") from None
            counts["dossiers"] += 1
            by_file = _add_documents(session, app, d, i, metas, stored, texts,
                                     actor_id=actor_id, access=access)
            counts["documents"] += len(d.documents)
            for c in d.citations:
                service.add_citation(session, app=app, actor_id=actor_id, data=CitationIn(
                    cited=c.cited, category=c.category, claims=c.claims, phase=c.phase,
                    document_id=by_file.get(c.document) if c.document else None))
                counts["citations"] += 1
        summary = {"office": manifest.office.upper(), "sha256": sha, **counts}
        session.add(ImportRecord(sha256=sha, office_code=manifest.office.upper(),
                                 user_id=actor_id, summary=summary))
        try:
            session.commit()
        except IntegrityError:
            # the same package, sent twice at once, landed first from the other request
            session.rollback()
            previous = session.get(ImportRecord, sha)
            if previous is None:
                raise
            _discard(session, store, stored.values())
            return {**previous.summary, "already_imported": True}
        return {**summary, "already_imported": False}
    except BaseException:
        session.rollback()
        try:
            _discard(session, store, stored.values())
        finally:
            session.rollback()
        raise


def _add_documents(session: Session, app: Application, d: PackageDossier, i: int,
                   metas: dict[tuple[int, int], service.DocumentMeta],
                   stored: dict[str, StoredFile], texts: dict[str, tuple[str, int | None]], *,
                   actor_id: int | None, access: Access | None) -> dict[str, int]:
    """One dossier entry's documents; returns their ids by package path.  A translation
    naming a package path is paired once every document of the entry has its id."""
    by_file: dict[str, int] = {}
    added: list[tuple[PackageDocument, Document]] = []
    for j, doc in enumerate(d.documents):
        meta = metas[i, j]
        if meta.translation_of is not None:
            service.check_original(session, access, app=app, original_id=meta.translation_of,
                                   language=meta.language,
                                   field=f"manifest.dossiers.{i}.documents.{j}.translation_of")
        name = _safe_member(doc.file)
        text, pages = texts[name]
        document = service.add_stored_document(
            session, app=app, meta=meta, stored=stored[name],
            filename=PurePosixPath(doc.file).name, text=text, pages=pages,
            actor_id=actor_id)
        by_file[doc.file] = document.id or 0
        added.append((doc, document))
    for doc, document in added:
        if isinstance(doc.translation_of, str):
            document.translation_of = by_file[doc.translation_of]
            document.is_translation = True
            session.add(document)
    return by_file


def _check_rows(session: Session, manifest: Manifest,
                registry: DocTypeRegistry) -> dict[tuple[int, int], service.DocumentMeta]:
    """Every document's metadata and every citation, checked before any byte is stored."""
    metas = {}
    for i, d in enumerate(manifest.dossiers):
        for j, doc in enumerate(d.documents):
            try:
                metas[i, j] = service.check_document_meta(session, _meta(doc), registry)
            except DossierError as exc:
                raise DossierError(str(exc).split(": ", 1)[-1],
                                   f"manifest.dossiers.{i}.documents.{j}."
                                   f"{exc.field}") from None
        for j, c in enumerate(d.citations):
            try:
                CitationIn(cited=c.cited, category=c.category, claims=c.claims,
                           phase=c.phase)
            except ValidationError as exc:
                msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
                raise DossierError(msg, f"manifest.dossiers.{i}.citations.{j}"
                                        ".category") from None
    return metas


def _store_files(
    archive: zipfile.ZipFile, store: StorageBackend, manifest: Manifest,
    stored: dict[str, StoredFile], *, max_bytes: int, limits: PackageLimits,
) -> dict[str, tuple[str, int | None]]:
    """Inflate each document file once into the store, counting every byte
    against the package's budget; fills ``stored`` as it goes (so that the
    caller can remove them on failure) and returns each file's text."""
    budget = limits.max_total_bytes
    texts: dict[str, tuple[str, int | None]] = {}
    infos = {_safe_member(info.filename): info for info in archive.infolist()}
    for d in manifest.dossiers:
        for doc in d.documents:
            name = _safe_member(doc.file)
            if name in stored:
                continue
            info = infos[name]  # by its normalised name: "docs/./a.pdf" is "docs/a.pdf"
            with archive.open(info) as member:
                reader = _CountingReader(member, name=doc.file, declared=info.file_size,
                                         budget=budget)
                try:
                    stored[name] = store.put(reader, max_bytes=max_bytes)  # type: ignore[arg-type]
                except StorageError as exc:
                    raise DossierError(f"{doc.file}: {exc}", "package") from None
                except _INFLATE_ERRORS as exc:
                    raise DossierError(f"{doc.file} is damaged or not what the package's "
                                       f"directory says ({exc})", "package") from None
            budget -= reader.count
            texts[name] = service.document_text(store, stored[name])
    return texts


def _discard(session: Session, store: StorageBackend, files: Any) -> None:
    """Remove the files a refused package added, unless a document row uses
    the same content by now (an upload of the same file may have landed while
    this package was being inflated)."""
    for saved in files:
        if not saved.created:
            continue
        in_use = session.exec(select(Document.id).where(
            Document.sha256 == saved.sha256).limit(1)).first()
        if in_use is None:
            store.discard(saved)


def _meta(doc: PackageDocument) -> service.DocumentMeta:
    return service.DocumentMeta(
        code=doc.code, date=doc.date, language=doc.language,
        is_translation=doc.is_translation or doc.translation_of is not None,
        visibility=doc.visibility, offices=tuple(doc.offices), label=doc.label,
        translation_of=doc.translation_of if isinstance(doc.translation_of, int) else None)
