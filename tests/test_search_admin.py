"""The index when nothing runs in the background: its lag on the admin page, and a
rebuild when the event log was pruned past its cursor."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete
from sqlmodel import select

from caseforum.app import create_app
from caseforum.config import Settings
from caseforum.models import Event
from tests.forum_helpers import make_category, start_thread
from tests.search_helpers import found, index_now


@pytest.fixture
def app(settings: Settings) -> Any:
    """No background consumers: the index moves only when the test says so."""
    return create_app(settings.model_copy(update={"run_consumers": False}))


def test_admin_page_shows_index_lag(as_user, db, app) -> None:
    admin, _ = as_user("admin")
    author, csrf = as_user("cn.examiner")
    index_now(app)
    assert "Search index: up to date." in admin.get("/admin").text
    start_thread(author, csrf, make_category(db), "Lag", "one event at least")
    assert "behind the log" in admin.get("/admin").text
    index_now(app)
    assert "Search index: up to date." in admin.get("/admin").text


def test_log_pruned_past_the_cursor_means_a_rebuild(app, as_user, db) -> None:
    index_now(app)
    author, csrf = as_user("cn.examiner")
    start_thread(author, csrf, make_category(db), "Pruned", "a thread the log forgot: quillonfish")
    newest = max(db.exec(select(Event.id)))
    db.exec(delete(Event).where(Event.id < newest))  # pruned, the new thread's events too
    db.commit()
    start_thread(author, csrf, make_category(db, "Later"), "Kept", "a later thread: marrowkite")
    index_now(app)
    assert found(author, "quillonfish")["total"] == 1 == found(author, "marrowkite")["total"]
