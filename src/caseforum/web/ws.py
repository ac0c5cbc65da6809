"""Websockets: live thread, forum list and notification bell.

The handshake checks the Origin (a page of this site, or no Origin at all
for non-browser clients with a bearer token) and the session or token; a
viewer who may not see a thread is refused before anything is sent.
"""

from __future__ import annotations

import asyncio

import anyio
from fastapi import APIRouter, HTTPException, WebSocket
from starlette.websockets import WebSocketDisconnect

from caseforum import errors
from caseforum.authz import can
from caseforum.db import open_session
from caseforum.forum.hub import Subscriber, TooOld
from caseforum.forum.targets import thread_target
from caseforum.models import Thread
from caseforum.web.deps import load_viewer
from caseforum.web.params import PathId

router = APIRouter()

CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_RELOAD = 4410  # missed events have left the log window: reload the page


def _origin_ok(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:
        return ws.headers.get("authorization", "").lower().startswith("bearer ")
    host = ws.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


async def _serve(ws: WebSocket, topics: set[str], after: int | None,
                 thread_id: int | None) -> None:
    """``after``: the last event id the client saw; none given means "from now"."""
    if not _origin_ok(ws):
        await ws.close(code=CLOSE_FORBIDDEN, reason="origin not allowed")
        return
    try:
        viewer = await anyio.to_thread.run_sync(load_viewer, ws)
    except (HTTPException, errors.CaseForumError):
        await ws.close(code=CLOSE_FORBIDDEN, reason="bad token")
        return
    if not can(viewer, "forum.view"):
        await ws.close(code=CLOSE_FORBIDDEN, reason="log in first")
        return
    app = ws.app
    if thread_id is not None:
        def allowed() -> bool:
            with open_session(app.state.engine) as session:
                thread = session.get(Thread, thread_id)
                return thread is not None and can(viewer, "thread.view",
                                                  thread_target(session, thread))

        if not await anyio.to_thread.run_sync(allowed):
            await ws.close(code=CLOSE_NOT_FOUND, reason="no such thread")
            return
    topics = topics | {f"user:{viewer.user_id}"}
    await ws.accept()
    hub = app.state.hub
    if after is None:
        after = await anyio.to_thread.run_sync(app.state.latest_event_id)
    sub = Subscriber(viewer=viewer, topics=topics, send=ws.send_text)
    try:
        await hub.subscribe(sub, after)
    except TooOld:
        await ws.close(code=CLOSE_RELOAD, reason="reload")
        return
    writer = asyncio.create_task(sub.writer())
    reader = asyncio.create_task(_drain(ws))
    try:
        await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        if sub.overflowed:
            await ws.close(code=CLOSE_RELOAD, reason="too far behind: reload")
    except Exception:  # the client went away mid-send
        pass
    finally:
        hub.unsubscribe(sub)
        for task in (writer, reader):
            task.cancel()


async def _drain(ws: WebSocket) -> None:
    """Clients send nothing we need; reading notices when they leave."""
    try:
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        return


@router.websocket("/ws/threads/{thread_id}")
async def thread_socket(ws: WebSocket, thread_id: PathId, after: int | None = None) -> None:
    await _serve(ws, {f"thread:{thread_id}"}, after, thread_id)


@router.websocket("/ws/forum")
async def forum_socket(ws: WebSocket, after: int | None = None) -> None:
    await _serve(ws, {"forum"}, after, None)


@router.websocket("/ws/me")
async def me_socket(ws: WebSocket, after: int | None = None) -> None:
    await _serve(ws, set(), after, None)
