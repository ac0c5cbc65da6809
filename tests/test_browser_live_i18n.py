"""In real browsers: a Korean examiner switches to Korean and posts; a Japanese examiner
watching the same thread in Japanese gets the post live with the same dossier card,
each with their own labels and their own clock (issue 14, item 5)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import screenshot
from tests.forum_helpers import make_category
from tests.live_helpers import LIVE, Person, thread_as

pytestmark = pytest.mark.browser

JP_APP = "JP 2019-041872"  # demo family 1: both offices see its card


def switch_to(person: Person, language: str, html_lang: str) -> None:
    """The switcher in the header, as a reader uses it (a logged-in choice is kept)."""
    page = person.page
    page.locator(".lang-switch summary").click()
    page.get_by_role("button", name=language).click()
    page.wait_for_load_state("networkidle")
    assert page.locator("html").get_attribute("lang") == html_lang


def card_links(card: Any) -> list[str]:
    return card.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")


def test_a_korean_post_reaches_a_japanese_reader_in_japanese_with_the_same_card(
        browser: Any, live_server: Any, db: Any) -> None:
    thread = thread_as(db, "kr.examiner", make_category(db), "Sulfide electrolytes",
                       "Opening the discussion.")
    kr = Person(browser, live_server, "kr.examiner")
    jp = Person(browser, live_server, "jp.examiner")
    try:
        switch_to(kr, "한국어", "ko")
        switch_to(jp, "日本語", "ja")
        jp.open(f"/threads/{thread}")
        kr.open(f"/threads/{thread}")

        body = f"{JP_APP} 의 검색보고서를 확인해 주세요."
        kr.page.locator("#composer-body").fill(body)
        kr.page.get_by_role("button", name="게시", exact=True).click()

        mine = kr.page.locator(".post").last
        theirs = jp.page.locator(".post").last
        expect(mine).to_contain_text(body, timeout=LIVE)
        expect(theirs).to_contain_text(body, timeout=LIVE)

        # each reads the card in their own language ...
        ko_card, ja_card = mine.locator(".dossier-card"), theirs.locator(".dossier-card")
        expect(ko_card).to_contain_text("출원일")
        expect(ko_card.locator(".card-open")).to_have_text("도시에 열기")
        expect(ja_card).to_contain_text("出願日")
        expect(ja_card.locator(".card-open")).to_have_text("ドシエを開く")
        # ... and it is the same card: the same dossier and documents, the same title
        assert card_links(ko_card) == card_links(ja_card)
        assert ko_card.locator(".card-title").inner_text() == \
            ja_card.locator(".card-title").inner_text()

        # each their own clock: Seoul and Tokyo share an offset, not an abbreviation
        ko_time = mine.locator("time").first.inner_text()
        ja_time = theirs.locator("time").first.inner_text()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d KST", ko_time), ko_time
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d JST", ja_time), ja_time
        assert mine.locator("time").first.get_attribute("datetime") == \
            theirs.locator("time").first.get_attribute("datetime")

        # the rest of the post speaks each reader's language too
        expect(theirs.get_by_role("link", name="返信")).to_have_count(1)
        expect(mine.get_by_role("link", name="답글")).to_have_count(1)
        screenshot(jp.page, "live-i18n-ja")
        screenshot(kr.page, "live-i18n-ko")

        # a reload draws what the socket pushed
        pushed = ja_card.inner_text()
        jp.open(f"/threads/{thread}")
        assert jp.page.locator(".post").last.locator(".dossier-card").inner_text() == pushed
        assert kr.errors == [] and jp.errors == []
    finally:
        kr.context.close()
        jp.context.close()
