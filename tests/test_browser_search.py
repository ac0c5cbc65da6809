"""In a real browser: search from the header box, narrow by office, open a result."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import log_in, screenshot

pytestmark = pytest.mark.browser


def test_search_from_the_header_filter_by_office_open_a_result(page, live_server) -> None:
    log_in(page, live_server, "cn.examiner")
    page.locator("#numberbox").fill("sulfide electrolyte")
    page.locator("#numberbox").press("Enter")
    page.wait_for_url("**/search?q=sulfide*")
    results = page.locator("#results")
    expect(results.locator(".search-hit").first).to_be_visible()
    page.get_by_label("Office").select_option("KR")  # htmx: only the results change
    expect(page).to_have_url(re.compile(r".*/search\?q=sulfide(\+|%20)electrolyte.*office=KR"))
    hits = results.locator(".search-hit")
    expect(hits.first).to_be_visible()
    for text in hits.locator(".office-badge").all_inner_texts():
        assert text == "KR"
    screenshot(page, "search-kr")
    title = hits.first.locator("a").inner_text()
    hits.first.locator("a").click()
    page.wait_for_url(re.compile(r".*/(dossiers|documents)/.*"))
    number = title.split(" · ")[-1].split(":")[0].split(" ", 1)[-1]  # "10-2021-7028846"
    assert number in page.content()
    assert page.console_errors == []


def test_narrow_by_document_group_then_by_a_facet_link(page, live_server) -> None:
    log_in(page, live_server, "cn.examiner")
    page.goto(f"{live_server.url}/search?q=sulfide")
    results = page.locator("#results")
    expect(results.locator(".facet[data-facet='group']")).to_be_visible()
    page.get_by_label("Document group").select_option("search")  # htmx: results only
    expect(page).to_have_url(re.compile(r".*group=search.*"))
    expect(results.locator(".search-hit").first).to_be_visible()
    for kind in results.locator(".search-hit .kind").all_inner_texts():
        assert kind == "document"
    office = results.locator(".facet[data-facet='office'] a").first
    chosen = office.inner_text().split()[0]
    office.click()  # a plain link: the whole page, filters kept
    expect(page).to_have_url(re.compile(rf".*office={chosen}.*"))
    expect(page.get_by_label("Document group")).to_have_value("search")
    expect(page.get_by_label("Office")).to_have_value(chosen)
    expect(results.locator(".facet[data-facet='office'] a[aria-current='true']")).to_be_visible()
    assert page.console_errors == []
