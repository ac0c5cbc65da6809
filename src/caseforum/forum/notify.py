"""The notifier: turns forum events into notifications and hands them to channels.

Notifications are rows (the in-app bell reads them); each row's creation is
an event too, so the bell updates live.  Other channels (registered with
``register_notification_channels``) get ``deliver(notification, user)`` after
the row is committed: never a network call inside a write transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from caseforum.authz import Viewer, can
from caseforum.db import open_session
from caseforum.events import Consumer, emit
from caseforum.forum.access import thread_target
from caseforum.models import (
    Event,
    Notification,
    Office,
    Post,
    Thread,
    ThreadParticipant,
    User,
    utcnow,
)

log = logging.getLogger(__name__)


def _can_read(session: Session, user: User, thread: Thread) -> bool:
    office = session.get(Office, user.office_code)
    return can(Viewer.of(user, office), "thread.view", thread_target(session, thread))


def notify(session: Session, *, user_id: int, event: Event, kind: str, text: str, link: str,
           thread_id: int | None = None, post_id: int | None = None) -> Notification | None:
    """Add one notification (once per user, event and kind) and its event."""
    exists = session.exec(select(Notification).where(
        Notification.user_id == user_id, Notification.event_id == event.id,
        Notification.kind == kind)).first()
    if exists:
        return None
    note = Notification(user_id=user_id, event_id=event.id or 0, kind=kind, text=text[:500],
                        link=link, thread_id=thread_id, post_id=post_id)
    session.add(note)
    session.flush()
    emit(session, kind="notification.created", subject_type="user", subject_id=user_id,
         payload={"user_id": user_id, "notification_id": note.id})
    return note


def mark_read(session: Session, *, user_id: int, ids: list[int] | None = None,
              thread_id: int | None = None) -> int:
    """Mark ``user_id``'s unread notifications read: those in ``ids``, those of
    ``thread_id``, or (neither given) all of them.  One ``UPDATE``; when it
    changed anything, a ``notification.read`` event lets open bells count down.
    Returns how many were marked."""
    query = update(Notification).where(
        Notification.user_id == user_id,  # type: ignore[arg-type]
        Notification.read_at.is_(None))  # type: ignore[union-attr]
    if ids is not None:
        query = query.where(Notification.id.in_(ids))  # type: ignore[union-attr]
    if thread_id is not None:
        query = query.where(Notification.thread_id == thread_id)  # type: ignore[arg-type]
    changed = session.exec(query.values(read_at=utcnow())).rowcount or 0  # type: ignore[call-overload]
    if changed:
        emit(session, kind="notification.read", subject_type="user", subject_id=user_id,
             payload={"user_id": user_id, "read": True})
    return changed


@dataclass
class NotificationGroup:
    """The notifications about one thread (or one other subject), newest first:
    the page shows one line per group, not one per post."""

    latest: Notification
    notes: list[Notification] = field(default_factory=list)

    @property
    def unread(self) -> int:
        return sum(1 for n in self.notes if n.read_at is None)

    @property
    def more(self) -> int:
        return len(self.notes) - 1


def group_notifications(notes: list[Notification]) -> list[NotificationGroup]:
    """Group ``notes`` (newest first) per thread; notes without a thread group by
    their link.  Groups keep the order of their newest note."""
    groups: dict[tuple[str, Any], NotificationGroup] = {}
    for note in notes:
        key = ("thread", note.thread_id) if note.thread_id is not None else ("link", note.link)
        group = groups.get(key)
        if group is None:
            group = groups[key] = NotificationGroup(latest=note)
        group.notes.append(note)
    return list(groups.values())


class Notifier(Consumer):
    name = "notifier"

    def __init__(self, engine: Engine, channels: Any) -> None:
        self.engine = engine
        self.channels = channels  # callable returning the registered channels
        self.created: list[int] = []

    def wants(self, event: Event) -> bool:
        return event.kind == "post.created"

    def handle(self, session: Session, event: Event) -> None:
        post = session.get(Post, event.payload.get("post_id"))
        thread = session.get(Thread, event.payload.get("thread_id"))
        if post is None or thread is None or post.hidden or post.quiet:
            return
        author = session.get(User, post.author_id)
        who = author.display_name or author.username if author else "someone"
        link = f"/threads/{thread.id}#post-{post.id}"
        targets: dict[int, tuple[str, str]] = {}
        if thread.is_private:
            for user_id in session.exec(select(ThreadParticipant.user_id).where(
                    ThreadParticipant.thread_id == thread.id)):
                targets[user_id] = ("message", f"{who} wrote in “{thread.title}”")
        if post.reply_to_id:
            parent = session.get(Post, post.reply_to_id)
            if parent:
                targets[parent.author_id] = ("reply", f"{who} replied to you in “{thread.title}”")
        for user_id in event.payload.get("mentioned") or []:
            targets[user_id] = ("mention", f"{who} mentioned you in “{thread.title}”")
        targets.pop(post.author_id, None)  # nobody is told of their own post
        if author is not None and str(author.role) == "bot" and post.reply_to_id:
            # a bot answering a command: the asker is watching for it already
            parent = session.get(Post, post.reply_to_id)
            if parent is not None:
                targets.pop(parent.author_id, None)
        for user_id, (kind, text) in targets.items():
            user = session.get(User, user_id)
            if (user is None or not user.is_active or str(user.role) == "bot"
                    or not _can_read(session, user, thread)):
                continue
            note = notify(session, user_id=user_id, event=event, kind=kind, text=text,
                          link=link, thread_id=thread.id, post_id=post.id)
            if note is not None:
                self.created.append(note.id or 0)

    def after_commit(self) -> None:
        """Hand new notifications to the other channels, outside any transaction."""
        ids, self.created = self.created, []
        channels = self.channels()
        if not ids or not channels:
            return
        with open_session(self.engine) as session:
            for note in session.exec(select(Notification).where(
                    Notification.id.in_(ids))):  # type: ignore[attr-defined]
                user = session.get(User, note.user_id)
                for channel in channels:
                    try:
                        channel.deliver(note, user)
                    except Exception:
                        log.exception("channel %s failed for notification %s",
                                      getattr(channel, "name", channel), note.id)
