"""Request bodies are bounded before they are read.

Without this, a 200 MB JSON body is read whole into memory before FastAPI parses it,
and an anonymous 400 MB multipart upload is spooled to disk before any route can
refuse it. The middleware decides from the request head alone where it can: the
declared ``Content-Length`` against the limit for its kind of body (small for JSON and
forms, ``max_upload_mb`` for multipart uploads), and for an upload whether the caller
is logged in at all. A body sent without a length (chunked) is counted as it streams,
and the request is answered 413 as soon as it passes the limit, whatever the route was
doing with it.
"""

from __future__ import annotations

import html
import json

import anyio
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caseforum import errors

#: room for the multipart boundaries and the small fields around the uploaded file
FORM_OVERHEAD = 1024 * 1024
#: multipart bodies that need no logged-in caller: the ICE peer inbox, where another
#: instance signs the parcel itself
ANONYMOUS_UPLOADS = ("/api/v1/ice/inbox",)


class BodyTooLarge(errors.TooLarge):
    """Raised to the application when a streamed body passes its limit."""


class BodyLimitMiddleware:
    """Refuse oversized bodies (413) and anonymous uploads (401) before reading them."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int,
                 anonymous_uploads: tuple[str, ...] = ANONYMOUS_UPLOADS) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes + FORM_OVERHEAD
        self.anonymous_uploads = anonymous_uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        upload = headers.get("content-type", "").lower().startswith("multipart/")
        limit = self.max_upload_bytes if upload else self.max_body_bytes
        too_large = (f"an upload may have at most {_size(limit)}" if upload else
                     f"a JSON or form body may have at most {_size(limit)}; "
                     "files go in a multipart/form-data upload")
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(scope, send, errors.BadRequest(
                    "Content-Length must be a number of bytes"))
                return
            if int(declared) > limit:
                await _answer(scope, send, errors.TooLarge(too_large))
                return
        if upload and scope.get("path", "") not in self.anonymous_uploads:
            refusal = await _anonymous(scope)
            if refusal is not None:
                await _answer(scope, send, refusal)
                return

        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLarge(too_large)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(too_large)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the application's answer to the cut body; ours follows
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await _answer(scope, send, errors.TooLarge(too_large))


async def _anonymous(scope: Scope) -> errors.CaseForumError | None:
    """401 unless the request carries a valid log-in (session cookie or bearer token).

    Resolving the caller here costs one small query, which the route's own
    dependency then reuses (the result is kept on the request state)."""
    from caseforum.web.deps import load_viewer  # the app's one way to find the caller

    conn = HTTPConnection(scope)
    if not conn.headers.get("authorization") and not conn.cookies:
        return errors.Unauthorized("log in (or send an API token) before uploading")
    try:
        viewer = await anyio.to_thread.run_sync(load_viewer, conn)
    except errors.CaseForumError as exc:
        return exc
    except Exception as exc:  # an HTTPException from the dependency: same status
        status = getattr(exc, "status_code", None)
        if status is None:
            raise
        return errors.CaseForumError(str(getattr(exc, "detail", exc)), status=status,
                                     code=errors.code_for(status))
    if not viewer.is_authenticated:
        return errors.Unauthorized("log in (or send an API token) before uploading")
    return None


async def _answer(scope: Scope, send: Send, exc: errors.CaseForumError) -> None:
    """The error in the app's one shape, ``{"detail", "code"}`` (a short page for a
    browser's form), without reading the body; the connection is closed afterwards so the
    unread body is not taken as the next request."""
    conn = HTTPConnection(scope)
    if not conn.url.path.startswith("/api/") and "text/html" in conn.headers.get("accept", ""):
        media_type = b"text/html; charset=utf-8"
        body = (f"<!doctype html><title>Error {exc.status}</title><h1>Error {exc.status}</h1>"
                f"<p>{html.escape(exc.message)}</p><p><a href=\"/\">Back to the home page</a>"
                "</p>").encode()
    else:
        media_type = b"application/json"
        body = json.dumps(exc.as_json()).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", media_type),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    for name, value in (exc.headers or {}).items():
        headers.append((name.lower().encode(), value.encode()))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _size(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):.0f} MB"
    return f"{limit // 1024} KB"

