"""Administration pages: plugins, offices, users and tokens, account history."""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import or_, select

from caseforum import accounts, errors, offices
from caseforum.authz import SCOPES, can, require
from caseforum.db import SessionDep
from caseforum.events import emit
from caseforum.i18n import N_, Msg
from caseforum.models import AccountAudit, ApiToken, Office, PluginState, User, utcnow
from caseforum.models.account import Role
from caseforum.plugin_host import PLUGIN_SWITCHED
from caseforum.web.deps import CurrentViewer
from caseforum.web.locale_pages import zone_name
from caseforum.web.params import PathId
from caseforum.web.templating import render

router = APIRouter(prefix="/admin", tags=["admin"], include_in_schema=False)


#: what a page says after a change: ``?msg=`` names one, ``office``, ``user`` or
#: ``token`` fill it in (so it is shown in the reader's language)
FLASH = {
    "office_added": N_("Office %(office)s added"),
    "office_saved": N_("Office %(office)s saved"),
    "zone_saved": N_("Time zone of %(office)s saved"),
    "public_on": N_("Public access of %(office)s switched on"),
    "public_off": N_("Public access of %(office)s switched off"),
    "public_was_on": N_("Public access of %(office)s was already on"),
    "public_was_off": N_("Public access of %(office)s was already off"),
    "user_created": N_("User %(user)s created"),
    "user_enabled": N_("User %(user)s enabled"),
    "user_disabled": N_("User %(user)s disabled"),
    "token_revoked": N_("Token %(token)s… revoked"),
}


def _back(path: str, message: str = "", **values: str) -> RedirectResponse:
    query = urlencode({"msg": message, **values}) if message else ""
    return RedirectResponse(path + (f"?{query}" if query else ""), status_code=303)


def _flash(request: Request) -> Msg | None:
    """The message ``_back`` asked for, if it is one of :data:`FLASH`."""
    found = FLASH.get(request.query_params.get("msg", ""))
    if found is None:
        return None
    return Msg(found, **{name: request.query_params.get(name, "")[:64]
                         for name in ("office", "user", "token")})


@router.get("")
def admin_index(request: Request, session: SessionDep, viewer: CurrentViewer) -> Response:
    require(viewer, "admin.view")
    from caseforum.search.indexer import lag

    return render(request, "admin/index.html", {
        "search_lag": lag(session, request.app.state.search_dir)})


# Plugins ------------------------------------------------------------------------


@router.get("/plugins")
def plugins_page(request: Request, viewer: CurrentViewer) -> Response:
    require(viewer, "admin.view")
    host = request.app.state.plugins
    records = sorted(host.records.values(), key=lambda r: r.name)
    return render(request, "admin/plugins.html",
                  {"records": records, "can_manage": can(viewer, "plugins.manage"),
                   "sources": host.source_health()})


@router.post("/plugins/{name}/{action}")
def plugin_toggle(
    request: Request, session: SessionDep, viewer: CurrentViewer, name: str, action: str
) -> Response:
    require(viewer, "plugins.manage")
    if action not in ("enable", "disable"):
        raise errors.NotFound("use enable or disable")
    host = request.app.state.plugins
    if name not in host.records:
        raise errors.NotFound(f"no plugin named {name!r}")
    host.set_enabled(name, action == "enable")
    state = session.get(PluginState, name) or PluginState(name=name)
    state.enabled = action == "enable"
    state.changed_by = viewer.username
    state.changed_at = utcnow()
    session.add(state)
    # the other workers and hosts switch it too when their live hub reads this
    emit(session, kind=PLUGIN_SWITCHED, actor_id=viewer.user_id, subject_type="plugin",
         subject_id=name, payload={"name": name, "enabled": state.enabled})
    session.commit()
    if request.headers.get("hx-request") == "true":
        return render(request, "admin/plugins.html",
                      {"record": host.records[name], "can_manage": True},
                      block="plugin_row")
    return _back("/admin/plugins")


# Offices ------------------------------------------------------------------------


@router.get("/offices")
def offices_page(request: Request, session: SessionDep, viewer: CurrentViewer) -> Response:
    require(viewer, "admin.view")
    return render(request, "admin/offices.html", {
        "offices": offices.list_offices(session),
        "can_manage": can(viewer, "offices.manage"),
        "message": _flash(request),
    })


@router.post("/offices")
def office_add(
    request: Request,
    session: SessionDep,
    viewer: CurrentViewer,
    code: Annotated[str, Form(max_length=2)],
    name: Annotated[str, Form(max_length=200)],
    providing: Annotated[bool, Form()] = False,
    accessing: Annotated[bool, Form()] = False,
) -> Response:
    require(viewer, "offices.manage")
    roles = [r for r, on in (("providing", providing), ("accessing", accessing)) if on]
    offices.add_office(session, code=code, name=name, roles=roles)
    session.commit()
    return _back("/admin/offices", "office_added", office=code.upper())


@router.post("/offices/{code}")
def office_edit(
    request: Request,
    session: SessionDep,
    viewer: CurrentViewer,
    code: str,
    providing: Annotated[bool, Form()] = False,
    accessing: Annotated[bool, Form()] = False,
    ice_role: Annotated[str, Form()] = "none",
) -> Response:
    """An office's roles and ICE role: the platform's decision.  Public access has
    its own switch (below), so saving roles never changes it by accident."""
    office = session.get(Office, code.upper())
    if office is None:
        raise errors.NotFound(f"unknown office {code!r}")
    require(viewer, "offices.manage")
    roles = [r for r, on in (("providing", providing), ("accessing", accessing)) if on]
    offices.set_roles(session, code=office.code, roles=roles, ice_role=ice_role)
    session.commit()
    return _back("/admin/offices", "office_saved", office=office.code)


@router.post("/offices/{code}/time-zone")
def office_time_zone(
    request: Request,
    session: SessionDep,
    viewer: CurrentViewer,
    code: str,
    time_zone: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """The zone the office's users see times in (unless they chose their own): an
    IANA name, or empty for the instance default.  The office's admins and the
    platform admin decide, as for public access."""
    office = session.get(Office, code.upper())
    if office is None:
        raise errors.NotFound(f"unknown office {code!r}")
    require(viewer, "office.edit", office)
    zone = time_zone.strip()
    offices.set_time_zone(session, office, zone_name(zone) if zone else "",
                          actor_id=viewer.user_id)
    session.commit()
    return _back("/admin/offices", "zone_saved", office=office.code)


@router.post("/offices/{code}/public-access")
def office_public_access(
    request: Request,
    session: SessionDep,
    viewer: CurrentViewer,
    code: str,
    public_access: Annotated[bool, Form()],
) -> Response:
    """Let anonymous visitors see the office's public documents, or stop them: the
    office's own admins and the platform admin decide; dated and audited."""
    office = session.get(Office, code.upper())
    if office is None:
        raise errors.NotFound(f"unknown office {code!r}")
    require(viewer, "office.edit", office)
    changed = offices.set_public_access(session, office, on=public_access,
                                        by=viewer.username, actor_id=viewer.user_id)
    session.commit()
    state = "on" if public_access else "off"
    return _back("/admin/offices", f"public_{state}" if changed else f"public_was_{state}",
                 office=office.code)


# Users and tokens ---------------------------------------------------------------


def _visible_users(session: SessionDep, viewer: CurrentViewer) -> list[User]:
    query = select(User).order_by(User.office_code, User.username)
    if not can(viewer, "users.list_all"):
        query = query.where(User.office_code == viewer.office_code)
    return list(session.exec(query))


@router.get("/users")
def users_page(request: Request, session: SessionDep, viewer: CurrentViewer) -> Response:
    require(viewer, "users.list")
    users = _visible_users(session, viewer)
    tokens = session.exec(
        select(ApiToken).where(ApiToken.user_id.in_([u.id for u in users]))  # type: ignore[union-attr]
        .order_by(ApiToken.id.desc())  # type: ignore[union-attr]
    ).all()
    office_choices = (offices.list_offices(session) if can(viewer, "users.list_all")
                      else [session.get(Office, viewer.office_code)])
    roles = [r.value for r in Role
             if r != Role.platform_admin or can(viewer, "offices.manage")]
    return render(request, "admin/users.html", {
        "users": users, "tokens": tokens, "office_choices": office_choices,
        "roles": roles, "scopes": SCOPES, "message": _flash(request), "new_token": None,
        "users_by_id": {u.id: u for u in users},
    })


@router.post("/users")
def user_create(
    request: Request,
    session: SessionDep,
    viewer: CurrentViewer,
    username: Annotated[str, Form(max_length=64)],
    office_code: Annotated[str, Form(max_length=2)],
    role: Annotated[str, Form()],
    password: Annotated[str, Form(max_length=1000)],
    display_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    candidate = User(username=username, office_code=office_code.upper(), role=role)
    require(viewer, "user.manage", candidate)
    accounts.create_user(session, username=username, office_code=office_code, role=role,
                         password=password, display_name=display_name,
                         actor_id=viewer.user_id)
    session.commit()
    return _back("/admin/users", "user_created", user=username.strip().lower())


@router.post("/users/{user_id}/tokens")
def token_create(
    request: Request,
    session: SessionDep,
    viewer: CurrentViewer,
    user_id: PathId,
    scopes: Annotated[list[str], Form()],
    expires_days: Annotated[int, Form(ge=1, le=3650)] = 90,
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    user = session.get(User, user_id)
    if user is None:
        raise errors.NotFound("no such user")
    require(viewer, "token.create", user)
    token, plain = accounts.create_token(session, user=user, scopes=scopes,
                                         expires_days=expires_days, name=name,
                                         actor_id=viewer.user_id)
    session.commit()
    return render(request, "admin/token_created.html",
                  {"token": token, "plain": plain, "owner": user})


@router.post("/users/{user_id}/{action}")
def user_set_active(
    request: Request, session: SessionDep, viewer: CurrentViewer, user_id: PathId, action: str
) -> Response:
    user = session.get(User, user_id)
    if user is None or action not in ("disable", "enable"):
        raise errors.NotFound("no such user or action")
    require(viewer, "user.manage", user)
    if user.id == viewer.user_id:
        raise errors.Conflict("you cannot disable yourself")
    accounts.set_active(session, user=user, active=action == "enable", actor_id=viewer.user_id)
    session.commit()
    return _back("/admin/users", f"user_{action}d", user=user.username)


@router.post("/tokens/{token_id}/revoke")
def token_revoke(
    request: Request, session: SessionDep, viewer: CurrentViewer, token_id: PathId
) -> Response:
    token = session.get(ApiToken, token_id)
    owner = session.get(User, token.user_id) if token else None
    if token is None or owner is None:
        raise errors.NotFound("no such token")
    require(viewer, "token.create", owner)
    accounts.revoke_token(session, token=token, actor_id=viewer.user_id)
    session.commit()
    return _back("/admin/users", "token_revoked", token=token.prefix)


@router.get("/audit")
def audit_page(request: Request, session: SessionDep, viewer: CurrentViewer) -> Response:
    require(viewer, "users.list")
    query = select(AccountAudit).order_by(AccountAudit.id.desc()).limit(200)  # type: ignore[union-attr]
    if not can(viewer, "users.list_all"):
        ids = [u.id for u in _visible_users(session, viewer)]
        # the office's own users, and what was decided about the office itself
        query = query.where(or_(AccountAudit.user_id.in_(ids),  # type: ignore[union-attr]
                                AccountAudit.office_code == viewer.office_code))
    rows = session.exec(query).all()
    names = {u.id: u.username for u in session.exec(select(User))}
    return render(request, "admin/audit.html", {"rows": rows, "names": names})
