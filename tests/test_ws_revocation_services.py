"""Revocation reaches sockets on another host: two app instances sharing PostgreSQL
and Redis, the user disabled on one, their socket on the other closed at once."""

from __future__ import annotations

import pytest
from sqlmodel import select

from caseforum.app import create_app
from caseforum.config import load_settings
from caseforum.db import open_session
from caseforum.forum import hub as hub_module
from caseforum.forum import service
from caseforum.models import User
from tests.conftest import LiveServer, demo_engine
from tests.test_forum_live import Browserless, receive_posts
from tests.test_ws_revocation import wait_closed

pytestmark = pytest.mark.services


def test_disabling_on_one_host_closes_the_socket_on_another(postgres_url: str, redis_url: str,
                                                            tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(hub_module, "RECHECK_SECONDS", 60.0)  # only the event can be in time
    settings = load_settings(data_dir=tmp_path, database_url=postgres_url, secret_key="p" * 32,
                             redis_url=redis_url)
    engine = demo_engine(settings)
    with open_session(engine) as session:
        category = service.create_category(session, name="Shared", offices=[])
        session.commit()
        category_id = category.id
        kr_id = session.exec(select(User.id).where(User.username == "kr.examiner")).one()
    engine.dispose()
    first = LiveServer(create_app(settings)).start()
    second = LiveServer(create_app(settings)).start()
    try:
        jp = Browserless(first.url, "jp.examiner")
        thread = jp.start(category_id, "Across hosts", "opening")
        kr = Browserless(second.url, "kr.examiner")
        admin = Browserless(first.url, "admin")
        with kr.socket(f"/ws/threads/{thread}") as ws:
            jp.post(thread, "still-live")
            assert "still-live" in receive_posts(ws, 1)[0]
            done = admin.http.post(f"/admin/users/{kr_id}/disable",
                                   data={"csrf_token": admin.csrf})
            assert done.status_code == 303
            jp.post(thread, "after-disable")
            code, _, messages = wait_closed(ws)
        assert code == 4401
        assert not any("after-disable" in m for m in messages)
    finally:
        second.stop()
        first.stop()


def test_the_periodic_check_on_postgresql_keeps_good_sockets_and_drops_ended_ones(
        postgres_url: str, tmp_path) -> None:
    """The re-check of open sockets asks PostgreSQL with one array of keys per kind
    (``db.one_of``): of many sessions and tokens, exactly those still good keep their
    viewer, ended, expired or disabled ones are dropped, and the "last seen" / "last
    used" marks an administrator reads on the sessions and tokens pages move."""
    from datetime import timedelta

    from caseforum import accounts
    from caseforum.forum.live_auth import Credential, revalidate, sha256
    from caseforum.models import ApiToken, UserSession, utcnow

    settings = load_settings(data_dir=tmp_path, database_url=postgres_url, secret_key="p" * 32)
    engine = demo_engine(settings)
    old = utcnow() - timedelta(hours=1)
    with open_session(engine) as session:
        users = {u.username: u for u in session.exec(select(User))}
        good: dict[Credential, str] = {}
        ended: list[Credential] = []
        for i in range(130):  # more than one slice of sockets, keys of both kinds
            who = users["kr.examiner" if i % 2 else "cn.examiner"]
            secret = accounts.start_session(session, user=who, days=1)
            token, _ = accounts.create_token(session, user=who, scopes=["forum"])
            session.flush()
            keys = (Credential("session", sha256(secret)), Credential("token", str(token.id)))
            row = session.get(UserSession, sha256(secret))
            row.last_seen_at = token.last_used_at = old
            if i % 10 == 3:
                row.revoked_at = utcnow()
                token.expires_at = utcnow() - timedelta(seconds=1)
                ended += keys
            else:
                good.update((key, who.username) for key in keys)
        disabled = users["sg.examiner"]
        secret = accounts.start_session(session, user=disabled, days=1)
        session.flush()
        session.get(UserSession, sha256(secret)).last_seen_at = old
        disabled.is_active = False
        ended.append(Credential("session", sha256(secret)))
        session.commit()
        viewers = revalidate(session, [*good, *ended], touch=True)
        assert {c: v.username for c, v in viewers.items()} == good
        marked = {r.id: r.last_seen_at for r in session.exec(select(UserSession))}
        used = {str(t.id): t.last_used_at for t in session.exec(select(ApiToken))}
    for credential in good:
        seen = marked[credential.key] if credential.kind == "session" else used[credential.key]
        assert seen is not None and seen > old + timedelta(minutes=30)
    for credential in ended:
        seen = marked[credential.key] if credential.kind == "session" else used[credential.key]
        assert seen is None or seen <= old + timedelta(seconds=1)
    engine.dispose()
