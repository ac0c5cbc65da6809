"""In real browsers: one examiner posts, another sees it appear live, then
follows the dossier card to the dossier."""

from __future__ import annotations

import pytest

from tests.browser import screenshot
from tests.dossier_helpers import dossier_json, pdf_bytes, token_for, upload
from tests.forum_helpers import make_category, start_thread

pytestmark = pytest.mark.browser


def _log_in(browser, live_server, username: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("caseforum-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")
    return context, page, errors


def test_post_appears_live_and_card_leads_to_the_dossier(browser, live_server, client, db,
                                                         as_user) -> None:
    jp = token_for(db, "jp.examiner")
    client.post("/api/v1/dossiers", headers=jp, json=dossier_json(
        "JP", "2017-187096", publication_number="JP 2019-054321 A", filing_date="2017-09-28",
        title="Fin stack for heat exchangers"))
    upload(client, jp, "JP", "2017187096", pdf_bytes("search report"), code="SRPT",
           date="2018-05-01")
    cat = make_category(db)
    author, csrf = as_user("jp.examiner")
    thread = start_thread(author, csrf, cat, "Fin stacks", "Opening the discussion.")

    ctx_a, watcher, watcher_errors = _log_in(browser, live_server, "kr.examiner")
    ctx_b, poster, poster_errors = _log_in(browser, live_server, "cn.examiner")
    try:
        watcher.goto(f"{live_server.url}/threads/{thread}")
        poster.goto(f"{live_server.url}/threads/{thread}")
        watcher.locator("[data-live]").wait_for(state="attached")
        poster.get_by_label("Your post").fill("CNIPA cited the same art as JP2017-187096.")
        poster.locator("#preview .dossier-card").wait_for()  # live preview with the card
        poster.get_by_role("button", name="Post", exact=True).click()
        card = watcher.locator(".post .dossier-card").last
        card.wait_for(timeout=10_000)
        assert "Fin stack for heat exchangers" in card.inner_text()
        assert poster.locator("#composer-body").input_value() == ""  # composer cleared
        poster.locator(".post .dossier-card").last.wait_for()  # the author sees it too
        screenshot(watcher, "thread-live")
        card.get_by_role("link", name="Open dossier").click()
        watcher.wait_for_url("**/dossiers/JP/2017187096")
        assert "Fin stack for heat exchangers" in watcher.locator("h1").inner_text()
        assert watcher_errors == [] and poster_errors == []
    finally:
        ctx_a.close()
        ctx_b.close()
