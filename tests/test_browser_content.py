"""In a real browser: a hostile "XML" document opened by another office's admin does nothing.

The attack of issue 8: a JP examiner uploads an XHTML page disguised as a search
report that loads our own htmx and posts to ``/admin/users`` when it loads.  A KR
office admin opens it (by the link in the dossier, or a link someone posts).  No
request may leave it and no account may appear; a PDF still shows in the viewer.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Error as PlaywrightError
from sqlmodel import select

from caseforum.models import User
from tests.browser import screenshot
from tests.conftest import LiveServer
from tests.dossier_helpers import pdf_bytes
from tests.test_content_isolation import HOSTILE_XHTML, jp, put_document  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture
def documents(client, jp) -> dict[str, int]:  # noqa: F811
    hostile = put_document(client, jp, HOSTILE_XHTML, "search-report.pdf", "text/html")
    report = put_document(client, jp, pdf_bytes("Search report: category X"), "report.pdf",
                          "application/pdf")
    return {"hostile": hostile["id"], "report": report["id"]}


def log_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("caseforum-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")


def wait_for_pdf_viewer(page, filename: str) -> None:
    """Chromium's PDF viewer (an extension frame) has loaded the document: its title
    turns from the URL's last part into the file name once the PDF is read."""
    deadline = time.monotonic() + 15
    while True:
        titles = [f.title() for f in page.frames if f.url.startswith("chrome-extension://")]
        if filename in titles:
            return
        assert time.monotonic() < deadline, ([f.url for f in page.frames], titles)
        page.wait_for_timeout(100)


def open_as_a_link(page, url: str) -> str:
    """Navigate to ``url`` as a pasted link would; returns the downloaded file's name."""
    with page.expect_download(timeout=10_000) as info:
        try:
            page.goto(url)
        except PlaywrightError as exc:  # a download is not a page: goto says so
            assert "Download is starting" in str(exc) or "ERR_ABORTED" in str(exc)
    return info.value.suggested_filename


def test_admin_of_another_office_opens_hostile_xhtml_and_nothing_happens(
    page, live_server, documents, db
) -> None:
    base = live_server.url
    log_in(page, base, "kr.admin")
    requests: list[str] = []
    # the browser's own favicon fetch for the previous page may come at any time
    page.on("request", lambda request: requests.append(request.url)
            if not request.url.endswith("/favicon.svg") else None)

    hostile = documents["hostile"]
    for path in (f"/documents/{hostile}/content", f"/documents/{hostile}/download"):
        requests.clear()
        name = open_as_a_link(page, base + path)
        assert name.endswith(".xml")  # its real kind, not the .pdf it was sent as
        page.wait_for_timeout(500)  # time for anything it might start
        assert requests == [base + path], requests

    requests.clear()
    page.goto(f"{base}/documents/{hostile}")
    page.wait_for_load_state("networkidle")
    assert page.locator("iframe").count() == 0
    assert not [url for url in requests if "/admin/" in url or f"/{hostile}/" in url]
    assert "hx-post" in page.locator("pre.doc-text").inner_text()  # shown as text only
    db.expire_all()
    assert db.exec(select(User).where(User.username == "intruder")).first() is None

    # a PDF still opens in the browser's viewer inside the sandbox
    page.goto(f"{base}/documents/{documents['report']}")
    wait_for_pdf_viewer(page, "report.pdf")
    screenshot(page, "sandboxed-pdf")
    assert page.console_errors == []


def test_with_a_content_host_documents_show_from_there_only(
    page, app, documents
) -> None:
    """127.0.0.1 serves the app and localhost (the same server) the documents: two
    origins, as with a real content host."""
    server = LiveServer(app)
    settings = app.state.settings
    settings.base_url = f"http://127.0.0.1:{server.port}"
    settings.content_base_url = f"http://localhost:{server.port}"
    server.start()
    try:
        base = settings.base_url
        log_in(page, base, "kr.admin")
        page.goto(f"{base}/documents/{documents['report']}")
        frame = page.locator("iframe.doc-frame")
        assert frame.get_attribute("src").startswith(settings.content_base_url + "/content/")
        wait_for_pdf_viewer(page, "report.pdf")
        screenshot(page, "pdf-from-content-host")

        page.goto("about:blank")  # leave the PDF viewer and whatever it still fetches
        page.wait_for_timeout(300)
        requests: list[str] = []  # over the network (not the PDF viewer's own)
        page.on("request", lambda request: requests.append(request.url)
                if request.url.startswith("http") and not request.url.endswith("/favicon.svg")
                else None)
        path = f"/documents/{documents['hostile']}/download"
        assert open_as_a_link(page, base + path).endswith(".xml")
        page.wait_for_timeout(500)
        assert requests[0] == base + path
        assert [u.split("?")[0] for u in requests[1:]] == [
            f"{settings.content_base_url}/content/documents/{documents['hostile']}"]
        assert page.console_errors == []
    finally:
        server.stop()
