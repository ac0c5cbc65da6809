"""Home page and health check."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import text
from sqlmodel import select

from caseforum import __version__
from caseforum.authz import can
from caseforum.db import SessionDep
from caseforum.models import AccountAudit, Office
from caseforum.web.deps import CurrentViewer
from caseforum.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/")
def home(request: Request, session: SessionDep, viewer: CurrentViewer) -> Response:
    if not can(viewer, "home.view"):
        return RedirectResponse("/login?next=/", status_code=303)
    activity = session.exec(
        select(AccountAudit)
        .where(AccountAudit.user_id == viewer.user_id)
        .order_by(AccountAudit.id.desc())  # type: ignore[union-attr]
        .limit(8)
    ).all()
    offices = session.exec(select(Office).order_by(Office.code)).all()
    return render(request, "home.html",
                  {"activity": activity, "offices": offices})


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
