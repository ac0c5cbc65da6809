"""The chat view in real browsers, two examiners side by side: it opens at the newest
message, follows new ones while the reader is at the bottom, leaves a reader who
scrolled up in place with a "New messages" button, shows one line per message and per
dossier card, and sends with Enter (Shift+Enter for a new line)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from caseforum.forum import service
from caseforum.models import Thread, User
from tests.browser import screenshot
from tests.dossier_helpers import dossier_json, pdf_bytes, token_for, upload
from tests.forum_helpers import make_category
from tests.live_helpers import LIVE, thread_as

pytestmark = pytest.mark.browser

LOG = "#posts.chat"


def long_thread(db: Any, messages: int = 60) -> int:
    """A thread longer than the chat box, the last message easy to recognise."""
    thread_id = thread_as(db, "jp.examiner", make_category(db, "Chat"), "Busy chat", "message 0")
    thread = db.get(Thread, thread_id)
    people = [db.exec(select(User).where(User.username == name)).one()
              for name in ("jp.examiner", "cn.examiner")]
    for n in range(1, messages):
        service.add_post(db, author=people[n % 2], thread=thread, body=f"message {n}")
    db.commit()
    return thread_id


def scroll_state(page: Any) -> dict[str, float]:
    return page.locator(LOG).evaluate(
        "log => ({top: log.scrollTop, height: log.scrollHeight, view: log.clientHeight})")


def at_bottom(page: Any) -> bool:
    state = scroll_state(page)
    return state["height"] - state["top"] - state["view"] <= 2


def visible_in_log(page: Any, text: str) -> bool:
    """Whether the message is inside the log's visible box (not scrolled away)."""
    return page.locator(LOG).evaluate("""(log, text) => {
        const post = [...log.querySelectorAll('.post')].find(
            p => p.querySelector('.post-body').textContent.trim() === text);
        if (!post) return false;
        const box = log.getBoundingClientRect(), r = post.getBoundingClientRect();
        return r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
    }""", text)


def send_from(page: Any, text: str) -> None:
    """Type into the chat composer and press Enter."""
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def test_opens_at_the_newest_message_and_follows_new_ones(people, db) -> None:
    writer, reader = people
    thread = long_thread(db)
    reader.open(f"/threads/{thread}/chat")
    state = scroll_state(reader.page)
    assert state["height"] > state["view"] * 1.5  # the log really scrolls
    assert at_bottom(reader.page)
    assert visible_in_log(reader.page, "message 59")
    assert not visible_in_log(reader.page, "message 0")

    writer.open(f"/threads/{thread}/chat")
    for n in (60, 61):
        send_from(writer.page, f"message {n}")
        expect(reader.page.locator(f"{LOG} .post").last).to_contain_text(f"message {n}",
                                                                          timeout=LIVE)
        reader.page.wait_for_function(
            "() => { const l = document.querySelector('#posts.chat');"
            " return l.scrollHeight - l.scrollTop - l.clientHeight <= 2; }", timeout=LIVE)
        assert visible_in_log(reader.page, f"message {n}")
    expect(reader.page.locator("[data-chat-new]")).to_be_hidden()
    # the writer follows their own messages too
    assert at_bottom(writer.page) and visible_in_log(writer.page, "message 61")
    screenshot(reader.page, "chat-following")
    assert writer.errors == [] and reader.errors == []


def test_a_reader_who_scrolled_up_keeps_their_place_and_gets_a_button(people, db) -> None:
    writer, reader = people
    thread = long_thread(db)
    reader.open(f"/threads/{thread}/chat")
    reader.page.locator(LOG).evaluate("log => { log.scrollTop = 0; }")
    reader.page.wait_for_timeout(100)  # the scroll event
    writer.open(f"/threads/{thread}/chat")
    send_from(writer.page, "message 60")
    expect(reader.page.locator(f"{LOG} .post").last).to_contain_text("message 60", timeout=LIVE)
    button = reader.page.get_by_role("button", name="New messages")
    expect(button).to_be_visible()
    assert scroll_state(reader.page)["top"] == 0  # still reading where they were
    assert visible_in_log(reader.page, "message 0")
    screenshot(reader.page, "chat-new-messages")
    button.click()
    expect(button).to_be_hidden()
    assert at_bottom(reader.page) and visible_in_log(reader.page, "message 60")

    # back at the bottom by scrolling (no button click): following again
    reader.page.locator(LOG).evaluate("log => { log.scrollTop = 0; }")
    reader.page.wait_for_timeout(100)
    reader.page.locator(LOG).evaluate("log => { log.scrollTop = log.scrollHeight; }")
    reader.page.wait_for_timeout(100)
    send_from(writer.page, "message 61")
    expect(reader.page.locator(f"{LOG} .post").last).to_contain_text("message 61", timeout=LIVE)
    reader.page.wait_for_function(
        "() => { const l = document.querySelector('#posts.chat');"
        " return l.scrollHeight - l.scrollTop - l.clientHeight <= 2; }", timeout=LIVE)
    expect(button).to_be_hidden()
    assert writer.errors == [] and reader.errors == []


def test_enter_sends_and_shift_enter_starts_a_new_line(people, db) -> None:
    writer, reader = people
    thread = thread_as(db, "jp.examiner", make_category(db, "Chat"), "Keys", "hello")
    reader.open(f"/threads/{thread}/chat")
    writer.open(f"/threads/{thread}/chat")
    box = writer.page.get_by_role("textbox", name="Message")
    box.click()
    box.type("first line")
    box.press("Shift+Enter")
    box.type("second line")
    assert box.input_value() == "first line\nsecond line"  # Shift+Enter did not send
    expect(reader.page.locator(f"{LOG} .post")).to_have_count(1)
    box.press("Enter")
    last = reader.page.locator(f"{LOG} .post").last
    expect(last).to_contain_text("first line", timeout=LIVE)
    expect(last).to_contain_text("second line")
    expect(box).to_have_value("")  # cleared for the next message
    expect(reader.page.locator(f"{LOG} .post")).to_have_count(2)
    # Enter in an empty box sends nothing
    box.press("Enter")
    box.press("Enter")
    writer.page.wait_for_timeout(500)
    expect(reader.page.locator(f"{LOG} .post")).to_have_count(2)
    expect(writer.page.locator(f"{LOG} .post")).to_have_count(2)
    assert writer.errors == [] and reader.errors == []


def test_messages_and_dossier_cards_take_one_line(people, client, db) -> None:
    writer, reader = people
    jp = token_for(db, "jp.examiner")
    client.post("/api/v1/dossiers", headers=jp, json=dossier_json(
        "JP", "2017-187096", publication_number="JP 2019-054321 A", filing_date="2017-09-28",
        title="Fin stack for heat exchangers"))
    upload(client, jp, "JP", "2017187096", pdf_bytes("search report"), code="SRPT",
           date="2018-05-01")
    thread = thread_as(db, "jp.examiner", make_category(db, "Chat"), "Cards", "short one")
    reader.open(f"/threads/{thread}/chat")
    writer.open(f"/threads/{thread}/chat")
    send_from(writer.page, "See JP2017-187096 for the fins.")
    card = reader.page.locator(f"{LOG} .dossier-card").last
    card.wait_for(timeout=LIVE)

    def line_height(locator: Any) -> float:
        return locator.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)"
                                " || parseFloat(getComputedStyle(e).fontSize) * 1.5")

    plain = reader.page.locator(f"{LOG} .post").first
    assert plain.bounding_box()["height"] < 2 * line_height(plain) + 12  # one line + padding
    assert card.bounding_box()["height"] < 2 * line_height(card)  # one line
    expect(card).to_contain_text("Fin stack for heat exchangers")
    expect(card.get_by_role("link", name="Open dossier")).to_be_visible()
    screenshot(reader.page, "chat-card")
    # the thread view still shows the whole card
    reader.open(f"/threads/{thread}")
    full = reader.page.locator(".post .dossier-card").last
    assert full.bounding_box()["height"] > 3 * line_height(full)
    assert writer.errors == [] and reader.errors == []


def test_a_moderators_lock_shows_in_the_chat_view(people, db) -> None:
    writer, reader = people
    thread = thread_as(db, "jp.examiner", make_category(db, "Chat"), "To be locked", "hi")
    reader.open(f"/threads/{thread}/chat")
    admin = db.exec(select(User).where(User.username == "admin")).one()
    service.set_thread_flags(db, moderator=admin, thread=db.get(Thread, thread), locked=True)
    db.commit()
    expect(reader.page.locator("#thread-status")).to_contain_text("locked", timeout=LIVE)
    assert reader.errors == []
