"""Two examiners side by side in browsers: helpers for the live browser tests (the
``people`` fixture is registered in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from caseforum.forum import service
from caseforum.models import Category, User
from tests.browser import log_in

LIVE = 10_000  # ms: how long a live change may take to show


class Person:
    """One examiner in a browser context of their own."""

    def __init__(self, browser: Any, live_server: Any, username: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console",
                     lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.base = live_server.url
        log_in(self.page, live_server, username)

    def open(self, path: str) -> None:
        """Open a page and wait until its live socket is up: what happens after this
        must reach it."""
        with self.page.expect_websocket():
            self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")

    def reply(self, thread_id: int, body: str) -> None:
        from playwright.sync_api import expect  # only where a browser runs

        self.open(f"/threads/{thread_id}")
        self.page.get_by_label("Your post").fill(body)
        self.page.get_by_role("button", name="Post", exact=True).click()
        expect(self.page.locator(".post").last).to_contain_text(body, timeout=LIVE)

    def start_thread(self, category_id: int, title: str, body: str) -> int:
        self.open(f"/forum/c/{category_id}")
        self.page.get_by_label("Title").fill(title)
        self.page.get_by_label("First post").fill(body)
        self.page.get_by_role("button", name="Start thread").click()
        self.page.wait_for_url("**/threads/*")
        self.page.wait_for_load_state("networkidle")
        return int(self.page.url.rsplit("/", 1)[1])


def thread_as(db: Any, username: str, category_id: int, title: str, body: str = "x") -> int:
    author = db.exec(select(User).where(User.username == username)).one()
    thread, _ = service.create_thread(db, author=author, category=db.get(Category, category_id),
                                      title=title, body=body)
    db.commit()
    return thread.id or 0


@pytest.fixture
def people(browser: Any, live_server: Any) -> Iterator[tuple[Person, Person]]:
    writer = Person(browser, live_server, "jp.examiner")
    watcher = Person(browser, live_server, "kr.examiner")
    yield writer, watcher
    writer.context.close()
    watcher.context.close()
