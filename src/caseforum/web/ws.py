"""Websockets: live thread, forum list and notification bell.

The handshake checks the Origin (a page of this site, or no Origin at all
for non-browser clients with a bearer token) and the session or token; a
viewer who may not see a thread is refused before anything is sent.  It also
settles the language and zone the socket's fragments are rendered in, as a page
of the same browser would (``web/locale.py``).  It costs
one worker-thread hop and two queries (credential with user and office, then
the thread), so many sockets connect cheaply.

A credential that is presented but not good (unknown, revoked, expired,
malformed, the user disabled) is answered with close code 4401 and a reason;
a socket whose access is taken away later is closed by the hub with 4401
(signed out) or 4403 (no longer allowed), see :mod:`caseforum.forum.hub`.
"""

import asyncio

import anyio
from fastapi import APIRouter, WebSocket
from itsdangerous import BadSignature
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocketDisconnect

from caseforum.authz import Viewer, can
from caseforum.db import open_session
from caseforum.forum.access import thread_targets
from caseforum.forum.hub import Subscriber, TooOld
from caseforum.forum.live_auth import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    CLOSE_RELOAD,
    CLOSE_UNAUTHENTICATED,
    Credential,
    Rejected,
    may_watch,
    resolve_session,
    resolve_token,
)
from caseforum.web.deps import SESSION_COOKIE, cookie_signer
from caseforum.web.locale import language_for, zone_for

router = APIRouter()

CLOSE_BAD_REQUEST = 4400  # a query parameter out of range; the reason says which
_MAX_ID = 2**63 - 1  # database integers: anything larger cannot name a row

__all__ = ["CLOSE_BAD_REQUEST", "CLOSE_FORBIDDEN", "CLOSE_NOT_FOUND", "CLOSE_RELOAD",
           "CLOSE_UNAUTHENTICATED", "router"]


def _origin_ok(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:
        return ws.headers.get("authorization", "").lower().startswith("bearer ")
    host = ws.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


class _NoCredential(Exception):
    """Neither a token nor a session cookie: not logged in."""


def _credential(ws: WebSocket, thread_id: int | None
                ) -> tuple[Credential, Viewer, bool]:
    """Who is calling and whether they may watch ``thread_id`` (sync: one worker
    thread, one session, two queries).  Raises :class:`Rejected` for a credential
    that is not good and :class:`_NoCredential` when none was presented."""
    state = ws.app.state
    auth = ws.headers.get("authorization", "")
    with open_session(state.engine) as session:
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Rejected("use 'Authorization: Bearer TOKEN'")
            credential, viewer = resolve_token(session, value.strip())
        else:
            raw = ws.cookies.get(SESSION_COOKIE)
            if not raw:
                raise _NoCredential
            try:
                secret = cookie_signer(ws).loads(raw)
            except BadSignature:
                raise Rejected("bad session cookie: log in again") from None
            if not isinstance(secret, str):
                raise Rejected("bad session cookie: log in again")
            credential, viewer = resolve_session(session, secret)
        allowed = True
        if thread_id is not None and can(viewer, "forum.view"):
            allowed = may_watch(viewer, thread_targets(session, [thread_id]).get(thread_id))
        return credential, viewer, allowed


async def _serve(ws: WebSocket, topics: set[str], after: int | None,
                 thread_id: int | None) -> None:
    """``after``: the last event id the client saw; none given means "from now"."""
    if not _origin_ok(ws):
        await ws.close(code=CLOSE_FORBIDDEN, reason="origin not allowed")
        return
    app = ws.app
    hub = app.state.hub
    checked_after = hub.now_id  # revocations after this may postdate the check below
    try:
        credential, viewer, allowed = await anyio.to_thread.run_sync(
            _credential, ws, thread_id)
    except _NoCredential:
        await ws.close(code=CLOSE_FORBIDDEN, reason="log in first")
        return
    except Rejected as exc:
        await ws.accept()  # so that the client gets the code and the reason
        await ws.close(code=CLOSE_UNAUTHENTICATED, reason=str(exc)[:120])
        return
    if not can(viewer, "forum.view"):
        await ws.close(code=CLOSE_FORBIDDEN, reason="no access to the forum")
        return
    if not allowed:
        await ws.close(code=CLOSE_NOT_FOUND, reason="no such thread")
        return
    # the fragments this socket gets are in the language and zone its pages are in
    viewer = viewer.reading(language_for(ws, viewer.language),
                            zone_for(ws, viewer.time_zone))
    topics = topics | {f"user:{viewer.user_id}"}
    await ws.accept()
    if after is None:
        after = hub.now_id
    sub = Subscriber(viewer=viewer, topics=topics, send=ws.send_text, credential=credential,
                     thread_id=thread_id, checked_after=checked_after)
    writer = reader = None
    try:
        try:
            await hub.subscribe(sub, after)
        except TooOld:
            await ws.close(code=CLOSE_RELOAD, reason="reload")
            return
        if sub.close_code is None:
            writer = asyncio.create_task(sub.writer())
            reader = asyncio.create_task(_drain(ws))
            await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        if sub.close_code is not None:
            await ws.close(code=sub.close_code, reason=sub.close_reason)
    except Exception:  # the client went away mid-send
        pass
    finally:
        hub.unsubscribe(sub)
        for task in (writer, reader):
            if task is not None:
                task.cancel()


async def _drain(ws: WebSocket) -> None:
    """Clients send nothing we need; reading notices when they leave."""
    try:
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        return


def _number(ws: WebSocket, name: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) > _MAX_ID:
        raise ValueError(f"{name} must be a whole number between 0 and {_MAX_ID}")
    return int(value)


async def _endpoint(ws: WebSocket) -> None:
    """One endpoint for the three paths.  Plain Starlette routes on purpose: the
    app-wide request dependencies (``load_viewer``, CSRF) would cost three queries
    and answer a bad token with an HTTP error page; the handshake does its own,
    cheaper checks above and answers with close codes."""
    try:
        thread_id = _number(ws, "thread id", ws.path_params.get("thread_id"))
        after = _number(ws, "after", ws.query_params.get("after"))
    except ValueError as exc:
        await ws.accept()
        await ws.close(code=CLOSE_BAD_REQUEST, reason=str(exc))
        return
    if thread_id is not None:
        topics = {f"thread:{thread_id}"}
    elif ws.url.path.endswith("/forum"):
        topics = {"forum"}
    else:
        topics = set()
    await _serve(ws, topics, after, thread_id)


router.routes.extend([
    WebSocketRoute("/ws/threads/{thread_id}", _endpoint, name="thread_socket"),
    WebSocketRoute("/ws/forum", _endpoint, name="forum_socket"),
    WebSocketRoute("/ws/me", _endpoint, name="me_socket"),
])
