"""In a real browser: find by a loosely typed number, timeline, compare, download."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import screenshot
from tests.dossier_helpers import dossier_json, pdf_bytes, token_for, upload

pytestmark = pytest.mark.browser


@pytest.fixture
def dossiers(client, db) -> None:
    jp = token_for(db, "jp.examiner")
    us = token_for(db, "us.admin")
    client.post("/api/v1/dossiers", headers=jp, json=dossier_json(
        "JP", "2017-187096", publication_number="JP 2019-054321 A", filing_date="2017-09-28",
        title="Fin stack for heat exchangers"))
    client.post("/api/v1/dossiers", headers=us, json=dossier_json(
        "US", "16/123,456", publication_number="US 2019/0094321 A1", filing_date="2018-09-27",
        priorities=[{"office": "JP", "number": "2017-187096", "date": "2017-09-28"}],
        title="Fin stack for heat exchangers"))
    upload(client, jp, "JP", "2017187096", pdf_bytes("1. A fin stack of aluminium."),
           code="CLM", date="2017-09-28")
    upload(client, us, "US", "16123456", pdf_bytes("1. A fin stack of copper."),
           code="AMND", date="2019-08-01")


def test_examiner_finds_follows_family_compares_and_downloads(
    page, live_server, dossiers
) -> None:
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Username").fill("kr.examiner")
    page.get_by_label("Password").fill("caseforum-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")

    box = page.get_by_label("Go to application or publication number")
    box.fill("us 16 123 456")
    box.press("Enter")
    page.wait_for_url("**/dossiers/US/16123456")
    assert "Fin stack for heat exchangers" in page.locator("h1").inner_text()

    page.get_by_role("link", name="Family timeline").click()
    page.wait_for_url("**/timeline")
    items = page.locator(".tl-item")
    assert items.count() == 2
    assert "JP" in items.nth(0).inner_text() and "US" in items.nth(1).inner_text()
    page.get_by_label("JP", exact=True).uncheck()  # filter by office, live
    expect(page.locator(".tl-item")).to_have_count(1)
    screenshot(page, "timeline")

    page.goto(f"{live_server.url}/dossiers/JP/2017187096")
    page.goto(f"{live_server.url}/dossiers/US/16123456")
    # compare the US amendment with the JP claims: tick one here, one via URL of the JP doc
    us_doc = page.locator("input[name=doc]").first.get_attribute("value")
    page.goto(f"{live_server.url}/dossiers/JP/2017187096")
    jp_doc = page.locator("input[name=doc]").first.get_attribute("value")
    page.goto(f"{live_server.url}/compare?doc={jp_doc}&doc={us_doc}")
    assert page.locator("del").first.inner_text().startswith("aluminium")
    assert page.locator("ins").first.inner_text().startswith("copper")
    screenshot(page, "compare")

    page.goto(f"{live_server.url}/dossiers/US/16123456")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download").first.click()
    download = info.value
    assert download.suggested_filename.endswith(".pdf")
    assert Path(download.path()).read_bytes()[:5] == b"%PDF-"
    assert page.console_errors == []
