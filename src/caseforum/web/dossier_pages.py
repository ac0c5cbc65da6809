"""Examiner pages: find, dossier, family timeline, documents, comparison."""

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from pydantic import Field
from sqlmodel import or_, select

from caseforum import errors
from caseforum.authz import can, require
from caseforum.db import SessionDep
from caseforum.doccodes import DOC_GROUPS, CodeInfo
from caseforum.dossiers import remote, service
from caseforum.dossiers.access import Access, Pair, pairs
from caseforum.dossiers.compare import compare_texts, side_by_side, similarity
from caseforum.dossiers.schemas import CitationIn, DossierError, DossierIn
from caseforum.dossiers.usage import log_access
from caseforum.forum import notify
from caseforum.forum.access import filter_threads
from caseforum.i18n import N_, CMsg, Msg
from caseforum.models import Application, Document, Office, Post, Priority, Reference, Thread
from caseforum.numbers import (
    NumberError,
    looks_like_number,
    parse_publication_number,
    search_link,
)
from caseforum.web.content import content_response, link_refusal, signed_url, viewer_for
from caseforum.web.deps import CurrentViewer
from caseforum.web.params import MAX_ID, OptionalQueryId, PathId
from caseforum.web.templating import render

router = APIRouter(tags=["dossier pages"], include_in_schema=False)


def dossier_url(app: Application) -> str:
    return f"/dossiers/{app.office_code}/{quote(app.number)}"


def _visible_app(session: SessionDep, access: Access, office: str, number: str) -> Application:
    app = service.get_dossier(session, office=office, number=number)
    if app is None or not access.can_see(app):
        raise errors.NotFound(Msg("No dossier %(office)s %(number)s for you",
                                  office=office, number=number))
    return app


@router.get("/dossiers")
def find_page(request: Request, session: SessionDep, viewer: CurrentViewer,
              q: str = "", office: str = "") -> Response:
    access = Access(session, viewer)
    results: list[Application] = []
    error = None
    status = 404
    if q.strip():
        try:
            results = lookup_everywhere(request, session, access, q, office or None)
        except NumberError as exc:
            if not office and not looks_like_number(q):  # words: the header box searches
                return RedirectResponse(f"/search?q={quote(q, safe='')}", status_code=303)
            error = str(exc)
        except errors.Unavailable as exc:  # a source could not be asked: say which
            error, status = exc.message, exc.status
        if len(results) == 1 and not error:
            return RedirectResponse(dossier_url(results[0]), status_code=303)
        if not results and not error:
            error = f"No dossier matches {q!r}."
    recent = []
    if not q:
        rows = session.exec(select(Application).order_by(
            Application.updated_at.desc()).limit(50))  # type: ignore[attr-defined]
        recent = [a for a in rows if access.can_see(a)][:20]
    offices = session.exec(select(Office).where(Office.providing).order_by(Office.code)).all()
    return render(request, "dossiers/find.html", {
        "q": q, "office_filter": office, "results": results, "error": error, "recent": recent,
        "offices": offices, "dossier_url": dossier_url,
        "can_provide": can(viewer, "dossier.provide", viewer.office_code),
    }, status_code=status if error and q else 200)


def discussions_of(session: SessionDep, viewer: CurrentViewer,
                   app: Application) -> list[Thread]:
    """Threads the viewer may read that mention this dossier (by application or
    publication number)."""
    pub_office, pub_number = app.publication_number[:2], app.publication_number[2:]
    post_ids = session.exec(select(Reference.post_id).where(or_(
        (Reference.kind == "application") & (Reference.office_code == app.office_code)
        & (Reference.number == app.number),
        (Reference.kind == "publication") & (Reference.office_code == pub_office)
        & (Reference.number == pub_number)))).all()
    if not post_ids:
        return []
    thread_ids = set(session.exec(select(Post.thread_id).where(
        Post.id.in_(post_ids), Post.hidden.is_(False))))  # type: ignore[attr-defined]
    threads = session.exec(select(Thread).where(Thread.id.in_(thread_ids)).order_by(
        Thread.last_post_at.desc())).all()  # type: ignore[attr-defined]
    return filter_threads(session, viewer, threads)


def lookup_everywhere(request: Request, session: SessionDep, access: Access, text: str,
                      office: str | None) -> list[Application]:
    """The dossiers held here; when there are none, the ones the dossier sources know
    (asked in plugin order, fetched and stored now: ``dossiers/remote.py``).  A
    malformed number is reported once; a source that could not be asked is named."""
    found, unavailable = remote.find_or_fetch(session, access, request.app.state.plugins,
                                              text, office)
    session.commit()
    if not found and unavailable:
        raise errors.Unavailable("No dossier here matches, and " + "; ".join(unavailable))
    return found


def _remote_view(request: Request, session: SessionDep, access: Access, office: str,
                 number: str) -> tuple[Application, Any]:
    """The visible dossier, fetched from its source when not held here or out of date,
    and its remote facts (``None`` for a hosted dossier) for the banner."""
    host = request.app.state.plugins
    app = remote.ensure_dossier(session, host, office, number,
                                refresh=request.query_params.get("refresh") == "1",
                                ask_sources=access.viewer.is_authenticated)
    session.commit()
    if app is None or not access.can_see(app):
        raise errors.NotFound(Msg("No dossier %(office)s %(number)s for you: it is not held "
                                  "here and no dossier source knows it",
                                  office=office, number=number))
    return app, remote.freshness(session, host, app)


#: how pages name the document groups and directions (English; pages translate them)
GROUP_NAMES = {"search": CMsg("document group", "Search"),
               "examination": CMsg("document group", "Examination"),
               "grant": CMsg("document group", "Grant"),
               "application": CMsg("document group", "Application"),
               "applicant": CMsg("document group", "Applicant"),
               "other": CMsg("document group", "Other")}
DIRECTION_NAMES = {"incoming": N_("incoming"), "outgoing": N_("outgoing"),
                   "internal": N_("internal")}


def _describer(request: Request) -> Callable[[Document, Application], CodeInfo]:
    """``describe(doc, app)``: the document's label, group and direction as its
    office uses the code, the office's own label first (``caseforum.doccodes``)."""
    registry = request.app.state.doc_types
    return lambda doc, app: registry.describe(app.office_code, doc.code, doc.label)


def _code_label(request: Request) -> Callable[[str], str]:
    """A label for a bare code (filters list codes of several offices at once)."""
    registry = request.app.state.doc_types
    return lambda code: registry.describe(None, code).label


@dataclass(frozen=True)
class DocumentRow:
    """One line of a dossier's document list."""

    doc: Document
    info: CodeInfo
    named_offices: list[str]  # restricted: the offices, for a reader who may know them
    pair: Pair  # its original and translations, those the reader may see


def _chosen_groups(group: list[str] | None) -> set[str]:
    chosen = {g.strip().lower() for g in group or [] if g.strip()}
    unknown = sorted(chosen - set(DOC_GROUPS))
    if unknown:
        raise errors.InvalidInput(
            f"group {unknown[0]!r} is not a document group: use "
            + ", ".join(DOC_GROUPS) + " (or none, for every document)")
    return chosen


def _citation_link(cited: str) -> str | None:
    try:
        return search_link(parse_publication_number(cited))
    except (NumberError, ValueError):
        return None


@router.get("/dossiers/{office}/{number}")
def dossier_page(request: Request, session: SessionDep, viewer: CurrentViewer,
                 office: str, number: str,
                 group: Annotated[list[str] | None, Query(max_length=len(DOC_GROUPS))] = None,
                 ) -> Response:
    """The dossier; its documents in one list by date, oldest first, filtered by
    ``group`` (any of :data:`DOC_GROUPS`; none: every document)."""
    chosen = _chosen_groups(group)
    access = Access(session, viewer)
    app, facts = _remote_view(request, session, access, office, number)
    family = access.family(app)
    documents = access.documents([app])  # oldest first
    family_docs = access.documents(family)
    citations = access.citations([app], documents)
    describe = _describer(request)
    targets = access.document_targets(documents, {app.id: app})  # type: ignore[dict-item]
    paired = pairs(documents)
    rows = []
    counts: Counter[str] = Counter()
    for doc in documents:
        info = describe(doc, app)
        counts[info.group] += 1
        if not chosen or info.group in chosen:
            rows.append(DocumentRow(doc, info, access.named_offices(targets[doc.id or 0]),
                                    paired[doc.id or 0]))
    members = {m.id: m for m in family}
    reports = defaultdict(list)
    for doc in family_docs:
        info = describe(doc, members[doc.application_id])
        if info.group in ("search", "examination") and info.direction != "incoming":
            reports[doc.application_id].append((doc.code, info.label))
    priorities = session.exec(select(Priority).where(Priority.application_id == app.id)
                              .order_by(Priority.date)).all()
    provider = session.get(Office, app.office_code)
    discussions = discussions_of(session, viewer, app)
    partial = request.headers.get("hx-target") == "documents-list"
    return render(request, "dossiers/dossier.html", {
        "discussions": discussions,
        "app": app, "provider": provider, "family": family, "rows": rows,
        "by_id": {d.id: d for d in documents},
        "originals": [d for d in documents
                      if d.translation_of is None and not d.is_translation],
        "total": len(documents), "counts": counts, "chosen": chosen, "groups": DOC_GROUPS,
        "group_names": GROUP_NAMES, "direction_names": DIRECTION_NAMES,
        "citations": citations, "priorities": priorities, "reports": reports,
        "link_for": _citation_link, "dossier_url": dossier_url,
        "can_provide": can(viewer, "dossier.provide", app.office_code),
        "doc_types": request.app.state.doc_types.for_office(app.office_code),
        "today": date.today().isoformat(), "remote": facts,
    }, block="documents" if partial else "content")


@router.get("/dossiers/{office}/{number}/timeline")
def timeline_page(request: Request, session: SessionDep, viewer: CurrentViewer,
                  office: str, number: str,
                  offices: Annotated[list[str] | None, Query()] = None,
                  codes: Annotated[list[str] | None, Query()] = None) -> Response:
    access = Access(session, viewer)
    app, facts = _remote_view(request, session, access, office, number)
    family = access.family(app)
    by_id = {m.id: m for m in family}
    docs = access.documents(family)
    all_offices = sorted({m.office_code for m in family})
    all_codes = sorted({d.code for d in docs})
    chosen_offices = {o.upper() for o in offices or []} or set(all_offices)
    chosen_codes = {c.upper() for c in codes or []} or set(all_codes)
    entries = [(d, by_id[d.application_id]) for d in docs
               if by_id[d.application_id].office_code in chosen_offices
               and d.code in chosen_codes]
    days: dict[date, list] = defaultdict(list)
    for doc, member in entries:
        days[doc.date].append((doc, member))
    # the gap between one office's action and the next office's, for the eye
    rows = []
    previous = None
    for day in sorted(days):
        rows.append({"date": day, "items": days[day],
                     "gap": (day - previous).days if previous else None})
        previous = day
    return render(request, "dossiers/timeline.html", {
        "app": app, "family": family, "rows": rows, "all_offices": all_offices,
        "all_codes": all_codes, "chosen_offices": chosen_offices, "chosen_codes": chosen_codes,
        "label": _code_label(request), "describe": _describer(request),
        "dossier_url": dossier_url, "remote": facts,
    }, block="timeline")


def _visible_doc(session: SessionDep, viewer: CurrentViewer, document_id: int,
                 access: Access | None = None) -> tuple[Document, Application]:
    found = (access or Access(session, viewer)).document(document_id)
    if found is None:
        raise errors.NotFound(N_("No such document"))
    return found


@dataclass(frozen=True)
class PairSide:
    """One column of a pair shown side by side."""

    doc: Document
    info: CodeInfo
    role: str  # original | translation
    content_src: str


def _pair_of(request: Request, viewer: CurrentViewer, access: Access, doc: Document,
             app: Application, chosen: int | None) -> tuple[list[PairSide], list[Document]]:
    """The two columns of ``doc``'s pair, original first, and the other translations
    to choose from (``chosen``: which translation of an original; default the first),
    only what this viewer may see: no columns when it sees no counterpart."""
    original, translations = access.counterparts(doc, app)
    if original is not None:
        left, right, others = original, doc, []
    elif translations:
        right = next((t for t in translations if t.id == chosen), translations[0])
        left, others = doc, [t for t in translations if t.id != right.id]
    else:
        return [], []
    describe = _describer(request)
    return [PairSide(d, describe(d, app), role, content_src(request, viewer, d))
            for d, role in ((left, "original"), (right, "translation"))], others


@router.get("/documents/{document_id}")
def document_page(request: Request, session: SessionDep, viewer: CurrentViewer,
                  document_id: PathId,
                  with_: Annotated[int | None, Query(alias="with", ge=1, le=MAX_ID, description=(
                      "an original's page: which of its translations to show beside it"))]
                  = None) -> Response:
    access = Access(session, viewer)
    doc, app = _visible_doc(session, viewer, document_id, access)
    target = access.document_targets([doc], {app.id: app})[doc.id or 0]  # type: ignore[dict-item]
    named_offices = access.named_offices(target)
    pair, others = _pair_of(request, viewer, access, doc, app, with_)
    for side in pair:  # the counterpart is read here too: logged as viewed
        log_access(session, viewer=viewer, doc=side.doc, app=app, action="view")
    if not pair:
        log_access(session, viewer=viewer, doc=doc, app=app, action="view")
    if viewer.user_id is not None:  # reading it reads its notifications (a mail's link)
        notify.mark_read(session, user_id=viewer.user_id, document_id=doc.id)
    session.commit()
    return render(request, "dossiers/document.html", {
        "doc": doc, "app": app, "info": _describer(request)(doc, app),
        "named_offices": named_offices, "pair": pair, "other_translations": others,
        "group_names": GROUP_NAMES, "direction_names": DIRECTION_NAMES, "dossier_url": dossier_url,
        "content_src": content_src(request, viewer, doc),
    })


def document_bytes(request: Request, session: SessionDep, doc: Document) -> Iterator[bytes]:
    """The document's bytes from the file store; a remote document's are fetched from
    its source on first view and kept (``dossiers/remote.py``), committed at once so
    the next view is local."""
    chunks = remote.document_chunks(
        session, request.app.state.plugins, request.app.state.store, doc,
        max_bytes=request.app.state.settings.max_upload_mb * 1024 * 1024)
    session.commit()
    return chunks


def _file_response(request: Request, session: SessionDep, doc: Document, app: Application, *,
                   inline: bool, cache: str = "private, max-age=3600") -> Response:
    """The document's bytes, sandboxed (see ``web/content.py``); the type is told from
    the bytes whatever the source recorded."""
    chunks = document_bytes(request, session, doc)
    return content_response(chunks, filename=doc.filename, inline=inline, size=doc.size,
                            settings=request.app.state.settings,
                            headers={"ETag": f'"{doc.sha256}"', "Cache-Control": cache})


def content_src(request: Request, viewer: CurrentViewer, doc: Document, *,
                download: bool = False) -> str:
    """Where an app page points for a document's bytes: the signed link on the content
    host when there is one, else this origin's sandboxed route."""
    settings = request.app.state.settings
    if settings.content_base_url:
        return signed_url(settings, "documents", str(doc.id), viewer.user_id or 0,
                          download=download)
    return f"/documents/{doc.id}/{'download' if download else 'content'}"


@router.get("/documents/{document_id}/content")
def document_content(request: Request, session: SessionDep, viewer: CurrentViewer,
                     document_id: PathId) -> Response:
    doc, app = _visible_doc(session, viewer, document_id)
    if request.app.state.settings.content_base_url:
        return RedirectResponse(content_src(request, viewer, doc), status_code=303)
    return _file_response(request, session, doc, app, inline=True)


@router.get("/documents/{document_id}/download")
def document_download(request: Request, session: SessionDep, viewer: CurrentViewer,
                      document_id: PathId) -> Response:
    doc, app = _visible_doc(session, viewer, document_id)
    log_access(session, viewer=viewer, doc=doc, app=app, action="download")
    session.commit()
    if request.app.state.settings.content_base_url:
        return RedirectResponse(content_src(request, viewer, doc, download=True),
                                status_code=303)
    return _file_response(request, session, doc, app, inline=False)


@router.get("/content/documents/{document_id}")
def signed_document_content(request: Request, session: SessionDep, viewer: CurrentViewer,
                            document_id: PathId) -> Response:
    """A document by signed link: the only route on the content host.

    The link names the user it was made for; that user's rights are checked again
    now, so a link dies with the user's access as well as after a few minutes.
    """
    grant, refusal = link_refusal(request.app.state.settings, request, "documents",
                                  str(document_id), viewer)
    if grant is None:
        return refusal  # type: ignore[return-value]
    found = Access(session, viewer_for(session, grant.user_id)[0]).document(document_id)
    if found is None:
        return PlainTextResponse("No such document", status_code=404)
    doc, app = found
    return _file_response(request, session, doc, app, inline=not grant.download,
                          cache="private, max-age=300")


@router.get("/documents/{document_id}/print")
def document_print(request: Request, session: SessionDep, viewer: CurrentViewer,
                   document_id: PathId) -> Response:
    doc, app = _visible_doc(session, viewer, document_id)
    log_access(session, viewer=viewer, doc=doc, app=app, action="print")
    session.commit()
    return render(request, "dossiers/print.html", {
        "doc": doc, "app": app, "label": _describer(request)(doc, app).label,
        "content_src": content_src(request, viewer, doc)}, block=None)


@router.get("/compare")
def compare_page(request: Request, session: SessionDep, viewer: CurrentViewer,
                 a: OptionalQueryId = None, b: OptionalQueryId = None,
                 doc: Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None,
                                Query(max_length=2)] = None) -> Response:
    ids = [x for x in (a, b) if x is not None] or list(doc or [])
    if len(ids) != 2:
        raise errors.InvalidInput(N_("tick exactly two documents to compare"))
    access = Access(session, viewer)
    (da, aa), (db_, ab) = (_visible_doc(session, viewer, i, access) for i in ids)
    if da.translation_of == db_.id:  # a pair: the original on the left
        (da, aa), (db_, ab) = (db_, ab), (da, aa)
    is_pair = db_.translation_of == da.id
    for d, ap in ((da, aa), (db_, ab)):
        log_access(session, viewer=viewer, doc=d, app=ap, action="compare")
    session.commit()
    has_text = bool(da.text_content.strip()) and bool(db_.text_content.strip())
    if not has_text:
        rows = []
    elif is_pair:
        rows = side_by_side(da.text_content, db_.text_content)
    else:
        rows = compare_texts(da.text_content, db_.text_content)
    return render(request, "dossiers/compare.html", {
        "left": (da, aa), "right": (db_, ab), "rows": rows, "has_text": has_text,
        "is_pair": is_pair, "offers": _pair_offers(access, ((da, aa), (db_, ab))),
        "similarity": similarity(da.text_content, db_.text_content)
        if has_text and not is_pair else None,
        "describe": _describer(request), "dossier_url": dossier_url,
        "content_src": lambda d: content_src(request, viewer, d),
    })


def _pair_offers(access: Access, shown: tuple[tuple[Document, Application], ...]
                 ) -> list[tuple[Document, Document]]:
    """(original, translation) pairs of the compared documents that this viewer may see
    and that are not the comparison shown: Compare offers them."""
    ids = {d.id for d, _ in shown}
    offers: list[tuple[Document, Document]] = []
    for doc, app in shown:
        original, translations = access.counterparts(doc, app)
        if original is not None and original.id not in ids:
            offers.append((original, doc))
        offers.extend((doc, t) for t in translations if t.id not in ids)
    return offers


# Providing offices: the web form -------------------------------------------------------


@router.get("/dossiers-new")
def new_dossier_form(request: Request, viewer: CurrentViewer) -> Response:
    require(viewer, "dossier.provide", viewer.office_code)
    return render(request, "dossiers/new.html", {"error": None, "form": {}})


@router.post("/dossiers-new")
def new_dossier(
    request: Request, session: SessionDep, viewer: CurrentViewer,
    application_number: Annotated[str, Form(max_length=60)],
    filing_date: Annotated[str, Form()],
    publication_number: Annotated[str, Form(max_length=60)] = "",
    publication_date: Annotated[str, Form()] = "",
    title: Annotated[str, Form(max_length=2000)] = "",
    applicants: Annotated[str, Form(max_length=5000)] = "",
    ipc: Annotated[str, Form(max_length=5000)] = "",
    priorities: Annotated[str, Form(max_length=5000)] = "",
    pct_application_number: Annotated[str, Form(max_length=60)] = "",
) -> Response:
    require(viewer, "dossier.provide", viewer.office_code)
    form = {"application_number": application_number, "filing_date": filing_date,
            "publication_number": publication_number, "publication_date": publication_date,
            "title": title, "applicants": applicants, "ipc": ipc, "priorities": priorities,
            "pct_application_number": pct_application_number}
    try:
        prio_list = []
        for line in priorities.splitlines():
            if line.strip():
                parts = line.split()
                if len(parts) < 3:
                    raise DossierError("one per line: OFFICE NUMBER YYYY-MM-DD", "priorities")
                prio_list.append({"office": parts[0], "number": " ".join(parts[1:-1]),
                                  "date": parts[-1]})
        data = errors.validate(DossierIn, {
            "office": viewer.office_code, "application_number": application_number,
            "filing_date": filing_date, "publication_number": publication_number or None,
            "publication_date": publication_date or None, "title": title,
            "applicants": [a.strip() for a in applicants.splitlines() if a.strip()],
            "ipc": [c.strip() for c in ipc.replace(";", "\n").splitlines() if c.strip()],
            "priorities": prio_list,
            "pct_application_number": pct_application_number or None,
        })
        app, _ = service.upsert_dossier(session, data=data, actor_id=viewer.user_id)
        session.commit()
    except errors.InvalidInput as exc:  # the form again, with what to correct
        session.rollback()
        return render(request, "dossiers/new.html", {"error": exc.message, "form": form},
                      status_code=422)
    return RedirectResponse(dossier_url(app), status_code=303)


@router.post("/dossiers/{office}/{number}/documents")
def upload_document_form(
    request: Request, session: SessionDep, viewer: CurrentViewer, office: str, number: str,
    file: Annotated[UploadFile, File()],
    code: Annotated[str, Form(max_length=20)],
    doc_date: Annotated[date, Form(alias="date")],
    language: Annotated[str, Form(max_length=8)] = "en",
    visibility: Annotated[str, Form(max_length=16)] = "offices",
    offices: Annotated[str, Form(max_length=200)] = "",
    is_translation: Annotated[bool, Form()] = False,
    label: Annotated[str, Form(max_length=300)] = "",
    translation_of: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
) -> Response:
    access = Access(session, viewer)
    app = _visible_app(session, access, office, number)
    require(viewer, "dossier.provide", app.office_code)
    meta = service.DocumentMeta(code=code, date=doc_date, language=language,
                                is_translation=is_translation, visibility=visibility,
                                offices=tuple(offices.replace(",", " ").split()),
                                label=label, translation_of=translation_of)
    store = request.app.state.store
    stored = None
    try:
        _, stored = service.add_document(
            session, store, app=app, meta=meta, stream=file.file,
            filename=file.filename or "document", registry=request.app.state.doc_types,
            max_bytes=request.app.state.settings.max_upload_mb * 1024 * 1024,
            actor_id=viewer.user_id, access=access)
        session.commit()
    except DossierError:  # nothing new stays: the row is rolled back, the file discarded
        session.rollback()
        if stored:
            store.discard(stored)
        raise
    return RedirectResponse(dossier_url(app) + "#documents", status_code=303)


@router.post("/dossiers/{office}/{number}/citations")
def add_citation_form(
    request: Request, session: SessionDep, viewer: CurrentViewer, office: str, number: str,
    cited: Annotated[str, Form(max_length=2000)],
    category: Annotated[str, Form(max_length=16)],
    claims: Annotated[str, Form(max_length=200)] = "",
    phase: Annotated[str, Form(max_length=40)] = "",
    document_id: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
) -> Response:
    access = Access(session, viewer)
    app = _visible_app(session, access, office, number)
    require(viewer, "dossier.provide", app.office_code)
    data = errors.validate(CitationIn, {"cited": cited, "category": category, "claims": claims,
                                        "phase": phase, "document_id": document_id})
    service.add_citation(session, app=app, data=data, actor_id=viewer.user_id)
    session.commit()
    return RedirectResponse(dossier_url(app) + "#citations", status_code=303)
