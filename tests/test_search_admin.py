"""The admin page tells how far the search index is behind the event log."""

from __future__ import annotations

from typing import Any

import pytest

from caseforum.app import create_app
from caseforum.config import Settings
from tests.forum_helpers import make_category, start_thread
from tests.search_helpers import index_now


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
