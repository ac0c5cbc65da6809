"""Putting dossiers in: bibliographic data, families, documents, citations.

Every function here writes inside the caller's transaction and adds the
matching event; the caller commits (or rolls back, and nothing happened).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import BinaryIO

from sqlalchemy import and_, or_
from sqlmodel import Session, select

from caseforum.doccodes import DocTypeRegistry, normalise_code
from caseforum.dossiers.access import Access
from caseforum.dossiers.languages import normalise_language
from caseforum.dossiers.pdftext import pdf_text, plain_text
from caseforum.dossiers.schemas import CitationIn, DossierError, DossierIn
from caseforum.events import emit
from caseforum.models import (
    Application,
    Citation,
    Document,
    DocumentOffice,
    Family,
    Office,
    Priority,
    Visibility,
    utcnow,
)
from caseforum.numbers import (
    AppNumber,
    NumberError,
    parse_application_number,
    parse_publication_number,
)
from caseforum.storage import StorageError, StoredFile, safe_filename
from caseforum.storage_backends import StorageBackend


def _language(given: str) -> str:
    language = normalise_language(given)
    if language is None:
        raise DossierError("use a BCP-47 language tag of at most 8 characters: an ISO 639 "
                           "code such as en, ja, zh or ko, optionally with a script or "
                           "region (zh-Hant, pt-BR)", "language")
    return language


def _known_offices(session: Session) -> set[str]:
    return set(session.exec(select(Office.code))) | {"EP", "WO", "DE", "FR"}


def parse_number(session: Session, text: str, *, office: str | None, field: str) -> AppNumber:
    try:
        return parse_application_number(text, office=office,
                                         known_offices=_known_offices(session))
    except NumberError as exc:
        raise DossierError(str(exc), field) from None


def _not_future(value: date, field: str) -> None:
    if value > date.today() + timedelta(days=1):
        raise DossierError(f"{value.isoformat()} is in the future", field)


def upsert_dossier(
    session: Session, *, data: DossierIn, actor_id: int | None, source: str = "hosted",
    source_ref: str = "",
) -> tuple[Application, bool]:
    """Create or update a dossier; returns it and whether it is new."""
    office = session.get(Office, data.office)
    if office is None:
        raise DossierError(f"unknown office {data.office!r}", "office")
    if not office.providing:
        raise DossierError(f"office {office.code} is not a providing office", "office")
    if not data.publication_number or not data.publication_date:
        raise DossierError(
            "unpublished application: CaseForum shares published applications only; "
            "give publication_number and publication_date", "publication_number")
    number = parse_number(session, data.application_number, office=data.office,
                          field="application_number")
    if number.office != office.code:
        raise DossierError(
            f"{data.application_number!r} is an application of {number.office}, "
            f"not of {office.code}", "application_number")
    try:
        pub = parse_publication_number(data.publication_number,
                                       known_offices=_known_offices(session) | {"WO"},
                                       office=None if office.code == "IB" else office.code)
    except NumberError as exc:
        raise DossierError(str(exc), "publication_number") from None
    _not_future(data.filing_date, "filing_date")
    _not_future(data.publication_date, "publication_date")
    if data.publication_date < data.filing_date:
        raise DossierError("comes before filing_date", "publication_date")
    priorities = []
    for i, p in enumerate(data.priorities):
        pn = parse_number(session, p.number, office=p.office.upper(),
                          field=f"priorities[{i}].number")
        if p.date > data.filing_date:
            raise DossierError("a priority date cannot be after the filing date",
                               f"priorities[{i}].date")
        priorities.append((pn, p.date))
    pct = None
    if data.pct_application_number:
        pct = parse_number(session, data.pct_application_number, office=None,
                           field="pct_application_number")
        if pct.kind != "pct":
            raise DossierError("give a PCT number such as PCT/CN2015/000123",
                               "pct_application_number")

    app = session.exec(select(Application).where(
        Application.office_code == office.code, Application.number == number.number)).first()
    created = app is None
    if app is None:
        app = Application(office_code=office.code, number=number.number,
                          display_number=number.display, filing_date=data.filing_date,
                          publication_number=pub.office + pub.number,
                          publication_date=data.publication_date, title=data.title)
    app.display_number = number.display
    app.kind = number.kind
    app.filing_date = data.filing_date
    app.publication_number = pub.office + pub.number
    app.publication_display = pub.display
    app.publication_date = data.publication_date
    app.title = data.title
    app.applicants = [a for a in data.applicants if a]
    app.ipc = [c for c in data.ipc if c]
    app.cpc = [c for c in data.cpc if c]
    app.pct_number = pct.number if pct else None
    app.source = source
    app.source_ref = source_ref
    app.updated_at = utcnow()
    session.add(app)
    session.flush()
    for old in session.exec(select(Priority).where(Priority.application_id == app.id)):
        session.delete(old)
    for pn, pdate in priorities:
        session.add(Priority(application_id=app.id or 0, office_code=pn.office,
                             number=pn.number, display_number=pn.display, date=pdate))
    session.flush()
    link_family(session, app)
    emit(session, kind="dossier.created" if created else "dossier.updated", actor_id=actor_id,
         office_code=app.office_code, subject_type="application", subject_id=app.id or "",
         payload={"application_id": app.id, "office": app.office_code, "number": app.number,
                  "family_id": app.family_id})
    return app, created


def _identifiers(session: Session, app: Application) -> set[tuple[str, str]]:
    ids = {(app.office_code, app.number)}
    ids |= {(p.office_code, p.number) for p in session.exec(
        select(Priority).where(Priority.application_id == app.id))}
    if app.pct_number:
        ids.add(("IB", app.pct_number))
    return ids


def merge_families(session: Session, target: int, others: list[int]) -> None:
    """Move every member of the ``others`` families into ``target``; drop the others."""
    for other in others:
        for moved in session.exec(select(Application).where(Application.family_id == other)):
            moved.family_id = target
            session.add(moved)
        session.flush()
        merged = session.get(Family, other)
        if merged is not None:
            session.delete(merged)  # its members now belong to ``target``


def link_family(session: Session, app: Application) -> Family:
    """Join ``app`` to every family it shares a number with (its own number,
    a priority claim or the PCT route), merging families it connects."""
    ids = _identifiers(session, app)
    pairs = [and_(Application.office_code == o, Application.number == n) for o, n in ids]
    prio_pairs = [and_(Priority.office_code == o, Priority.number == n) for o, n in ids]
    pct_numbers = [n for o, n in ids if o == "IB"]
    related: set[int] = set()
    related |= set(session.exec(select(Application.id).where(or_(*pairs))))
    related |= set(session.exec(select(Priority.application_id).where(or_(*prio_pairs))))
    if pct_numbers:
        related |= set(session.exec(select(Application.id).where(
            Application.pct_number.in_(pct_numbers))))  # type: ignore[union-attr]
    members = list(session.exec(select(Application).where(
        Application.id.in_(related | {app.id}))))  # type: ignore[union-attr]
    families = sorted({m.family_id for m in members if m.family_id})
    if families:
        target = families[0]
        merge_families(session, target, families[1:])
    else:
        family = Family()
        session.add(family)
        session.flush()
        target = family.id or 0
    for member in members:
        member.family_id = target
        session.add(member)
    session.flush()
    return session.get(Family, target)  # type: ignore[return-value]


@dataclass(frozen=True)
class DocumentMeta:
    code: str
    date: date
    language: str = "en"
    is_translation: bool = False
    visibility: str = "offices"
    offices: tuple[str, ...] = ()
    label: str = ""  # the office's own label; empty: the code tables' label
    translation_of: int | None = None  # a translation: the id of its original (same dossier)


#: longest label kept (the column's size); a recorded USPTO label runs to about 120
MAX_LABEL = 300


def _check_visibility(session: Session, given: str,
                      named: Iterable[str]) -> tuple[Visibility, tuple[str, ...]]:
    """A document's visibility and, for a restricted one, the offices that may see it."""
    try:
        visibility = Visibility(given.strip().lower())
    except ValueError:
        raise DossierError("use public, offices or restricted", "visibility") from None
    offices = tuple(sorted({o.strip().upper() for o in named if o.strip()}))
    if visibility == Visibility.restricted:
        if not offices:
            raise DossierError("a restricted document needs the offices that may see it",
                               "offices")
        known = _known_offices(session)
        unknown = [o for o in offices if o not in known]
        if unknown:
            raise DossierError(f"unknown office {unknown[0]!r}", "offices")
    elif offices:
        raise DossierError("offices are named only with visibility=restricted", "offices")
    return visibility, offices


def check_document_meta(
    session: Session, meta: DocumentMeta, registry: DocTypeRegistry
) -> DocumentMeta:
    """Validate before any byte is stored.

    Any well-formed code is accepted, known or not (offices have their own code
    lists, see :mod:`caseforum.doccodes`), so ``registry`` no longer decides; pages
    describe the code when they show it."""
    try:
        code = normalise_code(meta.code)
    except ValueError as exc:
        raise DossierError(str(exc), "code") from None
    label = " ".join(meta.label.split())
    if len(label) > MAX_LABEL:
        raise DossierError(f"at most {MAX_LABEL} characters", "label")
    _not_future(meta.date, "date")
    language = _language(meta.language)
    visibility, offices = _check_visibility(session, meta.visibility, meta.offices)
    return DocumentMeta(code=code, date=meta.date, language=language,
                        is_translation=meta.is_translation or meta.translation_of is not None,
                        visibility=visibility.value, offices=offices, label=label,
                        translation_of=meta.translation_of)


def check_original(session: Session, access: Access | None, *, app: Application,
                   original_id: int, language: str, field: str = "translation_of") -> Document:
    """The original a new translation names, or a :class:`DossierError` on ``field``.

    It must be a document of the same dossier that the uploader may see (``access``;
    ``None``: a trusted operator, the CLI), itself an original (no chains: a pair is an
    original and its translations), in another language.  Missing, hidden and of
    another dossier read alike, so the answer tells nothing of what the uploader may
    not see."""
    found = access.document(original_id) if access is not None else None
    original = found[0] if found is not None else (
        session.get(Document, original_id) if access is None else None)
    if original is None or original.application_id != app.id:
        raise DossierError(
            f"no document {original_id} in {app.office_code} {app.display_number} for you: "
            "name the original by the id of one of this dossier's documents", field)
    if original.translation_of is not None or original.is_translation:
        raise DossierError(
            f"document {original_id} is a translation itself: name its original", field)
    if original.language == language:
        raise DossierError(
            f"document {original_id} is in {language} too: a translation is in another "
            "language than its original", field)
    return original


def add_document(
    session: Session,
    store: StorageBackend,
    *,
    app: Application,
    meta: DocumentMeta,
    stream: BinaryIO,
    filename: str,
    max_bytes: int,
    registry: DocTypeRegistry,
    actor_id: int | None,
    access: Access | None = None,
) -> tuple[Document, StoredFile]:
    """Store the file and add the document.  On any error nothing new stays:
    the caller rolls back and calls ``store.discard`` on the returned file.

    A translation (``meta.translation_of``) is checked against ``access``, the
    uploader's view: see :func:`check_original`."""
    meta = check_document_meta(session, meta, registry)
    if meta.translation_of is not None:  # before the row exists: it cannot name itself
        check_original(session, access, app=app, original_id=meta.translation_of,
                       language=meta.language)
    try:
        stored = store.put(stream, max_bytes=max_bytes)
    except StorageError as exc:  # keeps its status: a file over the limit is a 413
        raise DossierError(str(exc), "file", status=exc.status, code=exc.code) from None
    text, pages = document_text(store, stored)
    document = add_stored_document(session, app=app, meta=meta, stored=stored,
                                   filename=filename, text=text, pages=pages,
                                   actor_id=actor_id)
    return document, stored


def document_text(store: StorageBackend, stored: StoredFile) -> tuple[str, int | None]:
    """The searchable text and page count of a stored file.  Slow for a big PDF:
    bulk imports call it before their write transaction begins."""
    if stored.media_type not in ("application/pdf", "text/plain", "application/xml"):
        return "", None
    with store.local_copy(stored.sha256) as path:
        if stored.media_type == "application/pdf":
            return pdf_text(path)
        return plain_text(path), None


def add_stored_document(
    session: Session,
    *,
    app: Application,
    meta: DocumentMeta,
    stored: StoredFile,
    filename: str,
    text: str,
    pages: int | None,
    actor_id: int | None,
) -> Document:
    """The rows and event for a file already in the store (``meta`` checked)."""
    document = Document(
        application_id=app.id or 0, code=meta.code, label=meta.label, date=meta.date,
        language=meta.language, translation_of=meta.translation_of,
        is_translation=meta.is_translation, media_type=stored.media_type, size=stored.size,
        sha256=stored.sha256, filename=safe_filename(filename, stored.media_type), pages=pages,
        visibility=Visibility(meta.visibility), text_content=text,
    )
    session.add(document)
    session.flush()
    for office in meta.offices:
        session.add(DocumentOffice(document_id=document.id or 0, office_code=office))
    app.updated_at = utcnow()
    session.add(app)
    emit(session, kind="document.added", actor_id=actor_id, office_code=app.office_code,
         subject_type="document", subject_id=document.id or "",
         payload={"application_id": app.id, "document_id": document.id, "code": meta.code,
                  "office": app.office_code, "number": app.number,
                  "family_id": app.family_id})
    return document


def set_document_visibility(session: Session, *, document: Document, visibility: str,
                            offices: Iterable[str] = (), actor_id: int | None) -> Document:
    """Change who may see a document: its visibility and, for a restricted one, the
    offices named.  The event re-indexes it for search; until then search decides
    it from these rows (``search/grants.py``)."""
    checked, named = _check_visibility(session, visibility, offices)
    for row in session.exec(select(DocumentOffice).where(
            DocumentOffice.document_id == document.id)):
        session.delete(row)
    session.flush()
    document.visibility = checked
    session.add(document)
    for office in named:
        session.add(DocumentOffice(document_id=document.id or 0, office_code=office))
    app = session.get(Application, document.application_id)
    emit(session, kind="document.visibility_changed", actor_id=actor_id,
         office_code=app.office_code if app else None, subject_type="document",
         subject_id=document.id or "",
         payload={"application_id": document.application_id, "document_id": document.id,
                  "visibility": checked.value, "offices": list(named)})
    return document


def add_citation(
    session: Session, *, app: Application, data: CitationIn, actor_id: int | None
) -> Citation:
    if data.document_id is not None:
        doc = session.get(Document, data.document_id)
        if doc is None or doc.application_id != app.id:
            raise DossierError(
                f"document {data.document_id} is not a document of {app.office_code} "
                f"{app.display_number}", "document_id")
    cited_number = None
    try:
        pub = parse_publication_number(data.cited, known_offices=_known_offices(session))
        cited_number = pub.office + pub.number
    except NumberError:
        pass  # non-patent literature stays as text
    citation = Citation(application_id=app.id or 0, document_id=data.document_id,
                        cited=data.cited, cited_number=cited_number, category=data.category,
                        claims=data.claims, phase=data.phase, citing_office=app.office_code)
    session.add(citation)
    session.flush()
    emit(session, kind="citation.added", actor_id=actor_id, office_code=app.office_code,
         subject_type="citation", subject_id=citation.id or "",
         payload={"application_id": app.id, "citation_id": citation.id,
                  "family_id": app.family_id})
    return citation


def get_dossier(session: Session, *, office: str, number: str) -> Application | None:
    """Look up by office and any accepted form of its application number.

    The stored (office, number) pair is tried first: it is what our own links
    carry, and for a PCT application (office IB, number ``JP2020009517``) it is
    not a form the number parser accepts with an office given."""
    exact = session.exec(select(Application).where(
        Application.office_code == office.upper(), Application.number == number)).first()
    if exact is not None:
        return exact
    try:
        parsed = parse_application_number(number, office=office.upper(),
                                          known_offices=_known_offices(session))
    except NumberError:
        return None
    return session.exec(select(Application).where(
        Application.office_code == parsed.office, Application.number == parsed.number)).first()
