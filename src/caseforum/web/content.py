"""Serving uploaded and fetched bytes so that they can never act in CaseForum's origin.

A providing office's examiner, an ICE sender or a remote dossier source decides
what bytes we hold; the people who open them are other offices' users, admins
among them.  If such bytes were shown as a page of our origin (an "XML" file that
is really XHTML loading our own htmx, an SVG, a ``.js`` file), they would act
with the reader's session.  So every response carrying such bytes is built here,
in one place, and:

- gets a media type decided from the bytes (:func:`caseforum.storage.served_media_type`),
  never the one the uploader or sender declared;
- is shown inline only when it is a PDF or a raster image, else downloaded;
- carries ``Content-Security-Policy: sandbox`` (no scripts, forms, plugins, popups
  or navigation; an opaque origin) with ``default-src 'none'``, and ``nosniff``.

Optionally documents live on an origin of their own (setting ``content_base_url``),
reached only through short-lived links signed for one document and one user
(:func:`signed_url`); on that host nothing else of the application answers and no
cookie or token is looked at (:class:`ContentHostGate`).
"""

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from fastapi import Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from sqlmodel import Session
from starlette.types import ASGIApp, Receive, Scope, Send

from caseforum.authz import Viewer
from caseforum.config import Settings
from caseforum.models import Office, User
from caseforum.storage import PASSIVE_TYPES, SNIFF_BYTES, served_media_type

# The response asks the security-headers middleware to keep its own CSP and framing
# rule; the middleware removes this header before it leaves the server.
MARKER = "x-caseforum-content"
CONTENT_PATH = "/content/"
URL_LIFETIME_SECONDS = 300
# Chromium's PDF viewer works inside the sandbox as it is; the image viewer a browser
# builds around a picture needs its inline styles.  Nothing else is allowed.
_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; frame-ancestors {ancestors}"
_UNSAFE_NAME = re.compile(r'[^A-Za-z0-9._ -]')


def _origin(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.lower()
    default = {"http": ":80", "https": ":443"}.get(parts.scheme, "")
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return f"{parts.scheme}://{netloc}"


def content_csp(settings: Settings | None = None) -> str:
    """The policy of a content response; it may be framed by the app's pages only."""
    ancestors = "'self'"
    if settings is not None and settings.content_base_url:
        ancestors = _origin(settings.base_url)
    return _CSP.format(ancestors=ancestors)


def read_head(chunks: Iterable[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """The first bytes of a stream (enough to tell its type) and the whole stream again."""
    stream = iter(chunks)
    parts: list[bytes] = []
    size = 0
    while size < SNIFF_BYTES:
        chunk = next(stream, None)
        if chunk is None:
            break
        parts.append(chunk)
        size += len(chunk)

    def replay() -> Iterator[bytes]:
        yield from parts
        yield from stream

    return b"".join(parts)[:SNIFF_BYTES], replay()


def disposition(kind: str, filename: str) -> str:
    """A ``Content-Disposition`` value that is safe whatever the name holds."""
    fallback = _UNSAFE_NAME.sub("_", filename).strip() or "document"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def content_response(chunks: Iterable[bytes], *, filename: str, inline: bool = False,
                     size: int | None = None, settings: Settings | None = None,
                     headers: dict[str, str] | None = None) -> StreamingResponse:
    """The only way CaseForum answers with uploaded, received or fetched bytes.

    ``inline`` is a wish: it is granted only for a PDF or a raster image, as told
    from the bytes.  ``settings`` (when given) lets the app's own origin frame the
    response from a separate content host.  Reads the first few KB at once (blocking
    I/O: call it from a worker thread).
    """
    head, stream = read_head(chunks)
    media_type = served_media_type(head)
    shown = inline and media_type in PASSIVE_TYPES
    out = {
        **(headers or {}),
        "Content-Disposition": disposition("inline" if shown else "attachment", filename),
        "Content-Security-Policy": content_csp(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        MARKER: "1",
    }
    if not (settings and settings.content_base_url):
        out["X-Frame-Options"] = "SAMEORIGIN"
    if size is not None:
        out["Content-Length"] = str(size)
    return StreamingResponse(stream, media_type=media_type, headers=out)


# Signed links -------------------------------------------------------------------


class ContentLinkError(Exception):
    """A content link that must not be honoured; ``status`` is 403 or 404."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Grant:
    """What a valid signed link allows: this user, this document, shown or downloaded."""

    user_id: int
    download: bool


def _signature(secret: str, kind: str, ident: str, user_id: int, expires: int,
               download: bool) -> str:
    # a key of its own, so no other HMAC the app makes (CSRF tokens) can pass for one
    key = hmac.new(secret.encode(), b"caseforum content links", hashlib.sha256).digest()
    message = f"{kind}\n{ident}\n{user_id}\n{expires}\n{'a' if download else 'i'}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def signed_path(settings: Settings, kind: str, ident: str, user_id: int, *,
                download: bool = False, now: float | None = None) -> str:
    """``/content/<kind>/<ident>?...``: good for one user and a few minutes."""
    expires = int(now if now is not None else time.time()) + URL_LIFETIME_SECONDS
    query = urlencode({"u": user_id, "e": expires, "d": "a" if download else "i",
                       "s": _signature(settings.secret_key or "", kind, ident, user_id,
                                       expires, download)})
    return f"{CONTENT_PATH}{kind}/{quote(ident, safe='')}?{query}"


def signed_url(settings: Settings, kind: str, ident: str, user_id: int, *,
               download: bool = False) -> str:
    """The signed link on the content host (or on this origin when there is none)."""
    return (settings.content_base_url or "") + signed_path(settings, kind, ident, user_id,
                                                           download=download)


def check_link(settings: Settings, kind: str, ident: str, query: dict[str, str], *,
               now: float | None = None) -> Grant:
    """The grant a link's query carries, or :class:`ContentLinkError` saying why not."""
    try:
        user_id, expires = int(query.get("u", "")), int(query.get("e", ""))
    except ValueError:
        raise ContentLinkError("this content link is incomplete: open the document "
                               "from its page again") from None
    download = query.get("d") == "a"
    expected = _signature(settings.secret_key or "", kind, ident, user_id, expires, download)
    if not hmac.compare_digest(expected, query.get("s", "")):
        raise ContentLinkError("this content link is not valid: open the document from "
                               "its page again")
    if expires < (now if now is not None else time.time()):
        raise ContentLinkError("this content link has expired: open the document from its "
                               "page again")
    return Grant(user_id=user_id, download=download)


# The content host -----------------------------------------------------------------


def viewer_for(session: Session, user_id: int) -> tuple[Viewer, User | None]:
    """Whom a signed link speaks for, with that user's rights as they are now
    (anonymous for user 0, or for a user since removed or switched off)."""
    user = session.get(User, user_id) if user_id else None
    office = session.get(Office, user.office_code) if user is not None else None
    viewer = Viewer.of(user, office)
    return viewer, user if viewer.is_authenticated else None


def link_refusal(settings: Settings, request: Request, kind: str, ident: str,
                 viewer: Viewer) -> tuple[Grant | None, Response | None]:
    """Check a signed link's request: the grant, or the answer that refuses it.

    On the app's origin while a content host is configured, the answer sends the
    browser there; a logged-in user may not use a link made for someone else.
    """
    if settings.content_base_url and not is_content_host(settings, request.headers.get("host")):
        return None, RedirectResponse(settings.content_base_url + request.url.path + "?"
                                      + request.url.query, status_code=307)
    try:
        grant = check_link(settings, kind, ident, dict(request.query_params))
    except ContentLinkError as exc:
        return None, PlainTextResponse(str(exc), status_code=exc.status)
    if viewer.is_authenticated and viewer.user_id != grant.user_id:
        return None, PlainTextResponse("this content link was made for someone else: open "
                                       "the document from its page", status_code=403)
    return grant, None


def is_content_host(settings: Settings, host: str | None) -> bool:
    if not settings.content_base_url or not host:
        return False
    scheme = urlsplit(settings.content_base_url).scheme
    return _origin(f"{scheme}://{host}") == _origin(settings.content_base_url)


class ContentHostGate:
    """On the content host only the signed content route answers, with no credentials.

    Cookies and ``Authorization`` are dropped before the app sees the request, so a
    session can never be used there, even where browsers share cookies between
    hosts; a signed link is the only key.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        settings: Settings = scope["app"].state.settings
        host = next((v.decode("latin-1") for k, v in scope.get("headers", [])
                     if k == b"host"), None)
        if not is_content_host(settings, host):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if not scope["path"].startswith(CONTENT_PATH) or scope["method"] not in ("GET", "HEAD"):
            body = b"Only document links are served on this host."
            await send({"type": "http.response.start", "status": 404, "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"]
                                      if k not in (b"cookie", b"authorization")]}
        await self.app(scope, receive, send)
