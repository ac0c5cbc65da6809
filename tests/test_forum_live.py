"""Live updates with real websocket clients against a real server on loopback."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from caseforum.app import create_app
from tests.conftest import CSRF_RE, LiveServer
from tests.forum_helpers import make_category

EVENT_RE = re.compile(r'data-event-id="(\d+)"')


class Browserless:
    """A logged-in HTTP session against the live server, as a script would hold."""

    def __init__(self, base: str, username: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, follow_redirects=False, timeout=10)
        form = self.http.get("/login")
        token = CSRF_RE.search(form.text).group(1)
        done = self.http.post("/login", data={"username": username, "password": "caseforum-demo",
                                              "csrf_token": token})
        assert done.status_code == 303
        self.csrf = CSRF_RE.search(self.http.get("/").text).group(1)

    @property
    def cookie(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())

    def socket(self, path: str, origin: str | None = "self") -> Any:
        headers = {"Cookie": self.cookie}
        if origin:
            headers["Origin"] = self.base if origin == "self" else origin
        return connect(self.base.replace("http", "ws") + path, additional_headers=headers,
                       open_timeout=5)

    def post(self, thread: int, body: str) -> None:
        r = self.http.post(f"/threads/{thread}/posts", data={"csrf_token": self.csrf,
                                                             "body": body})
        assert r.status_code == 303, r.text

    def start(self, category: int, title: str, body: str) -> int:
        r = self.http.post(f"/forum/c/{category}/threads",
                           data={"csrf_token": self.csrf, "title": title, "body": body})
        return int(r.headers["location"].rsplit("/", 1)[1])


def receive_posts(ws: Any, count: int, timeout: float = 10) -> list[str]:
    """Fragments that add or change posts (bell updates are skipped)."""
    got: list[str] = []
    while len(got) < count:
        message = ws.recv(timeout=timeout)
        if 'id="post-' in message:
            got.append(message)
    return got


@pytest.fixture
def server(app) -> Any:
    s = LiveServer(app).start()
    yield s
    s.stop()


def test_two_watchers_see_a_third_users_post_live(server, db) -> None:
    cat = make_category(db)
    jp = Browserless(server.url, "jp.examiner")
    thread = jp.start(cat, "Live one", "opening")
    kr, cn = Browserless(server.url, "kr.examiner"), Browserless(server.url, "cn.examiner")
    with kr.socket(f"/ws/threads/{thread}") as a, cn.socket(f"/ws/threads/{thread}?after=0") as b:
        # b asked for everything since 0: it first gets the opening post
        assert "opening" in receive_posts(b, 1)[0]
        jp.post(thread, "a *fresh* finding")
        for ws in (a, b):
            fragment = receive_posts(ws, 1)[0]
            assert "<em>fresh</em>" in fragment
            assert EVENT_RE.search(fragment)
            assert 'hx-swap-oob="beforeend:#posts"' in fragment


def test_reconnect_with_after_gets_everything_missed_in_order_once(server, db) -> None:
    cat = make_category(db)
    jp = Browserless(server.url, "jp.examiner")
    thread = jp.start(cat, "Gaps", "zero")
    kr = Browserless(server.url, "kr.examiner")
    with kr.socket(f"/ws/threads/{thread}?after=0") as ws:
        first = receive_posts(ws, 1)[0]
    last_seen = int(EVENT_RE.search(first).group(1))
    for body in ("one", "two", "three"):
        jp.post(thread, body)
    with kr.socket(f"/ws/threads/{thread}?after={last_seen}") as ws:
        missed = receive_posts(ws, 3)
        ids = [int(EVENT_RE.search(m).group(1)) for m in missed]
        assert ids == sorted(ids) and len(set(ids)) == 3
        assert [re.search(r"<p>(\w+)</p>", m).group(1) for m in missed] == ["one", "two", "three"]
        with pytest.raises(TimeoutError):
            receive_posts(ws, 1, timeout=1.0)  # and nothing twice


def test_outsider_gets_nothing_from_a_restricted_category(server, db) -> None:
    cat = make_category(db, "JP and KR", ["JP", "KR"])
    jp = Browserless(server.url, "jp.examiner")
    thread = jp.start(cat, "Bilateral", "secret-ish")
    au = Browserless(server.url, "au.examiner")
    with pytest.raises(InvalidStatus) as refused:
        au.socket(f"/ws/threads/{thread}")
    assert refused.value.response.status_code == 403  # refused at the handshake
    # and the forum-wide socket does not leak it either
    with au.socket("/ws/forum") as ws:
        jp.post(thread, "more secret-ish")
        with pytest.raises(TimeoutError):
            while True:
                message = ws.recv(timeout=1.5)
                assert "Bilateral" not in message


def test_handshake_checks_origin_and_session(server, db) -> None:
    cat = make_category(db)
    jp = Browserless(server.url, "jp.examiner")
    thread = jp.start(cat, "Origins", "x")
    with pytest.raises(InvalidStatus):
        jp.socket(f"/ws/threads/{thread}", origin="http://evil.example")
    with pytest.raises(InvalidStatus):
        connect(server.url.replace("http", "ws") + f"/ws/threads/{thread}",
                additional_headers={"Origin": server.url})
    with pytest.raises(InvalidStatus):  # no Origin and no token: not a browser, not a client
        connect(server.url.replace("http", "ws") + f"/ws/threads/{thread}",
                additional_headers={"Cookie": jp.cookie})


def test_bearer_token_client_without_origin(server, db) -> None:
    from tests.dossier_helpers import token_for

    cat = make_category(db)
    jp = Browserless(server.url, "jp.examiner")
    thread = jp.start(cat, "Scripted", "hello")
    headers = token_for(db, "kr.examiner", "forum")
    with connect(server.url.replace("http", "ws") + f"/ws/threads/{thread}?after=0",
                 additional_headers=headers) as ws:
        assert "hello" in receive_posts(ws, 1)[0]


def test_server_restart_loses_nothing(settings, db) -> None:
    cat = make_category(db)
    first = LiveServer(create_app(settings)).start()
    jp = Browserless(first.url, "jp.examiner")
    thread = jp.start(cat, "Restart", "before")
    kr = Browserless(first.url, "kr.examiner")
    with kr.socket(f"/ws/threads/{thread}?after=0") as ws:
        seen = int(EVENT_RE.search(receive_posts(ws, 1)[0]).group(1))
    jp.post(thread, "during")
    first.stop()
    second = LiveServer(create_app(settings)).start()
    try:
        kr.base = second.url
        with kr.socket(f"/ws/threads/{thread}?after={seen}") as ws:
            assert "during" in receive_posts(ws, 1)[0]
    finally:
        second.stop()


def test_edits_hides_and_reactions_arrive_live(server, db) -> None:
    cat = make_category(db)
    jp = Browserless(server.url, "jp.examiner")
    thread = jp.start(cat, "Changes", "original")
    page = jp.http.get(f"/threads/{thread}").text
    post_id = int(page.split('id="post-')[1].split('"')[0])
    kr = Browserless(server.url, "kr.examiner")
    admin = Browserless(server.url, "admin")
    with kr.socket(f"/ws/threads/{thread}") as ws:
        jp.http.post(f"/posts/{post_id}/edit", data={"csrf_token": jp.csrf, "body": "revised"})
        edited = receive_posts(ws, 1)[0]
        assert "revised" in edited and 'hx-swap-oob="outerHTML"' in edited
        kr.http.post(f"/posts/{post_id}/react/+1", data={"csrf_token": kr.csrf})
        assert '+1 <span class="n">1</span>' in receive_posts(ws, 1)[0]
        admin.http.post(f"/posts/{post_id}/hide", data={"csrf_token": admin.csrf})
        hidden = receive_posts(ws, 1)[0]
        assert "hidden by a moderator" in hidden and "revised" not in hidden


def test_thread_list_and_bell_update_live(server, db) -> None:
    cat = make_category(db)
    jp = Browserless(server.url, "jp.examiner")
    thread = jp.start(cat, "List me", "first")
    kr = Browserless(server.url, "kr.examiner")
    kr.http.post("/notifications/read", data={"csrf_token": kr.csrf})  # start from zero
    with kr.socket("/ws/forum") as ws:
        jp.post(thread, "hello @kr.examiner")
        seen_row = seen_bell = False
        while not (seen_row and seen_bell):
            message = ws.recv(timeout=10)
            if 'id="thread-' in message and "List me" in message:
                # a block app.js places in the page's lists (a bare <tr> as an htmx
                # out-of-band fragment lost the row), saying where the thread belongs
                assert f'data-live-row="{thread}"' in message
                assert f'data-category="{cat}"' in message
                assert "new" in message  # kr's unread count for the thread
                seen_row = True
            if 'id="bell"' in message and 'class="bell-count on">' in message:
                assert 'class="bell-count on">1<' in message
                seen_bell = True


def test_a_new_post_is_rendered_in_its_request_once_and_the_hub_sends_it(server, app,
                                                                          db) -> None:
    """The request that commits a post renders its live fragments (Hub.commit): the
    hub's own thread does not render it again, and watchers get it as before."""
    cat = make_category(db)
    jp = Browserless(server.url, "jp.examiner")
    thread = jp.start(cat, "Rendered where posted", "opening")
    kr = Browserless(server.url, "kr.examiner")
    hub = app.state.hub
    handed: list[int] = []

    class Early(dict):  # records which events the hub took ready-made
        def pop(self, key: Any, *default: Any) -> Any:
            found = super().pop(key, *default)
            if found is not None:
                handed.append(key)
            return found

    hub._early = Early()
    with kr.socket(f"/ws/threads/{thread}") as ws:
        renders = hub.renders
        jp.post(thread, "posted and pushed")
        fragment = receive_posts(ws, 1)[0]
        assert "posted and pushed" in fragment
        # one render for the one watcher, in the request; the hub took it as it was
        assert hub.renders - renders == 1
        assert handed == [int(EVENT_RE.search(fragment).group(1))]


def test_a_failed_render_in_the_request_leaves_the_post_to_the_hub(server, app, db,
                                                                   monkeypatch) -> None:
    cat = make_category(db)
    jp = Browserless(server.url, "jp.examiner")
    thread = jp.start(cat, "Hub renders", "opening")
    kr = Browserless(server.url, "kr.examiner")
    hub = app.state.hub

    def broken(session: Any, events: Any) -> None:
        raise RuntimeError("template gone")

    monkeypatch.setattr(hub, "_render_early", broken)
    with kr.socket(f"/ws/threads/{thread}") as ws:
        jp.post(thread, "still arrives")
        assert "still arrives" in receive_posts(ws, 1)[0]


@pytest.mark.parametrize("through_here", [False, True],
                         ids=["post-from-another-host", "post-through-this-process"])
def test_a_plugin_switched_elsewhere_counts_for_the_posts_right_after_it(
        server, app, db, through_here: bool) -> None:
    """Another host switches the dossier cards off and a post naming a dossier follows
    at once.  From another host too: this hub reads both in one round, and must follow
    the switch before it renders the post.  Through this process: the request renders
    the post for the watchers before the hub has read the switch, and the hub must not
    send that render.  Otherwise the watchers see a card that the post's page (and
    every other host's watchers) no longer shows."""
    from sqlmodel import select

    from caseforum.events import emit
    from caseforum.forum import service
    from caseforum.models import PluginState, Thread, User
    from caseforum.plugin_host import PLUGIN_SWITCHED

    cat = make_category(db)
    jp = Browserless(server.url, "jp.examiner")
    thread = jp.start(cat, "Cards switched off elsewhere", "opening")
    kr = Browserless(server.url, "kr.examiner")
    body = "Same art as JP 2019-041872."
    with kr.socket(f"/ws/threads/{thread}") as ws:
        # what another host commits; nothing wakes this hub (it looks on its own
        # every two seconds), nor does anything switch the plugin here but the hub
        db.add(PluginState(name="dossier_cards", enabled=False, changed_by="admin"))
        emit(db, kind=PLUGIN_SWITCHED, subject_type="plugin", subject_id="dossier_cards",
             payload={"name": "dossier_cards", "enabled": False})
        if through_here:
            db.commit()
            jp.post(thread, body)
        else:
            author = db.exec(select(User).where(User.username == "jp.examiner")).one()
            service.add_post(db, author=author, thread=db.get(Thread, thread), body=body)
            db.commit()
        fragment = receive_posts(ws, 1)[0]
    assert "Same art as" in fragment
    assert not app.state.plugins.is_enabled("dossier_cards")
    assert "dossier-card" not in fragment, "the post came with the card switched off"
