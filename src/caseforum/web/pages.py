"""Home page and health check."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import text
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from caseforum import __version__, authcache
from caseforum.authz import Viewer, can
from caseforum.db import SessionDep
from caseforum.dossiers.access import Access
from caseforum.forum import inbox
from caseforum.forum.access import readable_threads
from caseforum.forum.service import unread_counts
from caseforum.models import AccountAudit, Application, Document, Office
from caseforum.web.deps import CurrentViewer
from caseforum.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/")
def home(request: Request, session: SessionDep, viewer: CurrentViewer) -> Response:
    if not can(viewer, "home.view"):
        return landing(request, session, viewer)
    activity = session.exec(
        select(AccountAudit)
        .where(AccountAudit.user_id == viewer.user_id)
        .order_by(AccountAudit.id.desc())  # type: ignore[union-attr]
        .limit(8)
    ).all()
    offices = session.exec(select(Office).order_by(Office.code)).all()
    for_you = inbox.for_you(session, viewer)
    visible = readable_threads(session, viewer, limit=200)
    unread = unread_counts(session, user_id=viewer.user_id or 0,
                           thread_ids=[t.id or 0 for t in visible])
    unread_threads = [(t, unread[t.id]) for t in visible if unread.get(t.id or 0)][:6]
    panels = request.app.state.plugins.home_panels(session=session, viewer=viewer)
    return render(request, "home.html", {
        "activity": activity, "offices": offices, "groups": for_you.groups,
        "bell_count": lambda: for_you.count,  # counted once for the list and the bell
        "unread_threads": unread_threads, "new_docs": new_documents(session, viewer),
        "panels": panels})


def new_documents(session: Session, viewer: Viewer, *, scan: int = 60,
                  show: int = 8) -> list[tuple[Document, Application]]:
    """The newest documents the viewer may see, with their dossiers: the ``scan``
    newest are checked together (the named offices of restricted ones in one query),
    not one by one."""
    access = Access(session, viewer)
    recent = list(session.exec(select(Document).options(defer(Document.text_content))  # type: ignore[arg-type]
                               .order_by(col(Document.created_at).desc()).limit(scan)))
    apps = {a.id: a for a in session.exec(select(Application).where(
        col(Application.id).in_({d.application_id for d in recent})))}
    recent = [d for d in recent if access.can_see(apps.get(d.application_id))]
    targets = access.document_targets(recent, apps)  # type: ignore[arg-type]
    return [(d, apps[d.application_id]) for d in recent
            if can(viewer, "document.view", targets[d.id or 0])][:show]


LANDING_DOSSIERS = 10


def landing(request: Request, session: SessionDep, viewer: CurrentViewer) -> Response:
    """The page a visitor who is not logged in meets: what CaseForum is, the offices
    that share with the public, a number box and their latest dossiers.  What is
    listed passes the same rules as every other page (``Access``)."""
    from caseforum.web.dossier_pages import dossier_url  # a deferred router's module

    public_offices = sorted((o for o in authcache.offices(session).values() if o.public_access),
                            key=lambda o: o.code)
    access = Access(session, viewer)
    recent: list[Application] = []
    if public_offices:
        rows = session.exec(select(Application).where(
            Application.office_code.in_([o.code for o in public_offices]))  # type: ignore[attr-defined]
            .order_by(Application.updated_at.desc())  # type: ignore[attr-defined]
            .limit(LANDING_DOSSIERS))
        recent = [a for a in rows if access.can_see(a)]
    return render(request, "landing.html", {
        "public_offices": public_offices, "recent": recent, "dossier_url": dossier_url})


@router.get("/favicon.ico")
def favicon() -> Response:
    return RedirectResponse("/static/favicon.svg", status_code=301)


@router.get("/healthz", include_in_schema=True, tags=["health"])
def healthz(session: SessionDep) -> Response:
    try:
        session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        database = "ok"
    except Exception as exc:
        database = f"error: {type(exc).__name__}"
    ok = database == "ok"
    return JSONResponse(
        {"status": "ok" if ok else "error", "database": database, "version": __version__},
        status_code=200 if ok else 503,
    )
