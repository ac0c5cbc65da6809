"""Accessibility: every main page passes axe-core (from the npm lock file) with no serious
or critical violation, on a desktop and on a phone; and the number box, posting, reacting
and an ICE exchange work with the keyboard alone (Tab, Enter, Space).

axe-core is never served by the app: ``make setup`` copies it from node_modules to
tests/vendor, and the browser fetches it from an address the test answers itself, so
the page's strict CSP (script-src 'self') stays as users get it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import screenshot
from tests.page_tour import AXE, Tour, contexts_by_user, tour_fixture, visit  # noqa: F401

pytestmark = pytest.mark.browser
AXE_PATH = "/__tests__/axe.min.js"  # answered by the test (context.route), not the app
SIZES = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
SERIOUS = ("serious", "critical")


def run_axe(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=AXE_PATH)
    violations = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ["violations"]});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
    }""")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}"
            for v in violations if v["impact"] in SERIOUS]


def serve_axe(context: Any) -> None:
    assert AXE.exists(), f"{AXE} is missing: run `make setup` (copies axe-core from npm)"
    assert not any(Path(__file__).parent.parent.glob("src/caseforum/static/**/axe*.js")), \
        "axe-core is for the tests: it must not be in static/, where users would get it"
    context.route(f"**{AXE_PATH}", lambda route: route.fulfill(
        path=str(AXE), content_type="text/javascript"))


@pytest.mark.parametrize("size", SIZES)
def test_every_main_page_passes_axe(browser: Any, tour: Tour, size: str) -> None:
    problems: list[str] = []
    for stop, page in contexts_by_user(browser, tour, SIZES[size]):
        if not getattr(page.context, "serves_axe", False):
            serve_axe(page.context)
            page.context.serves_axe = True
        visit(page, tour, stop)
        menu = page.locator(".menu > summary")
        if size == "phone" and menu.count() and menu.is_visible():
            menu.click()  # the folded menu's links are checked too
        found = run_axe(page)
        if found:
            screenshot(page, f"axe-{size}-{stop.name}")
        problems += [f"{stop.name}: {line}" for line in found]
        if page.console_errors:
            problems.append(f"{stop.name}: console errors {page.console_errors}")
            page.console_errors.clear()
    assert not problems, "\n".join(problems)


# Keyboard only ------------------------------------------------------------------------


def tab_to(page: Any, selector: str, text: str = "", *, limit: int = 200) -> None:
    """Press Tab until the focused element matches ``selector`` (and holds ``text``)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("""([selector, text]) => {
            const el = document.activeElement;
            return !!el && el.matches(selector) && (el.textContent || "").includes(text);
        }""", [selector, text]):
            return
    raise AssertionError(f"Tab never reached {selector} {text!r}")


def keyboard_log_in(page: Any, tour: Tour, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{tour.url}/login")
    tab_to(page, "input[name=username]")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type("caseforum-demo")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{tour.url}/")
    page.wait_for_load_state("networkidle")


def test_number_box_posting_and_reacting_with_the_keyboard_alone(page: Any, tour: Tour
                                                                  ) -> None:
    keyboard_log_in(page, tour, "kr.examiner")

    page.keyboard.press("Tab")  # the first stop is the skip link, shown when focused
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()

    tab_to(page, "#numberbox")
    page.keyboard.type("jp 2019-041872")
    page.keyboard.press("Enter")
    page.wait_for_url("**/dossiers/JP/2019041872")
    expect(page.locator("h1")).to_contain_text("2019-041872")

    thread = next(s for s in tour.stops if s.name == "thread").path
    page.goto(f"{tour.url}{thread}")
    page.wait_for_load_state("networkidle")
    tab_to(page, "#composer-body")
    page.keyboard.type("Checked with the keyboard only: claim 4 is new.")
    tab_to(page, "#composer button[type=submit]", "Post")
    page.keyboard.press("Enter")
    expect(page.locator("#posts .post-body").last).to_contain_text(
        "Checked with the keyboard only")
    expect(page.locator("#composer-body")).to_have_value("")

    page.goto(f"{tour.url}{thread}")
    page.wait_for_load_state("networkidle")
    tab_to(page, "button.reaction", "agree")
    post_id = page.evaluate("document.activeElement.closest('article').id")
    page.keyboard.press("Space")
    agree = page.locator(f"#{post_id} button.reaction", has_text="agree")
    expect(agree).to_contain_text("1")  # counted (the post comes back over the socket)
    page.reload()
    expect(agree).to_have_attribute("aria-pressed", "true")
    assert page.console_errors == []


def test_an_ice_exchange_with_the_keyboard_alone(page: Any, tour: Tour, tmp_path: Path
                                                 ) -> None:
    report = tmp_path / "search-report.txt"
    report.write_text("Search report for JP 2019-041872\nX: JP 2016-207528 A (claims 1-3)\n")
    exchange = next(s for s in tour.stops if s.name == "ice-exchange").path

    keyboard_log_in(page, tour, "jp.examiner")  # the donor office
    page.goto(f"{tour.url}{exchange}")
    tab_to(page, "summary", "Accept")
    page.keyboard.press("Enter")  # opens the step's form
    page.keyboard.press("Tab")
    page.keyboard.type("We take it.")
    tab_to(page, "button[type=submit]", "Accept")
    page.keyboard.press("Enter")
    page.wait_for_url("**done=accept*")

    tab_to(page, "summary", "Send report")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.type("Report attached; D1 anticipates claim 1.")
    tab_to(page, "input[type=file]")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(report))
    tab_to(page, "button[type=submit]", "Send report")
    page.keyboard.press("Enter")
    page.wait_for_url("**done=report*")
    progress = page.get_by_role("list", name="Progress of the exchange")
    expect(progress.locator("[aria-current=step]")).to_contain_text("Report delivered")

    keyboard_log_in(page, tour, "sg.examiner")  # the recipient office
    page.goto(f"{tour.url}{exchange}")
    expect(page.get_by_text("Report attached; D1 anticipates claim 1.")).to_be_visible()
    tab_to(page, "summary", "Acknowledge report")
    page.keyboard.press("Enter")
    tab_to(page, "button[type=submit]", "Acknowledge report")
    page.keyboard.press("Enter")
    page.wait_for_url("**done=acknowledge*")
    expect(progress.locator("[aria-current=step]")).to_contain_text("Acknowledged")
    assert page.console_errors == []
