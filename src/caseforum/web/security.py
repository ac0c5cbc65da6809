"""Security headers and CSRF protection applied to every request."""

import functools
import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caseforum import errors
from caseforum.i18n import N_

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    b"content-security-policy": CSP.encode(),
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"same-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=()",
    b"cross-origin-opener-policy": b"same-origin",
}
# a content response (web/content.py) brings its own sandbox policy and framing rule
CONTENT_MARKER = b"x-caseforum-content"
OWN_CONTENT_HEADERS = (b"content-security-policy", b"x-frame-options", b"referrer-policy")
CONTENT_FALLBACK_CSP = b"sandbox; default-src 'none'; frame-ancestors 'none'"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
CSRF_COOKIE = "cf_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


class SecurityHeadersMiddleware:
    """Adds the headers to every HTTP response, including errors and static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        settings = getattr(scope["app"].state, "settings", None) if "app" in scope else None
        ours = headers_for(getattr(settings, "content_base_url", None))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(message.get("headers", []), ours)
            await send(message)

        await self.app(scope, receive, send_with_headers)


@functools.lru_cache(maxsize=8)
def headers_for(content_origin: str | None) -> dict[bytes, bytes]:
    """Our headers; app pages may frame documents from the content host when there is one."""
    if not content_origin:
        return SECURITY_HEADERS
    csp = CSP.replace("default-src 'self';",
                      f"default-src 'self'; frame-src 'self' {content_origin};")
    return {**SECURITY_HEADERS, b"content-security-policy": csp.encode()}


def with_security_headers(original: list[tuple[bytes, bytes]],
                          ours: dict[bytes, bytes] = SECURITY_HEADERS,
                          ) -> list[tuple[bytes, bytes]]:
    """The response's headers with ours: ours replace any a route set, except that a
    content response (marked by ``content_response``) keeps its sandbox policy."""
    content = any(k.lower() == CONTENT_MARKER for k, _ in original)
    if not content:
        headers = [(k, v) for k, v in original if k.lower() not in ours]
        return headers + list(ours.items())
    headers = [(k, v) for k, v in original if k.lower() != CONTENT_MARKER]
    present = {k.lower() for k, _ in headers}
    if b"content-security-policy" not in present:
        headers.append((b"content-security-policy", CONTENT_FALLBACK_CSP))
    headers.extend((k, v) for k, v in ours.items()
                   if k not in present and k not in OWN_CONTENT_HEADERS)
    return headers


def _basis(conn: HTTPConnection) -> str | None:
    """What the token is bound to: the log-in session, else the anonymous cookie."""
    return getattr(conn.state, "session_secret", None) or conn.cookies.get(CSRF_COOKIE)


def csrf_token(conn: HTTPConnection) -> str:
    basis = _basis(conn) or getattr(conn.state, "new_csrf_cookie", None)
    if basis is None:
        basis = secrets.token_urlsafe(24)
        conn.state.new_csrf_cookie = basis
    key: bytes = conn.app.state.settings.secret_key.encode()
    return hmac.new(key, b"csrf:" + basis.encode(), hashlib.sha256).hexdigest()


async def verify_csrf(conn: HTTPConnection) -> None:
    """App-wide dependency: a state-changing browser request must carry the token.

    Requests authenticated only by an ``Authorization: Bearer`` token, and
    API requests with no session at all (a peer instance pushing a signed
    parcel), carry no ambient credentials, so they need none.
    """
    if conn.scope["type"] != "http":
        return
    request: Request = conn  # type: ignore[assignment]
    if request.method in SAFE_METHODS:
        return
    auth_kind = getattr(request.state, "auth_kind", None)
    if auth_kind == "token":
        return
    if auth_kind is None and request.url.path.startswith("/api/"):
        return  # no session cookie: nothing ambient for a forged request to ride on
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not sent or _basis(request) is None:
        raise errors.Forbidden(
            N_("Security token missing: reload the page and send the form again"), code="csrf")
    if not hmac.compare_digest(sent, csrf_token(request)):
        raise errors.Forbidden(
            N_("Security token does not match: reload the page and send the form again"),
            code="csrf")


def safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a user off to another host."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
