"""The notifier: turns events into notifications and hands them to channels.

It reads the event log (``post.created``, ``document.added``, the ICE plugin's
``ice.exchange.*`` and ``ice.parcel.refused``), finds who is to be told
(mentions, replies, private messages and ICE alerts always; followers through
their subscriptions, see :mod:`caseforum.subscriptions`), checks each may see
the subject, and stores one :class:`~caseforum.models.Notification` per user
and event together with its deliveries (:mod:`caseforum.channels`), in the
transaction that moves its cursor: a restart neither loses nor repeats one.
Nobody is told of their own doing, nor of a bot's answer to their command.

A notification is stored read; the in-app channel (a built-in plugin) is what
puts it into the bell.  Sending through the other channels happens later,
outside any transaction, in the delivery worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from caseforum import channels as delivery
from caseforum import subscriptions
from caseforum.authz import Viewer, can
from caseforum.events import Consumer, emit
from caseforum.forum import notices
from caseforum.forum.access import in_chunks, thread_target
from caseforum.i18n import Msg
from caseforum.models import (
    Application,
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
ICE_ASSIGNED = "ice.exchange.assigned"  # an office's own business: nobody else is told


def _can_read(session: Session, user: User, thread: Thread) -> bool:
    office = session.get(Office, user.office_code)
    return can(Viewer.of(user, office), "thread.view", thread_target(session, thread))


def notify(session: Session, *, user_id: int, event: Event, kind: str, text: str, link: str,
           thread_id: int | None = None, post_id: int | None = None,
           document_id: int | None = None, subscription_id: int | None = None,
           bell: bool = True) -> Notification | None:
    """Add one notification (once per user, event and kind).  With ``bell`` it is
    put straight into the bell (unread, with its event: the bot runner's error
    notes); the notifier passes ``bell=False`` and lets the channels decide."""
    exists = session.exec(select(Notification.id).where(
        Notification.user_id == user_id, Notification.event_id == event.id,
        Notification.kind == kind)).first()
    if exists:
        return None
    note = Notification(user_id=user_id, event_id=event.id or 0, kind=kind, text=text[:500],
                        link=link, thread_id=thread_id, post_id=post_id,
                        document_id=document_id, subscription_id=subscription_id,
                        read_at=None if bell else utcnow())
    session.add(note)
    session.flush()
    if bell:
        put_in_bell(session, note)
    return note


def put_in_bell(session: Session, note: Notification) -> None:
    """Make ``note`` unread and tell open pages (the bell counts it live)."""
    put_in_bells(session, [note])


def put_in_bells(session: Session, notes: list[Notification]) -> None:
    """Make stored ``notes`` unread (one ``UPDATE`` per few hundred) and tell the open
    pages of their users in one ``notification.created`` event: a document that
    10,000 people follow is one event in the log, not 10,000."""
    ids = [n.id for n in notes if n.read_at is not None and n.id is not None]
    table = Notification.__table__  # type: ignore[attr-defined]
    for chunk in in_chunks(ids):  # Core: the ORM would look for each row in the session
        session.connection().execute(update(table).where(table.c.id.in_(chunk))
                                     .values(read_at=None))
    for note in notes:
        note.__dict__["read_at"] = None  # the values handed round say so too (no write)
    users = sorted({n.user_id for n in notes})
    if not users:
        return
    payload: dict[str, Any] = {"user_ids": users}
    if len(notes) == 1:
        payload |= {"user_id": users[0], "notification_id": notes[0].id}
    emit(session, kind="notification.created", subject_type="user",
         subject_id=users[0] if len(users) == 1 else "", payload=payload)


def mark_read(session: Session, *, user_id: int, ids: list[int] | None = None,
              thread_id: int | None = None, document_id: int | None = None,
              link: str | None = None) -> int:
    """Mark ``user_id``'s unread notifications read: those in ``ids``, those of
    ``thread_id``, of ``document_id`` or with ``link`` (all that are given), or
    (none given) all of them.  One ``UPDATE``; when it changed anything, a
    ``notification.read`` event lets open bells count down.  Returns how many were
    marked."""
    query = update(Notification).where(
        Notification.user_id == user_id,  # type: ignore[arg-type]
        Notification.read_at.is_(None))  # type: ignore[union-attr]
    if ids is not None:
        query = query.where(Notification.id.in_(ids))  # type: ignore[union-attr]
    if thread_id is not None:
        query = query.where(Notification.thread_id == thread_id)  # type: ignore[arg-type]
    if document_id is not None:
        query = query.where(Notification.document_id == document_id)  # type: ignore[arg-type]
    if link is not None:
        query = query.where(Notification.link == link)  # type: ignore[arg-type]
    changed = session.exec(query.values(read_at=utcnow())).rowcount or 0
    if changed:
        emit(session, kind="notification.read", subject_type="user", subject_id=user_id,
             payload={"user_id": user_id, "read": True})
    return changed


@dataclass
class _Target:
    kind: str
    text: str
    channels: list[str]
    subscription_id: int | None = None


@dataclass
class Notifier(Consumer):
    """The consumer: events in, notifications and deliveries out."""

    engine: Engine
    channels: Callable[[], list[Any]]
    #: a document code's group (search, examination, ...): office subscriptions filter on it
    group_of: Callable[[str], str] = lambda code: "other"
    #: what channels may reach (engine, settings); ``None`` in tests without an app
    host: Any = None
    created: list[int] = field(default_factory=list)
    name = "notifier"

    def wants(self, event: Event) -> bool:
        return (event.kind in ("post.created", "document.added", "ice.parcel.refused")
                or (event.kind.startswith("ice.exchange.") and event.kind != ICE_ASSIGNED))

    def handle(self, session: Session, event: Event) -> None:
        self._batch: list[tuple[User, _Target, dict[str, Any]]] = []
        if event.kind == "post.created":
            self._post(session, event)
        elif event.kind == "document.added":
            self._document(session, event)
        else:
            self._ice(session, event)
        self._write(session, event)

    def _store(self, session: Session, event: Event, user: User, target: _Target, **about: Any
               ) -> None:
        self._batch.append((user, target, about))

    def _write(self, session: Session, event: Event) -> None:
        """Store the event's notifications in one batch (one query for those already
        there, one multi-row ``INSERT`` for the rest), then serve their channels
        (:func:`caseforum.channels.queue`: the bell's ``UPDATE``, the deliveries'
        ``INSERT``).  Rows, not ORM objects: a document with 10,000 followers made
        30,000 objects, most of the notifier's time."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        done: set[tuple[int, str]] = set()  # stored already (a defence: none normally)
        for chunk in in_chunks(sorted({user.id or 0 for user, _, _ in batch})):
            done |= set(session.exec(select(Notification.user_id, Notification.kind).where(
                col(Notification.user_id).in_(chunk), Notification.event_id == event.id)))
        before = session.exec(select(func.max(Notification.id))).one() or 0
        now = utcnow()
        rows: list[dict[str, Any]] = []
        todo: list[tuple[User, _Target]] = []
        for user, target, about in batch:
            if (user.id, target.kind) in done:
                continue
            done.add((user.id, target.kind))
            rows.append({"user_id": user.id or 0, "event_id": event.id or 0,
                         "kind": target.kind, "text": target.text[:500], "link": "",
                         "thread_id": None, "post_id": None, "document_id": None,
                         "subscription_id": target.subscription_id, "created_at": now,
                         "read_at": now} | about)
            todo.append((user, target))
        if not rows:
            return
        session.connection().execute(insert(Notification.__table__), rows)  # type: ignore[attr-defined]
        # their ids by the unique (user, event, kind), among the rows added after
        # ``before`` (the primary key's range, not a scan; RETURNING with many rows is
        # sent a row at a time on SQLite, to keep the order)
        ids = {(u, k): i for i, u, k in session.exec(select(
            Notification.id, Notification.user_id, Notification.kind).where(
            col(Notification.id) > before, Notification.event_id == event.id))}
        items = [(Notification.model_construct(id=ids[(row["user_id"], row["kind"])], **row),
                  user, target.channels) for row, (user, target) in zip(rows, todo, strict=True)]
        delivery.queue(session, items, self.channels(), self.host)
        self.created.extend(note.id or 0 for note, _, _ in items)

    def _post(self, session: Session, event: Event) -> None:
        post = session.get(Post, event.payload.get("post_id"))
        thread = session.get(Thread, event.payload.get("thread_id"))
        if post is None or thread is None or post.hidden or post.quiet:
            return
        author = session.get(User, post.author_id)
        who = author.display_name or author.username if author else "someone"
        link = f"/threads/{thread.id}#post-{post.id}"

        def personal(kind: str, text: str, user_id: int) -> _Target:
            return _Target(kind, text, subscriptions.channels_for(session, user_id, kind))

        targets: dict[int, _Target] = {}
        if author is not None and str(author.role) != "bot":
            # followers of the thread or its category (bots' posts tell no follower)
            for follower in subscriptions.post_followers(
                    session, thread=thread, author_id=post.author_id,
                    can_read=lambda user: _can_read(session, user, thread)):
                targets[follower.user.id or 0] = _Target(
                    "watching", Msg(notices.WROTE, who=who, title=thread.title),
                    follower.channels,
                    follower.sub.id)
        if thread.is_private:
            for user_id in session.exec(select(ThreadParticipant.user_id).where(
                    ThreadParticipant.thread_id == thread.id)):
                targets[user_id] = personal(
                    "message", Msg(notices.WROTE, who=who, title=thread.title), user_id)
        if post.reply_to_id:
            parent = session.get(Post, post.reply_to_id)
            if parent:
                targets[parent.author_id] = personal(
                    "reply", Msg(notices.REPLIED, who=who, title=thread.title),
                    parent.author_id)
        for user_id in event.payload.get("mentioned") or []:
            targets[user_id] = personal(
                "mention", Msg(notices.MENTIONED, who=who, title=thread.title), user_id)
        targets.pop(post.author_id, None)  # nobody is told of their own post
        if author is not None and str(author.role) == "bot" and post.reply_to_id:
            # a bot answering a command: the asker is watching for it already
            parent = session.get(Post, post.reply_to_id)
            if parent is not None:
                targets.pop(parent.author_id, None)
        for user_id, target in targets.items():
            user = session.get(User, user_id)
            if (user is None or not user.is_active or str(user.role) == "bot"
                    or not _can_read(session, user, thread)):
                continue
            self._store(session, event, user, target, link=link, thread_id=thread.id,
                        post_id=post.id)

    def _document(self, session: Session, event: Event) -> None:
        app = session.get(Application, event.payload.get("application_id"))
        document_id = event.payload.get("document_id")
        if app is None or not document_id:
            return
        code = str(event.payload.get("code") or "")
        text = Msg(notices.NEW_DOCUMENT, code=code, office=app.office_code,
                   number=app.display_number)
        for follower in subscriptions.document_followers(
                session, app=app, document_id=int(document_id), code=code,
                group_of=self.group_of, actor_id=event.actor_id):
            self._store(session, event, follower.user,
                        _Target("document", text, follower.channels, follower.sub.id),
                        link=f"/documents/{document_id}", document_id=int(document_id))

    def _ice(self, session: Session, event: Event) -> None:
        """ICE alerts: a step of an exchange tells the other office's administrators
        and its assigned examiner; a refused parcel tells both offices' administrators."""
        data = event.payload
        exchange_id = data.get("exchange_id")
        offices = [o for o in (data.get("recipient_office"), data.get("donor_office"))
                   if isinstance(o, str)]
        if event.kind == "ice.parcel.refused":
            told = sorted({o for o in (event.office_code, *offices) if o})
            text = Msg(notices.ICE_REFUSED, code=str(data.get("code", "refused")))
            assignees: list[int] = []
        else:
            told = [o for o in offices if o != event.office_code]
            side = "recipient" if data.get("recipient_office") in told else "donor"
            assignees = [a for a in [data.get(f"{side}_assignee_id")] if isinstance(a, int)]
            status = event.kind.removeprefix("ice.exchange.")
            text = notices.ice_step(status, exchange=str(exchange_id)[:8],
                                    office=str(event.office_code))
        if not told:
            return
        people = list(session.exec(select(User).where(
            col(User.office_code).in_(told), col(User.is_active).is_(True),
            (User.role == "office_admin") | col(User.id).in_(assignees))))
        link = f"/ice/{exchange_id}" if exchange_id else "/ice"
        for user in people:
            if user.id == event.actor_id:
                continue
            target = _Target("ice", text, subscriptions.channels_for(session, user.id or 0,
                                                                       "ice"))
            self._store(session, event, user, target, link=link)

    def after_commit(self) -> None:
        """Wake the delivery worker: there is something to send."""
        self.created = []
