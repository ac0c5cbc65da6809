"""The e-mail channel against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import select

from caseforum.app import create_app
from caseforum.config import MailSettings
from caseforum.db import open_session
from caseforum.models import Delivery, Subscription, utcnow
from caseforum.plugins.email_channel import digest_due
from tests.conftest import login
from tests.dossier_helpers import pdf_bytes, token_for, upload
from tests.notify_helpers import (
    Inbox,
    free_port,
    notify_now,
    send_now,
    smtp_server,
    start_log_after_history,
    text_of,
    user,
)

JP_APP = "JP 2019-041872"


@pytest.fixture
def mail() -> Iterator[tuple[Inbox, int]]:
    controller, inbox, port = smtp_server()
    yield inbox, port
    controller.stop()


@pytest.fixture
def app(settings: Any, mail: tuple[Inbox, int]) -> Any:
    return create_app(settings.model_copy(update={
        "run_consumers": False, "base_url": "http://caseforum.test",
        "mail": MailSettings(host="127.0.0.1", port=mail[1], from_address="cf@office.test")}))


@pytest.fixture(autouse=True)
def fresh_log(engine: Any) -> None:
    start_log_after_history(engine)


def set_email(db: Any, username: str, address: str, digest: str = "immediate") -> None:
    person = user(db, username)
    person.email, person.email_digest = address, digest
    db.add(person)
    db.commit()


def follow_family(client: Any, db: Any, username: str) -> None:
    made = client.post("/api/v1/subscriptions", headers=token_for(db, username, "dossiers:read"),
                       json={"kind": "family", "target": JP_APP, "channels": ["inapp", "email"]})
    assert made.status_code == 201, made.text


def jp_upload(client: Any, db: Any, *, visibility: str = "offices", offices: str = "",
              code: str = "SRPT") -> int:
    response = upload(client, token_for(db, "jp.admin"), "JP", "2019-041872",
                      pdf_bytes("A new report"), code=code, visibility=visibility,
                      offices=offices, date="2021-02-03")
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_a_family_follower_gets_one_mail_naming_the_new_document(app, client, db,
                                                                 mail) -> None:
    inbox, _ = mail
    csrf = login(client, "cn.examiner")  # the address comes from the settings page
    saved = client.post("/settings", data={"csrf_token": csrf, "email": "li@cnipa.test",
                                           "email_digest": "immediate"},
                        follow_redirects=False)
    assert saved.status_code == 303
    assert 'value="li@cnipa.test"' in client.get("/settings").text
    follow_family(client, db, "cn.examiner")
    doc_id = jp_upload(client, db)
    notify_now(app)
    assert send_now(app, "email") == 1
    assert send_now(app, "email") == 0  # never twice
    [message] = inbox.to("li@cnipa.test")
    assert message["Subject"] == "[CaseForum] New SRPT in JP 2019-041872"
    assert message["From"] == "cf@office.test"
    assert f"http://caseforum.test/documents/{doc_id}" in text_of(message)
    assert f'href="http://caseforum.test/documents/{doc_id}"' in text_of(message, "html")
    assert message["List-Unsubscribe"].startswith("<http://caseforum.test/api/v1/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [state] = db.exec(select(Delivery.state)).all()
    assert state == "sent"


def test_a_document_restricted_to_cn_mails_nothing_to_sg(app, client, db, mail) -> None:
    inbox, _ = mail
    set_email(db, "sg.examiner", "tan@ipos.test")
    set_email(db, "cn.examiner", "li@cnipa.test")
    follow_family(client, db, "sg.examiner")
    follow_family(client, db, "cn.examiner")
    jp_upload(client, db, visibility="restricted", offices="CN")
    notify_now(app)
    send_now(app, "email")
    assert inbox.to("tan@ipos.test") == []
    assert len(inbox.to("li@cnipa.test")) == 1


def test_a_daily_digest_gathers_the_days_events_into_one_mail(app, client, db, mail) -> None:
    inbox, _ = mail
    set_email(db, "kr.examiner", "kim@kipo.test", digest="daily")
    follow_family(client, db, "kr.examiner")
    for code in ("SRPT", "CTNF", "NOA"):
        jp_upload(client, db, code=code)
    notify_now(app)
    assert send_now(app, "email") == 0  # held until the digest is due
    with open_session(app.state.engine) as session:  # ... and now the morning has come
        session.exec(update(Delivery).values(due_at=utcnow() - timedelta(minutes=1)))
        session.commit()
    send_now(app, "email")
    [message] = inbox.to("kim@kipo.test")
    assert message["Subject"] == "[CaseForum] 3 new notifications"
    body = text_of(message)
    assert all(f"New {code} in JP 2019-041872" in body for code in ("SRPT", "CTNF", "NOA"))
    assert {d.state for d in db.exec(select(Delivery))} == {"sent"}
    now = utcnow().replace(hour=12)
    assert digest_due("daily", now) == (now + timedelta(days=1)).replace(
        hour=6, minute=0, second=0, microsecond=0)
    assert digest_due("weekly", now).weekday() == 0  # Mondays


def test_the_unsubscribe_link_works_without_logging_in(app, client, db, mail) -> None:
    inbox, _ = mail
    set_email(db, "cn.examiner", "li@cnipa.test")
    follow_family(client, db, "cn.examiner")
    jp_upload(client, db)
    notify_now(app)
    send_now(app, "email")
    [message] = inbox.to("li@cnipa.test")
    link = text_of(message).split("Stop these e-mails: ")[1].split()[0]
    path = link.removeprefix("http://caseforum.test")
    page = client.get(path)  # not logged in
    assert page.status_code == 200 and "Stop all e-mail" in page.text
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    done = client.post(path, data={"csrf_token": csrf})
    assert "no more e-mail" in done.text
    [sub] = db.exec(select(Subscription)).all()
    db.refresh(sub)
    assert sub.channel_list == ["inapp"]
    assert client.get(path[:-3] + "xyz").status_code == 404  # a forged token


def test_one_click_unsubscribe_from_the_mail_header(app, client, db, mail) -> None:
    inbox, _ = mail
    set_email(db, "cn.examiner", "li@cnipa.test")
    follow_family(client, db, "cn.examiner")
    jp_upload(client, db)
    notify_now(app)
    send_now(app, "email")
    [message] = inbox.to("li@cnipa.test")
    url = message["List-Unsubscribe"].strip("<>").removeprefix("http://caseforum.test")
    answer = client.post(url, content=b"List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200, answer.text
    jp_upload(client, db)
    notify_now(app)
    send_now(app, "email")
    assert len(inbox.to("li@cnipa.test")) == 1  # nothing more


def test_mail_settings_come_from_the_environment(monkeypatch, tmp_path) -> None:
    from caseforum.config import SettingsError, load_settings

    monkeypatch.setenv("CASEFORUM_MAIL__HOST", "smtp.office.test")
    monkeypatch.setenv("CASEFORUM_MAIL__PORT", "587")
    monkeypatch.setenv("CASEFORUM_MAIL__STARTTLS", "true")
    settings = load_settings(data_dir=tmp_path)
    assert (settings.mail.host, settings.mail.port, settings.mail.starttls) == (
        "smtp.office.test", 587, True)
    monkeypatch.setenv("CASEFORUM_MAIL__FROM_ADDRESS", "nobody")
    with pytest.raises(SettingsError, match="CASEFORUM_MAIL__FROM_ADDRESS"):
        load_settings(data_dir=tmp_path)


def test_a_restarted_mail_server_is_reconnected_to(settings, db) -> None:
    """Mails reuse the sending thread's SMTP connection; when the server restarted
    meanwhile (a second ago: the kept connection is used without asking it first),
    the mail goes once more on a new connection and nothing is lost."""
    from aiosmtpd.controller import Controller
    from fastapi.testclient import TestClient

    port = free_port()
    app = create_app(settings.model_copy(update={
        "run_consumers": False, "mail": MailSettings(host="127.0.0.1", port=port)}))
    set_email(db, "cn.examiner", "li@cnipa.test")
    with TestClient(app) as client:
        follow_family(client, db, "cn.examiner")
        received = []
        for _ in range(2):  # the same port, a new server process each round
            inbox = Inbox()
            controller = Controller(inbox, hostname="127.0.0.1", port=port)
            controller.start()
            try:
                docs = [jp_upload(client, db), jp_upload(client, db)]
                notify_now(app)
                send_now(app, "email")
            finally:
                controller.stop()
            [message] = inbox.to("li@cnipa.test")  # both documents in one mail
            received.append([f"/documents/{d}" in text_of(message) for d in docs])
    assert received == [[True, True], [True, True]]
    assert {d.state for d in db.exec(select(Delivery))} == {"sent"}


def test_a_burst_of_documents_is_one_mail_per_follower_listing_each_once(
        app, client, db, mail) -> None:
    """Immediate mail sends what is due when it sends: five documents uploaded
    before the mail goes are one mail naming all five, and nothing comes twice."""
    inbox, _ = mail
    set_email(db, "cn.examiner", "li@cnipa.test")
    follow_family(client, db, "cn.examiner")
    docs = [jp_upload(client, db) for _ in range(5)]
    notify_now(app)
    assert send_now(app, "email") == 1  # one claimed; it took the other four along
    assert send_now(app, "email") == 0
    [message] = inbox.to("li@cnipa.test")
    assert message["Subject"] == "[CaseForum] 5 new notifications"
    assert re.findall(r"/documents/(\d+)", text_of(message)) == [str(d) for d in docs]
    assert {d.state for d in db.exec(select(Delivery))} == {"sent"}

    later = jp_upload(client, db)  # after the mail went: a mail of its own
    notify_now(app)
    assert send_now(app, "email") == 1
    assert f"/documents/{later}" in text_of(inbox.to("li@cnipa.test")[-1])
    assert len(inbox.to("li@cnipa.test")) == 2


def test_a_mention_by_mail_keeps_its_quotes_and_accents(app, client, db, mail) -> None:
    """Subjects and bodies that are not ASCII arrive as written (RFC 2047 subject,
    UTF-8 parts)."""
    from email.header import decode_header, make_header

    from caseforum.forum import service as forum
    from caseforum.models import Category
    from caseforum.subscriptions import set_channels

    inbox, _ = mail
    set_email(db, "kr.examiner", "kim@kipo.test")
    kim = user(db, "kr.examiner")
    kim.display_name = "Examiner Kím"
    db.add(kim)
    set_channels(db, kim.id or 0, "mention", ["inapp", "email"])
    category = db.exec(select(Category)).first() or forum.create_category(db, name="Cases")
    forum.create_thread(db, author=user(db, "jp.examiner"), category=category,
                        title="Argyrodite family", body="@kr.examiner your view?")
    db.commit()
    notify_now(app)
    assert send_now(app, "email") == 1
    [message] = inbox.to("kim@kipo.test")
    assert str(make_header(decode_header(message["Subject"]))) == (
        "[CaseForum] Examiner Sato (JPO) mentioned you in “Argyrodite family”")
    assert "Hello Examiner Kím," in text_of(message)
    assert "<p>Hello Examiner Kím,</p>" in text_of(message, "html")
    assert not message.defects


def test_mail_is_in_the_recipient_s_language(app, client, db, mail) -> None:
    """Subject and body in the language the recipient chose (settings or switcher);
    who chose none gets the instance default, English here."""
    from email.header import decode_header, make_header

    inbox, _ = mail
    csrf = login(client, "cn.examiner")
    client.post("/settings", data={"csrf_token": csrf, "email": "li@cnipa.test",
                                   "email_digest": "immediate"})
    client.post("/settings/locale", data={"csrf_token": csrf, "language": "zh-Hans"})
    follow_family(client, db, "cn.examiner")
    set_email(db, "kr.examiner", "kim@kipo.test")
    follow_family(client, db, "kr.examiner")
    jp_upload(client, db)
    jp_upload(client, db, code="CTNF")
    notify_now(app)
    send_now(app, "email")
    [chinese] = inbox.to("li@cnipa.test")
    subject = str(make_header(decode_header(chinese["Subject"])))
    assert subject == "[CaseForum] 2 条新通知"
    body = text_of(chinese)
    assert body.startswith("Examiner Li (CNIPA)，您好：")
    assert "JP 2019-041872 有新的 SRPT" in body and "JP 2019-041872 有新的 CTNF" in body
    assert "停止接收这些邮件：http://caseforum.test/unsubscribe/" in body
    html = text_of(chinese, "html")
    assert '<html lang="zh-Hans">' in html and "停止接收这些邮件</a>" in html
    [english] = inbox.to("kim@kipo.test")
    assert english["Subject"] == "[CaseForum] 2 new notifications"
    assert "Stop these e-mails: http://caseforum.test/unsubscribe/" in text_of(english)


def test_a_line_break_in_a_notification_never_reaches_the_mail_header(app, db, mail) -> None:
    """A notification's text can carry a peer's words (an ICE refusal code) or a
    user's; a CR LF in it must not start a header of its own (a Bcc, say)."""
    from caseforum.models import Notification

    inbox, _ = mail
    set_email(db, "kr.examiner", "kim@kipo.test")
    kim = user(db, "kr.examiner")
    note = Notification(user_id=kim.id or 0, event_id=0, kind="ice",
                        text="ICE: refused (x)\r\nBcc: thief@elsewhere.test\r\nX-Evil: 1",
                        link="/ice")
    db.add(note)
    db.flush()
    db.add(Delivery(notification_id=note.id or 0, user_id=kim.id or 0, channel="email"))
    db.commit()
    assert send_now(app, "email") == 1
    [message] = inbox.to("kim@kipo.test")
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert message["Subject"] == (
        "[CaseForum] ICE: refused (x) Bcc: thief@elsewhere.test X-Evil: 1")
    assert not message.defects
