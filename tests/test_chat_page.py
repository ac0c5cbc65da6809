"""The chat view opens at the newest messages: in a long thread it lists the last
page of posts (the thread view lists the first) and says where the earlier ones are."""

from __future__ import annotations

import pytest

from caseforum.web import forum_pages
from tests.forum_helpers import make_category, reply, start_thread


def test_a_long_thread_opens_at_its_newest_messages(as_user, db,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forum_pages, "PAGE_SIZE", 5)
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, make_category(db), "Long chat", "message 0")
    for n in range(1, 8):
        reply(jp, csrf, thread, f"message {n}")
    chat = jp.get(f"/threads/{thread}/chat").text
    shown = [n for n in range(8) if f"<p>message {n}</p>" in chat]
    assert shown == [3, 4, 5, 6, 7]
    assert chat.index("<p>message 3</p>") < chat.index("<p>message 7</p>")  # oldest first
    assert "Earlier messages are in the" in chat
    page = jp.get(f"/threads/{thread}").text
    assert [n for n in range(8) if f"<p>message {n}</p>" in page] == [0, 1, 2, 3, 4]


def test_a_short_chat_says_nothing_about_earlier_messages(as_user, db) -> None:
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, make_category(db), "Short chat", "hello")
    chat = jp.get(f"/threads/{thread}/chat").text
    assert "<p>hello</p>" in chat and "Earlier messages" not in chat
    assert 'data-enter-sends' in chat and 'id="thread-status"' in chat
