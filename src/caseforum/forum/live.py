"""HTML fragments pushed to live viewers, one per event, as each viewer may see it."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment
from sqlmodel import Session, select

from caseforum.authz import Viewer, can
from caseforum.forum import service
from caseforum.forum.targets import thread_target
from caseforum.forum.view import Renderer
from caseforum.models import Event, Notification, Post, Thread

THREAD_KINDS = {"post.created", "post.edited", "post.hidden", "post.shown", "post.reacted",
                "thread.changed"}


def topics_of(event: Event) -> set[str]:
    """Which live channels an event concerns."""
    if event.kind in THREAD_KINDS or event.kind == "thread.created":
        thread_id = event.payload.get("thread_id")
        # a quiet note changes no list row: it must not move the thread for anyone
        topics = set() if event.payload.get("quiet") else {"forum"}
        if event.kind in THREAD_KINDS:
            topics.add(f"thread:{thread_id}")
        return topics
    if event.kind in ("notification.created", "notification.read"):
        return {f"user:{event.payload.get('user_id')}"}
    return set()


def thread_fragment(session: Session, env: Environment, host: Any, viewer: Viewer,
                    event: Event) -> str | None:
    """The change to one thread page, or None when this viewer sees nothing of it."""
    thread = session.get(Thread, event.payload.get("thread_id"))
    if thread is None or not can(viewer, "thread.view", thread_target(session, thread)):
        return None
    target = thread_target(session, thread)
    if event.kind == "thread.changed":
        return env.get_template("forum/_thread_status.html").render(
            thread=thread, oob=True, event_id=event.id)
    post = session.get(Post, event.payload.get("post_id"))
    if post is None:
        return None
    views = Renderer(session, viewer, host, env).posts([post])
    if not views:
        return None  # a bot note this viewer may not see
    view = views[0]
    view.mine = set()  # shared by every socket of the profile: no one user's pressed state
    # rendered once for many sockets: no per-session CSRF token in the forms;
    # htmx sends each user's own token in a header (static/js/app.js)
    return env.get_template("forum/_post.html").render(
        p=view, viewer=viewer, thread=thread, target=target, event_id=event.id,
        reactions=service.REACTIONS, csrf_token="",
        oob="new" if event.kind == "post.created" else "replace")


def bell_fragment(session: Session, env: Environment, user_id: int, event_id: int | None) -> str:
    unread = session.exec(select(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None))).all()  # type: ignore[union-attr]
    return env.get_template("partials/bell.html").render(count=len(unread), oob=True,
                                                         event_id=event_id)


def forum_row_fragment(session: Session, env: Environment, viewer: Viewer,
                       event: Event) -> str | None:
    thread = session.get(Thread, event.payload.get("thread_id"))
    if thread is None or not can(viewer, "thread.view", thread_target(session, thread)):
        return None
    unread = service.unread_counts(session, user_id=viewer.user_id or 0,
                                   thread_ids=[thread.id or 0])
    return env.get_template("forum/_thread_row.html").render(
        t=thread, unread=unread.get(thread.id or 0, 0), oob=True, event_id=event.id)
