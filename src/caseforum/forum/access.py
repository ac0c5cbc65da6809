"""Fetching forum objects together with the check that the viewer may have them.

The rules live in :mod:`caseforum.authz`; this module feeds them the facts
(a category's offices, a conversation's participants, a thread's lock) and is
the only way pages, the API and live updates reach a category, thread or post:

- ``access_category``, ``access_thread`` and ``access_post`` fetch one object and
  check it in one call.  A missing object and one the viewer may not read give
  the *same* :class:`NotFound`, so ids cannot be probed; a visitor who is not
  logged in gets 401 for both (browsers are sent to the log-in page).  An object the viewer
  may read but not act on (``action``) gives 401/403 through ``authz.require``.
- ``visible_categories``, ``readable_threads``, ``filter_threads`` and
  ``posts_of`` list with a fixed number of queries whatever the number of rows:
  facts are loaded for the whole list at once, never per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from sqlalchemy import and_, or_
from sqlmodel import Session, select

from caseforum import errors
from caseforum.authz import (
    CategoryTarget,
    ForumPolicy,
    PostTarget,
    ThreadTarget,
    Viewer,
    can,
    require,
    set_forum_policy,
)
from caseforum.i18n import N_
from caseforum.models import Category, OfficeGroup, Post, Thread, ThreadParticipant

#: what a reader is told when a forum object is absent or not for them (``N_``: the
#: error page shows them in the reader's language)
_NOT_FOUND = {"category": N_("No such category"), "thread": N_("No such thread"),
              "post": N_("No such post")}


class NotFound(errors.NotFound):
    """Absent, or present but not for this viewer: one answer for both."""

    def __init__(self, what: str) -> None:
        super().__init__(_NOT_FOUND.get(what) or f"No such {what}")


def configure(settings: Any) -> None:
    """Apply the instance's forum settings to the rules (called by ``create_app``)."""
    set_forum_policy(ForumPolicy(
        platform_admins_read_all=settings.forum_platform_admins_read_all,
        office_admins_moderate_open=settings.forum_office_admins_moderate_open))


T = TypeVar("T")
CHUNK = 500  # ids per IN list (SQLite allows far more; keeps statements small)


def in_chunks(keys: list[T], size: int = CHUNK) -> Iterator[list[T]]:
    """``keys`` in slices small enough for one ``IN`` list each."""
    for i in range(0, len(keys), size):
        yield keys[i:i + size]


# Facts for the rules ---------------------------------------------------------------


def _by_id(session: Session, model: Any, ids: Iterable[int | None]) -> dict[int, Any]:
    """Rows by id in at most one statement (one id: the session's identity map
    may answer without any)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    if len(wanted) == 1:
        (one,) = wanted
        row = session.get(model, one)
        return {one: row} if row is not None else {}
    return {row.id: row for row in session.exec(
        select(model).where(model.id.in_(wanted)))}  # type: ignore[attr-defined]


def category_targets(session: Session,
                     categories: Iterable[Category]) -> dict[int, CategoryTarget]:
    """The offices of each category (its named offices and its group's)."""
    categories = list(categories)
    groups = _by_id(session, OfficeGroup, (c.group_id for c in categories))
    out = {}
    for c in categories:
        offices = set(c.offices)
        group = groups.get(c.group_id) if c.group_id is not None else None
        if group is not None:
            offices |= set(group.offices)
        out[c.id or 0] = CategoryTarget(frozenset(offices))
    return out


def thread_targets(session: Session,
                   threads: Iterable[Thread | int]) -> dict[int, ThreadTarget]:
    """Authorization facts of many threads: one query (thread, category and its
    office group joined), plus one for the participants of private ones."""
    ids = sorted({t if isinstance(t, int) else t.id or 0 for t in threads})
    out: dict[int, ThreadTarget] = {}
    private: list[Thread] = []
    for chunk in in_chunks(ids):
        rows = session.exec(
            select(Thread, Category, OfficeGroup)
            .outerjoin(Category, Category.id == Thread.category_id)  # type: ignore[arg-type]
            .outerjoin(OfficeGroup, OfficeGroup.id == Category.group_id)  # type: ignore[arg-type]
            .where(Thread.id.in_(chunk))  # type: ignore[union-attr]
        )
        for thread, category, group in rows:
            if thread.is_private:
                private.append(thread)
                continue
            target = None
            if category is not None:
                offices = set(category.offices) | set(group.offices if group else ())
                target = CategoryTarget(frozenset(offices))
            out[thread.id or 0] = ThreadTarget(category=target, locked=thread.locked,
                                               author_id=thread.author_id)
    if private:
        members: dict[int, set[int]] = {t.id or 0: set() for t in private}
        for chunk in in_chunks(sorted(members)):
            for thread_id, user_id in session.exec(
                    select(ThreadParticipant.thread_id, ThreadParticipant.user_id)
                    .where(ThreadParticipant.thread_id.in_(chunk))):  # type: ignore[attr-defined]
                members[thread_id].add(user_id)
        for thread in private:
            out[thread.id or 0] = ThreadTarget(
                category=None, is_private=True, participants=frozenset(members[thread.id or 0]),
                locked=thread.locked, author_id=thread.author_id)
    return out


def category_target(session: Session, category: Category) -> CategoryTarget:
    return category_targets(session, [category])[category.id or 0]


def thread_target(session: Session, thread: Thread) -> ThreadTarget:
    return thread_targets(session, [thread])[thread.id or 0]


def post_target(thread: ThreadTarget, post: Post) -> PostTarget:
    return PostTarget(thread=thread, author_id=post.author_id, hidden=post.hidden)


# One object ------------------------------------------------------------------------


MAX_ID = 2**63 - 1  # a database integer key: a larger number names nothing


def _get(session: Session, model: Any, object_id: Any) -> Any:
    """The row, or ``None`` for an id no row can have (rather than a database
    overflow error)."""
    if isinstance(object_id, bool) or not isinstance(object_id, int):
        return None
    return session.get(model, object_id) if 0 < object_id <= MAX_ID else None


def _member(viewer: Viewer | None) -> None:
    """The forum is for members only: a visitor who is not logged in is asked to
    log in (401; a browser is sent to the log-in page and comes back here),
    whether or not the object exists, so nothing is revealed to them either."""
    if viewer is None or not viewer.is_authenticated:
        raise errors.Unauthorized(N_("Log in to read the forum"))


def _check(viewer: Viewer | None, action: str, target: Any, view: str, what: str,
           hide: bool) -> None:
    if not can(viewer, view, target):
        raise NotFound(what)
    if action != view:
        if hide and not can(viewer, action, target):
            raise NotFound(what)
        require(viewer, action, target)


def access_category(session: Session, viewer: Viewer | None, category_id: int, *,
                    action: str = "category.view", hide: bool = False) -> Category:
    """The category if the viewer may read it (and do ``action``), else 404
    (or 401/403 for an ``action`` on a readable one, 404 too with ``hide``)."""
    _member(viewer)
    category = _get(session, Category, category_id)
    if category is None:
        raise NotFound("category")
    _check(viewer, action, category_target(session, category), "category.view", "category",
           hide)
    return category


def find_thread(session: Session, viewer: Viewer | None, thread_id: Any) -> Thread | None:
    """The thread if present and readable, else ``None`` (for callers that
    answer without an HTTP error, e.g. live updates)."""
    thread = _get(session, Thread, thread_id)
    if thread is None or not can(viewer, "thread.view", thread_target(session, thread)):
        return None
    return thread


def access_thread(session: Session, viewer: Viewer | None, thread_id: int, *,
                  action: str = "thread.view", hide: bool = False) -> Thread:
    """The thread if the viewer may read it (and do ``action``), else 404 (or
    401/403 for an ``action`` on a readable one, 404 too with ``hide``)."""
    _member(viewer)
    thread = _get(session, Thread, thread_id)
    if thread is None:
        raise NotFound("thread")
    _check(viewer, action, thread_target(session, thread), "thread.view", "thread", hide)
    return thread


def access_post(session: Session, viewer: Viewer | None, post_id: int, *,
                action: str = "post.view", hide: bool = False) -> tuple[Post, Thread]:
    """The post and its thread if the viewer may read them (and do ``action``:
    a post rule such as ``post.edit``, or ``forum.moderate`` on its thread)."""
    _member(viewer)
    post = _get(session, Post, post_id)
    thread = session.get(Thread, post.thread_id) if post is not None else None
    if post is None or thread is None:
        raise NotFound("post")
    target = thread_target(session, thread)
    as_post = post_target(target, post)
    if not can(viewer, "post.view", as_post):
        raise NotFound("post")
    if action != "post.view":
        on = target if action == "forum.moderate" else as_post
        if hide and not can(viewer, action, on):
            raise NotFound("post")
        require(viewer, action, on)
    return post, thread


# Lists -----------------------------------------------------------------------------


def visible_categories(session: Session, viewer: Viewer | None) -> list[Category]:
    """Categories the viewer may read, in their order: two statements at most."""
    rows = list(session.exec(select(Category).order_by(Category.position, Category.name)))
    targets = category_targets(session, rows)
    return [c for c in rows if can(viewer, "category.view", targets[c.id or 0])]


def filter_threads(session: Session, viewer: Viewer | None,
                   threads: Iterable[Thread]) -> list[Thread]:
    """The readable ones of ``threads``, order kept: three statements at most."""
    threads = list(threads)
    targets = thread_targets(session, threads)
    return [t for t in threads if can(viewer, "thread.view", targets[t.id or 0])]


def readable_threads(session: Session, viewer: Viewer | None, *,
                     category_id: int | None = None, private: bool | None = None,
                     limit: int = 200) -> list[Thread]:
    """The newest threads the viewer may read (pinned first within a category).

    The database is asked only for threads of readable categories and
    conversations the viewer takes part in, so ``limit`` counts readable threads;
    every row is then checked by the rules all the same.
    """
    if viewer is None or not viewer.is_authenticated:
        return []
    query = select(Thread)
    if category_id is not None:
        query = query.where(Thread.category_id == category_id,
                            Thread.is_private.is_(False))  # type: ignore[attr-defined]
        query = query.order_by(Thread.pinned.desc())  # type: ignore[attr-defined]
    else:
        shared = and_(Thread.is_private.is_(False),  # type: ignore[attr-defined]
                      Thread.category_id.in_(  # type: ignore[union-attr]
                          [c.id for c in visible_categories(session, viewer)]))
        mine = and_(Thread.is_private.is_(True),  # type: ignore[attr-defined]
                    Thread.id.in_(select(ThreadParticipant.thread_id).where(  # type: ignore[union-attr]
                        ThreadParticipant.user_id == viewer.user_id)))
        query = query.where(shared if private is False else mine if private else
                            or_(shared, mine))
    query = query.order_by(Thread.last_post_at.desc(), Thread.id.desc())  # type: ignore[attr-defined]
    return filter_threads(session, viewer, session.exec(query.limit(limit)))


def posts_of(session: Session, thread: Thread, *, limit: int,
             newest: bool = False) -> list[Post]:
    """The posts of a thread already checked with :func:`access_thread`, oldest
    first; hidden ones included (they show as hidden), quiet bot notes are
    sorted per reader by ``forum.view.Renderer``.  ``newest``: the last ``limit``
    posts rather than the first (the chat view opens at the newest message)."""
    query = select(Post).where(Post.thread_id == thread.id)
    if newest:
        latest = session.exec(query.order_by(Post.id.desc()).limit(limit))  # type: ignore[union-attr]
        return list(reversed(list(latest)))
    return list(session.exec(query.order_by(Post.id).limit(limit)))  # type: ignore[arg-type]
