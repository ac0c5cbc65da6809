"""In a real browser: log in, open the plugin page, switch a plugin off and on."""

from __future__ import annotations

import pytest

from tests.browser import log_in, screenshot

pytestmark = pytest.mark.browser


def test_admin_logs_in_and_manages_plugins(page, live_server) -> None:
    log_in(page, live_server, "admin")
    assert page.get_by_role("heading", name="Welcome, Platform administrator").is_visible()
    page.get_by_role("link", name="Admin").click()
    page.get_by_role("link", name="Plugins").click()
    page.wait_for_url("**/admin/plugins")
    row = page.locator("#plugin-opd_link")
    assert "enabled" in row.inner_text()
    row.get_by_role("button", name="Disable opd_link").click()
    page.locator("#plugin-opd_link .chip.state-disabled").wait_for()
    screenshot(page, "admin-plugins")
    page.reload()
    assert "disabled" in page.locator("#plugin-opd_link").inner_text()
    page.locator("#plugin-opd_link").get_by_role("button", name="Enable opd_link").click()
    page.locator("#plugin-opd_link .chip.state-enabled").wait_for()
    assert page.console_errors == []  # no CSP violations, no script errors


def test_wrong_password_shows_message_in_browser(page, live_server) -> None:
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Username").fill("jp.examiner")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong username or password."
    screenshot(page, "login-error")
