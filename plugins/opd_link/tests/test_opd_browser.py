"""In a real browser: an examiner of an accessing office types a number held only by
the One Portal Dossier, sees the family timeline and opens a document."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from caseforum.app import create_app
from caseforum.config import Settings
from plugins.opd_link.tests.conftest import FIXTURES, Reference
from tests.browser import log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def app(settings: Settings, reference: Reference) -> Any:
    """The app with the OPD link pointed at the reference server (``live_server``
    serves this one)."""
    opd = {"base_url": reference.url, "timeout_seconds": 2, "retries": 1}
    return create_app(settings.model_copy(update={"plugins": {"opd_link": opd}}))


def test_examiner_opens_an_opd_family_and_a_document(page: Any, live_server: Any,
                                                    reference: Reference) -> None:
    log_in(page, live_server, "kr.examiner")
    box = page.get_by_label("Go to application or publication number")
    box.fill("US 16/123,456")
    box.press("Enter")
    page.wait_for_url("**/dossiers/US/16123456")
    expect(page.locator("#source-banner")).to_contain_text(
        "From One Portal Dossier, last refreshed")

    page.get_by_role("link", name="Family timeline").click()
    page.wait_for_url("**/timeline")
    items = page.locator(".tl-item")
    expect(items.filter(has_text="A131").first).to_be_visible()  # the JP member's refusal
    expect(items.filter(has_text="CTNF").first).to_be_visible()

    calls = reference.requests
    items.filter(has_text="ISSUE.NTF").first.get_by_role("link").click()
    page.wait_for_url("**/documents/*")
    frame = page.locator("iframe.doc-frame")
    expect(frame).to_be_visible()
    src = frame.get_attribute("src") or ""
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    pdf = httpx.get(live_server.url + src if src.startswith("/") else src, cookies=cookies)
    assert pdf.status_code == 200
    assert pdf.content == (FIXTURES / "doccontent_US_201816123456.A_KJM2MWIEDFLYX10_1.pdf"
                           ).read_bytes()
    assert reference.requests == calls + 1  # fetched once, for the frame; then held here
