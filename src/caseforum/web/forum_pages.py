"""Forum pages: categories, threads, posts, private conversations."""

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select

from caseforum import errors
from caseforum.authz import Viewer, can, require
from caseforum.db import SessionDep
from caseforum.forum import notify, service
from caseforum.forum.access import (
    access_category,
    access_post,
    access_thread,
    category_target,
    category_targets,
    posts_of,
    readable_threads,
    thread_target,
    thread_targets,
    visible_categories,
)
from caseforum.forum.service import REACTIONS, ForumError, mention_candidates
from caseforum.models import (
    Category,
    Event,
    Flag,
    Post,
    PostRevision,
    Thread,
    User,
)
from caseforum.web.deps import CurrentUser, CurrentViewer
from caseforum.web.locale import request_locale
from caseforum.web.params import MAX_ID, PathId
from caseforum.web.templating import is_htmx, page_renderer, render

router = APIRouter(tags=["forum pages"], include_in_schema=False)
PAGE_SIZE = 200
CATEGORY_SIZE = 1000  # threads listed on a category page (newest first, pinned on top)


def patterns(request: Request) -> list:
    return request.app.state.plugins.reference_patterns()




def thread_rows(session: Session, viewer: Viewer, threads: list[Thread]) -> list[dict]:
    unread = service.unread_counts(session, user_id=viewer.user_id or 0,
                                   thread_ids=[t.id or 0 for t in threads])
    return [{"t": t, "unread": unread.get(t.id or 0, 0)} for t in threads]


@router.get("/forum")
def forum_index(request: Request, session: SessionDep, viewer: CurrentViewer) -> Response:
    require(viewer, "forum.view")
    categories = visible_categories(session, viewer)
    audiences = category_targets(session, categories)
    # every category's threads and unread posts in two statements, not two per category
    threads_of: dict[int, list[int]] = {c.id or 0: [] for c in categories}
    for thread_id, category_id in session.exec(select(Thread.id, Thread.category_id).where(
            Thread.category_id.in_(list(threads_of)))):  # type: ignore[union-attr]
        threads_of[category_id].append(thread_id)
    unread = service.unread_counts(session, user_id=viewer.user_id or 0,
                                   thread_ids=[i for ids in threads_of.values() for i in ids])
    rows = [{"c": c, "threads": len(threads_of[c.id or 0]),
             "unread": sum(unread.get(i, 0) for i in threads_of[c.id or 0]),
             # per thread, for the live total (forum/index.html)
             "unread_map": [(i, unread[i]) for i in threads_of[c.id or 0] if unread.get(i)],
             "audience": sorted(audiences[c.id or 0].offices)} for c in categories]
    mine = readable_threads(session, viewer, private=True, limit=20)
    return render(request, "forum/index.html", {
        "rows": rows, "private": thread_rows(session, viewer, mine),
        "can_create": can(viewer, "category.create")})


@router.post("/forum/categories")
def category_create(request: Request, session: SessionDep, viewer: CurrentViewer,
                    name: Annotated[str, Form(max_length=100)],
                    description: Annotated[str, Form(max_length=1000)] = "",
                    offices: Annotated[str, Form(max_length=500)] = "") -> Response:
    require(viewer, "category.create")
    service.create_category(session, name=name, description=description,
                            offices=offices.replace(",", " ").split())
    session.commit()
    return RedirectResponse("/forum", status_code=303)


@router.get("/forum/c/{category_id}")
def category_page(request: Request, session: SessionDep, viewer: CurrentViewer,
                  category_id: PathId) -> Response:
    category = access_category(session, viewer, category_id)
    threads = readable_threads(session, viewer, category_id=category.id, limit=CATEGORY_SIZE)
    return render(request, "forum/category.html", {
        "category": category, "rows": thread_rows(session, viewer, threads),
        "can_post": can(viewer, "thread.create", category_target(session, category))})


@router.post("/forum/c/{category_id}/threads")
def thread_create(request: Request, session: SessionDep, viewer: CurrentViewer,
                  user: CurrentUser, category_id: PathId,
                  title: Annotated[str, Form(max_length=300)],
                  body: Annotated[str, Form(max_length=60_000)]) -> Response:
    category = access_category(session, viewer, category_id, action="thread.create")
    thread, _ = service.create_thread(session, author=user, category=category, title=title,
                                      body=body, patterns=patterns(request),
                                      language=request_locale(request).code)
    request.app.state.hub.commit(session)  # with its live fragments (forum/hub.py)
    return RedirectResponse(f"/threads/{thread.id}", status_code=303)


def _thread_context(request: Request, session: Session, viewer: Viewer,
                    thread: Thread, *, newest: bool = False) -> dict:
    posts = posts_of(session, thread, limit=PAGE_SIZE, newest=newest)
    renderer = page_renderer(request, session, viewer)
    target = thread_target(session, thread)
    category = session.get(Category, thread.category_id) if thread.category_id else None
    return {"thread": thread, "category": category, "posts": renderer.posts(posts),
            # the chat view shows the newest page: older posts are in the thread view
            "earlier": newest and len(posts) == PAGE_SIZE,
            "target": target, "can": can, "reactions": REACTIONS,
            "can_post": can(viewer, "post.create", target),
            "can_moderate": can(viewer, "forum.moderate", target),
            # from this session's own snapshot: a second connection here (the app's
            # latest_event_id) made 16 concurrent readers exhaust the pool and wait 30 s
            "live_after": session.exec(select(Event.id).order_by(  # type: ignore[union-attr]
                Event.id.desc()).limit(1)).first() or 0}


def _show_thread(request: Request, session: Session, viewer: Viewer, thread_id: int,
                 template: str, *, newest: bool = False) -> Response:
    """The thread (full or chat view); reading it marks it read."""
    thread = access_thread(session, viewer, thread_id)
    context = _thread_context(request, session, viewer, thread, newest=newest)
    service.mark_read(session, user_id=viewer.user_id or 0, thread=thread)
    notify.mark_read(session, user_id=viewer.user_id or 0, thread_id=thread.id)
    session.commit()
    return render(request, template, context)


@router.get("/threads/{thread_id}")
def thread_page(request: Request, session: SessionDep, viewer: CurrentViewer,
                thread_id: PathId) -> Response:
    return _show_thread(request, session, viewer, thread_id, "forum/thread.html")


@router.get("/threads/{thread_id}/chat")
def chat_page(request: Request, session: SessionDep, viewer: CurrentViewer,
              thread_id: PathId) -> Response:
    return _show_thread(request, session, viewer, thread_id, "forum/chat.html", newest=True)


@router.post("/threads/{thread_id}/posts")
def post_create(request: Request, session: SessionDep, viewer: CurrentViewer,
                user: CurrentUser, thread_id: PathId,
                body: Annotated[str, Form(max_length=60_000)],
                reply_to: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None) -> Response:
    thread = access_thread(session, viewer, thread_id, action="post.create")
    post = service.add_post(session, author=user, thread=thread, body=body,
                            reply_to_id=reply_to, patterns=patterns(request),
                            language=request_locale(request).code)
    service.mark_read(session, user_id=user.id or 0, thread=thread)
    request.app.state.hub.commit(session)  # with its live fragments (forum/hub.py)
    if is_htmx(request):
        return Response(status_code=204)  # the post arrives through the live socket
    return RedirectResponse(f"/threads/{thread.id}#post-{post.id}", status_code=303)


@router.post("/preview")
def preview(request: Request, viewer: CurrentViewer, session: SessionDep,
            body: Annotated[str, Form(max_length=60_000)] = "",
            thread: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None) -> Response:
    """The composer's preview, as the next post of ``thread`` when given, with a
    warning for each @name that matches no user."""
    require(viewer, "forum.view")
    if len(body) > 50_000:
        return render(request, "forum/_preview.html", {"error": "the post is too long"},
                      block=None)
    thread_id = access_thread(session, viewer, thread).id if thread is not None else None
    renderer = page_renderer(request, session, viewer)
    body_html, cards, unknown = renderer.preview(body, patterns(request), thread_id)
    return render(request, "forum/_preview.html",
                  {"html": body_html, "cards": cards, "unknown": unknown}, block=None)


@router.get("/forum/people")
def people(session: SessionDep, viewer: CurrentViewer,
           q: Annotated[str, Query(max_length=64)] = "") -> list[dict[str, str]]:
    """Usernames starting with ``q``, for completing @mentions in the composer."""
    require(viewer, "forum.view")
    return [{"username": u.username, "label": u.label, "office": u.office_code}
            for u in mention_candidates(session, q)]


@router.get("/posts/{post_id}/edit")
def edit_form(request: Request, session: SessionDep, viewer: CurrentViewer,
              post_id: PathId) -> Response:
    post, thread = access_post(session, viewer, post_id, action="post.edit")
    return render(request, "forum/edit.html", {"post": post, "thread": thread})


@router.post("/posts/{post_id}/edit")
def edit_save(request: Request, session: SessionDep, viewer: CurrentViewer, user: CurrentUser,
              post_id: PathId, body: Annotated[str, Form(max_length=60_000)]) -> Response:
    post, thread = access_post(session, viewer, post_id, action="post.edit")
    service.edit_post(session, editor=user, post=post, body=body, patterns=patterns(request))
    request.app.state.hub.commit(session)  # with its live fragments (forum/hub.py)
    return RedirectResponse(f"/threads/{thread.id}#post-{post.id}", status_code=303)


@router.get("/posts/{post_id}/revisions")
def revisions(request: Request, session: SessionDep, viewer: CurrentViewer,
              post_id: PathId) -> Response:
    post, thread = access_post(session, viewer, post_id, action="post.history", hide=True)
    rows = session.exec(select(PostRevision).where(PostRevision.post_id == post.id)
                        .order_by(PostRevision.id.desc())).all()  # type: ignore[union-attr]
    return render(request, "forum/revisions.html", {"post": post, "thread": thread,
                                                    "revisions": rows})


@router.post("/posts/{post_id}/react/{reaction}")
def react(request: Request, session: SessionDep, viewer: CurrentViewer, user: CurrentUser,
          post_id: PathId, reaction: str) -> Response:
    post, thread = access_post(session, viewer, post_id, action="post.react")
    service.toggle_reaction(session, user=user, post=post, reaction=reaction)
    request.app.state.hub.commit(session)  # with its live fragments (forum/hub.py)
    if is_htmx(request):
        return Response(status_code=204)
    return RedirectResponse(f"/threads/{thread.id}#post-{post.id}", status_code=303)


@router.post("/posts/{post_id}/flag")
def flag(request: Request, session: SessionDep, viewer: CurrentViewer, user: CurrentUser,
         post_id: PathId, reason: Annotated[str, Form(max_length=500)]) -> Response:
    post, thread = access_post(session, viewer, post_id, action="post.flag")
    service.flag_post(session, user=user, post=post, reason=reason)
    session.commit()
    return RedirectResponse(f"/threads/{thread.id}#post-{post.id}", status_code=303)


@router.post("/posts/{post_id}/{action}")
def moderate_post(request: Request, session: SessionDep, viewer: CurrentViewer,
                  user: CurrentUser, post_id: PathId, action: str,
                  reason: Annotated[str, Form(max_length=300)] = "") -> Response:
    if action not in ("hide", "unhide"):
        raise errors.NotFound("use hide or unhide")
    post, thread = access_post(session, viewer, post_id, action="forum.moderate")
    service.set_hidden(session, moderator=user, post=post, hidden=action == "hide",
                       reason=reason)
    request.app.state.hub.commit(session)  # with its live fragments (forum/hub.py)
    if is_htmx(request):
        return Response(status_code=204)
    return RedirectResponse(f"/threads/{thread.id}#post-{post.id}", status_code=303)


@router.post("/threads/{thread_id}/{action}")
def moderate_thread(request: Request, session: SessionDep, viewer: CurrentViewer,
                    user: CurrentUser, thread_id: PathId, action: str) -> Response:
    flags = {"lock": {"locked": True}, "unlock": {"locked": False},
             "pin": {"pinned": True}, "unpin": {"pinned": False}}
    if action not in flags:
        raise errors.NotFound("use lock, unlock, pin or unpin")
    thread = access_thread(session, viewer, thread_id, action="forum.moderate")
    service.set_thread_flags(session, moderator=user, thread=thread, **flags[action])
    request.app.state.hub.commit(session)  # with its live fragments (forum/hub.py)
    return RedirectResponse(f"/threads/{thread.id}", status_code=303)


@router.get("/forum/unread")
def unread_page(request: Request, session: SessionDep, viewer: CurrentViewer) -> Response:
    require(viewer, "forum.view")
    visible = readable_threads(session, viewer, limit=500)
    rows = [r for r in thread_rows(session, viewer, visible) if r["unread"]]
    return render(request, "forum/unread.html", {"rows": rows})


@router.get("/forum/flags")
def flags_page(request: Request, session: SessionDep, viewer: CurrentViewer) -> Response:
    require(viewer, "forum.moderate", None)
    open_flags = session.exec(select(Flag).where(Flag.resolved_at.is_(None))  # type: ignore[union-attr]
                              .order_by(Flag.id)).all()
    # the posts, threads, their facts and the flaggers in fixed statements, not per flag
    posts = {p.id: p for p in session.exec(select(Post).where(
        Post.id.in_({f.post_id for f in open_flags})))}  # type: ignore[union-attr]
    found = list(session.exec(select(Thread).where(
        Thread.id.in_({p.thread_id for p in posts.values()}))))  # type: ignore[union-attr]
    targets = thread_targets(session, found)
    threads = {t.id: t for t in found if can(viewer, "forum.moderate", targets[t.id or 0])}
    users = {u.id: u for u in session.exec(select(User).where(
        User.id.in_({f.user_id for f in open_flags})))}  # type: ignore[union-attr]
    rows = []
    for f in open_flags:
        post = posts.get(f.post_id)
        thread = threads.get(post.thread_id) if post else None
        if post and thread:
            rows.append({"flag": f, "post": post, "thread": thread, "by": users.get(f.user_id)})
    return render(request, "forum/flags.html", {"rows": rows})


@router.get("/messages/new")
def new_message_form(request: Request, viewer: CurrentViewer, to: str = "") -> Response:
    require(viewer, "forum.view")
    return render(request, "forum/new_message.html", {"to": to, "error": None})


@router.post("/messages")
def new_message(request: Request, session: SessionDep, viewer: CurrentViewer,
                user: CurrentUser, to: Annotated[str, Form(max_length=500)],
                title: Annotated[str, Form(max_length=300)],
                body: Annotated[str, Form(max_length=60_000)]) -> Response:
    require(viewer, "forum.view")
    names = [n.strip().lstrip("@").lower() for n in to.replace(",", " ").split() if n.strip()]
    people = list(session.exec(select(User).where(User.username.in_(names),  # type: ignore[attr-defined]
                                                  User.is_active)))
    missing = sorted(set(names) - {p.username for p in people})
    if missing or not people:
        error = f"unknown user {missing[0]!r}" if missing else "name at least one examiner"
        return render(request, "forum/new_message.html",
                      {"to": to, "error": error, "title": title, "body": body},
                      status_code=422)
    try:
        thread, _ = service.create_thread(session, author=user, category=None, title=title,
                                          body=body, participants=people,
                                          patterns=patterns(request),
                                          language=request_locale(request).code)
    except ForumError as exc:
        return render(request, "forum/new_message.html",
                      {"to": to, "error": str(exc), "title": title, "body": body},
                      status_code=422)
    request.app.state.hub.commit(session)  # with its live fragments (forum/hub.py)
    return RedirectResponse(f"/threads/{thread.id}", status_code=303)
