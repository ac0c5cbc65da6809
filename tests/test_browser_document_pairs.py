"""In a real browser: an original and its translation side by side on the document
page, two columns at desktop width and one above the other at 390 px, with no console
error, then the pair in Compare."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import log_in, open_tab, screenshot
from tests.dossier_helpers import pdf_bytes, token_for
from tests.test_document_pairs import JP_NUMBER, _pair, jp  # noqa: F401  (the fixture)

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


def _columns(tab: Any) -> tuple[dict[str, float], dict[str, float]]:
    cols = tab.locator(".pair-col")
    expect(cols).to_have_count(2)
    return cols.nth(0).bounding_box(), cols.nth(1).bounding_box()


def test_the_pair_side_by_side_on_desktop_and_phone(browser, live_server, client, db,
                                                    jp) -> None:  # noqa: F811
    original, translation = _pair(client, jp)
    # a document without a pair stays a single view
    single = client.post(f"/api/v1/dossiers/JP/{JP_NUMBER}/documents",
                         headers=token_for(db, "jp.admin"),
                         data={"code": "A63", "date": "2021-01-01", "language": "en"},
                         files={"file": ("a.pdf", pdf_bytes("abstract"), "application/pdf")})
    assert single.status_code == 201
    for viewport, name in ((None, "desktop"), (PHONE, "phone")):
        tab = open_tab(browser, viewport)
        log_in(tab, live_server, "kr.examiner")
        tab.goto(f"{live_server.url}/documents/{translation['id']}")
        left, right = _columns(tab)
        heads = tab.locator(".pair-col h3")
        expect(heads.nth(0)).to_contain_text("Original")
        expect(heads.nth(0)).to_contain_text("Japanese (ja)")
        expect(heads.nth(1)).to_contain_text("Translation")
        expect(heads.nth(1)).to_contain_text("English (en)")
        expect(tab.locator(".pair-col iframe.doc-frame")).to_have_count(2)
        if name == "desktop":  # two columns, level
            assert left["x"] + left["width"] <= right["x"] and abs(left["y"] - right["y"]) < 2
        else:  # stacked, nothing wider than the screen
            assert right["y"] >= left["y"] + left["height"] and abs(left["x"] - right["x"]) < 2
            assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(tab, f"document-pair-{name}")
        tab.goto(f"{live_server.url}/dossiers/JP/{JP_NUMBER}")
        row = tab.locator("tr.doc-row", has_text="translation of")
        expect(row).to_have_count(1)
        expect(row.locator("td.doc-lang")).to_contain_text("English (en)")
        tab.goto(f"{live_server.url}/documents/{single.json()['id']}")
        expect(tab.locator("h1")).to_contain_text("A63")
        expect(tab.locator(".pair-cols")).to_have_count(0)
        tab.goto(f"{live_server.url}/documents/{original['id']}")
        tab.get_by_role("link", name="Compare original and translation").click()
        tab.wait_for_url(re.compile(r"/compare\?a="))
        expect(tab.locator(".compare-head").nth(0)).to_contain_text("Original")
        expect(tab.locator("tr.d-pair").first).to_be_visible()
        screenshot(tab, f"compare-pair-{name}")
        tab.wait_for_load_state("networkidle")
        assert tab.console_errors == [], (name, tab.console_errors)
        tab.context.close()
