"""Facts the authorization rules need about categories, threads and posts."""

from __future__ import annotations

from sqlmodel import Session, select

from caseforum.authz import CategoryTarget, PostTarget, ThreadTarget
from caseforum.models import Category, OfficeGroup, Post, Thread, ThreadParticipant


def category_target(session: Session, category: Category) -> CategoryTarget:
    offices = set(category.offices)
    if category.group_id is not None:
        group = session.get(OfficeGroup, category.group_id)
        if group is not None:
            offices |= set(group.offices)
    return CategoryTarget(frozenset(offices))


def thread_target(session: Session, thread: Thread) -> ThreadTarget:
    participants: frozenset[int] = frozenset()
    category = None
    if thread.is_private:
        participants = frozenset(session.exec(select(ThreadParticipant.user_id).where(
            ThreadParticipant.thread_id == thread.id)))
    elif thread.category_id is not None:
        cat = session.get(Category, thread.category_id)
        if cat is not None:
            category = category_target(session, cat)
    return ThreadTarget(category=category, is_private=thread.is_private,
                        participants=participants, locked=thread.locked,
                        author_id=thread.author_id)


def post_target(thread: ThreadTarget, post: Post) -> PostTarget:
    return PostTarget(thread=thread, author_id=post.author_id, hidden=post.hidden)
