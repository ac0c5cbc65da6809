"""From database rows to index items: what each kind of result is made of.

Each function takes ids, loads the rows in a few ``IN`` queries and returns the
items to (re)write plus the ids of items to drop (gone, hidden, or never to be
found, such as a bot's quiet note).  The indexer consumer and ``caseforum reindex``
both call them, so an incremental index and a rebuilt one hold the same items.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from sqlmodel import Session, select

from caseforum.doccodes import CodeInfo, describe
from caseforum.forum.access import in_chunks, thread_targets
from caseforum.models import (
    Application,
    Citation,
    Document,
    DocumentOffice,
    Post,
    Priority,
    Thread,
    User,
)
from caseforum.numbers import NumberError, parse_publication_number
from caseforum.search import acl

Item = dict[str, Any]
#: a document code's description (office, code, label): its ``group`` is the facet;
#: the app passes its registry's ``describe`` (plugins add types), else the built-in tables
Describe = Callable[[str, str, str], CodeInfo]


@dataclass
class Batch:
    """Items to write and item ids to delete."""

    items: list[Item] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)

    def extend(self, other: Batch) -> None:
        self.items.extend(other.items)
        self.gone |= other.gone


def _when(value: date | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.combine(value, time())


def _classes(app: Application) -> str:
    return " ".join(c.replace(" ", "").upper() for c in [*app.ipc, *app.cpc])


def _cited_key(cited: str) -> str | None:
    try:
        pub = parse_publication_number(cited)
    except (NumberError, ValueError):
        return None
    return pub.office + pub.number


def _numbers(app: Application, priorities: list[Priority]) -> str:
    keys = [app.office_code + app.number, app.publication_number]
    if app.pct_number:
        keys.append("IB" + app.pct_number)
    keys += [p.office_code + p.number for p in priorities]
    return " ".join(dict.fromkeys(keys))


def _by_ids(session: Session, model: Any, column: Any, ids: Iterable[int]) -> list[Any]:
    rows: list[Any] = []
    for chunk in in_chunks(sorted(set(ids))):
        rows += session.exec(select(model).where(column.in_(chunk))).all()
    return rows


def dossiers(session: Session, app_ids: Iterable[int], describe: Describe = describe) -> Batch:
    """Each dossier and all its documents (their titles carry the dossier's)."""
    app_ids = set(app_ids)
    apps = {a.id: a for a in _by_ids(session, Application, Application.id, app_ids)}
    batch = Batch(gone={f"dossier:{i}" for i in app_ids - set(apps)})
    if not apps:
        return batch
    priorities: dict[int, list[Priority]] = defaultdict(list)
    for p in _by_ids(session, Priority, Priority.application_id, apps):
        priorities[p.application_id].append(p)
    citations: dict[int | None, list[Citation]] = defaultdict(list)
    for c in _by_ids(session, Citation, Citation.application_id, apps):
        citations[c.document_id if c.document_id is not None else -c.application_id].append(c)
    docs = _by_ids(session, Document, Document.application_id, apps)
    named: dict[int, list[str]] = defaultdict(list)
    for row in _by_ids(session, DocumentOffice, DocumentOffice.document_id,
                       [d.id for d in docs if str(d.visibility) == "restricted"]):
        named[row.document_id].append(row.office_code)
    for app in apps.values():
        own = citations[-(app.id or 0)]  # citations not taken from a document
        batch.items.append({
            "id": f"dossier:{app.id}", "kind": "dossier", "title": app.title,
            "body": " ".join([app.display_number, app.publication_display,
                              *(c.cited for c in own)]),
            "applicant": " ; ".join(app.applicants),
            "numbers": _numbers(app, priorities[app.id or 0]),
            "ipc": _classes(app),
            "cited": " ".join(k for k in map(_cited_key, (c.cited for c in own)) if k),
            "code": "", "office": app.office_code, "source": app.source,
            "year": app.filing_date.year, "date": _when(app.publication_date),
            "url": f"/dossiers/{app.office_code}/{app.number}",
            "acl": " ".join(sorted(acl.dossier_tokens(app.office_code))),
        })
    for doc in docs:
        app = apps[doc.application_id]
        cites = citations[doc.id]
        batch.items.append({
            "id": f"document:{doc.id}", "kind": "document",
            "title": f"{doc.code} · {app.office_code} {app.display_number}: {app.title}",
            "body": " ".join([doc.text_content, *(c.cited for c in cites)]),
            "applicant": " ; ".join(app.applicants),
            "numbers": _numbers(app, priorities[app.id or 0]),
            "ipc": _classes(app),
            "cited": " ".join(k for k in map(_cited_key, (c.cited for c in cites)) if k),
            "code": doc.code.upper(), "office": app.office_code, "source": app.source,
            "group": describe(app.office_code, doc.code, doc.label).group,
            "year": doc.date.year, "date": _when(doc.date), "url": f"/documents/{doc.id}",
            "acl": " ".join(sorted(acl.document_tokens(
                app.office_code, str(doc.visibility), named[doc.id or 0]))),
        })
    return batch


def threads(session: Session, thread_ids: Iterable[int]) -> Batch:
    """Each thread and all its posts: what a change of its readers (category moved,
    category offices changed) needs."""
    thread_ids = set(thread_ids)
    found = {t.id: t for t in _by_ids(session, Thread, Thread.id, thread_ids)}
    batch = _thread_batch(session, found, _by_ids(session, Post, Post.thread_id, found))
    batch.gone |= {f"thread:{i}" for i in thread_ids - set(found)}
    return batch


def posts(session: Session, post_ids: Iterable[int]) -> Batch:
    """Some posts and their threads' own items (a new post moves the thread's date);
    the other posts of those threads are left as they are."""
    post_ids = set(post_ids)
    rows = _by_ids(session, Post, Post.id, post_ids)
    found = {t.id: t for t in _by_ids(session, Thread, Thread.id, {p.thread_id for p in rows})}
    batch = _thread_batch(session, found, [p for p in rows if p.thread_id in found])
    batch.gone |= {f"post:{i}" for i in post_ids - {p.id for p in rows}}
    return batch


def _thread_batch(session: Session, found: dict[Any, Thread], posts: list[Post]) -> Batch:
    batch = Batch()
    if not found:
        return batch
    targets = thread_targets(session, list(found.values()))
    authors = {u.id: u for u in _by_ids(session, User, User.id,
                                        {p.author_id for p in posts} |
                                        {t.author_id for t in found.values()})}
    common: dict[int, Item] = {}  # what a thread's item and its posts' items share
    for tid, thread in found.items():
        target = targets.get(tid or 0)
        private = bool(target and target.is_private)
        category = None if private else thread.category_id
        granted = acl.thread_tokens(is_private=private, category_id=category,
                                    participants=target.participants if target else ())
        common[tid or 0] = {"thread": str(tid), "acl": " ".join(sorted(granted)),
                            **({"category": str(category)} if category is not None else {})}
        author = authors.get(thread.author_id)
        batch.items.append({
            "id": f"thread:{tid}", "kind": "thread", "title": thread.title, "body": "",
            "office": author.office_code if author else "", "year": thread.created_at.year,
            "date": thread.last_post_at, "url": f"/threads/{tid}", **common[tid or 0],
        })
    for post in posts:
        if post.hidden or post.quiet:  # hidden: not to be found; quiet: a per-reader note
            batch.gone.add(f"post:{post.id}")
            continue
        thread = found[post.thread_id]
        author = authors.get(post.author_id)
        batch.items.append({
            "id": f"post:{post.id}", "kind": "post", "title": thread.title, "body": post.body,
            "office": author.office_code if author else "", "year": post.created_at.year,
            "date": post.created_at, "url": f"/threads/{thread.id}#post-{post.id}",
            **common[thread.id or 0],
        })
    return batch


def plugin_batch(raw: Iterable[dict[str, Any]]) -> Batch:
    """Items that plugins returned (``collect_search_items``), with their access tokens."""
    batch = Batch()
    for item in raw:
        if not isinstance(item, dict) or not item.get("id"):
            continue
        if item.get("gone"):
            batch.gone.add(str(item["id"]))
            continue
        when = item.get("date")
        batch.items.append({
            "id": str(item["id"]), "kind": str(item.get("kind", "")),
            "title": str(item.get("title", "")), "body": str(item.get("body", "")),
            "office": str(item.get("office", "")),
            "year": when.year if when is not None else None,
            "date": _when(when) if when is not None else None, "url": str(item.get("url", "")),
            "acl": " ".join(sorted(acl.party_tokens(str(item.get("scope", "")),
                                                    item.get("parties", ())))),
        })
    return batch


def all_ids(session: Session) -> tuple[list[int], list[int]]:
    """Every dossier id and thread id: what a rebuild walks through."""
    return (list(session.exec(select(Application.id).order_by(Application.id))),  # type: ignore[arg-type]
            list(session.exec(select(Thread.id).order_by(Thread.id))))  # type: ignore[arg-type]
