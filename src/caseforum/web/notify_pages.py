"""Notification pages: the list (grouped per thread), opening and reading them."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select

from caseforum import errors
from caseforum.authz import require
from caseforum.db import SessionDep
from caseforum.forum import notify, service
from caseforum.models import Notification
from caseforum.web.deps import CurrentViewer
from caseforum.web.params import PathId
from caseforum.web.templating import render

router = APIRouter(tags=["notification pages"], include_in_schema=False)
LISTED = 200  # the newest notifications the page groups


@router.get("/notifications")
def notifications_page(request: Request, session: SessionDep, viewer: CurrentViewer) -> Response:
    require(viewer, "forum.view")
    rows = session.exec(select(Notification).where(Notification.user_id == viewer.user_id)
                        .order_by(Notification.id.desc()).limit(LISTED)).all()  # type: ignore[union-attr]
    readable = service.readable_notifications(session, viewer, list(rows))
    return render(request, "notifications.html",
                  {"groups": notify.group_notifications(readable)})


@router.post("/notifications/read")
def notifications_read(request: Request, session: SessionDep, viewer: CurrentViewer,
                       notification_id: Annotated[str, Form(max_length=20)] = "") -> Response:
    """Mark all read, or one notification and the others of its thread."""
    require(viewer, "forum.view")
    if notification_id.strip():
        if not notification_id.strip().isdigit():
            raise errors.BadRequest("notification_id must be a number")
        _read_one(session, viewer.user_id or 0, int(notification_id))
    else:
        notify.mark_read(session, user_id=viewer.user_id or 0)
    session.commit()
    return RedirectResponse("/notifications", status_code=303)


def _read_one(session: Session, user_id: int, notification_id: int) -> Notification:
    note = session.get(Notification, notification_id)
    if note is None or note.user_id != user_id:
        raise errors.NotFound("no such notification")
    if note.thread_id is not None:
        notify.mark_read(session, user_id=user_id, thread_id=note.thread_id)
    else:
        notify.mark_read(session, user_id=user_id, ids=[notification_id])
    return note


@router.get("/notifications/{notification_id}/open")
def notification_open(session: SessionDep, viewer: CurrentViewer,
                      notification_id: PathId) -> Response:
    """Follow a notification: it (and the rest of its thread's) is read now."""
    require(viewer, "forum.view")
    note = _read_one(session, viewer.user_id or 0, notification_id)
    session.commit()
    link = note.link if note.link.startswith("/") and not note.link.startswith("//") else "/"
    return RedirectResponse(link, status_code=303)
