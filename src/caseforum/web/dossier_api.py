"""Dossier API for office machine clients (bearer tokens) and scripts.

Field names are those of the upload, so what an office sends is what it
(and every accessing office) gets back.
"""

import functools
import hashlib
import json
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import and_, bindparam, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from caseforum import errors
from caseforum.authz import Viewer, require
from caseforum.db import SessionDep
from caseforum.dossiers import remote, service
from caseforum.dossiers.access import Access, pairs
from caseforum.dossiers.packages import PackageLimits, import_package
from caseforum.dossiers.schemas import (
    CitationIn,
    CitationOut,
    DocumentOut,
    DossierError,
    DossierIn,
    DossierOut,
    FamilyMemberOut,
)
from caseforum.dossiers.usage import log_access
from caseforum.models import Application, Citation, Document, IdempotencyRecord, Priority
from caseforum.numbers import NumberError, parse_publication_number, search_link
from caseforum.web.content import content_response, signed_url
from caseforum.web.deps import CurrentViewer
from caseforum.web.dossier_pages import document_bytes
from caseforum.web.params import MAX_ID, PathId

router = APIRouter(prefix="/api/v1", tags=["dossiers"])

ERRORS = errors.API_ERRORS  # detail says what to fix; DossierError adds `field`


def _visible_app(session: Session, access: Access, office: str, number: str) -> Application:
    app = service.get_dossier(session, office=office, number=number)
    if app is None or not access.can_see(app):
        raise errors.NotFound(f"no dossier {office}/{number}")
    return app


@functools.lru_cache(maxsize=2048)  # dossiers share prior art; a pure function of the text
def _link(cited: str) -> str | None:
    try:
        return search_link(parse_publication_number(cited))
    except (NumberError, ValueError):
        return None


def document_out(request: Request, access: Access, doc: Document, app: Application,
                 target: Any = None) -> DocumentOut:
    info = request.app.state.doc_types.describe(app.office_code, doc.code, doc.label)
    if target is None:
        target = access.document_targets([doc], {app.id: app})[doc.id or 0]  # type: ignore[dict-item]
    original, translations = access.counterparts(doc, app)
    return DocumentOut(
        id=doc.id or 0, code=doc.code, label=info.label, group=info.group,
        direction=info.direction,
        date=doc.date, language=doc.language, is_translation=doc.is_translation,
        translation_of=original.id if original else None,
        translations=[t.id or 0 for t in translations],
        visibility=str(doc.visibility), offices=access.named_offices(target),
        media_type=doc.media_type, size=doc.size, sha256=doc.sha256, pages=doc.pages,
        filename=doc.filename)


def citation_out(c: Citation) -> CitationOut:
    return CitationOut(id=c.id or 0, cited=c.cited, category=c.category, claims=c.claims,
                       phase=c.phase, document_id=c.document_id, citing_office=c.citing_office,
                       link=_link(c.cited))


def family_out(members: list[Application]) -> list[FamilyMemberOut]:
    return [FamilyMemberOut(office=m.office_code, application_number=m.number,
                            display_number=m.display_number, filing_date=m.filing_date,
                            publication_number=m.publication_number, title=m.title)
            for m in members]


_APP = Application.__table__  # type: ignore[attr-defined]
_EXACT = and_(_APP.c.office_code == bindparam("office"), _APP.c.number == bindparam("number"))
#: the dossier (stored office and number) and every member of its family, the columns the
#: answer needs; built once, so a request only binds the office and number
DOSSIER_AND_FAMILY = (
    sa_select(*(_APP.c[name] for name in (
        "id", "office_code", "number", "display_number", "kind", "filing_date",
        "publication_number", "publication_date", "title", "applicants", "ipc", "cpc",
        "pct_number", "family_id", "source")))
    .where(or_(_EXACT, _APP.c.family_id == sa_select(_APP.c.family_id).where(_EXACT)
               .scalar_subquery()))
    .order_by(_APP.c.filing_date, _APP.c.office_code))
_PRIORITY = Priority.__table__  # type: ignore[attr-defined]
PRIORITIES = (sa_select(_PRIORITY.c.office_code, _PRIORITY.c.number, _PRIORITY.c.date)
              .where(_PRIORITY.c.application_id == bindparam("app_id"))
              .order_by(_PRIORITY.c.date))
_CITATION = Citation.__table__  # type: ignore[attr-defined]
CITATIONS = (sa_select(*(_CITATION.c[name] for name in (
    "id", "cited", "category", "claims", "phase", "document_id", "citing_office")))
             .where(_CITATION.c.application_id == bindparam("app_id"))
             .order_by(_CITATION.c.id))


def _dossier_and_family(session: Session, access: Access, office: str,
                        number: str) -> tuple[Any, list[Any]]:
    """The visible dossier and its visible family (itself included) as column rows.

    One query for the usual case (the stored office and number, as our links and
    clients send them): the dossier and every member of its family come together.
    Another spelling of the number falls back to the parsing lookup."""
    office = office.upper()
    rows = session.connection().execute(
        DOSSIER_AND_FAMILY, {"office": office, "number": number}).all()
    app = next((r for r in rows if r.office_code == office and r.number == number), None)
    if app is None:  # another form of the number: found through the parser
        found = _visible_app(session, access, office, number)
        return found, access.family(found)
    if not access.can_see(app):
        raise errors.NotFound(f"no dossier {office}/{number}")
    if app.family_id is None:
        return app, [app]
    return app, [r for r in rows if r.family_id == app.family_id and access.can_see(r)]


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def dossier_body(request: Request, session: Session, access: Access, app: Any,
                 family: list[Any]) -> dict[str, Any]:
    """The :class:`DossierOut` answer as plain JSON values, built from rows.

    Built directly rather than through the model: validating our own data again
    cost more than all the queries (tests check the shape).  The queries run on the
    session's connection, which does not flush: a caller with pending changes
    flushes first."""
    describe = request.app.state.doc_types.describe
    docs = access.document_rows(app.id, app.office_code)
    doc_ids = {row.id for row, _ in docs}
    paired = pairs(row for row, _ in docs)
    connection = session.connection()
    priorities = connection.execute(PRIORITIES, {"app_id": app.id}).all()
    citations = connection.execute(CITATIONS, {"app_id": app.id}).all()
    stale_since, labels, publications = None, {}, None
    if app.source != "hosted":  # a remote copy: its freshness and the source's own labels
        facts = remote.remote_facts(session, [app.id]).get(app.id)
        if facts is not None:
            stale_since, publications = facts.stale_since, list(facts.publications)
        labels = remote.document_labels(session, list(doc_ids))

    return {
        "office": app.office_code, "application_number": app.number,
        "display_number": app.display_number, "kind": app.kind,
        "filing_date": _iso(app.filing_date), "publication_number": app.publication_number,
        "publication_date": _iso(app.publication_date), "title": app.title,
        "applicants": list(app.applicants), "ipc": list(app.ipc), "cpc": list(app.cpc),
        "priorities": [{"office": p.office_code, "number": p.number, "date": _iso(p.date)}
                       for p in priorities],
        "pct_application_number": app.pct_number, "source": app.source,
        "stale_since": stale_since.isoformat() if stale_since else None,
        "publications": publications,
        "documents": [{
            "id": d.id, "code": d.code, "label": labels.get(d.id, info.label),
            "group": info.group, "direction": info.direction,
            "date": _iso(d.date), "language": d.language, "is_translation": d.is_translation,
            "translation_of": paired[d.id].translation_of,
            "translations": paired[d.id].translations,
            "visibility": str(d.visibility), "offices": offices,
            "media_type": d.media_type, "size": d.size, "sha256": d.sha256, "pages": d.pages,
            "filename": d.filename}
            for d, offices in docs for info in (describe(app.office_code, d.code, d.label),)],
        "citations": [{
            "id": c.id, "cited": c.cited, "category": c.category, "claims": c.claims,
            "phase": c.phase, "document_id": c.document_id, "citing_office": c.citing_office,
            "link": _link(c.cited)} for c in citations
            if access.shows_citation(c.document_id, doc_ids)],
        "family": [{
            "office": m.office_code, "application_number": m.number,
            "display_number": m.display_number, "filing_date": _iso(m.filing_date),
            "publication_number": m.publication_number, "title": m.title} for m in family],
    }


# Idempotency -------------------------------------------------------------------------


def _replay(session: Session, viewer: Viewer, key: str | None,
            fingerprint: str) -> Response | None:
    if not key:
        return None
    if len(key) > 200:
        raise errors.InvalidInput("Idempotency-Key: at most 200 characters")
    record = session.exec(select(IdempotencyRecord).where(
        IdempotencyRecord.user_id == (viewer.user_id or 0), IdempotencyRecord.key == key)).first()
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise errors.InvalidInput("Idempotency-Key was used before for a "
                                  "different request: use a new key")
    return JSONResponse(record.body, status_code=record.status_code,
                        headers={"Idempotent-Replayed": "true"})


def _remember(session: Session, viewer: Viewer, key: str | None, fingerprint: str,
              status: int, body: dict[str, Any]) -> None:
    if key:
        session.add(IdempotencyRecord(user_id=viewer.user_id or 0, key=key,
                                      fingerprint=fingerprint, status_code=status, body=body))


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


# Endpoints ---------------------------------------------------------------------------


@router.post("/dossiers", response_model=DossierOut, status_code=201, responses=ERRORS,
             summary="Create or update a dossier (providing offices)")
def put_dossier(request: Request, session: SessionDep, viewer: CurrentViewer, data: DossierIn,
                idempotency_key: Annotated[str | None, Header()] = None) -> Response:
    """Creates the dossier (201) or updates the one with the same office and
    application number (200).  Unpublished applications are refused (422)."""
    require(viewer, "dossier.provide", data.office)
    fingerprint = _fingerprint("dossier", data.model_dump(mode="json"))
    if (replay := _replay(session, viewer, idempotency_key, fingerprint)) is not None:
        return replay
    app, created = service.upsert_dossier(session, data=data, actor_id=viewer.user_id)
    access = Access(session, viewer)
    session.flush()  # the body is read with column queries, which do not flush
    body = dossier_body(request, session, access, app, access.family(app))
    status = 201 if created else 200
    _remember(session, viewer, idempotency_key, fingerprint, status, body)
    session.commit()
    return JSONResponse(body, status_code=status)


@router.get("/dossiers/{office}/{number}", response_model=None, response_class=JSONResponse,
            responses={200: {"model": DossierOut}, **ERRORS},
            summary="A dossier with the documents and citations the caller may see")
def get_dossier(request: Request, session: SessionDep, viewer: CurrentViewer, office: str,
                number: str,
                refresh: Annotated[bool, Query(description="ask the source again now")] = False,
                ) -> Response:
    # four queries whatever the number of documents, one thread hop, and no model
    # validation on the way out: the schema is declared, the answer built as JSON values
    access = Access(session, viewer)
    host = request.app.state.plugins
    try:
        app, family = _dossier_and_family(session, access, office, number)
    except errors.NotFound:  # not held here (or hidden): the sources may know it
        fetched = remote.ensure_dossier(session, host, office, number,
                                        ask_sources=may_ask_sources(request, viewer))
        session.commit()
        if fetched is None:
            raise errors.NotFound(f"no dossier {office}/{number}: it is not held here and "
                                  "no dossier source knows it") from None
        app, family = _dossier_and_family(session, access, fetched.office_code,
                                          fetched.number)
    else:
        if app.source != "hosted":  # a remote copy: refreshed when old or asked to
            remote.ensure_dossier(session, host, app.office_code, app.number, refresh=refresh)
            session.commit()
            app, family = _dossier_and_family(session, access, app.office_code, app.number)
    return JSONResponse(dossier_body(request, session, access, app, family))


#: sent by an instance reading this one as a dossier source (plugins/peer_sources.py):
#: such a request is answered from what is held here, so two instances that read each
#: other never ask each other in a circle
PEER_HEADER = "x-caseforum-peer"


def may_ask_sources(request: Request, viewer: Viewer) -> bool:
    return viewer.is_authenticated and PEER_HEADER not in request.headers


@router.get("/dossiers/{office}/{number}/family", response_model=list[FamilyMemberOut],
            responses=ERRORS, summary="The family members the caller may see")
def get_family(session: SessionDep, viewer: CurrentViewer, office: str,
               number: str) -> list[FamilyMemberOut]:
    access = Access(session, viewer)
    return family_out(access.family(_visible_app(session, access, office, number)))


@router.get("/dossiers/{office}/{number}/citations", response_model=list[CitationOut],
            responses=ERRORS, summary="Citations of a dossier (machine-readable)")
def get_citations(session: SessionDep, viewer: CurrentViewer, office: str,
                  number: str) -> list[CitationOut]:
    access = Access(session, viewer)
    app = _visible_app(session, access, office, number)
    return [citation_out(c) for c in access.citations([app], access.documents([app]))]


@router.post("/dossiers/{office}/{number}/citations", response_model=CitationOut,
             status_code=201, responses=ERRORS, summary="Add a citation")
def post_citation(session: SessionDep, viewer: CurrentViewer, office: str, number: str,
                  data: CitationIn,
                  idempotency_key: Annotated[str | None, Header()] = None) -> Response:
    require(viewer, "dossier.provide", office.upper())
    app = _visible_app(session, Access(session, viewer), office, number)
    fingerprint = _fingerprint("citation", office, number, data.model_dump(mode="json"))
    if (replay := _replay(session, viewer, idempotency_key, fingerprint)) is not None:
        return replay
    citation = service.add_citation(session, app=app, data=data, actor_id=viewer.user_id)
    body = citation_out(citation).model_dump(mode="json")
    _remember(session, viewer, idempotency_key, fingerprint, 201, body)
    session.commit()
    return JSONResponse(body, status_code=201)


@router.post("/dossiers/{office}/{number}/documents", response_model=DocumentOut,
             status_code=201, responses=ERRORS, summary="Add a document (multipart upload)")
def post_document(
    request: Request, session: SessionDep, viewer: CurrentViewer, office: str, number: str,
    file: Annotated[UploadFile, File(description="PDF, TIFF, PNG, JPEG, XML or UTF-8 text")],
    code: Annotated[str, Form(max_length=20, description=(
        "the office's document code as it writes it, e.g. SRPT, CTNF, DRW.NONBW, A131; "
        "any code of 1-20 characters A-Z 0-9 . - is kept"))],
    doc_date: Annotated[date, Form(alias="date", description="ISO 8601 date")],
    language: Annotated[str, Form()] = "en",
    visibility: Annotated[str, Form(description="public | offices | restricted")] = "offices",
    offices: Annotated[str, Form(description="for restricted: office codes, e.g. 'JP KR'")] = "",
    is_translation: Annotated[bool, Form()] = False,
    label: Annotated[str, Form(max_length=300, description=(
        "the office's own label for the code; empty: the label of the code tables"))] = "",
    translation_of: Annotated[int | None, Form(ge=1, le=MAX_ID, description=(
        "a translation: the id of its original, a document of the same dossier that you "
        "may see, in another language (is_translation is then implied)"))] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Response:
    require(viewer, "dossier.provide", office.upper())
    access = Access(session, viewer)
    app = _visible_app(session, access, office, number)
    fingerprint = _fingerprint("document", office, number, code, doc_date, language,
                               visibility, offices, is_translation, file.filename,
                               *([label] if label else []),  # old keys stay valid
                               *([translation_of] if translation_of else []))
    if (replay := _replay(session, viewer, idempotency_key, fingerprint)) is not None:
        return replay
    store = request.app.state.store
    stored = None
    try:
        doc, stored = service.add_document(
            session, store, app=app,
            meta=service.DocumentMeta(code=code, date=doc_date, language=language,
                                      is_translation=is_translation, visibility=visibility,
                                      offices=tuple(offices.replace(",", " ").split()),
                                      label=label, translation_of=translation_of),
            stream=file.file, filename=file.filename or "document",
            registry=request.app.state.doc_types,
            max_bytes=request.app.state.settings.max_upload_mb * 1024 * 1024,
            actor_id=viewer.user_id, access=access)
        body = document_out(request, access, doc, app).model_dump(mode="json")
        _remember(session, viewer, idempotency_key, fingerprint, 201, body)
        session.commit()
    except DossierError:  # nothing new stays: the row is rolled back, the file discarded
        session.rollback()
        if stored is not None:
            store.discard(stored)
        raise
    return JSONResponse(body, status_code=201)


@router.get("/documents/{document_id}", response_model=DocumentOut, responses=ERRORS,
            summary="A document's metadata")
def get_document(request: Request, session: SessionDep, viewer: CurrentViewer,
                 document_id: PathId) -> DocumentOut:
    access = Access(session, viewer)
    found = access.document(document_id)
    if found is None:
        raise errors.NotFound("no such document")
    return document_out(request, access, *found)


@router.get("/documents/{document_id}/content", responses={
    200: {"content": {"application/octet-stream": {}},
          "description": "the file, always as an attachment; typed from its bytes "
                         "(PDF, PNG, JPEG, TIFF, UTF-8 text, else application/octet-stream)"},
    **ERRORS},
    summary="A document's file (logged as a download)")
def get_document_content(request: Request, session: SessionDep, viewer: CurrentViewer,
                         document_id: PathId) -> Response:
    found = Access(session, viewer).document(document_id)
    if found is None:
        raise errors.NotFound("no such document")
    doc, app = found
    log_access(session, viewer=viewer, doc=doc, app=app, action="download")
    session.commit()
    settings = request.app.state.settings
    if settings.content_base_url and request.state.auth_kind == "session":
        # a browser: the bytes come only from the content host (scripts keep the token way)
        return RedirectResponse(signed_url(settings, "documents", str(doc.id),
                                           viewer.user_id or 0, download=True), status_code=303)
    chunks = document_bytes(request, session, doc)
    # always a download, typed from the bytes and sandboxed (web/content.py)
    return content_response(chunks, filename=doc.filename, size=doc.size,
                            settings=request.app.state.settings,
                            headers={"ETag": f'"{doc.sha256}"'})


@router.post("/packages", status_code=201, responses=ERRORS,
             summary="Import a bulk package (ZIP with manifest.json): all or nothing")
def post_package(request: Request, session: SessionDep, viewer: CurrentViewer,
                 package: Annotated[UploadFile, File()]) -> Response:
    require(viewer, "dossier.provide", viewer.office_code)
    settings = request.app.state.settings
    summary = import_package(
        session, request.app.state.store, stream=package.file, office=viewer.office_code,
        registry=request.app.state.doc_types,
        max_bytes=settings.max_upload_mb * 1024 * 1024, actor_id=viewer.user_id,
        limits=PackageLimits.from_settings(settings), access=Access(session, viewer))
    return JSONResponse(summary, status_code=200 if summary["already_imported"] else 201)


@router.get("/document-types", summary="The code lists of document types")
def document_types(request: Request) -> list[dict[str, str | None]]:
    """Every known code with its label, group and direction; ``office`` is empty for
    the common codes any office may use.  Codes not listed are accepted too."""
    return [{"office": t.office, "code": t.code, "label": t.label, "group": t.group,
             "direction": t.direction} for t in request.app.state.doc_types.all()]
