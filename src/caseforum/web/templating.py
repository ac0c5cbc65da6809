"""Jinja2 pages: the whole page on reload, one named block for htmx requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from jinja2_fragments import render_block

from caseforum import __version__
from caseforum.web.security import csrf_token

CORE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def make_environment(extra_dirs: list[Path]) -> Environment:
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(d)) for d in [CORE_TEMPLATES, *extra_dirs]]),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["version"] = __version__
    env.filters["isodate"] = lambda d: d.strftime("%Y-%m-%d") if d else ""
    env.filters["isotime"] = lambda d: d.strftime("%Y-%m-%d %H:%M UTC") if d else ""
    return env


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
