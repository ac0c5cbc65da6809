"""In a real browser: SG's examiner opens a request, JP's examiner answers with a report,
SG's examiner opens the report. Keyboard and labels only, as a screen reader user would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import screenshot
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser
REPORT = "Search report for JP 2017-187096\nX: JP 2010-123456 A (claims 1-3)\n"


@pytest.fixture
def server(hosted_app: Any):
    live = LiveServer(hosted_app).start()
    yield live
    live.stop()


def log_in(page: Any, server: LiveServer, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{server.url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("caseforum-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server.url}/")


def test_request_report_and_reading_it_in_a_browser(page: Any, server: LiveServer,
                                                    tmp_path: Path) -> None:
    claims = tmp_path / "claims.txt"
    claims.write_text("1. A lamp comprising a solar cell and a battery.\n")
    report = tmp_path / "search-report.txt"
    report.write_text(REPORT)

    log_in(page, server, "sg.examiner")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Exchanges").click()
    page.wait_for_url("**/ice")
    page.get_by_role("link", name="New request").click()
    page.get_by_label("Donor office", exact=True).select_option("JP")
    page.get_by_label("Application number").fill("JP 2017-187096")
    page.get_by_label("What is asked").select_option("search")
    page.get_by_label("Message to the donor office").fill("Please search claims 1-3.")
    page.get_by_label("Documents").set_input_files(str(claims))
    page.get_by_label("Message to the donor office").press("Tab")
    page.get_by_role("button", name="Send request").click()
    page.wait_for_url("**/ice/*?done=request")
    assert page.get_by_role("status").first.inner_text() == "Request sent."
    progress = page.get_by_role("list", name="Progress of the exchange")
    assert "Requested" in progress.locator("[aria-current=step]").inner_text()
    exchange_url = page.url.split("?")[0]
    screenshot(page, "ice-request-sent")

    log_in(page, server, "jp.examiner")  # the home page: the request waits for JP
    waiting = page.locator('[data-home-panel="ice-waiting"]')
    expect(waiting.get_by_role("heading", name="Waiting for my office")).to_be_visible()
    expect(waiting.get_by_text("answer the request")).to_be_visible()
    waiting.get_by_role("link", name="JP 2017-187096").click()
    page.wait_for_url(exchange_url)
    expect(page.get_by_text("Please search claims 1-3.")).to_be_visible()
    page.locator("summary", has_text="Accept").click()  # opens the form
    page.get_by_role("button", name="Accept").click()
    page.wait_for_url("**?done=accept*")
    page.locator("summary", has_text="Send report").focus()
    page.keyboard.press("Enter")
    page.locator("#message-report").fill("Report attached; D1 anticipates claim 1.")
    page.locator("#files-report").set_input_files(str(report))
    page.get_by_role("button", name="Send report").click()
    page.wait_for_url("**?done=report*")
    assert "Report delivered" in page.get_by_role(
        "list", name="Progress of the exchange").locator("[aria-current=step]").inner_text()
    screenshot(page, "ice-report-sent")

    log_in(page, server, "sg.examiner")
    page.goto(exchange_url)
    expect(page.get_by_text("Report attached; D1 anticipates claim 1.")).to_be_visible()
    parcel = page.locator(".ice-parcel", has_text="Send report")
    expect(parcel.get_by_text("✓ signature")).to_be_visible()
    expect(parcel.get_by_text("✓ receipt")).to_be_visible()
    # text is handed over as a download, never shown as a page of ours (web/content.py)
    with page.expect_download() as download:
        parcel.get_by_role("link", name="search-report.txt").click()
    assert download.value.suggested_filename == "search-report.txt"
    assert Path(download.value.path()).read_text() == REPORT
    page.goto(exchange_url)
    expect(page.locator("#audit")).to_contain_text("file.opened")
    assert page.console_errors == []  # no CSP violations, no script errors
