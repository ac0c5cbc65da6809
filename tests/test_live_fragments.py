"""Live fragments are rendered once per distinct output, yet each viewer gets
exactly what a render for that viewer alone would give (no card leaks to a viewer
who may not see it, none is lost by one who may)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from caseforum.authz import Viewer
from caseforum.forum.live import LiveEvent
from caseforum.models import Event, Office, User
from tests.dossier_helpers import dossier_json, pdf_bytes, token_for, upload
from tests.forum_helpers import make_category, reply, start_thread
from tests.sql_helpers import counted

WATCHERS = ("jp.examiner", "kr.examiner", "cn.examiner", "au.examiner", "gb.examiner",
            "sg.examiner", "us.admin", "admin")


@pytest.fixture
def restricted_case(client, db) -> None:
    jp = token_for(db, "jp.examiner")
    client.post("/api/v1/dossiers", headers=jp, json=dossier_json(
        "JP", "2017-187096", publication_number="JP 2019-054321 A", filing_date="2017-09-28",
        title="Secretive fin arrangement"))
    upload(client, jp, "JP", "2017187096", pdf_bytes("report"), code="SRPT",
           date="2018-05-01", visibility="offices")
    upload(client, jp, "JP", "2017187096", pdf_bytes("notes"), code="EXRP",
           date="2019-01-15", visibility="restricted", offices="KR")


def viewers(db: Any) -> list[Viewer]:
    out = []
    for name in WATCHERS:
        user = db.exec(select(User).where(User.username == name)).one()
        out.append(Viewer.of(user, db.get(Office, user.office_code)))
    kr = db.exec(select(User).where(User.username == "kr.examiner")).one()
    # a script's token that may read the forum but not dossiers: no cards
    out.append(Viewer.of(kr, db.get(Office, "KR"), frozenset({"forum"})))
    return out


def test_grouped_renders_equal_each_viewers_own_render(app, as_user, db,
                                                       restricted_case) -> None:
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, make_category(db), "Cards live",
                          "Compare JP 2017-187096 with our file.")
    event = db.exec(select(Event).where(Event.kind == "post.created")
                    .order_by(Event.id.desc())).first()  # type: ignore[union-attr]
    assert event is not None and event.payload["thread_id"] == thread
    hub, topic, everyone = app.state.hub, f"thread:{thread}", viewers(db)

    shared = LiveEvent(db, hub.env, hub.host, event)
    together = shared.fragments({topic: set(everyone)})
    alone = {}
    for viewer in everyone:
        single = LiveEvent(db, hub.env, hub.host, event)
        alone[viewer] = single.fragments({topic: {viewer}})[(topic, viewer)]
        assert together[(topic, viewer)] == alone[viewer], viewer.username

    # nine watchers, eight distinct profiles; what differs: KR sees the restricted
    # report, other accessing offices do not, the forum-only token sees no card,
    # and moderators get a Hide button
    assert shared.renders == len(set(alone.values())) < len({v.profile for v in everyone})
    by_name = {(v.username, v.scopes): html for v, html in alone.items()}
    kr_full, kr_forum = by_name[("kr.examiner", None)], by_name[("kr.examiner",
                                                                 frozenset({"forum"}))]
    assert "<code>EXRP</code>" in kr_full
    assert "dossier-card" not in kr_forum
    assert "dossier-card" in by_name[("cn.examiner", None)]
    assert "<code>EXRP</code>" not in by_name[("cn.examiner", None)]
    assert by_name[("cn.examiner", None)] == by_name[("sg.examiner", None)]
    assert "Hide" in by_name[("admin", None)] and "Hide" not in by_name[("cn.examiner", None)]


def test_a_dossier_named_again_is_a_one_line_reference_rendered_per_sight_of_it(
        app, as_user, db, restricted_case) -> None:
    """A later post naming a dossier the thread has carded shows a one-line reference:
    what the viewer may see of its documents no longer changes the fragment, so the
    offices that see the dossier share one render, and each viewer still gets what
    their own render gives."""
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, make_category(db), "Cards again",
                          "Compare JP 2017-187096 with our file.")
    reply(jp, csrf, thread, "Claim 3 of JP 2017-187096 is narrower.")
    event = db.exec(select(Event).where(Event.kind == "post.created")
                    .order_by(Event.id.desc())).first()  # type: ignore[union-attr]
    hub, topic, everyone = app.state.hub, f"thread:{thread}", viewers(db)

    shared = LiveEvent(db, hub.env, hub.host, event)
    together = shared.fragments({topic: set(everyone)})
    for viewer in everyone:
        single = LiveEvent(db, hub.env, hub.host, event)
        assert together[(topic, viewer)] == single.fragments({topic: {viewer}})[
            (topic, viewer)], viewer.username
    by_name = {(v.username, v.scopes): together[(topic, v)] for v in everyone}
    kr, cn = by_name[("kr.examiner", None)], by_name[("cn.examiner", None)]
    assert "dossier-card" not in kr and "/dossiers/JP/2017187096" in kr
    # KR alone may read the restricted report, but the reference does not show it
    assert kr == cn
    # who sees the dossier, who does not (the forum-only token), and moderators
    assert shared.renders == len(set(together.values())) == 3


def test_a_post_without_references_is_rendered_once_per_set_of_rights(app, as_user, db) -> None:
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, make_category(db), "Plain", "No numbers here.")
    event = db.exec(select(Event).where(Event.kind == "post.created")
                    .order_by(Event.id.desc())).first()  # type: ignore[union-attr]
    hub = app.state.hub
    live = LiveEvent(db, hub.env, hub.host, event)
    out = live.fragments({f"thread:{thread}": set(viewers(db))})
    # examiners (and the token) may react and reply; admins may also hide posts
    assert live.renders == 2
    assert len(out) == len(WATCHERS) + 1


def test_a_websocket_handshake_costs_two_queries(app, db) -> None:
    """500 browsers reconnecting after a restart must not cost 500 x 9 queries."""
    from types import SimpleNamespace

    from sqlalchemy import event as sa_event

    from caseforum import accounts
    from caseforum.web.deps import cookie_signer
    from caseforum.web.ws import _credential

    kr = db.exec(select(User).where(User.username == "kr.examiner")).one()
    secret = accounts.start_session(db, user=kr, days=1)
    db.commit()
    thread = start_thread_as(db, "jp.examiner", "Counted")
    fake = SimpleNamespace(app=app, headers={}, cookies={})
    fake.cookies["cf_session"] = cookie_signer(fake).dumps(secret)  # type: ignore[arg-type]
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa_event.listen(app.state.engine, "before_cursor_execute", count)
    try:
        credential, viewer, allowed, _ = _credential(fake, thread)  # type: ignore[arg-type]
    finally:
        sa_event.remove(app.state.engine, "before_cursor_execute", count)
    assert viewer.username == "kr.examiner" and allowed and credential.kind == "session"
    assert len(statements) == 2, statements


def start_thread_as(db: Any, username: str, title: str) -> int:
    from caseforum.forum import service
    from caseforum.models import Category

    author = db.exec(select(User).where(User.username == username)).one()
    category = db.get(Category, make_category(db, title))
    thread, _ = service.create_thread(db, author=author, category=category, title=title,
                                      body="x")
    db.commit()
    return thread.id


def test_forum_rows_are_rendered_once_per_unread_count_for_those_who_may_read(
        app, as_user, db) -> None:
    """A thread's live row carries each watcher's own unread count: one render per
    distinct count, each equal to a render for that watcher alone, and nothing for a
    watcher who may not read the thread."""
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, make_category(db, "JP and KR", ["JP", "KR"]), "Pair",
                          "Opening.")
    kr, kr_csrf = as_user("kr.examiner")
    kr.get(f"/threads/{thread}")  # KR has read the opening post
    reply(jp, csrf, thread, "One more.")
    event = db.exec(select(Event).where(Event.kind == "post.created")
                    .order_by(Event.id.desc())).first()  # type: ignore[union-attr]
    hub, everyone = app.state.hub, viewers(db)
    shared = LiveEvent(db, hub.env, hub.host, event)
    together = shared.fragments({"forum": set(everyone)})
    by_name = {(v.username, v.scopes): together.get(("forum", v)) for v in everyone}
    assert by_name[("cn.examiner", None)] is None  # CN may not read the category
    assert by_name[("au.examiner", None)] is None
    assert 'data-unread="0"' in by_name[("jp.examiner", None)]  # the author's own post
    assert 'data-unread="1"' in by_name[("kr.examiner", None)]
    assert 'data-unread="2"' in by_name[("admin", None)]  # read nothing yet
    for viewer in everyone:
        alone = LiveEvent(db, hub.env, hub.host, event).fragments({"forum": {viewer}})
        assert alone.get(("forum", viewer)) == together.get(("forum", viewer)), viewer.username
    assert shared.renders == len({h for h in together.values()})


def test_the_users_channel_carries_the_bell_and_the_home_list(app, as_user, db) -> None:
    kr_client, kr_csrf = as_user("kr.examiner")
    kr_client.post("/notifications/read", data={"csrf_token": kr_csrf})  # start from zero
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, make_category(db), "Mentions", "Opening.")
    reply(jp, csrf, thread, "@kr.examiner what do you think?")
    process_pending_events(app)
    kr = db.exec(select(User).where(User.username == "kr.examiner")).one()
    event = db.exec(select(Event).where(Event.kind == "notification.created")
                    .order_by(Event.id.desc())).first()  # type: ignore[union-attr]
    assert event is not None and event.payload["user_id"] == kr.id
    hub, topic = app.state.hub, f"user:{kr.id}"
    watcher = Viewer.of(kr, db.get(Office, "KR"))
    with counted(db.get_bind()) as statements:
        html = LiveEvent(db, hub.env, hub.host, event).fragments({topic: {watcher}})[
            (topic, watcher)]
    # the count, the newest unread, and the rules' look at their threads (two)
    assert len(statements) <= 4, statements
    assert 'id="bell"' in html and 'class="bell-count on">1<' in html
    notes = html[html.index("data-live-notes"):]
    # opened through /notifications/N/open, which marks it read on the way to the post
    note = event.payload["notification_id"]
    assert "mentioned you in “Mentions”" in notes and f"/notifications/{note}/open" in notes

    kr_client.post("/notifications/read", data={"csrf_token": kr_csrf})
    read = db.exec(select(Event).where(Event.kind == "notification.read")
                   .order_by(Event.id.desc())).first()  # type: ignore[union-attr]
    html = LiveEvent(db, hub.env, hub.host, read).fragments({topic: {watcher}})[(topic, watcher)]
    assert 'class="bell-count">0<' in html and "No new mentions or replies." in html


def process_pending_events(app: Any) -> None:
    """Let the app's consumers (the notifier among them) handle what is in the log."""
    from caseforum.events import process_pending

    for consumer in app.state.consumers.consumers:
        process_pending(consumer, app.state.engine)
