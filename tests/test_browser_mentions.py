"""In a real browser: @mentions are completed from the keyboard as they are typed,
an @name that matches no user is flagged under the box before sending, and the
sent post shows the mention highlighted and a dossier carded earlier in one line."""

from __future__ import annotations

import pytest

from tests.browser import log_in, screenshot
from tests.forum_helpers import make_category, start_thread

pytestmark = pytest.mark.browser

JP_APP = "JP 2019-041872"  # demo family 1


def test_mention_completion_and_unknown_name_warning(page, live_server, as_user, db) -> None:
    author, csrf = as_user("jp.examiner")
    thread = start_thread(author, csrf, make_category(db), "Who reads this",
                          f"Opening with {JP_APP}.")
    log_in(page, live_server, "cn.examiner")
    page.goto(f"{live_server.url}/threads/{thread}")
    page.wait_for_load_state("networkidle")
    box = page.get_by_label("Your post")
    box.click()
    box.press_sequentially("Asking @kr", delay=30)
    listbox = page.get_by_role("listbox", name="People to mention")
    listbox.wait_for()
    options = listbox.get_by_role("option")
    assert options.first.inner_text().startswith("@kr.examiner")
    screenshot(page, "mention-list")
    assert box.get_attribute("aria-activedescendant") == options.first.get_attribute("id")
    box.press("Enter")  # takes the name: no line break, nothing sent
    assert box.input_value() == "Asking @kr.examiner "
    assert listbox.count() == 0

    # several matches: the arrows move, Escape closes without taking anything
    box.press_sequentially("and @a", delay=30)
    listbox.wait_for()
    assert options.count() > 1  # admin, au.examiner, ...
    box.press("ArrowDown")
    assert options.nth(1).get_attribute("aria-selected") == "true"
    box.press("ArrowUp")
    assert options.first.get_attribute("aria-selected") == "true"
    box.press("Escape")
    assert listbox.count() == 0
    assert box.input_value() == "Asking @kr.examiner and @a"

    # a name nobody has: the warning appears under the box before sending
    box.press_sequentially("nobody.here about " + JP_APP, delay=10)
    warning = page.locator("#preview .mention-warning")
    warning.wait_for()
    assert "@anobody.here" in warning.inner_text()
    assert "kr.examiner" not in warning.inner_text()
    page.locator("#preview .dossier-ref").wait_for()  # carded above: one line in the preview
    screenshot(page, "mention-warning")

    page.get_by_role("button", name="Post", exact=True).click()
    post = page.locator(".post").last
    post.locator(".mention").wait_for(timeout=10_000)
    assert post.locator(".mention").inner_text() == "@kr.examiner"
    assert post.locator(".dossier-ref").count() == 1 and post.locator(".dossier-card").count() == 0
    assert page.locator(".dossier-card").count() == 1  # the first post's, once
    assert page.console_errors == []
