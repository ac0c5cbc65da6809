"""Forum API: the same permissions as the pages, for bearer-token clients."""

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from caseforum.authz import require
from caseforum.db import SessionDep
from caseforum.forum import service
from caseforum.forum.access import (
    access_category,
    access_post,
    access_thread,
    category_targets,
    posts_of,
    readable_threads,
    visible_categories,
)
from caseforum.forum.view import PostView, Renderer
from caseforum.models import Thread
from caseforum.web.deps import CurrentUser, CurrentViewer
from caseforum.web.forum_pages import patterns
from caseforum.web.params import MAX_ID, OptionalQueryId, PathId

router = APIRouter(prefix="/api/v1", tags=["forum"])


class CategoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=1000)
    offices: list[str] = Field(default_factory=list,
                               description="empty (and no group): every participating office")
    group: str | None = Field(default=None, description="a named office group, e.g. ASEAN")


class CategoryOut(BaseModel):
    id: int
    name: str
    description: str
    offices: list[str]


class ThreadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: int = Field(ge=1, le=MAX_ID)
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=50_000)


class PostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=50_000)
    reply_to: int | None = Field(default=None, ge=1, le=MAX_ID)


class PostOut(BaseModel):
    id: int
    thread_id: int
    author: str
    office: str
    bot: bool
    body: str | None
    html: str
    cards: list[str]
    created_at: datetime
    edited_at: datetime | None
    hidden: bool


class ThreadOut(BaseModel):
    id: int
    title: str
    category: int | None
    locked: bool
    pinned: bool
    post_count: int
    last_post_at: datetime
    posts: list[PostOut] | None = None


def _post_out(view: PostView) -> PostOut:
    p = view.post
    return PostOut(id=p.id or 0, thread_id=p.thread_id, author=view.author.username,
                   office=view.author.office_code, bot=str(view.author.role) == "bot",
                   body=None if p.hidden else p.body,
                   html=str(view.html) + "".join(str(e) for e in view.embeds),
                   cards=[str(c) for c in view.cards], created_at=p.created_at,
                   edited_at=p.edited_at, hidden=p.hidden)


def _thread_out(t: Thread, posts: list[PostOut] | None = None) -> ThreadOut:
    return ThreadOut(id=t.id or 0, title=t.title, category=t.category_id, locked=t.locked,
                     pinned=t.pinned, post_count=t.post_count, last_post_at=t.last_post_at,
                     posts=posts)


def _renderer(request: Request, session: Session, viewer) -> Renderer:
    return Renderer(session, viewer, request.app.state.plugins, request.app.state.templates)


@router.get("/categories", response_model=list[CategoryOut])
def list_categories(session: SessionDep, viewer: CurrentViewer) -> list[CategoryOut]:
    require(viewer, "forum.view")
    categories = visible_categories(session, viewer)
    targets = category_targets(session, categories)
    return [CategoryOut(id=c.id or 0, name=c.name, description=c.description,
                        offices=sorted(targets[c.id or 0].offices))
            for c in categories]


@router.post("/categories", response_model=CategoryOut, status_code=201)
def create_category(session: SessionDep, viewer: CurrentViewer, data: CategoryIn) -> CategoryOut:
    require(viewer, "category.create")
    c = service.create_category(session, name=data.name, description=data.description,
                                offices=data.offices, group=data.group)
    session.commit()
    return CategoryOut(id=c.id or 0, name=c.name, description=c.description,
                       offices=sorted(category_targets(session, [c])[c.id or 0].offices))


@router.get("/threads", response_model=list[ThreadOut])
def list_threads(session: SessionDep, viewer: CurrentViewer,
                 category: OptionalQueryId = None) -> list[ThreadOut]:
    """The newest 200 threads the caller may read; ``category``: of that category
    (404 when it is absent or not readable)."""
    require(viewer, "forum.view")
    if category is not None:
        access_category(session, viewer, category)
    return [_thread_out(t) for t in readable_threads(session, viewer, category_id=category,
                                                     limit=200)]


@router.post("/threads", response_model=ThreadOut, status_code=201)
def create_thread(request: Request, session: SessionDep, viewer: CurrentViewer,
                  user: CurrentUser, data: ThreadIn) -> Response:
    category = access_category(session, viewer, data.category, action="thread.create")
    thread, post = service.create_thread(session, author=user, category=category,
                                         title=data.title, body=data.body,
                                         patterns=patterns(request))
    request.app.state.hub.commit(session)  # with its live fragments (forum/hub.py)
    views = _renderer(request, session, viewer).posts([post])
    body = _thread_out(thread, [_post_out(v) for v in views]).model_dump(mode="json")
    return JSONResponse(body, status_code=201)


@router.get("/threads/{thread_id}", response_model=ThreadOut)
def get_thread(request: Request, session: SessionDep, viewer: CurrentViewer,
               thread_id: PathId) -> ThreadOut:
    thread = access_thread(session, viewer, thread_id)
    posts = posts_of(session, thread, limit=1000)
    views = _renderer(request, session, viewer).posts(posts)
    return _thread_out(thread, [_post_out(v) for v in views])


@router.post("/threads/{thread_id}/posts", response_model=PostOut, status_code=201)
def create_post(request: Request, session: SessionDep, viewer: CurrentViewer,
                user: CurrentUser, thread_id: PathId, data: PostIn) -> Response:
    thread = access_thread(session, viewer, thread_id, action="post.create")
    post = service.add_post(session, author=user, thread=thread, body=data.body,
                            reply_to_id=data.reply_to, patterns=patterns(request))
    request.app.state.hub.commit(session)  # with its live fragments (forum/hub.py)
    view = _renderer(request, session, viewer).posts([post])[0]
    return JSONResponse(_post_out(view).model_dump(mode="json"), status_code=201)


@router.patch("/posts/{post_id}", response_model=PostOut)
def edit_post(request: Request, session: SessionDep, viewer: CurrentViewer, user: CurrentUser,
              post_id: PathId, data: PostIn) -> PostOut:
    post, thread = access_post(session, viewer, post_id, action="post.edit")
    service.edit_post(session, editor=user, post=post, body=data.body,
                      patterns=patterns(request))
    request.app.state.hub.commit(session)  # with its live fragments (forum/hub.py)
    return _post_out(_renderer(request, session, viewer).posts([post])[0])
