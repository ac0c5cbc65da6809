"""Forum data functions.  Each writes in the caller's transaction with its event;
the caller commits.  Permission checks happen in the routes (authz)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, or_, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from caseforum import errors
from caseforum.authz import Viewer, can
from caseforum.events import emit
from caseforum.forum.access import thread_target
from caseforum.forum.text import reference_key, render_post
from caseforum.i18n import N_
from caseforum.models import (
    Category,
    Flag,
    Mention,
    Office,
    OfficeGroup,
    Post,
    PostRevision,
    Reaction,
    ReadState,
    Reference,
    Thread,
    ThreadParticipant,
    User,
    utcnow,
)

# plain labels: offices' machines often lack emoji fonts (English; pages translate them)
REACTIONS: dict[str, str] = {"+1": "+1", "agree": N_("✓ agree"), "question": N_("? question"),
                             "seen": N_("seen")}
MAX_TITLE = 300


class ForumError(errors.InvalidInput):
    """Input to fix; the message says what."""


def _clean_body(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise ForumError("write something first: the post is empty")
    return body


def _render(body: str, patterns: list | None) -> tuple[str, list, list[str]]:
    # imported here: markdown-it and nh3 load when a post is first written (cold start)
    from caseforum.markdown import MarkdownTooLong

    try:
        rendered = render_post(body, patterns)
    except MarkdownTooLong as exc:
        raise ForumError(str(exc)) from None
    return rendered.html, rendered.references, rendered.mentions


def create_category(session: Session, *, name: str, description: str = "",
                    offices: list[str] | None = None, group: str | None = None) -> Category:
    name = name.strip()
    if not name or len(name) > 100:
        raise ForumError("a category needs a name of at most 100 characters")
    if session.exec(select(Category).where(Category.name == name)).first():
        raise ForumError(f"a category named {name!r} exists already")
    codes = sorted({o.strip().upper() for o in offices or [] if o.strip()})
    known = set(session.exec(select(Office.code)))
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise ForumError(f"unknown office {unknown[0]!r}")
    group_id = None
    if group:
        found = session.exec(select(OfficeGroup).where(OfficeGroup.name == group)).first()
        if found is None:
            raise ForumError(f"unknown office group {group!r}")
        group_id = found.id
    category = Category(name=name, description=description.strip(), offices=codes,
                        group_id=group_id)
    session.add(category)
    session.flush()
    return category


def set_category_offices(session: Session, *, category: Category, offices: list[str],
                         actor_id: int | None = None) -> Category:
    """Change who may read a category (no offices: every participating office).
    The event makes live sockets on its threads check their access again."""
    codes = sorted({o.strip().upper() for o in offices if o.strip()})
    known = set(session.exec(select(Office.code)))
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise ForumError(f"unknown office {unknown[0]!r}")
    category.offices = codes
    session.add(category)
    emit(session, kind="category.changed", actor_id=actor_id, subject_type="category",
         subject_id=category.id or "",
         payload={"category_id": category.id, "offices": codes})
    return category


def create_office_group(session: Session, *, name: str, offices: list[str]) -> OfficeGroup:
    codes = sorted({o.strip().upper() for o in offices if o.strip()})
    if not name.strip() or not codes:
        raise ForumError("an office group needs a name and at least one office")
    known = set(session.exec(select(Office.code)))
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise ForumError(f"unknown office {unknown[0]!r}")
    if session.exec(select(OfficeGroup).where(OfficeGroup.name == name.strip())).first():
        raise ForumError(f"an office group named {name.strip()!r} exists already")
    group = OfficeGroup(name=name.strip(), offices=codes)
    session.add(group)
    session.flush()
    return group


def _store_references(session: Session, post: Post, refs: list, *, new: bool = False) -> None:
    """The post's references, in place of its earlier ones (a ``new`` post has none)."""
    if not new:
        for old in session.exec(select(Reference).where(Reference.post_id == post.id)):
            session.delete(old)
    for i, ref in enumerate(refs):
        kind, office, number = reference_key(ref)
        session.add(Reference(post_id=post.id or 0, position=i, kind=kind,
                              office_code=office, number=number, text=ref.text))


def _store_mentions(session: Session, post: Post, names: list[str], thread: Thread, *,
                    new: bool = False) -> list[int]:
    """Mentions of users who may read the thread (others are not told it exists), in
    place of the post's earlier ones (a ``new`` post has none)."""
    if not new:
        for old in session.exec(select(Mention).where(Mention.post_id == post.id)):
            session.delete(old)
    if not names:
        return []
    target = thread_target(session, thread)
    found = []
    for user in session.exec(select(User).where(User.username.in_(names))):  # type: ignore[attr-defined]
        office = session.get(Office, user.office_code)
        if user.id != post.author_id and can(Viewer.of(user, office), "thread.view", target):
            session.add(Mention(post_id=post.id or 0, user_id=user.id or 0))
            found.append(user.id or 0)
    return found


def _post_event(session: Session, kind: str, post: Post, thread: Thread, actor_id: int | None,
                **extra: Any) -> None:
    emit(session, kind=kind, actor_id=actor_id, subject_type="thread", subject_id=thread.id or "",
         payload={"thread_id": thread.id, "post_id": post.id, "author_id": post.author_id,
                  "category_id": thread.category_id, **extra})


def add_post(
    session: Session,
    *,
    author: User,
    thread: Thread,
    body: str,
    reply_to_id: int | None = None,
    embeds: list[dict[str, Any]] | None = None,
    patterns: list | None = None,
    language: str = "",
) -> Post:
    """``language``: the interface language of the page the post was written on (kept
    in the event, for a bot to answer in when the author chose none)."""
    body = _clean_body(body)
    html, refs, mentions = _render(body, patterns)
    if reply_to_id is not None:
        parent = session.get(Post, reply_to_id)
        if parent is None or parent.thread_id != thread.id:
            raise ForumError("you can reply only to a post of the same thread")
    quiet = is_document_note(author, embeds or [])
    post = Post(thread_id=thread.id or 0, author_id=author.id or 0, reply_to_id=reply_to_id,
                body=body, html=html, embeds=embeds or [], quiet=quiet)
    session.add(post)
    session.flush()
    _store_references(session, post, refs, new=True)
    mentioned = [] if quiet else _store_mentions(session, post, mentions, thread, new=True)
    if not quiet:
        _count_post(session, thread, post)
    _post_event(session, "post.created", post, thread, author.id, mentioned=mentioned,
                reply_to=reply_to_id, bot=str(author.role) == "bot", quiet=quiet,
                **({"language": language} if language else {}))
    return post


def _count_post(session: Session, thread: Thread, post: Post) -> None:
    """Count ``post`` in its thread with one atomic UPDATE.

    Reading ``post_count`` into Python and writing it back loses updates when
    posts arrive together (the read happens before the write lock is taken:
    201 posts were once counted 27).  The database adds one to whatever is
    committed, and the "last post" columns move only forwards, so a slower
    transaction cannot put back an older post."""
    newer = or_(Thread.last_post_id.is_(None),  # type: ignore[union-attr]
                Thread.last_post_id < post.id)  # type: ignore[operator]
    row = session.execute(
        update(Thread).where(Thread.id == thread.id).values(  # type: ignore[arg-type]
            post_count=Thread.post_count + 1,
            last_post_id=case((newer, post.id), else_=Thread.last_post_id),
            last_post_at=case((newer, post.created_at), else_=Thread.last_post_at),
        ).returning(Thread.post_count, Thread.last_post_id, Thread.last_post_at)
        .execution_options(synchronize_session=False)).one()
    # the object now shows what the row holds (our row lock keeps it so until commit),
    # read back by the UPDATE itself rather than by a SELECT after it
    for name, value in zip(("post_count", "last_post_id", "last_post_at"), row, strict=True):
        set_committed_value(thread, name, value)


def is_document_note(author: User, embeds: list[dict[str, Any]]) -> bool:
    """A bot post whose every block is a document: readers who may not see the
    documents do not see the post, so it must leave no other trace for them."""
    return (str(author.role) == "bot" and bool(embeds)
            and all(e.get("kind") == "document" for e in embeds))


def create_thread(
    session: Session,
    *,
    author: User,
    category: Category | None,
    title: str,
    body: str,
    participants: list[User] | None = None,
    patterns: list | None = None,
    language: str = "",
) -> tuple[Thread, Post]:
    title = title.strip()
    if not title:
        raise ForumError("give the thread a title")
    if len(title) > MAX_TITLE:
        raise ForumError(f"the title is longer than {MAX_TITLE} characters")
    thread = Thread(category_id=category.id if category else None, title=title,
                    author_id=author.id or 0, is_private=category is None)
    session.add(thread)
    session.flush()
    if category is None:
        people = {author.id, *(p.id for p in participants or [])}
        if len(people) < 2:
            raise ForumError("a private conversation needs at least one other examiner")
        for user_id in people:
            session.add(ThreadParticipant(thread_id=thread.id or 0, user_id=user_id or 0))
        session.flush()
    post = add_post(session, author=author, thread=thread, body=body, patterns=patterns,
                    language=language)
    emit(session, kind="thread.created", actor_id=author.id, subject_type="thread",
         subject_id=thread.id or "",
         payload={"thread_id": thread.id, "category_id": thread.category_id,
                  "post_id": post.id})
    return thread, post


def set_members(session: Session, *, thread: Thread, members: list[User],
                actor_id: int | None = None) -> Thread:
    """Change who takes part in a private conversation (an examiner added, or one
    who left).  The event re-indexes the conversation for search; until then search
    decides its items from these rows (``search/grants.py``)."""
    if not thread.is_private:
        raise ForumError("only a private conversation has members; a thread's readers "
                         "are its category's offices")
    people = {u.id or 0 for u in members}
    if len(people) < 2:
        raise ForumError("a private conversation needs at least two examiners")
    held = set(session.exec(select(ThreadParticipant.user_id).where(
        ThreadParticipant.thread_id == thread.id)))
    for user_id in held - people:
        row = session.get(ThreadParticipant, (thread.id, user_id))
        if row is not None:
            session.delete(row)
    for user_id in people - held:
        session.add(ThreadParticipant(thread_id=thread.id or 0, user_id=user_id))
    emit(session, kind="thread.members_changed", actor_id=actor_id, subject_type="thread",
         subject_id=thread.id or "",
         payload={"thread_id": thread.id, "members": sorted(people)})
    return thread


def edit_post(session: Session, *, editor: User, post: Post, body: str,
              patterns: list | None = None) -> Post:
    body = _clean_body(body)
    if body == post.body:
        return post
    session.add(PostRevision(post_id=post.id or 0, body=post.body, editor_id=editor.id or 0))
    html, refs, mentions = _render(body, patterns)
    post.body, post.html, post.edited_at = body, html, utcnow()
    session.add(post)
    session.flush()
    thread = session.get(Thread, post.thread_id)
    assert thread is not None
    _store_references(session, post, refs)
    _store_mentions(session, post, mentions, thread)
    _post_event(session, "post.edited", post, thread, editor.id)
    return post


def set_hidden(session: Session, *, moderator: User, post: Post, hidden: bool,
               reason: str = "") -> Post:
    post.hidden = hidden
    post.hidden_by = moderator.id if hidden else None
    post.hidden_reason = reason.strip()[:300] if hidden else ""
    session.add(post)
    thread = session.get(Thread, post.thread_id)
    assert thread is not None
    for flag in session.exec(select(Flag).where(Flag.post_id == post.id,
                                                Flag.resolved_at.is_(None))):  # type: ignore[union-attr]
        flag.resolved_at, flag.resolved_by = utcnow(), moderator.id
        session.add(flag)
    _post_event(session, "post.hidden" if hidden else "post.shown", post, thread, moderator.id)
    return post


def set_thread_flags(session: Session, *, moderator: User, thread: Thread,
                     locked: bool | None = None, pinned: bool | None = None) -> Thread:
    if locked is not None:
        thread.locked = locked
    if pinned is not None:
        thread.pinned = pinned
    session.add(thread)
    emit(session, kind="thread.changed", actor_id=moderator.id, subject_type="thread",
         subject_id=thread.id or "",
         payload={"thread_id": thread.id, "category_id": thread.category_id,
                  "locked": thread.locked, "pinned": thread.pinned})
    return thread


def toggle_reaction(session: Session, *, user: User, post: Post, reaction: str) -> bool:
    """Add the reaction, or take it back if it was there; returns whether it is on."""
    if reaction not in REACTIONS:
        raise ForumError(f"unknown reaction {reaction!r}: use one of {', '.join(REACTIONS)}")
    existing = session.exec(select(Reaction).where(
        Reaction.post_id == post.id, Reaction.user_id == user.id,
        Reaction.emoji == reaction)).first()
    if existing:
        session.delete(existing)
    else:
        session.add(Reaction(post_id=post.id or 0, user_id=user.id or 0, emoji=reaction))
    thread = session.get(Thread, post.thread_id)
    assert thread is not None
    _post_event(session, "post.reacted", post, thread, user.id)
    return existing is None


def flag_post(session: Session, *, user: User, post: Post, reason: str) -> Flag:
    reason = reason.strip()
    if not reason:
        raise ForumError("say briefly why the moderators should look at this post")
    flag = Flag(post_id=post.id or 0, user_id=user.id or 0, reason=reason[:500])
    session.add(flag)
    session.flush()
    emit(session, kind="post.flagged", actor_id=user.id, subject_type="post",
         subject_id=post.id or "", payload={"post_id": post.id, "flag_id": flag.id,
                                            "thread_id": post.thread_id})
    return flag


def mark_read(session: Session, *, user_id: int, thread: Thread) -> None:
    state = session.get(ReadState, (user_id, thread.id))
    last = thread.last_post_id or 0
    if state is None:
        session.add(ReadState(user_id=user_id, thread_id=thread.id or 0, last_read_post_id=last))
    elif state.last_read_post_id < last:
        state.last_read_post_id = last
        session.add(state)


def unread_counts(session: Session, *, user_id: int, thread_ids: list[int]) -> dict[int, int]:
    """Visible posts after the user's read mark, per thread."""
    if not thread_ids:
        return {}
    marks = {r.thread_id: r.last_read_post_id for r in session.exec(
        select(ReadState).where(ReadState.user_id == user_id,
                                ReadState.thread_id.in_(thread_ids)))}  # type: ignore[attr-defined]
    counts: dict[int, int] = {}
    rows = session.exec(select(Post.thread_id, Post.id).where(
        Post.thread_id.in_(thread_ids), Post.hidden.is_(False),  # type: ignore[attr-defined]
        Post.quiet.is_(False), Post.author_id != user_id))  # type: ignore[attr-defined]
    for thread_id, post_id in rows:
        if post_id > marks.get(thread_id, 0):
            counts[thread_id] = counts.get(thread_id, 0) + 1
    return counts


MENTION_CHOICES = 8  # names the composer offers at a time


def mention_candidates(session: Session, prefix: str) -> list[User]:
    """Active users whose username or display name starts with ``prefix`` (case
    ignored), for completing an @mention as it is typed; the exact name sorts first."""
    prefix = prefix.strip().lstrip("@").lower()
    if not prefix:
        return []
    starts = or_(col(User.username).startswith(prefix, autoescape=True),
                 func.lower(User.display_name).startswith(prefix, autoescape=True))
    return list(session.exec(select(User).where(col(User.is_active).is_(True), starts)
                             .order_by(col(User.username)).limit(MENTION_CHOICES)))
