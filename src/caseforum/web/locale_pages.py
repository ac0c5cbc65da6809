"""The language switcher in every page's header (a plain form: no script needed) and
the settings page's language and time zone."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from caseforum import errors, i18n
from caseforum.authz import require
from caseforum.db import SessionDep
from caseforum.web.deps import CurrentUser, CurrentViewer
from caseforum.web.locale import LANG_COOKIE
from caseforum.web.security import safe_next

router = APIRouter(tags=["pages"], include_in_schema=False)

LANG_COOKIE_DAYS = 365


def language_code(value: str) -> str:
    """A language asked for in a form: one of ours, or :class:`InvalidInput`."""
    if value not in i18n.LANGUAGES:
        raise errors.InvalidInput(i18n.Msg("language: use one of %(codes)s",
                                           codes=", ".join(i18n.LANGUAGES)))
    return value


def remember_language(response: Response, request: Request, code: str) -> None:
    response.set_cookie(LANG_COOKIE, code, max_age=LANG_COOKIE_DAYS * 86400, httponly=True,
                        samesite="lax", secure=request.app.state.settings.secure_cookies)


@router.post("/language")
def switch_language(request: Request, session: SessionDep,
                    language: Annotated[str, Form(max_length=20)],
                    next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    """Show the site in ``language`` from now on.  A user's choice is kept as their
    preference too, so that it follows them to other browsers."""
    code = language_code(language)
    user = getattr(request.state, "user", None)
    if user is not None and user.locale != code:
        user.locale = code
        session.add(user)
        session.commit()
    response = RedirectResponse(safe_next(next), status_code=303)
    remember_language(response, request, code)
    return response


def zone_name(value: str) -> str:
    """A time zone asked for in a form: an IANA name, or :class:`InvalidInput`."""
    if i18n.zone(value) is None:
        raise errors.InvalidInput(i18n.Msg(
            "time_zone: no time zone %(name)s; use a name such as Asia/Tokyo", name=value))
    return value


@router.post("/settings/locale")
def save_locale(request: Request, session: SessionDep, viewer: CurrentViewer,
                user: CurrentUser, language: Annotated[str, Form(max_length=20)] = "",
                time_zone: Annotated[str, Form(max_length=64)] = "") -> Response:
    """The settings page's language (one of ours, or empty: the browser decides) and
    time zone (an IANA name, or empty: the office's)."""
    require(viewer, "me.view")
    user.locale = language_code(language) if language else ""
    user.time_zone = zone_name(time_zone.strip()) if time_zone.strip() else ""
    session.add(user)
    session.commit()
    response = RedirectResponse("/settings", status_code=303)
    if language:
        remember_language(response, request, language)
    else:
        response.delete_cookie(LANG_COOKIE)
    return response
