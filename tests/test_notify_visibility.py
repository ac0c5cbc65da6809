"""The bell counts only what its owner may still read: a document restricted to
another office, or a thread whose category is limited to other offices, after the
notification was stored, leaves the bell's number, its live push and the home
page's "For you" list; and the count costs the same few statements for ten or for
thousands of unread notifications."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, select

from caseforum.app import create_app
from caseforum.authz import Viewer
from caseforum.db import open_session
from caseforum.forum import inbox
from caseforum.forum import service as forum
from caseforum.forum.live import LiveEvent
from caseforum.models import (
    Application,
    Document,
    DocumentOffice,
    Event,
    Notification,
    Office,
    Thread,
    ThreadParticipant,
)
from tests.conftest import login
from tests.dossier_helpers import pdf_bytes, token_for, upload
from tests.notify_helpers import notify_now, start_log_after_history, user
from tests.sql_helpers import counted

JP_APP = "JP 2019-041872"
EVENT_IDS = itertools.count(10_000_000)  # made-up events of made-up notifications
NEW_REPORT = "New SRPT in JP 2019-041872"


@pytest.fixture
def app(settings: Any) -> Any:
    return create_app(settings.model_copy(update={"run_consumers": False}))


@pytest.fixture(autouse=True)
def fresh_log(engine: Any) -> None:
    start_log_after_history(engine)


def bell(client: Any) -> int:
    page = client.get("/").text
    return int(page.split('id="bell-count"')[1].split(">")[1].split("<")[0])


def for_you(client: Any) -> str:
    page = client.get("/").text
    return page.split('id="for-you"')[1].split("</section>")[0]


def live_push(app: Any, db: Session, username: str,
              statements: list[int] | None = None) -> str:
    """What the user's open pages get when their bell changes (the live hub's
    fragment for the newest notification event of theirs); ``statements`` gets how
    many statements making it took."""
    person = user(db, username)
    event = db.exec(select(Event).where(Event.kind.in_(  # type: ignore[attr-defined]
        ("notification.created", "notification.read")))
        .order_by(Event.id.desc())).first()  # type: ignore[union-attr]
    assert event is not None
    hub, topic = app.state.hub, f"user:{person.id}"
    watcher = Viewer.of(person, db.get(Office, person.office_code))
    db.expire_all()  # what the hub's own session would read now
    with counted(db.get_bind()) as sent:
        html = LiveEvent(db, hub.env, hub.host, event).fragments({topic: {watcher}})[
            (topic, watcher)]
    if statements is not None:
        statements.append(len(sent))
    return html


def restrict(db: Session, document_id: int, *offices: str) -> None:
    """JP narrows a document to ``offices`` (none: to itself)."""
    document = db.get(Document, document_id)
    assert document is not None
    document.visibility = "restricted"  # type: ignore[assignment]
    db.add(document)
    db.add_all([DocumentOffice(document_id=document_id, office_code=o) for o in offices])
    db.commit()


def test_a_document_restricted_to_another_office_leaves_the_bell_and_the_home_list(
        app, client, db) -> None:
    csrf = login(client, "sg.examiner")
    client.post("/subscriptions", data={"csrf_token": csrf, "kind": "family",
                                        "target": JP_APP})
    response = upload(client, token_for(db, "jp.admin"), "JP", "2019-041872",
                      pdf_bytes("A new report"), code="SRPT", date="2021-02-03")
    assert response.status_code == 201, response.text
    doc_id = int(response.json()["id"])
    notify_now(app)
    assert bell(client) == 1
    assert NEW_REPORT in for_you(client)
    pushed = live_push(app, db, "sg.examiner")
    assert 'class="bell-count on">1<' in pushed and NEW_REPORT in pushed

    restrict(db, doc_id, "CN")  # JP now shares it with CN only
    assert bell(client) == 0
    assert NEW_REPORT not in for_you(client)
    assert "No new mentions or replies." in for_you(client)
    pushed = live_push(app, db, "sg.examiner")
    assert 'class="bell-count">0<' in pushed and NEW_REPORT not in pushed
    assert NEW_REPORT not in client.get("/notifications").text

    db.add(DocumentOffice(document_id=doc_id, office_code="SG"))  # and with SG again
    db.commit()
    assert bell(client) == 1
    assert NEW_REPORT in for_you(client)


def test_a_thread_whose_category_is_limited_to_other_offices_leaves_the_bell(
        app, client, db) -> None:
    category = forum.create_category(db, name="Shared questions")
    thread, _ = forum.create_thread(db, author=user(db, "jp.examiner"), category=category,
                                    title="Argyrodite family", body="@kr.examiner a question")
    db.commit()
    notify_now(app)
    login(client, "kr.examiner")
    assert bell(client) == 1
    assert "mentioned you in “Argyrodite family”" in for_you(client)

    forum.set_category_offices(db, category=category, offices=["JP", "CN"])
    db.commit()
    assert bell(client) == 0
    assert "Argyrodite family" not in for_you(client)
    pushed = live_push(app, db, "kr.examiner")
    assert 'class="bell-count">0<' in pushed and "Argyrodite family" not in pushed
    assert "Argyrodite family" not in client.get("/notifications").text
    # opened by its old link, it reveals nothing either
    assert client.get(f"/threads/{thread.id}").status_code == 404


# Cost -------------------------------------------------------------------------------


def _many(engine: Any, username: str, count: int) -> int:
    """``count`` unread notifications for ``username`` about as many distinct
    subjects: threads of an open category, of a category limited to JP, private
    conversations with and without them, documents of JP visible to all offices or
    restricted to KR or to CN.  Returns how many of them ``username`` (of KR) may read."""
    with open_session(engine) as session:
        person = user(session, username)
        author = user(session, "jp.examiner")
        open_cat = forum.create_category(session, name=f"Open {count}")
        jp_only = forum.create_category(session, name=f"JP only {count}", offices=["JP"])
        app = session.exec(select(Application).where(Application.office_code == "JP")).first()
        assert app is not None
        readable = 0
        notes = []
        for i in range(count):
            kind = i % 6
            thread_id = document_id = None
            if kind < 3:
                thread = Thread(title=f"t{i}", author_id=author.id or 0, is_private=kind == 2,
                                category_id=(open_cat.id, jp_only.id, None)[kind])
                session.add(thread)
                session.flush()
                thread_id = thread.id
                if kind == 2 and i % 4 == 0:  # a conversation they take part in
                    session.add(ThreadParticipant(thread_id=thread.id or 0,
                                                  user_id=person.id or 0))
                    readable += 1
                readable += kind == 0
            else:
                document = Document(application_id=app.id or 0, code="SRPT",
                                    date=date(2021, 2, 3), media_type="application/pdf",
                                    size=1, sha256=f"{i:064d}", filename=f"{i}.pdf",
                                    visibility="offices" if kind == 3 else "restricted")
                session.add(document)
                session.flush()
                document_id = document.id
                if kind == 4:
                    session.add(DocumentOffice(document_id=document.id or 0, office_code="KR"))
                else:
                    session.add(DocumentOffice(document_id=document.id or 0, office_code="CN"))
                readable += kind in (3, 4)
            notes.append(Notification(user_id=person.id or 0, event_id=next(EVENT_IDS),
                                      kind="watching", text=f"note {i}", link="/",
                                      thread_id=thread_id, document_id=document_id))
        session.add_all(notes)
        session.commit()
        return readable


def _cost(app: Any, client: Any, db: Session) -> tuple[int, int, int, int]:
    """The bell's number and the statements of counting it, of the home page and
    of a live push."""
    kr = user(db, "kr.examiner")
    viewer = Viewer.of(kr, db.get(Office, "KR"))
    engine = app.state.engine
    client.get("/")  # the log-in's identity cached again after the writes above
    with counted(engine) as page:
        assert client.get("/").status_code == 200
    with open_session(engine) as session, counted(engine) as count:
        number = inbox.unread_count(session, viewer)
    db.add(Event(kind="notification.created", subject_type="user", subject_id=str(kr.id),
                 payload={"user_id": kr.id}))
    db.commit()
    push: list[int] = []
    live_push(app, db, "kr.examiner", push)
    # the page's statements about notifications (not the caches it may refill now and then)
    return number, len(count), sum("notification" in s for s in page), push[0]


def test_the_bell_costs_the_same_few_statements_for_ten_or_thousands_of_notifications(
        app, client, db) -> None:
    login(client, "kr.examiner")
    few = _many(app.state.engine, "kr.examiner", 12)
    number, count, page, push = _cost(app, client, db)
    assert number == few == bell(client)
    assert count <= 3  # the grouped count, the categories it names, their office groups
    assert push <= 4  # the same and the newest readable unread
    assert page <= 3  # the grouped count and the list (the bell reuses the count)

    many = few + _many(app.state.engine, "kr.examiner", 3000)
    number, count_many, page_many, push_many = _cost(app, client, db)
    assert number == many == bell(client)
    assert (count_many, page_many, push_many) == (count, page, push)
