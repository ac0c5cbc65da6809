"""Machine feeds for office systems: what is new since a cursor, and a family's
citation matrix as JSON or CSV.

``/api/v1/changes`` reads the event log: the cursor is an event id, so a client
that stores ``next`` and asks again after a restart (its own or the server's)
gets each change once, in order.  Events are kept for
``event_retention_days``; a cursor older than that is answered 410 (start again
from 0 and compare with what you have).  Only what the caller may see is listed.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel
from sqlmodel import Session, col, select

from caseforum import errors
from caseforum.authz import Viewer
from caseforum.db import SessionDep
from caseforum.dossiers.access import Access
from caseforum.events import oldest_event_id
from caseforum.models import Application, Citation, Document, Event
from caseforum.numbers import NumberError, parse_publication_number
from caseforum.web.deps import CurrentViewer
from caseforum.web.params import PathId

router = APIRouter(prefix="/api/v1", tags=["feeds"])
KINDS = {"dossier.created": "dossier", "document.added": "document",
         "citation.added": "citation"}
SCAN = 500  # events read per round while filling a page


class ChangeOut(BaseModel):
    cursor: int
    kind: Literal["dossier", "document", "citation"]
    office: str
    application_number: str
    document_id: int | None
    citation_id: int | None
    at: datetime


class ChangesOut(BaseModel):
    items: list[ChangeOut]
    next: int


def _visible_change(session: Session, access: Access, event: Event,
                    apps: dict[int, Application | None]) -> ChangeOut | None:
    app_id = int(event.payload.get("application_id") or 0)
    if app_id not in apps:
        apps[app_id] = session.get(Application, app_id)
    app = apps[app_id]
    if app is None or not access.can_see(app):
        return None
    document_id = citation_id = None
    if event.kind == "document.added":
        document_id = int(event.payload.get("document_id") or 0)
        if access.document(document_id) is None:
            return None
    elif event.kind == "citation.added":
        citation_id = int(event.payload.get("citation_id") or 0)
        citation = session.get(Citation, citation_id)
        if citation is None or (citation.document_id is not None
                                and access.document(citation.document_id) is None):
            return None
    return ChangeOut(cursor=event.id or 0, kind=KINDS[event.kind],  # type: ignore[arg-type]
                     office=app.office_code, application_number=app.display_number,
                     document_id=document_id, citation_id=citation_id, at=event.at)


@router.get("/changes", response_model=ChangesOut)
def changes(session: SessionDep, viewer: CurrentViewer,
            after: int = Query(0, ge=0, le=2**62, description="the `next` of the last answer"),
            limit: int = Query(100, ge=1, le=1000)) -> ChangesOut:
    """New dossiers, documents and citations the caller may see, oldest first."""
    _require_reader(viewer)
    oldest = oldest_event_id(session)
    if after and oldest and after + 1 < oldest:
        raise errors.CaseForumError(
            f"cursor {after} is older than the event log ({oldest} is the oldest kept): "
            "start again with after=0", status=410, code="gone")
    access = Access(session, viewer)
    apps: dict[int, Application | None] = {}
    items: list[ChangeOut] = []
    cursor = after
    while len(items) < limit:
        events = session.exec(select(Event).where(
            col(Event.id) > cursor, col(Event.kind).in_(list(KINDS)))
            .order_by(col(Event.id)).limit(SCAN)).all()
        for event in events:
            change = _visible_change(session, access, event, apps)
            cursor = event.id or cursor
            if change is not None:
                items.append(change)
                if len(items) == limit:
                    break
        if len(events) < SCAN:
            break
    return ChangesOut(items=items, next=cursor)


def _require_reader(viewer: Viewer) -> None:
    """Logged in (or a token) with the right to read dossiers."""
    if not viewer.is_authenticated:
        raise errors.Unauthorized("log in or send an API token")
    if viewer.scopes is not None and "dossiers:read" not in viewer.scopes:
        raise errors.Forbidden("this token lacks the dossiers:read scope")


class CitationRow(BaseModel):
    cited: str
    cited_number: str | None
    kind_code: str | None
    category: str
    claims: str
    phase: str
    citing_office: str
    citing_application: str
    citing_document_id: int | None


COLUMNS = list(CitationRow.model_fields)


def _kind_code(cited_number: str | None, cited: str) -> str | None:
    try:
        return parse_publication_number(cited_number or cited).kind_code
    except (NumberError, ValueError):
        return None


@router.get("/families/{family_id}/citations", response_model=list[CitationRow],
            responses={200: {"content": {"text/csv": {}}}})
def family_citations(session: SessionDep, viewer: CurrentViewer, family_id: PathId,
                     format: Literal["json", "csv"] = "json") -> Any:
    """The family's citation matrix: each citation of each visible member, with the
    cited document's kind code, the citing office, ST.14 category, claims and phase."""
    _require_reader(viewer)
    access = Access(session, viewer)
    members = [m for m in session.exec(select(Application).where(
        Application.family_id == family_id)) if access.can_see(m)]
    if not members:
        raise errors.NotFound(f"no family {family_id}")
    docs: list[Document] = access.documents(members)
    numbers = {m.id: f"{m.office_code} {m.display_number}" for m in members}
    rows = [CitationRow(cited=c.cited, cited_number=c.cited_number,
                        kind_code=_kind_code(c.cited_number, c.cited), category=c.category,
                        claims=c.claims, phase=c.phase, citing_office=c.citing_office,
                        citing_application=numbers.get(c.application_id, ""),
                        citing_document_id=c.document_id)
            for c in access.citations(members, docs)]
    if format == "json":
        return rows
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow(row.model_dump())
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="family-{family_id}-citations.csv"'})
