"""Search follows changes of who may see what at once, before the indexer has run.

The app here runs no background consumers, so the index stays behind until a test
calls ``index_now``: each change is searched for right after its commit (the
answer comes from the database), and again once the indexer has applied it (the
answer comes from the re-indexed items).  Both must be the same.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from caseforum.app import create_app
from caseforum.dossiers.service import set_document_visibility
from caseforum.forum import service as forum
from caseforum.models import Application, Category, Document, Event, Office, Post, Thread, User
from caseforum.offices import set_public_access
from caseforum.search.query import index_cursor
from tests.dossier_helpers import token_for, upload
from tests.forum_helpers import make_category, reply, start_thread
from tests.search_helpers import found, index_now


@pytest.fixture
def app(settings: Any) -> Any:
    return create_app(settings.model_copy(update={"run_consumers": False}))


def _totals(as_user: Any, word: str, *names: str) -> dict[str, int]:
    return {name: found(as_user(name)[0], word)["total"] for name in names}


def _behind(app: Any, db: Any) -> bool:
    """Whether the index has not applied the newest event yet."""
    newest = max(db.exec(select(Event.id)).all())
    return (index_cursor(app.state.search_dir) or 0) < newest


def _user(db: Any, username: str) -> User:
    return db.exec(select(User).where(User.username == username)).one()


def test_document_visibility_and_named_offices(client, as_user, db, app) -> None:
    done = upload(client, token_for(db, "jp.examiner"), "JP", "2019041872",
                  b"velvetcog in a note for JP only", filename="v.txt", code="EXRP",
                  visibility="restricted", offices="JP")
    assert done.status_code in (200, 201), done.text
    index_now(app)
    assert _totals(as_user, "velvetcog", "jp.examiner", "cn.examiner", "kr.examiner") == {
        "jp.examiner": 1, "cn.examiner": 0, "kr.examiner": 0}
    app_id = db.exec(select(Application.id).where(Application.number == "2019041872")).one()
    doc = db.exec(select(Document).where(Document.application_id == app_id,
                                         Document.code == "EXRP")).one()

    set_document_visibility(db, document=doc, visibility="offices", actor_id=None)
    db.commit()
    assert _behind(app, db)
    cn = found(as_user("cn.examiner")[0], "velvetcog")
    assert cn["total"] == 1 and cn["facets"]["group"] == {"examination": 1}
    index_now(app)
    assert found(as_user("cn.examiner")[0], "velvetcog")["total"] == 1

    set_document_visibility(db, document=doc, visibility="restricted", offices=["KR"],
                            actor_id=None)
    db.commit()
    assert _behind(app, db)
    expected = {"jp.examiner": 1, "cn.examiner": 0, "kr.examiner": 1}
    assert _totals(as_user, "velvetcog", *expected) == expected  # JP: its own office
    cn = found(as_user("cn.examiner")[0], "velvetcog")
    assert cn["facets"]["group"] == {} and cn["facets"]["office"] == {}
    index_now(app)
    assert _totals(as_user, "velvetcog", *expected) == expected


def test_category_offices_change_needs_no_reindexing(as_user, db, app) -> None:
    jp, csrf = as_user("jp.examiner")
    category = make_category(db, "Arctic fins", offices=["JP"])
    start_thread(jp, csrf, category, "Cold climates", "tundrawick frosting on the fins")
    index_now(app)
    assert _totals(as_user, "tundrawick", "jp.examiner", "cn.examiner") == {
        "jp.examiner": 1, "cn.examiner": 0}
    forum.set_category_offices(db, category=db.get(Category, category), offices=["CN"])
    db.commit()
    cn = found(as_user("cn.examiner")[0], "tundrawick")
    assert cn["total"] == 1 and cn["facets"]["category"] == {"Arctic fins": 1}
    jp_now = found(as_user("jp.examiner")[0], "tundrawick")
    assert jp_now["total"] == 0 and jp_now["facets"]["category"] == {}
    index_now(app)  # nothing about the category is in the items: the same answers
    assert _totals(as_user, "tundrawick", "jp.examiner", "cn.examiner") == {
        "jp.examiner": 0, "cn.examiner": 1}


def test_conversation_members(as_user, db, app) -> None:
    users = {name: _user(db, name) for name in ("jp.examiner", "kr.examiner", "cn.examiner")}
    thread, _ = forum.create_thread(db, author=users["jp.examiner"], category=None,
                                    title="Between us", body="marrowquill remark",
                                    participants=[users["kr.examiner"]])
    db.commit()
    index_now(app)
    names = ("jp.examiner", "kr.examiner", "cn.examiner")
    assert _totals(as_user, "marrowquill", *names) == {
        "jp.examiner": 1, "kr.examiner": 1, "cn.examiner": 0}

    forum.set_members(db, thread=db.get(Thread, thread.id), members=list(users.values()))
    db.commit()
    assert _behind(app, db)
    assert _totals(as_user, "marrowquill", *names) == dict.fromkeys(names, 1)

    forum.set_members(db, thread=db.get(Thread, thread.id),
                      members=[users["jp.examiner"], users["cn.examiner"]])
    db.commit()
    assert _behind(app, db)
    expected = {"jp.examiner": 1, "kr.examiner": 0, "cn.examiner": 1}
    assert _totals(as_user, "marrowquill", *names) == expected
    index_now(app)
    assert _totals(as_user, "marrowquill", *names) == expected


def test_members_of_a_thread_in_a_category_cannot_be_set(db) -> None:
    category = make_category(db, "Open")
    thread, _ = forum.create_thread(db, author=_user(db, "jp.examiner"),
                                    category=db.get(Category, category), title="Open",
                                    body="open words")
    with pytest.raises(forum.ForumError, match="only a private conversation"):
        forum.set_members(db, thread=thread, members=[_user(db, "cn.examiner")])


def test_office_public_access_switched_off(client, db, app) -> None:
    before = found(client, "sulfide")  # JP (and WIPO) let the public in (demo)
    assert before["facets"]["office"].get("JP", 0) >= 1
    set_public_access(db, db.get(Office, "JP"), on=False, by="test")
    db.commit()
    after = found(client, "sulfide")
    assert "JP" not in after["facets"]["office"]
    assert after["total"] == before["total"] - before["facets"]["office"]["JP"]
    assert found(client, "sulfide", office="JP")["total"] == 0


def test_hidden_post_is_gone_at_once(as_user, db, app) -> None:
    cn, csrf = as_user("cn.examiner")
    thread = start_thread(cn, csrf, make_category(db), "Moderated", "an ordinary start")
    post_id = reply(cn, csrf, thread, "brindlefog is a rude word")
    index_now(app)
    assert found(cn, "brindlefog")["total"] == 1
    forum.set_hidden(db, moderator=_user(db, "admin"), post=db.get(Post, post_id),
                     hidden=True, reason="rude")
    db.commit()
    assert _behind(app, db)
    assert found(cn, "brindlefog")["total"] == 0
    index_now(app)
    assert found(cn, "brindlefog")["total"] == 0
