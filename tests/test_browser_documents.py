"""In a real browser: filter a dossier's documents by group, then compare documents
of two family members ticked on the timeline."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import log_in, screenshot
from tests.test_dossier_documents import family  # noqa: F401  (the fixture)

pytestmark = pytest.mark.browser


def test_group_filter_and_cross_family_compare(page, live_server, family) -> None:  # noqa: F811
    log_in(page, live_server, "kr.examiner")
    page.goto(f"{live_server.url}/dossiers/JP/2017187096")
    rows = page.locator("tr.doc-row")
    expect(rows).to_have_count(6)
    assert rows.first.locator("td.doc-group").inner_text() == "Application"

    page.get_by_role("checkbox", name=re.compile("^Search")).check()  # htmx, no reload
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Search report by a registered search organization")
    page.wait_for_url(re.compile(r"group=search"))
    page.reload()  # the filtered URL renders whole
    expect(page.locator("tr.doc-row")).to_have_count(1)
    expect(page.get_by_role("checkbox", name=re.compile("^Search"))).to_be_checked()
    page.get_by_role("checkbox", name=re.compile("^Search")).uncheck()
    expect(page.locator("tr.doc-row")).to_have_count(6)
    screenshot(page, "documents-by-date")

    page.goto(f"{live_server.url}/dossiers/US/16123456/timeline")
    page.get_by_label(re.compile(r"^Compare JP CLM")).check()
    page.get_by_label(re.compile(r"^Compare US CLM")).check()
    page.get_by_role("button", name="Compare the two ticked documents").click()
    page.wait_for_url(re.compile(r"/compare\?doc="))
    heads = page.locator(".compare-head")
    expect(heads.nth(0)).to_contain_text("Japanese (ja)")
    expect(heads.nth(1)).to_contain_text("English (en)")
    expect(page.locator("ins").first).to_contain_text("layered")
    screenshot(page, "compare-across-family")
    page.wait_for_load_state("networkidle")
    assert page.console_errors == []
