"""Thread counters stay exact when many people post at once (SQLite and PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from caseforum import accounts
from caseforum.config import load_settings
from caseforum.db import make_engine, open_session
from caseforum.forum import service
from caseforum.models import Post, Thread, User
from caseforum.plugin_host import PluginHost
from caseforum.setup_db import init_database

POSTS = 200


def _post_concurrently(engine: Any, usernames: list[str]) -> tuple[int, int]:
    """Start a thread, then ``POSTS`` replies from as many threads at once as the
    engine has connections (8 by default); returns the thread id and the id of the
    newest post."""
    with open_session(engine) as session:
        author = session.exec(select(User).where(User.username == usernames[0])).one()
        category = service.create_category(session, name="Race")
        thread, _ = service.create_thread(session, author=author, category=category,
                                          title="Counting", body="first")
        session.commit()
        thread_id = thread.id or 0

    def one(i: int) -> int:
        with open_session(engine) as session:
            user = session.exec(select(User).where(
                User.username == usernames[i % len(usernames)])).one()
            found = session.get(Thread, thread_id)
            assert found is not None
            post = service.add_post(session, author=user, thread=found, body=f"reply {i}")
            session.commit()
            return post.id or 0

    with ThreadPoolExecutor(max_workers=engine.pool.size()) as pool:
        newest = max(pool.map(one, range(POSTS)))
    return thread_id, newest


def _assert_exact(engine: Any, thread_id: int, newest: int) -> None:
    with open_session(engine) as session:
        thread = session.get(Thread, thread_id)
        assert thread is not None
        posts = len(session.exec(select(Post.id).where(Post.thread_id == thread_id)).all())
        assert posts == POSTS + 1
        assert thread.post_count == POSTS + 1  # was 27 of 201 before the atomic update
        assert thread.last_post_id == newest


def test_two_hundred_concurrent_posts_are_all_counted_on_sqlite(engine) -> None:
    thread_id, newest = _post_concurrently(engine, ["jp.examiner", "cn.examiner",
                                                    "kr.examiner", "gb.examiner"])
    _assert_exact(engine, thread_id, newest)


@pytest.mark.services
def test_two_hundred_concurrent_posts_are_all_counted_on_postgres(postgres_url: str,
                                                                   tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, database_url=postgres_url, secret_key="c" * 32)
    engine = make_engine(settings)
    host = PluginHost()
    host.load()
    init_database(engine, host)
    names = [f"pg.poster{i}" for i in range(4)]
    with open_session(engine) as session:
        for name in names:
            accounts.create_user(session, username=name, office_code="GB", role="examiner",
                                 password=None)
        session.commit()
    try:
        thread_id, newest = _post_concurrently(engine, names)
        _assert_exact(engine, thread_id, newest)
    finally:
        engine.dispose()
