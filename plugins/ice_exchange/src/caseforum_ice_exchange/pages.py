"""HTML pages under ``/ice``: the exchange list, the request form, the exchange page.

Forms post with a full page load (``hx-boost="false"``): they carry files, and an
error must come back as a page that keeps what was typed, which htmx would not
swap in for a 4xx answer.
"""

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select

from caseforum.authz import Viewer, can, require
from caseforum.db import SessionDep
from caseforum.forum import notify
from caseforum.i18n import CMsg, Msg
from caseforum.models import Office, User
from caseforum.web.deps import CurrentUser, CurrentViewer
from caseforum.web.templating import render

from . import keys, views, workflow
from .api import deliver_if_synchronous, in_thread, request_fields, runtime, uploads_of
from .audit import timeline
from .config import IceRuntime
from .errors import IceError
from .models import IceExchange
from .states import KINDS, STEPS, stepper
from .views import audit_label

router = APIRouter(prefix="/ice", tags=["ice pages"], include_in_schema=False)

TABS = (("waiting", Msg("Waiting for my office")), ("open", CMsg("exchanges", "Open")),
        ("closed", CMsg("exchanges", "Closed")), ("all", CMsg("exchanges", "All")))
DONE_MESSAGES = {
    "request": Msg("Request sent."),
    "assign": Msg("Assignment saved."),
    **{kind: Msg("%(step)s: sent.", step=step.label)
       for kind, step in STEPS.items() if kind != "request"},
}


def _role(office: Office | None) -> str:
    return str(getattr(office.ice_role, "value", office.ice_role)) if office else "none"


@router.get("")
def list_page(request: Request, session: SessionDep, viewer: CurrentViewer,
              user: CurrentUser, show: str = "open") -> Response:
    require(viewer, "ice.exchanges.list")
    if show not in dict(TABS):
        show = "open"
    office = session.get(Office, user.office_code)
    rows = [views.summary(e, viewer) for e in views.visible_exchanges(session, viewer,
                                                                       show=show)]
    return render(request, "ice/list.html", {
        "rows": rows, "show": show, "tabs": TABS,
        "can_create": can(viewer, "ice.exchange.create", office),
        "ice_role": _role(office), "has_keys": keys.is_local(session, user.office_code),
        "sees_every_exchange": can(viewer, "ice.exchanges.list_all"),
    })


def _new_context(session: Session, rt: IceRuntime, viewer: Viewer, user: User,
                 values: dict[str, Any] | None = None, error: str = "") -> dict[str, Any]:
    office = session.get(Office, user.office_code)
    donors = []
    for candidate in session.exec(select(Office).order_by(Office.code)):
        if candidate.code == user.office_code or _role(candidate) not in workflow.DONOR_ROLES:
            continue
        if keys.public_keys(session, candidate.code) is None:
            continue
        donors.append(candidate)
    blocked: str = ""
    if not can(viewer, "ice.exchange.create", office):
        blocked = Msg("%(office)s does not take part in ICE as a recipient office, or your "
                      "role cannot open requests. An administrator sets the office's ICE "
                      "role.", office=user.office_code)
    elif not keys.is_local(session, user.office_code):
        blocked = Msg("%(office)s has no keys on this instance yet: an administrator runs "
                      "'caseforum keys generate --office %(office)s'.", office=user.office_code)
    elif not donors:
        blocked = Msg("No donor office can be reached from this instance yet.")
    return {"donors": donors, "kinds": KINDS, "routes": sorted(rt.routes), "blocked": blocked,
            "values": values or {}, "error": error}


@router.get("/new")
def new_page(request: Request, session: SessionDep, viewer: CurrentViewer,
             user: CurrentUser) -> Response:
    require(viewer, "ice.exchanges.list")
    return render(request, "ice/new.html",
                  _new_context(session, runtime(request.app), viewer, user))


def _create(rt: IceRuntime, viewer: Viewer, user: User, fields: dict[str, Any],
            uploads: list[Any]) -> str:
    with rt.session() as session:
        office = session.get(Office, user.office_code)
        require(viewer, "ice.exchange.create", office)
        exchange, parcel = workflow.open_request(
            session, rt=rt, user=user, donor_office=str(fields.get("donor_office") or ""),
            application=str(fields.get("application") or ""),
            kind=str(fields.get("kind") or ""), due_date=fields.get("due_date") or None,
            message=str(fields.get("message") or ""), uploads=uploads,
            route=str(fields.get("route") or "") or None)
    deliver_if_synchronous(rt, parcel)
    return exchange.id


def _new_error(rt: IceRuntime, viewer: Viewer, user: User, fields: dict[str, Any],
               message: str) -> dict[str, Any]:
    with rt.session() as session:
        return _new_context(session, rt, viewer, user, values=fields, error=message)


@router.post("/new")
async def new_submit(request: Request, viewer: CurrentViewer, user: CurrentUser) -> Response:
    rt = runtime(request.app)
    fields: dict[str, Any] = {}
    form = None
    try:
        fields, form = await request_fields(request, rt)
        exchange_id = await in_thread(_create, rt, viewer, user, fields,
                                      uploads_of(form) if form is not None else [])
    except IceError as exc:
        context = await in_thread(_new_error, rt, viewer, user, fields, exc.message)
        return render(request, "ice/new.html", context, status_code=exc.status, block=None)
    finally:
        if form is not None:
            await form.close()
    return RedirectResponse(f"/ice/{exchange_id}?done=request", status_code=303)


def _page_context(session: Session, rt: IceRuntime, viewer: Viewer, user: User,
                  exchange: IceExchange, *, error: str = "", done: str = "") -> dict[str, Any]:
    data = views.detail(session, rt, exchange, viewer)
    content = data["content_visible"]
    context: dict[str, Any] = {
        "ex": data,
        "exchange": exchange,
        "steps": stepper(exchange.status, set(data["kinds_sent"])),
        "offices": views.offices_panel(session, exchange),
        "error": error,
        "done": DONE_MESSAGES.get(done, ""),
        "actions": views.actions_for(exchange, viewer)
        if content and keys.is_local(session, viewer.office_code or "") else [],
        "entries": [{"row": row, "label": audit_label(row.action)} for row in timeline(
            session, exchange_id=exchange.id, chains_={viewer.office_code or ""})]
        if content else [],
        "assignees": views.assignees(session, exchange) if content else {},
        "my_side": exchange.side_of(viewer.office_code),
        "can_assign": can(viewer, "ice.exchange.assign", exchange),
        "can_act": can(viewer, "ice.exchange.act", exchange),
        "colleagues": [],
    }
    if context["can_assign"]:
        context["colleagues"] = list(session.exec(
            select(User).where(User.office_code == user.office_code, User.is_active)
            .order_by(User.username)))
    return context


@router.get("/{exchange_id}")
def exchange_page(request: Request, session: SessionDep, viewer: CurrentViewer,
                  user: CurrentUser, exchange_id: str, done: str = "") -> Response:
    require(viewer, "ice.exchanges.list")
    rt = runtime(request.app)
    try:
        exchange = views.get_exchange(session, viewer, exchange_id, content=False)
    except IceError as exc:
        return render(request, "error.html", {"status": exc.status, "detail": exc.message},
                      status_code=exc.status)
    context = _page_context(session, rt, viewer, user, exchange, done=done)
    # opening the exchange reads its alerts, as reading a thread reads its notifications
    notify.mark_read(session, user_id=user.id or 0, link=f"/ice/{exchange.id}")
    session.commit()
    return render(request, "ice/exchange.html", context)


def _step(rt: IceRuntime, viewer: Viewer, user: User, exchange_id: str,
          fields: dict[str, Any], uploads: list[Any]) -> str:
    with rt.session() as session:
        exchange = views.get_exchange(session, viewer, exchange_id)
        require(viewer, "ice.exchange.act", exchange)
        kind = str(fields.get("kind") or "")
        parcel = workflow.take_step(session, rt=rt, user=user, exchange_id=exchange.id, kind=kind,
                                    message=str(fields.get("message") or ""), uploads=uploads)
    deliver_if_synchronous(rt, parcel)
    return kind


def _error_page(rt: IceRuntime, viewer: Viewer, user: User, exchange_id: str,
                message: str) -> dict[str, Any] | None:
    with rt.session() as session:
        try:
            exchange = views.get_exchange(session, viewer, exchange_id, content=False)
        except IceError:
            return None
        return _page_context(session, rt, viewer, user, exchange, error=message)


@router.post("/{exchange_id}/steps")
async def step_submit(request: Request, viewer: CurrentViewer, user: CurrentUser,
                      exchange_id: str) -> Response:
    rt = runtime(request.app)
    form = None
    try:
        fields, form = await request_fields(request, rt)
        kind = await in_thread(_step, rt, viewer, user, exchange_id, fields,
                               uploads_of(form) if form is not None else [])
    except IceError as exc:
        context = await in_thread(_error_page, rt, viewer, user, exchange_id, exc.message)
        if context is None:
            return render(request, "error.html", {"status": 404, "detail": "Not found"},
                          status_code=404)
        return render(request, "ice/exchange.html", context, status_code=exc.status,
                      block=None)
    finally:
        if form is not None:
            await form.close()
    return RedirectResponse(f"/ice/{quote(exchange_id)}?done={quote(kind)}#parcels",
                            status_code=303)


@router.post("/{exchange_id}/assign")
async def assign_submit(request: Request, viewer: CurrentViewer, user: CurrentUser,
                        exchange_id: str) -> Response:
    rt = runtime(request.app)

    def work(fields: dict[str, Any]) -> None:
        with rt.session() as session:
            exchange = views.get_exchange(session, viewer, exchange_id)
            require(viewer, "ice.exchange.act", exchange)
            workflow.assign(session, user=user, viewer=viewer, exchange_id=exchange.id,
                            assignee=str(fields.get("assignee") or ""))

    try:
        fields, _ = await request_fields(request, rt)
        await in_thread(work, fields)
    except IceError as exc:
        context = await in_thread(_error_page, rt, viewer, user, exchange_id, exc.message)
        if context is None:
            return render(request, "error.html", {"status": 404, "detail": "Not found"},
                          status_code=404)
        return render(request, "ice/exchange.html", context, status_code=exc.status,
                      block=None)
    return RedirectResponse(f"/ice/{quote(exchange_id)}?done=assign", status_code=303)
