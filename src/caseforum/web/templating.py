"""Jinja2 pages: the whole page on reload, one named block for htmx requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from jinja2_fragments import render_block

from caseforum import __version__
from caseforum.authz import can
from caseforum.forum.targets import post_target
from caseforum.web.security import csrf_token

CORE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def make_environment(extra_dirs: list[Path]) -> Environment:
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(d)) for d in [CORE_TEMPLATES, *extra_dirs]]),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the code; no stat() per render
    )
    env.globals["version"] = __version__
    env.globals["post_target"] = post_target
    env.globals["can"] = can
    env.filters["isodate"] = lambda d: d.strftime("%Y-%m-%d") if d else ""
    env.filters["isotime"] = lambda d: d.strftime("%Y-%m-%d %H:%M UTC") if d else ""
    return env


def unread_notifications(request: Request) -> int:
    user = getattr(request.state, "user", None)
    if user is None:
        return 0
    from sqlalchemy import func
    from sqlmodel import select

    from caseforum.db import open_session
    from caseforum.models import Notification

    with open_session(request.app.state.engine) as session:
        return session.exec(select(func.count()).select_from(Notification).where(
            Notification.user_id == user.id, Notification.read_at.is_(None))).one()


def is_htmx(request: Request) -> bool:
    """A fragment request: htmx, but not a boosted link or a history restore,
    which want the whole page."""
    headers = request.headers
    return (
        headers.get("hx-request") == "true"
        and not headers.get("hx-boosted")
        and not headers.get("hx-history-restore-request")
    )


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    block: str | None = "content",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template``; an htmx request gets only ``block``."""
    state = request.app.state
    viewer = getattr(request.state, "viewer", None)
    ctx: dict[str, Any] = {
        "request": request,
        "viewer": viewer,
        "user": getattr(request.state, "user", None),
        "office": getattr(request.state, "office", None),
        "csrf_token": csrf_token(request),
        "nav_items": state.plugins.nav_items(user=viewer),
        "path": request.url.path,
        "live_after": state.latest_event_id,
        "bell_count": lambda: unread_notifications(request),
    }
    ctx.update(context or {})
    env: Environment = state.templates
    if block and is_htmx(request):
        body = render_block(env, template, block, **ctx)
    else:
        body = env.get_template(template).render(**ctx)
    response = HTMLResponse(body, status_code=status_code, headers=headers)
    new_cookie = getattr(request.state, "new_csrf_cookie", None)
    if new_cookie:
        response.set_cookie("cf_csrf", new_cookie, httponly=True, samesite="lax",
                            secure=state.settings.secure_cookies)
    return response
