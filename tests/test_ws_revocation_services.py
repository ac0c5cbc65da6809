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
