"""In a real browser, as a visitor who is not logged in: the landing page, a public
dossier, and a thread link that asks to log in and then opens the thread."""

from __future__ import annotations

import pytest

from tests.browser import screenshot
from tests.forum_helpers import make_category, start_thread

pytestmark = pytest.mark.browser


def test_visitor_lands_looks_up_a_number_and_reads_a_public_dossier(page, live_server) -> None:
    page.goto(f"{live_server.url}/")
    assert page.get_by_role("heading", name="CaseForum", level=1).is_visible()
    assert "patent offices share" in page.locator("main").inner_text()
    offices = page.locator("#public-offices-h + ul").inner_text()
    assert "Japan Patent Office" in offices and "International Bureau of WIPO" in offices
    screenshot(page, "portal-landing")

    box = page.get_by_label("Application or publication number", exact=True)
    box.fill("jp 2019 041872")
    box.press("Enter")
    page.wait_for_url("**/dossiers/JP/2019041872")
    main = page.locator("main")
    assert "Public view" in main.inner_text()
    visibilities = page.locator("#documents .chip:not(.lang)").all_inner_texts()
    assert visibilities and set(visibilities) == {"public"}
    # the family shows the members of open offices only: JP and the PCT application
    family = page.locator("#family tbody").inner_text()
    assert "PCT/JP2020/009517" in family and "CN" not in family and "US" not in family
    page.locator("#documents a", has_text="View").first.click()
    page.wait_for_url("**/documents/*")
    screenshot(page, "portal-public-document")
    assert page.console_errors == []


def test_landing_page_fits_a_phone(page, live_server) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the landing page is {width} px wide in a 390 px screen"
    assert page.console_errors == []


def test_a_thread_link_asks_to_log_in_then_opens_the_thread(page, live_server, db,
                                                            as_user) -> None:
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, make_category(db, "Search practice"), "Shared X documents",
                          "Does anyone read D1 differently?")
    page.goto(f"{live_server.url}/threads/{thread}")
    page.wait_for_url(f"**/login?next=/threads/{thread}")
    assert "you will be taken back to" in page.locator("main").inner_text()
    page.get_by_label("Username").fill("kr.examiner")
    page.get_by_label("Password").fill("caseforum-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/threads/{thread}")
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("heading", name="Shared X documents").is_visible()
    assert page.console_errors == []
