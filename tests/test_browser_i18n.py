"""In a real browser with scripts switched off: the language switcher is a plain form,
a visitor's choice survives logging in, and a user's choice follows them."""

from __future__ import annotations

from typing import Any

import pytest

from caseforum.setup_db import DEMO_PASSWORD
from tests.browser import screenshot

pytestmark = pytest.mark.browser


def test_the_language_switcher_works_without_javascript(browser: Any, live_server: Any) -> None:
    context = browser.new_context(java_script_enabled=False, locale="en-GB")
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/login")
        assert page.locator("html").get_attribute("lang") == "en"
        page.locator(".lang-switch summary").click()
        page.get_by_role("button", name="日本語").click()
        page.wait_for_load_state()
        assert page.url.endswith("/login")
        assert page.locator("html").get_attribute("lang") == "ja"
        assert page.get_by_role("heading", name="ログイン", level=1).is_visible()
        screenshot(page, "i18n-login-ja")

        page.get_by_label("ユーザー名").fill("kr.examiner")
        page.get_by_label("パスワード").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="ログイン").click()
        page.wait_for_load_state()
        assert page.locator("html").get_attribute("lang") == "ja"  # the cookie's choice

        page.locator(".lang-switch summary").click()
        page.get_by_role("button", name="한국어").click()
        page.wait_for_load_state()
        assert page.locator("html").get_attribute("lang") == "ko"
        nav = page.get_by_role("navigation", name="주 메뉴")
        assert nav.get_by_role("link", name="포럼").count() == 1
        screenshot(page, "i18n-home-ko")
    finally:
        context.close()

    # another browser, asking for English: the user's preference wins after log-in
    other = browser.new_context(locale="en-US")
    tab = other.new_page()
    try:
        tab.goto(f"{live_server.url}/login")
        assert tab.locator("html").get_attribute("lang") == "en"
        tab.get_by_label("Username").fill("kr.examiner")
        tab.get_by_label("Password").fill(DEMO_PASSWORD)
        tab.get_by_role("button", name="Log in").click()
        tab.wait_for_url(f"{live_server.url}/")
        assert tab.locator("html").get_attribute("lang") == "ko"
    finally:
        other.close()
