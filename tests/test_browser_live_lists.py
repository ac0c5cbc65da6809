"""In real browsers, two examiners side by side: one writes, the other watches the
thread lists, the home page and the bell follow live.  A row moves, it is never lost;
a new thread appears where the watcher may see it and nowhere else; unread counts
follow; the console stays empty."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from caseforum.forum import service
from caseforum.models import Thread, User
from tests.browser import screenshot
from tests.forum_helpers import make_category
from tests.live_helpers import LIVE, thread_as

pytestmark = pytest.mark.browser


def titles(page: Any, rows: str) -> list[str]:
    return page.locator(rows).evaluate_all(
        "rows => rows.map(r => r.querySelector('a').textContent.trim())")


def test_category_page_moves_rows_up_and_shows_new_threads(people, db) -> None:
    writer, watcher = people
    cooling = make_category(db, "Cooling")
    other = make_category(db, "Other topics")
    older = thread_as(db, "jp.examiner", cooling, "Fin spacing")
    thread_as(db, "jp.examiner", cooling, "Header tanks")
    rows = "#threads > tr[data-thread]"

    watcher.open(f"/forum/c/{cooling}")
    assert titles(watcher.page, rows) == ["Header tanks", "Fin spacing"]

    # a reply moves its thread to the top, with the watcher's unread count; none is lost
    writer.reply(older, "A second look at the spacing.")
    expect(watcher.page.locator(rows).first).to_contain_text("Fin spacing", timeout=LIVE)
    assert titles(watcher.page, rows) == ["Fin spacing", "Header tanks"]
    expect(watcher.page.locator(f"#thread-{older}")).to_contain_text("2 new")

    # a new thread appears at the top; one in another category does not
    writer.start_thread(other, "Unrelated matter", "Elsewhere.")
    writer.start_thread(cooling, "Louvred fins", "Any art on louvres?")
    expect(watcher.page.locator(rows).first).to_contain_text("Louvred fins", timeout=LIVE)
    assert titles(watcher.page, rows) == ["Louvred fins", "Fin spacing", "Header tanks"]
    expect(watcher.page.locator(rows).first).to_contain_text("1 new")
    screenshot(watcher.page, "live-category")

    # and after a reload the page lists the same rows in the same order
    live_order = titles(watcher.page, rows)
    watcher.open(f"/forum/c/{cooling}")
    assert titles(watcher.page, rows) == live_order
    assert writer.errors == [] and watcher.errors == []


def test_pinned_threads_stay_on_top_and_reactions_move_nothing(people, db) -> None:
    writer, watcher = people
    cooling = make_category(db, "Cooling")
    pinned = thread_as(db, "jp.examiner", cooling, "Read me first")
    service.set_thread_flags(db, moderator=db.exec(select(User).where(
        User.username == "admin")).one(), thread=db.get(Thread, pinned), pinned=True)
    db.commit()
    old = thread_as(db, "jp.examiner", cooling, "Old question")
    thread_as(db, "jp.examiner", cooling, "Newer question")
    rows = "#threads > tr[data-thread]"
    watcher.open(f"/forum/c/{cooling}")
    assert titles(watcher.page, rows) == ["Read me first", "Newer question", "Old question"]

    writer.reply(old, "Bumping this.")
    expect(watcher.page.locator(rows).nth(1)).to_contain_text("Old question", timeout=LIVE)
    assert titles(watcher.page, rows) == ["Read me first", "Old question", "Newer question"]
    assert watcher.errors == [] and writer.errors == []


def test_forum_index_unread_page_home_and_bell_follow(people, db) -> None:
    writer, watcher = people
    cooling = make_category(db, "Cooling")
    secret = make_category(db, "JP internal", ["JP"])  # the watcher (KR) may not read it
    thread = thread_as(db, "jp.examiner", cooling, "Fin spacing")

    # the forum index: the category's totals
    watcher.open("/forum")
    row = watcher.page.locator(f'[data-category-row="{cooling}"]')
    expect(row.locator("[data-thread-count]")).to_have_text("1")
    expect(row.locator("[data-unread-total]")).to_have_text("1")
    writer.reply(thread, "More on spacing.")
    expect(row.locator("[data-unread-total]")).to_have_text("2", timeout=LIVE)
    writer.start_thread(cooling, "Louvred fins", "Any art on louvres?")
    expect(row.locator("[data-thread-count]")).to_have_text("2", timeout=LIVE)
    expect(row.locator("[data-unread-total]")).to_have_text("3")
    # a private conversation appears among the watcher's conversations, the bell rings
    bell = watcher.page.locator("#bell-count")
    rang = int(bell.inner_text()) + 1
    writer.open("/messages/new")
    writer.page.get_by_label("With (usernames)").fill("kr.examiner")
    writer.page.get_by_label("Subject").fill("Between us")
    writer.page.get_by_label("Message").fill("A word about the fins.")
    writer.page.get_by_role("button", name="Start conversation").click()
    writer.page.wait_for_url("**/threads/*")
    private_rows = watcher.page.locator('[data-live-list="private"] > tr[data-thread]')
    expect(private_rows.first).to_contain_text("Between us", timeout=LIVE)
    expect(bell).to_have_text(str(rang), timeout=LIVE)
    screenshot(watcher.page, "live-forum-index")

    # the unread page: new threads the watcher may read appear, others never do
    watcher.open("/forum/unread")
    unread = watcher.page.locator("#threads > tr[data-thread]")
    writer.start_thread(secret, "Internal only", "Not for KR.")
    writer.start_thread(cooling, "Tube rows", "How many rows?")
    expect(unread.first).to_contain_text("Tube rows", timeout=LIVE)
    assert "Internal only" not in watcher.page.locator("main").inner_text()
    # the watcher's own reply reads the thread: it leaves the unread list
    watcher.reply(thread, "KR agrees.")
    watcher.open("/forum/unread")
    count = unread.count()
    writer.reply(thread, "Thanks, KR.")
    expect(unread).to_have_count(count + 1, timeout=LIVE)
    expect(unread.first).to_contain_text("Fin spacing")
    expect(unread.first).to_contain_text("1 new")

    # home: a mention rings the bell and shows under "For you"; the thread tops the list
    watcher.open("/")
    before = int(bell.inner_text())
    writer.reply(thread, "@kr.examiner what is your office's view?")
    expect(bell).to_have_text(str(before + 1), timeout=LIVE)
    expect(watcher.page.locator("#for-you")).to_contain_text("mentioned you", timeout=LIVE)
    home_unread = watcher.page.locator('[data-live-list="unread"] > li')
    expect(home_unread.first).to_contain_text("Fin spacing", timeout=LIVE)
    expect(home_unread.first).to_contain_text("2 new")
    assert "Internal only" not in watcher.page.locator("main").inner_text()
    screenshot(watcher.page, "live-home")
    assert writer.errors == [] and watcher.errors == []


def test_a_page_reached_by_a_link_counts_nothing_twice(people, db) -> None:
    """A boosted link swaps in a page rendered after events the last page's socket
    never got: the new socket resumes from the new page, not from the old one (which
    replayed those events and counted a new thread twice)."""
    writer, watcher = people
    cooling = make_category(db, "Cooling")
    thread = thread_as(db, "jp.examiner", cooling, "Fin spacing")
    watcher.open("/notifications")  # its socket hears only the watcher's own bell
    writer.start_thread(cooling, "Louvred fins", "Any art on louvres?")
    with watcher.page.expect_websocket():
        watcher.page.locator("nav").get_by_role("link", name="Forum").click()
    watcher.page.wait_for_url("**/forum")
    row = watcher.page.locator(f'[data-category-row="{cooling}"]')
    expect(row.locator("[data-thread-count]")).to_have_text("2")
    writer.reply(thread, "More on spacing.")  # a live event after anything replayed
    expect(row.locator("[data-unread-total]")).to_have_text("3", timeout=LIVE)
    expect(row.locator("[data-thread-count]")).to_have_text("2")
    assert writer.errors == [] and watcher.errors == []
