"""Log-in and log-out."""

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from caseforum import accounts
from caseforum.db import SessionDep
from caseforum.i18n import N_, NMsg
from caseforum.web.deps import SESSION_COOKIE, cookie_signer
from caseforum.web.proxy import cookies_secure
from caseforum.web.security import safe_next
from caseforum.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


def login_url(request: Request) -> str:
    """The log-in page, set to bring the user back to where they were going.

    A page the browser asked for directly comes back to itself (query included); an
    htmx request that is not a page load, or a form post, to the page it was made
    from (``HX-Current-URL``, else ``Referer``: same-site paths only)."""
    headers = request.headers
    fragment = headers.get("hx-request") == "true" and not headers.get("hx-boosted")
    if request.method == "GET" and not fragment:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        came_from = urlsplit(headers.get("hx-current-url") or headers.get("referer") or "/")
        same_site = not came_from.netloc or came_from.netloc == request.url.netloc
        target = (came_from.path or "/") + (f"?{came_from.query}" if came_from.query else "")
        target = target if same_site else "/"
    target = safe_next(target)
    return "/login" if target == "/" else f"/login?next={quote(target, safe='/')}"


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    settings = request.app.state.settings
    target = safe_next(next)
    try:
        user = accounts.authenticate(
            session,
            username=username,
            password=password,
            address=_address(request),
            max_failures=settings.login_max_failures,
            max_failures_per_address=settings.login_max_failures_per_address,
            window_minutes=settings.login_window_minutes,
            backoff_seconds=settings.login_backoff_seconds,
        )
    except accounts.Throttled as exc:
        if exc.retry_after < 120:
            error = NMsg("Too many failed log-ins. Wait %(num)d second and try again, or ask "
                         "your office admin.", "Too many failed log-ins. Wait %(num)d seconds "
                         "and try again, or ask your office admin.", exc.retry_after)
        else:
            error = NMsg("Too many failed log-ins. Wait %(num)d minute and try again, or ask "
                         "your office admin.", "Too many failed log-ins. Wait %(num)d minutes "
                         "and try again, or ask your office admin.",
                         (exc.retry_after + 59) // 60)
        page = render(
            request, "login.html",
            {"next": target, "username": username, "error": error},
            status_code=429, block=None,
        )
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    if user is None:
        return render(
            request, "login.html",
            {"next": target, "username": username, "error": N_("Wrong username or password.")},
            status_code=401, block=None,
        )
    # a fresh session id at every log-in (no session fixation)
    old = getattr(request.state, "session_secret", None)
    if old:
        accounts.end_session(session, old)
    secret = accounts.start_session(
        session, user=user, days=settings.session_days, address=_address(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    session.commit()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, cookie_signer(request).dumps(secret),
        max_age=settings.session_days * 86400, httponly=True, samesite="lax",
        secure=cookies_secure(request),
    )
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep) -> Response:
    secret = getattr(request.state, "session_secret", None)
    if secret:
        accounts.end_session(session, secret)
        session.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
