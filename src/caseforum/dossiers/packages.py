"""Bulk packages: a ZIP with ``manifest.json`` and the document files.

The whole package lands in one transaction or not at all: everything is
checked before the first write, files added by a failed import are removed,
and a package already imported (same SHA-256) changes nothing.

Manifest::

    {"office": "JP",
     "dossiers": [{<dossier fields as for POST /api/v1/dossiers>,
                   "documents": [{"file": "docs/sr.pdf", "code": "SRPT",
                                  "date": "2018-05-01", "language": "ja",
                                  "visibility": "offices", "offices": [],
                                  "is_translation": false}],
                   "citations": [{"cited": "WO 2016/123456 A1", "category": "X",
                                  "claims": "1-3", "phase": "search",
                                  "document": "docs/sr.pdf"}]}]}
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import date
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session

from caseforum.doccodes import DocTypeRegistry
from caseforum.dossiers import service
from caseforum.dossiers.schemas import CitationIn, DossierError, DossierIn
from caseforum.models import ImportRecord
from caseforum.storage import FileStore, StoredFile

MAX_MEMBERS = 10_000
MAX_RATIO = 200  # compressed-to-uncompressed: beyond this it is a zip bomb


class PackageDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    file: str = Field(min_length=1, max_length=500)
    code: str
    date: date
    language: str = "en"
    visibility: str = "offices"
    offices: list[str] = Field(default_factory=list)
    is_translation: bool = False


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


def read_manifest(archive: zipfile.ZipFile, *, max_bytes: int) -> Manifest:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise DossierError(f"too many files (limit {MAX_MEMBERS})", "package")
    for info in infos:
        _safe_member(info.filename)
        if info.external_attr >> 16 & 0o170000 == 0o120000:
            raise DossierError(f"symbolic link {info.filename!r} in the package", "package")
        if info.file_size > max_bytes:
            raise DossierError(f"{info.filename} is larger than the upload limit", "package")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
            raise DossierError(f"{info.filename} expands suspiciously (zip bomb?)", "package")
    try:
        raw = archive.read("manifest.json")
    except KeyError:
        raise DossierError("the package has no manifest.json at its top level",
                           "package") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DossierError(f"manifest.json is not valid JSON: {exc}", "manifest") from None
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DossierError(first["msg"], f"manifest.{where}") from None
    names = {i.filename for i in infos}
    for i, d in enumerate(manifest.dossiers):
        if d.office.upper() != manifest.office.upper():
            raise DossierError(f"dossier of {d.office} in a package of {manifest.office}",
                               f"manifest.dossiers.{i}.office")
        docs = {doc.file for doc in d.documents}
        for j, doc in enumerate(d.documents):
            if _safe_member(doc.file) not in names:
                raise DossierError(f"{doc.file} is not in the package",
                                   f"manifest.dossiers.{i}.documents.{j}.file")
        for j, c in enumerate(d.citations):
            if c.document and c.document not in docs:
                raise DossierError(f"{c.document} is not a document of this dossier",
                                   f"manifest.dossiers.{i}.citations.{j}.document")
    return manifest


def import_package(
    session: Session,
    store: FileStore,
    *,
    stream: BinaryIO,
    office: str | None,
    registry: DocTypeRegistry,
    max_bytes: int,
    actor_id: int | None,
) -> dict[str, Any]:
    """Import a package for ``office`` (``None``: the manifest's office, CLI use).

    Returns a summary; commits on success, rolls back and removes new files
    on failure (re-raising the :class:`DossierError`).
    """
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
    except zipfile.BadZipFile:
        raise DossierError("not a ZIP file (or a damaged one)", "package") from None
    stored: list[StoredFile] = []
    try:
        with archive:
            manifest = read_manifest(archive, max_bytes=max_bytes)
            if office is not None and manifest.office.upper() != office:
                raise DossierError(
                    f"your office is {office}; this package is for {manifest.office}",
                    "manifest.office")
            for i, d in enumerate(manifest.dossiers):  # check every document before writing
                for j, doc in enumerate(d.documents):
                    try:
                        service.check_document_meta(session, _meta(doc), registry)
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
            counts = {"dossiers": 0, "documents": 0, "citations": 0}
            for i, d in enumerate(manifest.dossiers):
                bib = DossierIn.model_validate(d.model_dump(exclude={"documents", "citations"}))
                try:
                    app, _ = service.upsert_dossier(session, data=bib, actor_id=actor_id)
                except DossierError as exc:
                    raise DossierError(str(exc).split(": ", 1)[-1],
                                       f"manifest.dossiers.{i}.{exc.field}") from None
                counts["dossiers"] += 1
                by_file: dict[str, int] = {}
                for doc in d.documents:
                    with archive.open(_safe_member(doc.file)) as member:
                        document, saved = service.add_document(
                            session, store, app=app, meta=_meta(doc), stream=member,
                            filename=PurePosixPath(doc.file).name, registry=registry,
                            max_bytes=max_bytes, actor_id=actor_id)
                    stored.append(saved)
                    by_file[doc.file] = document.id or 0
                    counts["documents"] += 1
                for c in d.citations:
                    service.add_citation(session, app=app, actor_id=actor_id, data=CitationIn(
                        cited=c.cited, category=c.category, claims=c.claims, phase=c.phase,
                        document_id=by_file.get(c.document) if c.document else None))
                    counts["citations"] += 1
            summary = {"office": manifest.office.upper(), "sha256": sha, **counts}
            session.add(ImportRecord(sha256=sha, office_code=manifest.office.upper(),
                                     user_id=actor_id, summary=summary))
            session.commit()
            return {**summary, "already_imported": False}
    except BaseException:
        session.rollback()
        for saved in stored:
            store.discard(saved)
        raise


def _meta(doc: PackageDocument) -> service.DocumentMeta:
    return service.DocumentMeta(code=doc.code, date=doc.date, language=doc.language,
                                is_translation=doc.is_translation, visibility=doc.visibility,
                                offices=tuple(doc.offices))
