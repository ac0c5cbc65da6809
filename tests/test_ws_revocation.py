"""Live sockets end when access ends: real websocket clients against a real server.

Each revocation is made the way an administrator or user makes it (admin pages,
the log-out button, the data function a CLI command calls); right after it, a new
post is written, and the watcher must be closed within 5 seconds with the close
code that says why, without ever receiving that post.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlmodel import select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from caseforum.forum import service
from caseforum.models import ApiToken, Category, User, UserSession, utcnow
from tests.conftest import LiveServer
from tests.dossier_helpers import token_for
from tests.forum_helpers import make_category
from tests.test_forum_live import Browserless, receive_posts

WITHIN = 5.0  # seconds: the promise made to administrators


@pytest.fixture
def server(app: Any) -> Any:
    s = LiveServer(app).start()
    yield s
    s.stop()


def wait_closed(ws: Any, seconds: float = WITHIN) -> tuple[int, str, list[str]]:
    """Read until the server closes the socket; the close code, reason and every
    message received meanwhile.  Fails if it stays open longer than ``seconds``."""
    deadline = time.monotonic() + seconds
    messages: list[str] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"the socket was still open {seconds} s after the revocation")
        try:
            messages.append(ws.recv(timeout=left))
        except TimeoutError:
            continue
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "closed without a close frame"
            return closed.rcvd.code, closed.rcvd.reason, messages


def user_id(db: Any, username: str) -> int:
    return db.exec(select(User.id).where(User.username == username)).one()


def watched_thread(server: Any, db: Any, offices: list[str] | None = None
                   ) -> tuple[Browserless, int]:
    cat = make_category(db, "Watched", offices)
    jp = Browserless(server.url, "jp.examiner")
    return jp, jp.start(cat, "Watched thread", "opening")


def assert_live(ws: Any, jp: Browserless, thread: int) -> None:
    jp.post(thread, "still-live")
    assert "still-live" in receive_posts(ws, 1)[0]


def test_disabling_a_user_closes_their_socket_and_nothing_later_arrives(server, db) -> None:
    jp, thread = watched_thread(server, db)
    kr, admin = Browserless(server.url, "kr.examiner"), Browserless(server.url, "admin")
    with kr.socket(f"/ws/threads/{thread}") as ws:
        assert_live(ws, jp, thread)
        done = admin.http.post(f"/admin/users/{user_id(db, 'kr.examiner')}/disable",
                               data={"csrf_token": admin.csrf})
        assert done.status_code == 303
        jp.post(thread, "after-disable")
        code, reason, messages = wait_closed(ws)
    assert code == 4401 and "no longer valid" in reason
    assert not any("after-disable" in m for m in messages)


def test_revoking_a_token_closes_its_socket(server, db) -> None:
    jp, thread = watched_thread(server, db)
    headers = token_for(db, "kr.examiner", "forum")
    token_id = db.exec(select(ApiToken.id).where(
        ApiToken.user_id == user_id(db, "kr.examiner"))).one()
    admin = Browserless(server.url, "admin")
    with connect(server.url.replace("http", "ws") + f"/ws/threads/{thread}",
                 additional_headers=headers, open_timeout=5) as ws:
        assert_live(ws, jp, thread)
        done = admin.http.post(f"/admin/tokens/{token_id}/revoke",
                               data={"csrf_token": admin.csrf})
        assert done.status_code == 303
        jp.post(thread, "after-revoke")
        code, _, messages = wait_closed(ws)
    assert code == 4401
    assert not any("after-revoke" in m for m in messages)


def test_logging_out_closes_that_sessions_sockets_only(server, db) -> None:
    jp, thread = watched_thread(server, db)
    tab = Browserless(server.url, "kr.examiner")
    other_login = Browserless(server.url, "kr.examiner")  # the same user on another machine
    with tab.socket(f"/ws/threads/{thread}") as ws, \
            other_login.socket(f"/ws/threads/{thread}") as other:
        assert_live(ws, jp, thread)
        assert "still-live" in receive_posts(other, 1)[0]
        assert tab.http.post("/logout", data={"csrf_token": tab.csrf}).status_code == 303
        jp.post(thread, "after-logout")
        code, _, messages = wait_closed(ws)
        assert code == 4401
        assert not any("after-logout" in m for m in messages)
        # the user's other log-in is still good and still live
        assert "after-logout" in receive_posts(other, 1)[0]


def test_office_losing_a_role_changes_what_its_open_sockets_receive(server, db) -> None:
    jp, thread = watched_thread(server, db)
    kr, admin = Browserless(server.url, "kr.examiner"), Browserless(server.url, "admin")
    with kr.socket(f"/ws/threads/{thread}") as ws:
        jp.post(thread, "card JP 2019-041872 while accessing")
        assert 'class="dossier-card"' in receive_posts(ws, 1)[0]
        # KR stops being an accessing office: other offices' dossiers are closed to it
        done = admin.http.post("/admin/offices/KR", data={
            "csrf_token": admin.csrf, "providing": "true", "public_access": "true"})
        assert done.status_code == 303
        jp.post(thread, "card JP 2019-041872 after the change")
        fragment = receive_posts(ws, 1, timeout=WITHIN)[0]
    assert "after the change" in fragment
    assert "dossier-card" not in fragment and "Layered" not in fragment


def test_category_closed_to_an_office_closes_its_thread_sockets(server, db) -> None:
    jp, thread = watched_thread(server, db, ["JP", "KR"])
    kr = Browserless(server.url, "kr.examiner")
    with kr.socket(f"/ws/threads/{thread}") as ws, kr.socket("/ws/forum") as forum:
        assert_live(ws, jp, thread)
        while "Watched thread" not in forum.recv(timeout=10):
            pass  # the list row of the post above, still allowed
        category = db.exec(select(Category).where(Category.name == "Watched")).one()
        service.set_category_offices(db, category=category, offices=["JP"])
        db.commit()  # as `caseforum offices category` does: another process, no wake-up
        jp.post(thread, "after-narrowing")
        code, reason, messages = wait_closed(ws)
        assert code == 4403 and "thread" in reason
        assert not any("after-narrowing" in m for m in messages)
        # the forum list stays open but carries nothing of the thread any more
        jp.post(thread, "later")
        with pytest.raises(TimeoutError):
            while True:
                assert "Watched thread" not in forum.recv(timeout=2.5)


def test_a_session_revoked_without_an_event_is_caught_by_the_periodic_check(server, db) -> None:
    jp, thread = watched_thread(server, db)
    kr = Browserless(server.url, "kr.examiner")
    with kr.socket(f"/ws/threads/{thread}") as ws:
        assert_live(ws, jp, thread)
        for row in db.exec(select(UserSession).where(
                UserSession.user_id == user_id(db, "kr.examiner"))):
            row.revoked_at = utcnow()  # e.g. a database clean-up: no event written
            db.add(row)
        db.commit()
        code, _, _ = wait_closed(ws)
    assert code == 4401


@pytest.mark.parametrize("headers, origin, reason", [
    ({"Authorization": "Bearer cf_not-a-real-token"}, False, "unknown or revoked API token"),
    ({"Authorization": "Basic a2V5OnZhbHVl"}, True, "use 'Authorization: Bearer TOKEN'"),
    ({"Cookie": "cf_session=forged.value"}, True, "bad session cookie: log in again"),
])
def test_bad_credentials_at_the_handshake_get_4401_with_the_reason(
        server, db, headers: dict[str, str], origin: bool, reason: str) -> None:
    _, thread = watched_thread(server, db)
    if origin:
        headers = {**headers, "Origin": server.url}
    with connect(server.url.replace("http", "ws") + f"/ws/threads/{thread}",
                 additional_headers=headers, open_timeout=5) as ws:
        code, got, messages = wait_closed(ws)
    assert (code, got, messages) == (4401, reason, [])


def test_expired_token_and_ended_session_at_the_handshake(server, db) -> None:
    _, thread = watched_thread(server, db)
    headers = token_for(db, "kr.examiner", "forum")
    token = db.exec(select(ApiToken).where(
        ApiToken.user_id == user_id(db, "kr.examiner"))).one()
    token.expires_at = utcnow().replace(year=2020)
    db.add(token)
    db.commit()
    url = server.url.replace("http", "ws") + f"/ws/threads/{thread}"
    with connect(url, additional_headers=headers, open_timeout=5) as ws:
        code, reason, _ = wait_closed(ws)
    assert code == 4401 and "expired" in reason
    kr = Browserless(server.url, "kr.examiner")
    cookie = kr.cookie
    kr.http.post("/logout", data={"csrf_token": kr.csrf})
    with connect(url, additional_headers={"Cookie": cookie, "Origin": server.url},
                 open_timeout=5) as ws:
        code, reason, _ = wait_closed(ws)
    assert code == 4401 and "log in again" in reason


def test_out_of_range_ids_get_a_close_code_not_a_server_error(server, db) -> None:
    _, thread = watched_thread(server, db)
    kr = Browserless(server.url, "kr.examiner")
    for path in (f"/ws/threads/{thread}?after={2**70}", f"/ws/threads/{2**70}",
                 f"/ws/threads/{thread}?after=-1", "/ws/forum?after=yesterday"):
        with kr.socket(path) as ws:
            code, reason, _ = wait_closed(ws)
        assert code == 4400 and "whole number between 0 and" in reason


def test_cli_commands_write_the_events_live_sockets_react_to(data_dir, db, monkeypatch) -> None:
    from click.testing import CliRunner

    from caseforum.cli import cli
    from caseforum.models import Event

    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", "c" * 32)
    make_category(db, "Bilateral", ["JP", "KR"])
    runner = CliRunner()
    done = runner.invoke(cli, ["offices", "category", "Bilateral", "--office", "jp"])
    assert done.exit_code == 0 and done.output.strip() == "Bilateral: JP"
    done = runner.invoke(cli, ["offices", "set-roles", "KR", "--role", "providing"])
    assert done.exit_code == 0
    kinds = [e.kind for e in db.exec(select(Event).order_by(Event.id.desc()).limit(2))]
    assert kinds == ["office.changed", "category.changed"]
    refused = runner.invoke(cli, ["offices", "category", "Nope"])
    assert refused.exit_code == 1 and "unknown category 'Nope'" in refused.output


def test_a_token_that_expires_while_connected_is_caught_by_the_periodic_check(server,
                                                                            db) -> None:
    from datetime import timedelta

    jp, thread = watched_thread(server, db)
    headers = token_for(db, "kr.examiner", "forum")
    with connect(server.url.replace("http", "ws") + f"/ws/threads/{thread}",
                 additional_headers=headers, open_timeout=5) as ws:
        assert_live(ws, jp, thread)
        token = db.exec(select(ApiToken).where(
            ApiToken.user_id == user_id(db, "kr.examiner"))).one()
        token.expires_at = utcnow() - timedelta(seconds=1)
        db.add(token)
        db.commit()
        code, _, _ = wait_closed(ws)
    assert code == 4401
