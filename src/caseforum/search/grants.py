"""What one viewer may find, worked out from the database for one search.

Three things, all from the rules in :mod:`caseforum.authz` and the modules that
feed them (``dossiers/access.py``, ``forum/access.py``), never from a copy here:

- the access tokens the viewer holds (:func:`caseforum.search.acl.viewer_tokens`),
  with the offices open to the public and the forum categories the viewer may
  read as they are *now*: a category's offices or an office's public access can
  change without any item being re-indexed;
- the readable categories' names, for the category facet;
- the items whose own access changed after the index last saw them (a document's
  visibility or named offices, a conversation's members, a post hidden): the
  index's tokens for those are out of date until the indexer applies the event, so
  they are decided here, item by item, from the database.  There are few: the
  indexer is normally less than a second behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from caseforum import authcache
from caseforum.authz import CategoryTarget, Viewer, can
from caseforum.dossiers.access import Access
from caseforum.forum.access import category_targets, filter_threads
from caseforum.models import Category, Event, Thread
from caseforum.search import acl
from caseforum.search.engine import Overlay

#: events that change who may see an item, and the item field that names it
ACCESS_EVENTS = ("document.visibility_changed", "thread.members_changed", "post.hidden",
                 "post.shown")


@dataclass(frozen=True)
class Grants:
    tokens: frozenset[str]
    #: the categories the viewer may read: id -> name
    categories: dict[int, str] = field(default_factory=dict)
    overlay: Overlay = Overlay()


def _categories(session: Session, viewer: Viewer) -> dict[int, tuple[str, CategoryTarget]]:
    if not viewer.is_authenticated or not can(viewer, "forum.view", None):
        return {}
    rows = list(session.exec(select(Category)))
    targets = category_targets(session, rows)
    return {c.id or 0: (c.name, targets[c.id or 0]) for c in rows}


def _pending(session: Session, viewer: Viewer, since: int) -> Overlay:
    """Access changes past ``since`` (the index's cursor), decided for ``viewer``."""
    hidden: dict[int, bool] = {}
    documents: set[int] = set()
    threads: set[int] = set()
    for kind, payload in session.exec(
            select(Event.kind, Event.payload).where(col(Event.id) > since)
            .where(col(Event.kind).in_(ACCESS_EVENTS)).order_by(col(Event.id))):
        payload = payload or {}
        if kind == "document.visibility_changed" and payload.get("document_id"):
            documents.add(int(payload["document_id"]))
        elif kind == "thread.members_changed" and payload.get("thread_id"):
            threads.add(int(payload["thread_id"]))
        elif kind in ("post.hidden", "post.shown") and payload.get("post_id"):
            hidden[int(payload["post_id"])] = kind == "post.hidden"
    if not (documents or threads or any(hidden.values())):
        return Overlay()
    access = Access(session, viewer)
    changed = {("id", f"document:{d}") for d in documents}
    shown = {("id", f"document:{d}") for d in documents if access.document(d) is not None}
    changed |= {("thread", str(t)) for t in threads}
    if threads:
        rows = list(session.exec(select(Thread).where(col(Thread.id).in_(threads))))
        shown |= {("thread", str(t.id)) for t in filter_threads(session, viewer, rows)}
    changed |= {("id", f"post:{p}") for p, now_hidden in hidden.items() if now_hidden}
    return Overlay(frozenset(changed), frozenset(shown))


def grants_for(session: Session, viewer: Viewer, since: int | None = None) -> Grants:
    """The viewer's grants; ``since``: the index's cursor (``None``: no index, so
    nothing can be pending)."""
    public = {code for code, office in authcache.offices(session).items()
              if office.public_access}
    categories = _categories(session, viewer)
    tokens = acl.viewer_tokens(viewer, public, {cid: target for cid, (_, target)
                                                in categories.items()})
    readable = {cid: name for cid, (name, _) in categories.items()
                if f"category:{cid}" in tokens}
    overlay = _pending(session, viewer, since) if since is not None else Overlay()
    return Grants(frozenset(tokens), readable, overlay)
