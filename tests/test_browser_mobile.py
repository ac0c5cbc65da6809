"""At 390×844, a phone held upright: no page scrolls sideways, the number box spans the
screen, the menu folds away behind a "Menu" toggle that opens and closes, wide tables
scroll inside their own box, and what a thumb taps is at least 44 px tall."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import log_in, open_tab, screenshot
from tests.page_tour import Tour, contexts_by_user, tour_fixture, visit  # noqa: F401

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
MIN_TAP = 44

# what a thumb taps: controls and the links that act as buttons (text links inside
# sentences and table cells are exempt, as in WCAG's target-size rule)
TAP_TARGETS = """() => {
  const selector = [
    ".menu > summary", "#numberbox", ".topbar-user a", ".topbar-user button",
    "main button", "main select", "main summary", "main a.button", "main a.ice-button",
    "main input:not([type=checkbox]):not([type=radio]):not([type=hidden]):not([type=file])",
    "main label:has(> input[type=checkbox])", "main label:has(> input[type=radio])",
    ".tabs a", ".ice-tabs a", ".post-actions a",
  ].join(", ");
  const small = [];
  for (const el of document.querySelectorAll(selector)) {
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || !el.checkVisibility()) { continue; }
    if (box.height < 43.5) {
      small.push(`${el.tagName.toLowerCase()} "${(el.textContent || el.name || el.id).trim()
        .slice(0, 30)}" ${Math.round(box.height)} px`);
    }
  }
  return small;
}"""


def test_every_main_page_fits_a_phone_screen(browser: Any, tour: Tour) -> None:
    problems: list[str] = []
    for stop, page in contexts_by_user(browser, tour, PHONE):
        visit(page, tour, stop)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            screenshot(page, f"mobile-overflow-{stop.name}")
            problems.append(f"{stop.name}: the page is {width} px wide")
        if stop.name == "api-docs":  # Swagger UI's own page: no app frame
            continue
        box = page.locator("#numberbox").bounding_box()
        if box is None or box["width"] < PHONE["width"] - 60:
            problems.append(f"{stop.name}: number box {box and box['width']} px wide")
        if page.locator(".sidenav li a").first.is_visible():
            problems.append(f"{stop.name}: the menu is unfolded on arrival")
        for small in page.evaluate(TAP_TARGETS):
            problems.append(f"{stop.name}: {small} (under {MIN_TAP} px) to tap")
        if page.console_errors:
            problems.append(f"{stop.name}: console errors {page.console_errors}")
            page.console_errors.clear()
    assert not problems, "\n".join(problems)


def test_the_menu_opens_closes_and_takes_the_reader_somewhere(browser: Any, tour: Tour
                                                              ) -> None:
    page = open_tab(browser, PHONE)
    try:
        log_in(page, tour.server, "jp.examiner")
        toggle = page.locator(".menu > summary")
        forum = page.get_by_role("navigation", name="Main").get_by_role("link", name="Forum")
        expect(toggle).to_be_visible()
        expect(forum).to_be_hidden()

        toggle.click()
        expect(forum).to_be_visible()
        assert forum.bounding_box()["height"] >= MIN_TAP  # type: ignore[index]
        screenshot(page, "mobile-menu-open")
        toggle.click()
        expect(forum).to_be_hidden()

        toggle.focus()  # the keyboard opens it too
        page.keyboard.press("Enter")
        expect(forum).to_be_visible()
        forum.click()
        page.wait_for_url("**/forum")
        expect(page.locator("h1")).to_contain_text("Forum")
        # the new page starts with the menu folded again
        expect(page.get_by_role("navigation", name="Main").get_by_role(
            "link", name="Dossiers")).to_be_hidden()
        expect(page.locator(".menu > summary")).to_be_visible()
    finally:
        page.context.close()


def test_on_a_wide_screen_the_menu_stays_open_without_a_toggle(browser: Any, tour: Tour
                                                                ) -> None:
    page = open_tab(browser)
    try:
        log_in(page, tour.server, "jp.examiner")
        expect(page.locator(".menu > summary")).to_be_hidden()
        nav = page.get_by_role("navigation", name="Main")
        for label in ("Home", "Dossiers", "Forum", "Exchanges"):
            expect(nav.get_by_role("link", name=label)).to_be_visible()
    finally:
        page.context.close()


def test_a_wide_table_scrolls_in_its_own_box_and_takes_keyboard_focus(
        browser: Any, tour: Tour) -> None:
    page = open_tab(browser, PHONE)
    try:
        log_in(page, tour.server, "jp.admin")
        page.goto(f"{tour.url}/stats")
        table = page.locator("table.dense").first
        sizes = table.evaluate("t => [t.scrollWidth, t.clientWidth]")
        assert sizes[0] > sizes[1], "the statistics table should be wider than the screen"
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        # no link inside: the box itself is focusable, so arrow keys can scroll it
        assert table.get_attribute("tabindex") == "0"
        table.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("t => t.scrollLeft > 0", arg=table.element_handle())

        page.set_viewport_size({"width": 1280, "height": 860})  # wide again: no scrolling,
        page.wait_for_function("t => !t.hasAttribute('tabindex')",  # no extra tab stop
                               arg=table.element_handle())
    finally:
        page.context.close()
