"""Subscriptions: the API and page, who is told of a new document or post, and
that nobody is told of what they may not see."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from caseforum.app import create_app
from caseforum.db import open_session
from caseforum.forum import service as forum
from caseforum.models import Category, Delivery, Subscription, Thread
from tests.conftest import login
from tests.dossier_helpers import pdf_bytes, token_for, upload
from tests.notify_helpers import (
    RECEIVERS_ON_LOOPBACK,
    Receiver,
    notes_of,
    notify_now,
    send_now,
    start_log_after_history,
    user,
)

JP_APP = "JP 2019-041872"  # demo family 1: JP, US, CN, KR, AU, GB members


@pytest.fixture
def app(settings: Any) -> Any:
    return create_app(settings.model_copy(update={
        "run_consumers": False,
        "plugins": {"webhook_channel": {"allowed_hosts": RECEIVERS_ON_LOOPBACK}}}))


@pytest.fixture(autouse=True)
def fresh_log(engine: Any) -> None:
    start_log_after_history(engine)


@pytest.fixture
def api(client: Any, db: Any) -> Any:
    def make(username: str) -> dict[str, str]:
        return token_for(db, username, "forum", "dossiers:read")
    return make


def follow(client: Any, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/api/v1/subscriptions", json=body, headers=headers)


def jp_upload(client: Any, db: Any, *, code: str = "SRPT", visibility: str = "offices",
              offices: str = "") -> int:
    response = upload(client, token_for(db, "jp.admin"), "JP", "2019-041872",
                      pdf_bytes("A new report"), code=code, visibility=visibility,
                      offices=offices, date="2021-02-03")
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_subscriptions_api_takes_any_number_form_and_says_what_is_wrong(client, api) -> None:
    cn = api("cn.examiner")
    made = follow(client, cn, kind="family", target="jp2019041872", documents="search")
    assert made.status_code == 201, made.text
    sub = made.json()
    assert sub["kind"] == "family" and sub["label"] == "family of JP 2019-041872"
    assert sub["documents"] == "search" and sub["channels"] == ["inapp"]
    again = follow(client, cn, kind="family", target="JP 2019-041872", level="tracking")
    assert again.json()["id"] == sub["id"] and again.json()["level"] == "tracking"
    assert follow(client, cn, kind="office", target="kr").json()["target"] == "KR"
    assert [s["kind"] for s in client.get("/api/v1/subscriptions", headers=cn).json()] == [
        "family", "office"]

    bad = follow(client, cn, kind="galaxy", target="KR")
    assert bad.status_code == 422 and "kind" in bad.json()["detail"]
    bad = follow(client, cn, kind="application", target="not a number at all")
    assert bad.status_code == 422 and "target" in bad.json()["detail"]
    bad = follow(client, cn, kind="office", target="KR", channels=["email"])
    assert bad.status_code == 422 and "not available" in bad.json()["detail"]  # no mail server
    assert follow(client, cn, kind="thread", target="999999").status_code == 404

    # someone else's subscription is "not found", like a missing one
    kr = api("kr.examiner")
    assert client.delete(f"/api/v1/subscriptions/{sub['id']}", headers=kr).status_code == 404
    assert client.delete(f"/api/v1/subscriptions/{sub['id']}", headers=cn).status_code == 204
    assert len(client.get("/api/v1/subscriptions", headers=cn).json()) == 1


def test_a_family_follower_is_told_of_a_new_document_once(app, client, db, api) -> None:
    follow(client, api("cn.examiner"), kind="family", target="CN 202080019375.4")
    follow(client, api("kr.examiner"), kind="application", target=JP_APP)
    follow(client, api("jp.examiner"), kind="family", target=JP_APP)  # the uploader's office
    doc_id = jp_upload(client, db)
    notify_now(app)
    notify_now(app)  # reading the log again tells nobody twice
    for name in ("cn.examiner", "kr.examiner"):
        [note] = notes_of(app.state.engine, name)
        assert note.text == "New SRPT in JP 2019-041872" and note.link == f"/documents/{doc_id}"
        assert note.read_at is None  # in the bell
    assert len(notes_of(app.state.engine, "jp.examiner")) == 1  # not the uploader (jp.admin)


def test_a_document_restricted_to_cn_tells_sg_nothing(app, client, db, api) -> None:
    follow(client, api("sg.examiner"), kind="family", target=JP_APP)
    follow(client, api("cn.examiner"), kind="family", target=JP_APP)
    jp_upload(client, db, visibility="restricted", offices="CN")
    notify_now(app)
    assert notes_of(app.state.engine, "sg.examiner") == []
    assert len(notes_of(app.state.engine, "cn.examiner")) == 1


def test_office_subscriptions_filter_by_document_group_and_direction(app, client, db,
                                                                     api) -> None:
    follow(client, api("cn.examiner"), kind="office", target="JP", documents="examination")
    follow(client, api("kr.examiner"), kind="office", target="JP", documents="search")
    # KR has a member in the family: JP's document is incoming for KR
    follow(client, api("gb.examiner"), kind="office", target="KR", direction="incoming")
    follow(client, api("au.examiner"), kind="office", target="KR", direction="outgoing")
    jp_upload(client, db, code="SRPT")
    notify_now(app)
    engine = app.state.engine
    assert notes_of(engine, "cn.examiner") == []
    assert len(notes_of(engine, "kr.examiner")) == 1
    assert len(notes_of(engine, "gb.examiner")) == 1
    assert notes_of(engine, "au.examiner") == []


def test_a_muted_application_silences_its_watched_office(app, client, db, api) -> None:
    kr = api("kr.examiner")
    follow(client, kr, kind="office", target="JP")
    follow(client, kr, kind="application", target=JP_APP, level="muted")
    jp_upload(client, db)
    notify_now(app)
    assert notes_of(app.state.engine, "kr.examiner") == []


def test_thread_and_category_followers_hear_of_new_posts_unless_muted(app, client, db,
                                                                     api) -> None:
    with open_session(app.state.engine) as session:
        category = forum.create_category(session, name="Batteries")
        thread, _ = forum.create_thread(session, author=user(session, "jp.examiner"),
                                        category=category, title="Argyrodite", body="Hello")
        session.commit()
        category_id, thread_id = category.id, thread.id
    notify_now(app)  # the first post was before anyone followed
    follow(client, api("cn.examiner"), kind="category", target=str(category_id))
    follow(client, api("kr.examiner"), kind="category", target=str(category_id))
    follow(client, api("kr.examiner"), kind="thread", target=str(thread_id), level="muted")
    follow(client, api("gb.examiner"), kind="thread", target=str(thread_id))
    with open_session(app.state.engine) as session:
        forum.add_post(session, author=user(session, "gb.examiner"),
                       thread=session.get(Thread, thread_id), body="Any X documents?")
        session.commit()
    notify_now(app)
    engine = app.state.engine
    assert [n.text for n in notes_of(engine, "cn.examiner")] == [
        "Examiner Hughes (UKIPO) wrote in “Argyrodite”"]
    assert notes_of(engine, "kr.examiner") == []  # muted
    assert notes_of(engine, "gb.examiner") == []  # their own post


def test_delivery_checks_permission_again_at_send_time(app, client, db) -> None:
    """A category narrowed between the post and the send: the webhook is not called."""
    receiver = Receiver().start()
    try:
        with open_session(app.state.engine) as session:
            category = forum.create_category(session, name="Open for now")
            thread, _ = forum.create_thread(session, author=user(session, "jp.examiner"),
                                            category=category, title="Soon closed", body="Hi")
            session.commit()
            category_id, thread_id = category.id, thread.id
        notify_now(app)
        csrf = login(client, "kr.examiner")
        shown = client.post("/settings/webhooks", data={"csrf_token": csrf, "url": receiver.url})
        receiver.secret = shown.text.split('id="webhook-secret">')[1].split("<")[0]
        made = client.post("/subscriptions", data={
            "csrf_token": csrf, "kind": "thread", "target": str(thread_id),
            "channels": ["inapp", "webhook"]}, follow_redirects=False)
        assert made.status_code == 303, made.text
        for body, narrow in (("First news", False), ("Second news", True)):
            with open_session(app.state.engine) as session:
                forum.add_post(session, author=user(session, "jp.examiner"),
                               thread=session.get(Thread, thread_id), body=body)
                session.commit()
            notify_now(app)
            if narrow:
                with open_session(app.state.engine) as session:
                    category = session.get(Category, category_id)
                    category.offices = ["JP"]  # narrowed: KR may no longer read it
                    session.add(category)
                    session.commit()
            send_now(app, "webhook")
        assert [r["notification"]["post_id"] for r in receiver.received] == [
            notes_of(app.state.engine, "kr.examiner")[0].post_id]
        assert receiver.bad_signatures == 0
        states = [d.state for d in db.exec(select(Delivery).order_by(Delivery.id))]
        assert states == ["sent", "dropped"]
    finally:
        receiver.stop()


def test_the_pages_list_and_add_subscriptions(client, db) -> None:
    csrf = login(client, "cn.examiner")
    page = client.post("/subscriptions", data={"csrf_token": csrf, "kind": "office",
                                               "target": "ZZ"})
    assert page.status_code == 404 and "no office" in page.text
    added = client.post("/subscriptions", data={"csrf_token": csrf, "kind": "application",
                                                "target": JP_APP, "documents": "search"},
                        follow_redirects=False)
    assert added.status_code == 303
    listed = client.get("/subscriptions").text
    assert "application: JP 2019-041872" in listed
    with open_session(db.get_bind()) as session:
        [sub] = session.exec(select(Subscription)).all()
    client.post(f"/subscriptions/{sub.id}/delete", data={"csrf_token": csrf})
    assert "You follow nothing yet." in client.get("/subscriptions").text
    assert db.exec(select(Delivery)).all() == []


def test_follow_a_family_from_the_dossier_page(client, db) -> None:
    csrf = login(client, "cn.examiner")
    page = client.get("/dossiers/JP/2019-041872").text
    link = page.split('">Follow its family</a>')[0].rsplit('href="', 1)[1].replace("&amp;", "&")
    form = client.get(link).text
    assert '<option value="family" selected>family</option>' in form
    assert 'value="JP 2019-041872"' in form
    client.post("/subscriptions", data={"csrf_token": csrf, "kind": "family",
                                        "target": "JP 2019-041872"})
    assert "family: family of JP 2019-041872" in client.get("/subscriptions").text


def test_an_atom_feed_per_subscription_needs_no_log_in(app, client, db) -> None:
    csrf = login(client, "kr.examiner")
    client.post("/subscriptions", data={"csrf_token": csrf, "kind": "family",
                                        "target": JP_APP})
    client.post("/subscriptions", data={"csrf_token": csrf, "kind": "office", "target": "US"})
    doc_id = jp_upload(client, db)
    notify_now(app)
    page = client.get("/subscriptions").text
    family_row = page.split("family: family of JP 2019-041872")[1]
    feed = family_row.split('href="')[1].split('"')[0]
    anonymous = type(client)(app)
    atom = anonymous.get(feed)
    assert atom.status_code == 200 and atom.headers["content-type"].startswith(
        "application/atom+xml")
    assert "<title>New SRPT in JP 2019-041872</title>" in atom.text
    assert f"/documents/{doc_id}" in atom.text
    office_feed = page.split("office: US")[1].split('href="')[1].split('"')[0]
    assert "<entry>" not in anonymous.get(office_feed).text
    assert anonymous.get(feed.replace(".atom", "x.atom")).status_code == 404


def test_office_admins_set_defaults_and_a_users_own_choice_wins(app, client, db, api) -> None:
    jp_admin = token_for(db, "jp.admin", "dossiers:read", "admin")
    made = follow(client, jp_admin, kind="family", target="KR 10-2021-7028846",
                  for_office="JP")
    assert made.status_code == 201, made.text
    assert made.json()["for_office"] == "JP"
    refused = follow(client, api("kr.examiner"), kind="family", target=JP_APP, for_office="JP")
    assert refused.status_code == 403 and "administrators" in refused.json()["detail"]
    follow(client, api("jp.examiner"), kind="application", target=JP_APP, level="muted")
    jp_upload(client, db)
    notify_now(app)
    assert notes_of(app.state.engine, "jp.examiner") == []  # muted it for themselves
    assert notes_of(app.state.engine, "jp.admin") == []  # the uploader
    # another JP user, with no subscription of their own, follows by the office default
    from caseforum import accounts

    with open_session(app.state.engine) as session:
        accounts.create_user(session, username="jp.reader", office_code="JP",
                             role="examiner", password=None)
        session.commit()
    jp_upload(client, db)
    notify_now(app)
    assert [n.text for n in notes_of(app.state.engine, "jp.reader")] == [
        "New SRPT in JP 2019-041872"]
    assert notes_of(app.state.engine, "kr.examiner") == []


def test_a_document_notification_disappears_when_the_document_is_restricted(
        app, client, db) -> None:
    from caseforum.models import Document

    csrf = login(client, "sg.examiner")
    client.post("/subscriptions", data={"csrf_token": csrf, "kind": "family",
                                        "target": JP_APP})
    doc_id = jp_upload(client, db)
    notify_now(app)
    assert "New SRPT in JP 2019-041872" in client.get("/notifications").text
    document = db.get(Document, doc_id)
    document.visibility = "restricted"  # JP narrows it (to nobody else)
    db.add(document)
    db.commit()
    assert "New SRPT in JP 2019-041872" not in client.get("/notifications").text
