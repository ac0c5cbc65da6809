"""In a real browser: every 4xx answer to an htmx request shows its message where
the user acted (inline for forms, with the typed input kept; the error page for a
navigation), and none of it logs a console error."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import log_in, screenshot
from tests.dossier_helpers import dossier_json, pdf_bytes, token_for, upload
from tests.forum_helpers import make_category, start_thread

pytestmark = pytest.mark.browser

# Chromium logs every 4xx fetch itself ("Failed to load resource"): expected here, not a
# script or CSP error; a 5xx is still counted
NETWORK_LOG = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d")


def _script_errors(page) -> list[str]:
    return [text for text in page.console_errors if not NETWORK_LOG.match(text)]


def _alert_in(form):
    alert = form.get_by_role("alert")
    alert.wait_for()
    return alert


@pytest.fixture
def dossier(client, db) -> None:
    jp = token_for(db, "jp.examiner")
    client.post("/api/v1/dossiers", headers=jp, json=dossier_json(
        "JP", "2017-187096", publication_number="JP 2019-054321 A", filing_date="2017-09-28",
        title="Fin stack for heat exchangers"))
    upload(client, jp, "JP", "2017187096", pdf_bytes("1. A fin stack of aluminium."),
           code="CLM", date="2017-09-28")
    upload(client, jp, "JP", "2017187096", pdf_bytes("1. A fin stack of copper."),
           code="AMND", date="2019-08-01")


def test_number_box_errors_show_under_the_box_with_the_number_kept(page, live_server) -> None:
    log_in(page, live_server, "jp.examiner")
    box = page.get_by_label("Go to application or publication number")
    form = page.locator("form.numberbox")
    for typed, message in (("JP 2099-999999", "No dossier matches"), ("US 16/12", "expected")):
        box.fill(typed)
        box.press("Enter")
        alert = _alert_in(form)
        expect(alert).to_contain_text("Error 404")
        expect(alert).to_contain_text(message)
        assert alert.is_visible()
        assert box.input_value() == typed  # the user's text is still there
        assert page.url == f"{live_server.url}/"  # the page did not go anywhere
    screenshot(page, "error-numberbox")
    assert _script_errors(page) == []


def test_compare_with_one_document_ticked_says_so_on_the_dossier(page, live_server,
                                                                 dossier) -> None:
    log_in(page, live_server, "jp.examiner")
    page.goto(f"{live_server.url}/dossiers/JP/2017187096")
    first = page.locator("input[name=doc]").first
    first.check()
    page.get_by_role("button", name="Compare the two ticked documents").click()
    alert = _alert_in(page.locator("form.docs-form"))
    expect(alert).to_contain_text("tick exactly two documents to compare")
    expect(alert).to_contain_text("Error 422")
    assert first.is_checked()
    assert page.url.endswith("/dossiers/JP/2017187096")
    assert _script_errors(page) == []


def test_blank_post_and_blank_thread_title_show_the_message_and_keep_the_text(
        page, live_server, db, as_user) -> None:
    cat = make_category(db)
    author, csrf = as_user("jp.examiner")
    thread = start_thread(author, csrf, cat, "Fin stacks", "Opening the discussion.")
    log_in(page, live_server, "jp.examiner")

    page.goto(f"{live_server.url}/forum/c/{cat}")
    page.get_by_label("Title").fill("   ")
    body = page.get_by_label("First post")
    body.fill("A first post under a blank title.")
    page.get_by_role("button", name="Start thread").click()
    alert = _alert_in(page.locator("form", has=page.get_by_label("Title")))
    expect(alert).to_contain_text("Error 422")
    assert body.input_value() == "A first post under a blank title."

    page.goto(f"{live_server.url}/threads/{thread}")
    composer = page.get_by_label("Your post")
    composer.fill("   \n  ")
    page.get_by_role("button", name="Post", exact=True).click()
    alert = _alert_in(page.locator("form", has=composer))
    expect(alert).to_contain_text("Error 422")
    assert composer.input_value() == "   \n  "  # not reset as after a good post
    screenshot(page, "error-blank-post")
    assert _script_errors(page) == []


def test_admin_forms_show_duplicate_username_and_missing_scope(page, live_server) -> None:
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/admin/users")
    form = page.locator("form", has=page.get_by_role("button", name="Create user"))
    form.get_by_label("Username").fill("jp.examiner")
    form.get_by_label("Name", exact=True).fill("A second JP examiner")
    form.get_by_label("Password").fill("long-enough-password")
    form.get_by_role("button", name="Create user").click()
    alert = _alert_in(form)
    expect(alert).to_contain_text("jp.examiner")
    assert re.search(r"Error 4\d\d", alert.inner_text())
    assert form.get_by_label("Name", exact=True).input_value() == "A second JP examiner"

    page.get_by_text("New API token for jp.examiner").click()
    token_form = page.locator("details[open] form")
    token_form.locator("input[name=name]").fill("nightly upload")
    token_form.get_by_role("button", name="Create token").click()
    alert = _alert_in(token_form)
    assert re.search(r"Error 4\d\d", alert.inner_text())
    assert "scope" in alert.inner_text().lower()
    assert token_form.locator("input[name=name]").input_value() == "nightly upload"
    screenshot(page, "error-admin-token")
    assert _script_errors(page) == []


def test_dead_link_shows_the_error_page(page, live_server) -> None:
    log_in(page, live_server, "jp.examiner")
    page.evaluate("""() => {
        const a = document.createElement("a");
        a.href = "/dossiers/JP/2099999999";
        a.textContent = "an old link";
        document.getElementById("main").prepend(a);
        htmx.process(a);
    }""")
    page.get_by_role("link", name="an old link").click()
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Error 404")
    assert page.get_by_role("link", name="Back to the home page").is_visible()
    screenshot(page, "error-dead-link")
    assert _script_errors(page) == []


def test_hx_get_outside_a_form_that_fails_shows_the_error_page_in_main(page, live_server) -> None:
    log_in(page, live_server, "jp.examiner")
    page.evaluate("""() => {
        const button = document.createElement("button");
        button.setAttribute("hx-get", "/threads/999999");
        button.setAttribute("hx-target", "#nowhere-in-particular");
        button.textContent = "load a gone thread";
        const holder = document.createElement("div");
        holder.id = "nowhere-in-particular";
        document.getElementById("main").prepend(button, holder);
        htmx.process(button);
    }""")
    page.get_by_role("button", name="load a gone thread").click()
    main = page.locator("#main")
    expect(main.get_by_role("alert")).to_contain_text("Error 404")
    assert main.get_by_role("heading", name="Not found").is_visible()
    assert _script_errors(page) == []
