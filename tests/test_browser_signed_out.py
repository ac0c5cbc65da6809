"""A page whose log-in ends while it is open says so, and keeps what was typed.

When the server closes a page's live socket because the viewer's session ended
(logged out in another tab, or an administrator disabled the account: close code
4401), live updates stop.  Without a word the examiner would go on typing a reply
into a page that is no longer live and lose it on the next click; the page shows a
notice at the top instead, with a log-in link that comes back to this page, and
reloads nothing, so the draft in the composer stays.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from caseforum.models import User
from tests.browser import log_in, open_tab, screenshot
from tests.forum_helpers import make_category
from tests.live_helpers import LIVE, thread_as
from tests.test_forum_live import Browserless

pytestmark = pytest.mark.browser

NOTICE = "You have been signed out"
DRAFT = "A reply I spent ten minutes on, about claim 3"


def _open_thread_with_draft(tab: Any, live_server: Any, thread: int) -> None:
    with tab.expect_websocket():
        tab.goto(f"{live_server.url}/threads/{thread}")
    tab.wait_for_load_state("networkidle")
    with tab.expect_response("**/preview"):  # the composer's preview, while still signed in
        tab.get_by_label("Your post").fill(DRAFT)


def _assert_notice(tab: Any, thread: int) -> Any:
    from playwright.sync_api import expect

    notice = tab.get_by_role("alert").filter(has_text=NOTICE)
    expect(notice).to_be_visible(timeout=LIVE)
    link = notice.get_by_role("link")
    assert link.get_attribute("href") == f"/login?next=%2Fthreads%2F{thread}"
    assert tab.get_by_label("Your post").input_value() == DRAFT  # nothing reloaded
    return notice


def test_an_account_disabled_by_an_admin_gets_the_notice_and_keeps_the_draft(
        browser: Any, live_server: Any, db: Any) -> None:
    thread = thread_as(db, "jp.examiner", make_category(db, "Signed out"), "Claim 3")
    tab = open_tab(browser)
    log_in(tab, live_server, "kr.examiner")
    _open_thread_with_draft(tab, live_server, thread)

    admin = Browserless(live_server.url, "admin")
    kr = db.exec(select(User.id).where(User.username == "kr.examiner")).one()
    done = admin.http.post(f"/admin/users/{kr}/disable", data={"csrf_token": admin.csrf})
    assert done.status_code in (200, 303), done.text

    _assert_notice(tab, thread)
    screenshot(tab, "signed-out-desktop")
    assert tab.console_errors == []
    tab.context.close()


def test_logging_out_in_another_tab_shows_the_notice_on_a_phone(
        browser: Any, live_server: Any, db: Any) -> None:
    thread = thread_as(db, "jp.examiner", make_category(db, "Signed out"), "Claim 3")
    tab = open_tab(browser, {"width": 390, "height": 844})
    log_in(tab, live_server, "kr.examiner")
    _open_thread_with_draft(tab, live_server, thread)

    other = tab.context.new_page()  # the same browser, so the same session
    other.goto(f"{live_server.url}/")
    other.get_by_role("button", name="Log out").click()
    other.wait_for_url(f"{live_server.url}/**")
    other.close()

    notice = _assert_notice(tab, thread)
    box = notice.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert tab.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(tab, "signed-out-390")
    assert tab.console_errors == []
    # the link signs in again and comes back to the thread
    notice.get_by_role("link").click()
    tab.wait_for_url(f"{live_server.url}/login?next=*")
    tab.context.close()
