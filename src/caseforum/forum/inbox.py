"""Which of a user's notifications they may still read: the bell's count, the home
page's "For you" list and the notifications page.

A notification names what it is about (``thread_id``, ``document_id``), and rights
change after it is stored: a category is limited to some offices, a document is
restricted to another office, a conversation is left.  What the user may no longer
read is then neither counted nor listed, so no title of it shows.  The rules are
:mod:`caseforum.authz`'s; this module reads the facts they need.

It reads them in SQL together with the notifications, *grouped*: one row per
distinct combination of what the rules look at (a thread's category, or its being
private and whether the user takes part; a document's office, its visibility and
whether the user's office is among those it is restricted to), with how many
notifications share it.  A user with ten thousand unread notifications thus costs
the same few statements as one with ten, and the rules are asked once per group,
not once per notification.  The unread list leaves the groups found unreadable out
in its own query, so its ``limit`` counts readable notifications.  The notifications
page (read ones too: a long history) judges only the window it shows.

Notifications about neither (ICE alerts, a bot's error note) stay readable: an
exchange is seen by its two offices, and a user's office does not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, exists, func, not_, or_
from sqlalchemy import select as sa_select
from sqlalchemy.sql import Select
from sqlmodel import Session, col, select

from caseforum.authz import ThreadTarget, Viewer, can
from caseforum.dossiers.access import Access
from caseforum.forum.access import category_targets, in_chunks
from caseforum.models import (
    Application,
    Category,
    Document,
    DocumentOffice,
    Notification,
    Thread,
    ThreadParticipant,
)

Q = TypeVar("Q", bound=Select[Any])
_USER = bindparam("viewer_id")
_OFFICE = bindparam("viewer_office")

#: What the rules need of each notification's subject, as SQL expressions over the
#: notification joined with its thread and its document's dossier.  A conversation's
#: participants and a restricted document's named offices come as "is the viewer
#: among them": all the rules ask of either.
FACTS: list[Any] = [
    col(Notification.thread_id).is_not(None),
    col(Thread.id).is_not(None),
    col(Thread.is_private),
    col(Thread.category_id),
    exists().where(col(ThreadParticipant.thread_id) == col(Notification.thread_id),
                   col(ThreadParticipant.user_id) == _USER),
    col(Notification.document_id).is_not(None),
    col(Application.office_code),
    col(Document.visibility),
    exists().where(col(DocumentOffice.document_id) == col(Notification.document_id),
                   col(DocumentOffice.office_code) == _OFFICE),
]


def _joined(query: Q, *, unread: bool) -> Q:
    query = (query.select_from(Notification)
             .outerjoin(Thread, col(Thread.id) == col(Notification.thread_id))
             .outerjoin(Document, col(Document.id) == col(Notification.document_id))
             .outerjoin(Application, col(Application.id) == col(Document.application_id))
             .where(col(Notification.user_id) == _USER))
    return query.where(col(Notification.read_at).is_(None)) if unread else query


# built once (the bell is asked on every page): a call binds only the viewer
_UNREAD_FACTS = _joined(sa_select(*(f.label(f"f{i}") for i, f in enumerate(FACTS))),
                       unread=True).subquery()
#: grouped outside the subquery, by its columns: PostgreSQL would not match a GROUP BY
#: expression with bound parameters (the EXISTS) to the same one in the select list
_GROUPED = sa_select(*_UNREAD_FACTS.c, func.count()).group_by(*_UNREAD_FACTS.c)
_UNREAD = _joined(select(Notification), unread=True).order_by(
    col(Notification.id).desc()).limit(bindparam("limit"))
_RECENT = _joined(sa_select(Notification, *FACTS), unread=False).order_by(
    col(Notification.id).desc()).limit(bindparam("limit"))
_BY_ID = _joined(sa_select(Notification.id, *FACTS), unread=False).where(
    col(Notification.id).in_(bindparam("ids", expanding=True)))


def _params(viewer: Viewer, **more: Any) -> dict[str, Any]:
    return {"viewer_id": viewer.user_id or 0, "viewer_office": viewer.office_code or "",
            **more}


@dataclass(frozen=True)
class _Group:
    facts: tuple[Any, ...]
    count: int
    readable: bool


class _Judge:
    """The rules' verdict on a group of facts, with the categories they name loaded
    in one go."""

    def __init__(self, session: Session, viewer: Viewer, category_ids: set[int]) -> None:
        self.viewer = viewer
        self.access = Access(session, viewer)
        categories = list(session.exec(select(Category).where(
            col(Category.id).in_(category_ids)))) if category_ids else []
        self.categories = category_targets(session, categories)

    def readable(self, facts: tuple[Any, ...]) -> bool:
        (about_thread, thread_found, private, category_id, member,
         about_document, office_code, visibility, named) = facts
        viewer = self.viewer
        if about_thread:
            if not thread_found:
                return False
            if private:
                target = ThreadTarget(category=None, is_private=True, participants=frozenset(
                    {viewer.user_id or 0} if member else ()))
            else:
                target = ThreadTarget(category=self.categories.get(category_id))
            if not can(viewer, "thread.view", target):
                return False
        if about_document:
            if office_code is None:  # the document (or its dossier) is gone
                return False
            offices = frozenset({viewer.office_code or ""} if named else ())
            return self.access.shows_document(office_code, visibility, offices)
        return True


def _category_ids(rows: list[tuple[Any, ...]]) -> set[int]:
    """The categories of the open threads among ``rows`` of facts."""
    return {r[3] for r in rows if r[0] and r[1] and not r[2] and r[3] is not None}


def _unread_groups(session: Session, viewer: Viewer) -> list[_Group]:
    """The user's unread notifications grouped by their facts, each group judged:
    one grouped statement, one for the categories named, one for their office
    groups if any."""
    rows = [tuple(r) for r in session.exec(_GROUPED, params=_params(viewer))]  # type: ignore[call-overload]
    judge = _Judge(session, viewer, _category_ids(rows))
    return [_Group(r[:-1], r[-1], judge.readable(r[:-1])) for r in rows]


def _readable_only(query: Q, groups: list[_Group]) -> Q:
    """``query`` without the notifications of the groups judged unreadable."""
    hidden = [g.facts for g in groups if not g.readable]
    if not hidden:
        return query
    return query.where(not_(or_(*(and_(*(expr.is_not_distinct_from(value)
                                         for expr, value in zip(FACTS, key, strict=True)))
                                  for key in hidden))))


@dataclass
class Inbox:
    """How many unread notifications the user may read, and the newest of them."""

    count: int
    notes: list[Notification]


def unread_count(session: Session, viewer: Viewer) -> int:
    """The bell's number: unread notifications about what the user may still read."""
    if not viewer.is_authenticated:
        return 0
    return sum(g.count for g in _unread_groups(session, viewer) if g.readable)


def unread(session: Session, viewer: Viewer, *, limit: int) -> Inbox:
    """The ``limit`` newest unread notifications the user may still read, newest
    first, and how many there are in all."""
    if not viewer.is_authenticated:
        return Inbox(0, [])
    groups = _unread_groups(session, viewer)
    count = sum(g.count for g in groups if g.readable)
    if not count:
        return Inbox(0, [])
    notes = session.exec(_readable_only(_UNREAD, groups),
                         params=_params(viewer, limit=limit))
    return Inbox(count, list(notes))


def recent(session: Session, viewer: Viewer, *, limit: int) -> list[Notification]:
    """The ``limit`` newest notifications, read or not, less those about what the
    user may no longer read (the notifications page).  Each comes with its facts in
    the one statement: a long history is not grouped, only this window is judged."""
    if not viewer.is_authenticated:
        return []
    rows = [(r[0], tuple(r[1:])) for r in session.exec(  # type: ignore[call-overload]
        _RECENT, params=_params(viewer, limit=limit))]
    judge = _Judge(session, viewer, _category_ids([facts for _, facts in rows]))
    verdicts: dict[tuple[Any, ...], bool] = {}
    out = []
    for note, facts in rows:
        if facts not in verdicts:
            verdicts[facts] = judge.readable(facts)
        if verdicts[facts]:
            out.append(note)
    return out


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


def readable(session: Session, viewer: Viewer,
             notes: list[Notification]) -> list[Notification]:
    """Those of the user's ``notes`` about what they may still read, order kept:
    for the channels' check at send time (a digest's notes together)."""
    if not viewer.is_authenticated or not notes:
        return []
    found: dict[int, tuple[Any, ...]] = {}
    for chunk in in_chunks(sorted({n.id or 0 for n in notes})):
        found |= {r[0]: tuple(r[1:]) for r in session.exec(  # type: ignore[call-overload]
            _BY_ID, params=_params(viewer, ids=chunk))}
    judge = _Judge(session, viewer, _category_ids(list(found.values())))
    verdicts = {facts_: judge.readable(facts_) for facts_ in set(found.values())}
    return [n for n in notes if n.id in found and verdicts[found[n.id]]]


FOR_YOU_GROUPS = 6  # lines of the home page's "For you" list
FOR_YOU_NOTES = 30  # the newest unread notifications those lines are made of


@dataclass
class ForYou:
    """The bell's number and the home page's "For you" list: the newest unread
    notifications the user may read, one line per thread (as on the notifications
    page)."""

    count: int
    groups: list[NotificationGroup]


def for_you(session: Session, viewer: Viewer) -> ForYou:
    mine = unread(session, viewer, limit=FOR_YOU_NOTES)
    return ForYou(mine.count, group_notifications(mine.notes)[:FOR_YOU_GROUPS])
