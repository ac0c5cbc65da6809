"""In-app notifications as people expect them: read when opened or when the thread
(or the document) is read, none for one's own doing or a bot's answer to one's own
command, one line per thread on the notifications page and the home page (an
exchange's alerts: one line, read together)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from caseforum.app import create_app
from caseforum.bots.builtin import DossierBot
from caseforum.bots.runner import BotRunner
from caseforum.db import open_session
from caseforum.events import process_pending
from caseforum.forum import service as forum
from caseforum.forum.notify import Notifier
from caseforum.models import Category, ConsumerCursor, Event, Notification, Thread, User


@pytest.fixture
def app(settings: Any) -> Any:
    """The app without background consumers: each test runs the notifier itself."""
    return create_app(settings.model_copy(update={"run_consumers": False}))


@pytest.fixture(autouse=True)
def fresh_log(engine: Any) -> None:
    """The consumers start after the demo data's history, as on a new server."""
    with open_session(engine) as session:
        last = session.exec(select(func.max(Event.id))).one() or 0
        for name in (Notifier.name, BotRunner.name):
            cursor = session.get(ConsumerCursor, name) or ConsumerCursor(name=name)
            cursor.last_event_id = last
            session.add(cursor)
        session.exec(Notification.__table__.delete())  # type: ignore[attr-defined]
        session.commit()


def user(session: Session, username: str) -> User:
    return session.exec(select(User).where(User.username == username)).one()


def notify_now(app: Any) -> None:
    process_pending(Notifier(app.state.engine, app.state.plugins.notification_channels),
                    app.state.engine)


def new_thread(engine: Any, body: str, *, author: str = "jp.examiner",
               title: str = "Argyrodite family") -> tuple[int, int]:
    with open_session(engine) as session:
        category = session.exec(select(Category)).first() or forum.create_category(
            session, name="Electrochemistry")
        thread, post = forum.create_thread(session, author=user(session, author),
                                           category=category, title=title, body=body)
        session.commit()
        return thread.id or 0, post.id or 0


def say(engine: Any, thread_id: int, body: str, *, author: str,
        reply_to: int | None = None) -> int:
    with open_session(engine) as session:
        thread = session.get(Thread, thread_id)
        assert thread is not None
        post = forum.add_post(session, author=user(session, author), thread=thread, body=body,
                              reply_to_id=reply_to)
        session.commit()
        return post.id or 0


def notes_of(engine: Any, username: str) -> list[Notification]:
    with open_session(engine) as session:
        uid = user(session, username).id
        return list(session.exec(select(Notification).where(Notification.user_id == uid)
                                 .order_by(Notification.id)))


def bell(client: Any) -> str:
    page = client.get("/").text
    return page.split('id="bell-count"')[1].split("<")[0]


def test_opening_a_notification_marks_it_read_and_goes_to_the_post(app, engine,
                                                                    as_user) -> None:
    thread_id, _ = new_thread(engine, "@kr.examiner what did KIPO cite?")
    notify_now(app)
    [note] = notes_of(engine, "kr.examiner")
    kr, _ = as_user("kr.examiner")
    assert bell(kr).endswith(">1")
    opened = kr.get(f"/notifications/{note.id}/open", follow_redirects=False)
    assert opened.status_code == 303
    assert opened.headers["location"] == f"/threads/{thread_id}#post-{note.post_id}"
    assert notes_of(engine, "kr.examiner")[0].read_at is not None
    assert bell(kr).endswith(">0")
    # someone else's notification is not theirs to open
    cn, _ = as_user("cn.examiner")
    assert cn.get(f"/notifications/{note.id}/open", follow_redirects=False).status_code == 404


def test_reading_the_thread_marks_its_notifications_read(app, engine, as_user) -> None:
    thread_id, first = new_thread(engine, "@kr.examiner a question")
    other, _ = new_thread(engine, "@kr.examiner another", title="Other case")
    notify_now(app)
    kr, _ = as_user("kr.examiner")
    assert bell(kr).endswith(">2")
    assert kr.get(f"/threads/{thread_id}").status_code == 200
    unread = [n.thread_id for n in notes_of(engine, "kr.examiner") if n.read_at is None]
    assert unread == [other]
    assert bell(kr).endswith(">1")


def test_notifications_are_grouped_per_thread(app, engine, as_user) -> None:
    thread_id, first = new_thread(engine, "@kr.examiner first")
    say(engine, thread_id, "@kr.examiner second", author="cn.examiner")
    say(engine, thread_id, "@kr.examiner third", author="jp.examiner")
    new_thread(engine, "@kr.examiner elsewhere", title="Other case")
    notify_now(app)
    assert len(notes_of(engine, "kr.examiner")) == 4
    kr, csrf = as_user("kr.examiner")
    page = kr.get("/notifications").text
    assert page.count("/open\">") == 2  # one line per thread
    assert "and 2 more, 3 unread" in page
    # "mark read" on the line marks the whole thread's notifications read
    latest = max(n.id for n in notes_of(engine, "kr.examiner") if n.thread_id == thread_id)
    kr.post("/notifications/read", data={"csrf_token": csrf, "notification_id": str(latest)})
    assert [n.read_at is None for n in notes_of(engine, "kr.examiner")] == [
        False, False, False, True]


def test_no_notification_for_ones_own_post_or_a_bots_answer_to_ones_command(
        app, engine) -> None:
    thread_id, post_id = new_thread(engine, "/dossier JP 2019-041872 @jp.examiner")
    process_pending(BotRunner(engine, lambda: [DossierBot()]), engine)
    notify_now(app)
    with open_session(engine) as session:
        bot_posts = session.exec(select(func.count()).select_from(Thread).where(
            Thread.id == thread_id, Thread.post_count >= 2)).one()
    assert bot_posts == 1, "the dossier bot answered"
    assert notes_of(engine, "jp.examiner") == []
    # a person's reply to the same post still tells its author
    say(engine, thread_id, "Thanks, that helps", author="cn.examiner", reply_to=post_id)
    notify_now(app)
    assert [n.kind for n in notes_of(engine, "jp.examiner")] == ["reply"]


def test_hook_register_notification_channels_delivers_through_a_plugin(app, engine) -> None:
    """A plugin's channel gets the notifications of the users who chose it."""
    from caseforum import hookimpl, subscriptions
    from tests.notify_helpers import send_now

    got: list[tuple[str, str, int]] = []

    class Pager:
        name = "pager"
        label = "Pager"

        def deliver(self, outgoing: Any) -> None:
            got.append((outgoing.user.username, outgoing.notification.text,
                        outgoing.delivery_id))

    class Plugin:
        @hookimpl
        def register_notification_channels(self) -> list[Any]:
            return [Pager()]

    app.state.plugins.add(Plugin(), name="pager")
    try:
        with open_session(engine) as session:
            subscriptions.set_channels(session, user(session, "kr.examiner").id or 0,
                                       "mention", ["inapp", "pager"])
            session.commit()
        new_thread(engine, "@kr.examiner and @cn.examiner, a question")
        notify_now(app)
        assert send_now(app, "pager") == 1
        assert [(u, t) for u, t, _ in got] == [
            ("kr.examiner", "Examiner Sato (JPO) mentioned you in “Argyrodite family”")]
        assert got[0][2] > 0
        assert send_now(app, "pager") == 0
    finally:
        app.state.plugins.remove("pager")


def for_you(client: Any) -> str:
    return client.get("/").text.split('id="for-you"')[1].split("</section>")[0]


def test_the_home_list_is_one_line_per_thread_and_opening_a_line_reads_it(
        app, engine, as_user) -> None:
    thread_id, _ = new_thread(engine, "@kr.examiner first")
    say(engine, thread_id, "@kr.examiner second", author="cn.examiner")
    say(engine, thread_id, "@kr.examiner third", author="jp.examiner")
    new_thread(engine, "@kr.examiner elsewhere", title="Other case")
    notify_now(app)
    kr, _ = as_user("kr.examiner")
    assert bell(kr).endswith(">4")
    home = for_you(kr)
    assert home.count("<li>") == 2 and "and 2 more" in home
    latest = max(n.id for n in notes_of(engine, "kr.examiner") if n.thread_id == thread_id)
    assert f'href="/notifications/{latest}/open"' in home  # not straight to the post
    opened = kr.get(f"/notifications/{latest}/open", follow_redirects=False)
    assert opened.headers["location"].startswith(f"/threads/{thread_id}#post-")
    assert bell(kr).endswith(">1")
    assert for_you(kr).count("<li>") == 1


def ice_step(engine: Any, step: str, exchange_id: str = "7c1f0e2a-ice-exchange") -> None:
    """What the ICE plugin logs when SG takes a step in an exchange with JP."""
    from caseforum.events import emit

    with open_session(engine) as session:
        emit(session, kind=f"ice.exchange.{step}", actor_id=user(session, "sg.examiner").id,
             office_code="SG", subject_type="ice_exchange", subject_id=exchange_id,
             payload={"exchange_id": exchange_id, "recipient_office": "SG",
                      "donor_office": "JP"})
        session.commit()


def test_an_exchanges_alerts_are_one_line_and_marking_it_reads_them_all(
        app, engine, as_user) -> None:
    ice_step(engine, "requested")
    ice_step(engine, "acknowledged")
    notify_now(app)
    assert len(notes_of(engine, "jp.admin")) == 2
    jp, csrf = as_user("jp.admin")
    assert bell(jp).endswith(">2")
    page = jp.get("/notifications").text
    assert page.count("/open\">") == 1 and "and 1 more, 2 unread" in page
    latest = notes_of(engine, "jp.admin")[-1]
    jp.post("/notifications/read", data={"csrf_token": csrf, "notification_id": str(latest.id)})
    assert [n.read_at is not None for n in notes_of(engine, "jp.admin")] == [True, True]
    assert bell(jp).endswith(">0")
    assert 'class="is-unread"' not in jp.get("/notifications").text


def test_reading_a_document_reads_its_notification(app, engine, client, db) -> None:
    """As when the mail's link is followed rather than the bell's."""
    from tests.conftest import login
    from tests.dossier_helpers import pdf_bytes, token_for, upload

    csrf = login(client, "sg.examiner")
    client.post("/subscriptions", data={"csrf_token": csrf, "kind": "family",
                                        "target": "JP 2019-041872"})
    response = upload(client, token_for(db, "jp.admin"), "JP", "2019-041872",
                      pdf_bytes("A new report"), code="SRPT", date="2021-02-03")
    assert response.status_code == 201, response.text
    notify_now(app)
    assert bell(client).endswith(">1")
    assert client.get(f"/documents/{response.json()['id']}").status_code == 200
    assert bell(client).endswith(">0")
    assert [n.read_at is not None for n in notes_of(engine, "sg.examiner")] == [True]
