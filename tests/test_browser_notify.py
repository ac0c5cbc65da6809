"""In a real browser: follow a family from the dossier page; another office uploads;
the bell counts it live; opening the notification shows the document and reads it."""

from __future__ import annotations

import pytest

from tests.browser import log_in, screenshot
from tests.dossier_helpers import pdf_bytes, token_for, upload

pytestmark = pytest.mark.browser


def test_follow_a_family_and_open_the_new_document_from_the_bell(page, live_server, client,
                                                                 db) -> None:
    log_in(page, live_server, "kr.examiner")
    page.goto(f"{live_server.url}/notifications")
    page.get_by_role("button", name="Mark all as read").click()
    page.goto(f"{live_server.url}/dossiers/JP/2019041872")
    page.get_by_role("link", name="Follow its family").click()
    page.get_by_role("button", name="Follow").click()
    page.wait_for_url(f"{live_server.url}/subscriptions")
    assert "family of JP 2019-041872" in page.locator("#subscriptions").inner_text()
    page.goto(f"{live_server.url}/")
    page.locator("[data-live]").first.wait_for(state="attached")
    assert page.locator("#bell-count").inner_text() == "0"

    response = upload(client, token_for(db, "jp.admin"), "JP", "2019-041872",
                      pdf_bytes("Second search report"), code="SRPT", date="2021-02-03")
    assert response.status_code == 201, response.text
    doc_id = response.json()["id"]
    page.locator("#bell-count", has_text="1").wait_for(timeout=15_000)  # live, no reload
    page.locator("#bell").click()
    page.wait_for_url(f"{live_server.url}/notifications")
    screenshot(page, "notifications-grouped")
    page.get_by_role("link", name="New SRPT in JP 2019-041872").click()
    page.wait_for_url(f"{live_server.url}/documents/{doc_id}")
    page.goto(f"{live_server.url}/notifications")
    assert page.locator("#bell-count").inner_text() == "0"
    assert page.locator(".notifications .is-unread").count() == 0
    assert page.console_errors == []
