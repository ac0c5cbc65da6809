"""Jinja2 pages: the whole page on reload, one named block for htmx requests.

Pages speak the reader's language and show times in the reader's zone: :func:`render`
picks the environment compiled for the reader's language and makes the reader's
locale current while it renders (``web/template_i18n.py``); a render outside a page
with no locale of its own gets the app environment's default locale (the live hub
brings each watcher's, ``forum/live.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from jinja2_fragments import render_block
from sqlmodel import Session

from caseforum import __version__, i18n
from caseforum.authz import Viewer, can
from caseforum.db import open_session
from caseforum.dossiers.languages import language_name
from caseforum.forum import inbox
from caseforum.forum.access import post_target
from caseforum.forum.view import Renderer
from caseforum.offices import OFFICE_ZONES
from caseforum.web import template_i18n
from caseforum.web.locale import request_locale
from caseforum.web.proxy import cookies_secure
from caseforum.web.security import csrf_token

CORE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def make_environment(extra_dirs: list[Path], *, default_locale: str = i18n.DEFAULT_LANGUAGE,
                     default_time_zone: str = i18n.UTC_ZONE) -> Environment:
    """The one template environment of an app.  ``default_locale`` and
    ``default_time_zone`` are what a render outside a page uses when it brings no
    locale of its own."""
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(d)) for d in [CORE_TEMPLATES, *extra_dirs]]),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the code; no stat() per render
        extensions=["jinja2.ext.i18n", template_i18n.FixedMessages],
    )
    env.policies["ext.i18n.trimmed"] = True  # {% trans %} blocks: whitespace as in HTML
    fallback = i18n.PageLocale.of(default_locale, default_time_zone)
    template_i18n.install(env, fallback)
    current = i18n.current

    def locale() -> i18n.PageLocale:
        return current() or fallback

    env.globals["version"] = __version__
    env.globals["post_target"] = post_target
    env.globals["can"] = can
    env.globals["language_name"] = language_name  # a document's language, for | tr
    env.globals["languages"] = list(i18n.LANGUAGES.values())
    env.globals["default_time_zone"] = default_time_zone
    env.globals["time_zones"] = sorted({*i18n.COMMON_ZONES, *OFFICE_ZONES.values()})
    env.filters["isodate"] = lambda d: i18n.local_date(d, locale().zone) if d else ""
    env.filters["isotime"] = lambda d: i18n.local_time(d, locale().zone) if d else ""
    #: a message from Python code (an error's text, ``N_``/``Msg``) in the reader's language
    env.filters["tr"] = lambda message: i18n.translate(message, locale())
    return env


def page_renderer(request: Request, session: Session, viewer: Viewer) -> Renderer:
    """Posts as ``viewer`` sees them on a page, their dossier cards and bot blocks in
    the reader's language and zone."""
    state = request.app.state
    return Renderer(session, viewer, state.plugins, state.templates,
                    locale=request_locale(request))


def unread_notifications(request: Request) -> int:
    """The bell's number (only what the user may still read: :mod:`caseforum.forum.inbox`),
    asked in the request's own session (never a second connection); outside a
    request's session (an error page rendered after the session closed) in a short
    one of its own."""
    viewer = getattr(request.state, "viewer", None)
    if viewer is None or not viewer.is_authenticated:
        return 0
    session = getattr(request.state, "db", None)
    if session is not None:
        return inbox.unread_count(session, viewer)
    with open_session(request.app.state.engine) as own:
        return inbox.unread_count(own, viewer)


def _once(compute: Callable[[], int]) -> Callable[[], int]:
    """A template helper that asks the database at most once per page."""
    box: list[int] = []

    def value() -> int:
        if not box:
            box.append(compute())
        return box[0]

    return value


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
    locale = request_locale(request)
    ctx: dict[str, Any] = {
        "request": request,
        "viewer": viewer,
        "user": getattr(request.state, "user", None),
        "office": getattr(request.state, "office", None),
        "csrf_token": csrf_token(request),
        "nav_items": state.plugins.nav_items(user=viewer),
        "path": request.url.path,
        "live_after": _once(state.latest_event_id),
        "bell_count": _once(lambda: unread_notifications(request)),
        "locale": locale,
    }
    ctx.update(context or {})
    env = template_i18n.for_language(state.templates, locale.code)
    with i18n.using(locale):
        if block and is_htmx(request):
            body = render_block(env, template, block, **ctx)
        else:
            body = env.get_template(template).render(**ctx)
    response = HTMLResponse(body, status_code=status_code, headers=headers)
    new_cookie = getattr(request.state, "new_csrf_cookie", None)
    if new_cookie:
        response.set_cookie("cf_csrf", new_cookie, httponly=True, samesite="lax",
                            secure=cookies_secure(request))
    return response
