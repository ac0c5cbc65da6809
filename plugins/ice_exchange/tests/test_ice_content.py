"""ICE files never run in the recipient's origin (issue 8, point 1).

A sender chooses a file's name and declared type; before, a ``.js`` file sent as
``application/javascript`` was served with that type, so a page could load it as a
script.  The recipient now gets every file typed from its bytes, sandboxed, and as a
download unless it is a PDF or a raster image.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from caseforum_ice_exchange.models import IceAuditEntry
from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum.app import create_app
from caseforum.db import make_engine, open_session
from tests.dossier_helpers import pdf_bytes

SCRIPT = b"fetch('/admin/users', {method: 'POST'});\n"
XHTML = (b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head>'
         b'<script src="/static/vendor/htmx.min.js"></script></head>'
         b'<body hx-post="/admin/users" hx-trigger="load"></body></html>')
PDF = pdf_bytes("Search report")
CONTENT_HOST = "https://files.example.org"


@pytest.fixture
def users(hosted_app: Any, as_user: Any):
    return lambda username: as_user(username, on=hosted_app)


def file_links(page: str) -> dict[str, str]:
    return {m.group(2): m.group(1) for m in re.finditer(
        r'href="(/api/v1/ice/parcels/[^"]+/files/([^"]+))"', page)}


def test_ice_script_and_markup_files_are_downloads_with_a_safe_type(users) -> None:
    sg, csrf = users("sg.examiner")
    response = sg.post("/ice/new", data={
        "csrf_token": csrf, "donor_office": "JP", "application": "JP 2017-187096",
        "kind": "search", "due_date": "2099-03-01", "message": "See attached."},
        files=[("file", ("exploit.js", SCRIPT, "application/javascript")),
               ("file", ("report.xml", XHTML, "text/html")),
               ("file", ("report.pdf", PDF, "text/html"))],
        follow_redirects=False)
    assert response.status_code == 303, response.text
    jp, _ = users("jp.examiner")
    links = file_links(jp.get(response.headers["location"]).text)
    assert set(links) == {"exploit.js", "report.xml", "report.pdf"}

    expected = {"exploit.js": ("text/plain; charset=utf-8", "attachment", SCRIPT),
                "report.xml": ("application/octet-stream", "attachment", XHTML),
                "report.pdf": ("application/pdf", "inline", PDF)}
    for name, (media_type, disposition, body) in expected.items():
        got = jp.get(links[name])
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == media_type, name
        assert got.headers["content-disposition"].startswith(disposition + ";"), name
        assert got.headers["content-security-policy"].startswith(
            "sandbox; default-src 'none';")
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.content == body


def test_with_a_content_host_ice_files_open_only_by_signed_link(
    hosted_settings, as_user
) -> None:
    settings = hosted_settings.model_copy(update={"content_base_url": CONTENT_HOST})
    app = create_app(settings)
    sg, csrf = as_user("sg.examiner", on=app)
    response = sg.post("/ice/new", data={
        "csrf_token": csrf, "donor_office": "JP", "application": "JP 2017-187096",
        "kind": "search", "due_date": "2099-03-01", "message": "See attached."},
        files=[("file", ("report.xml", XHTML, "text/html"))], follow_redirects=False)
    assert response.status_code == 303, response.text
    jp, _ = as_user("jp.examiner", on=app)
    link = file_links(jp.get(response.headers["location"]).text)["report.xml"]

    moved = jp.get(link, follow_redirects=False)
    assert moved.status_code == 303
    signed = moved.headers["location"]
    assert signed.startswith(CONTENT_HOST + "/content/ice/")
    assert opened(settings) == 0  # nothing opened yet: the link is
    with TestClient(app, base_url=CONTENT_HOST) as files:
        got = files.get(signed.removeprefix(CONTENT_HOST))
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["content-disposition"].startswith("attachment;")
        assert got.headers["content-security-policy"].startswith("sandbox;")
        assert got.content == XHTML
        assert opened(settings) == 1  # audited when the bytes were handed out
        assert files.get(signed.removeprefix(CONTENT_HOST)[:-4] + "AAAA").status_code == 403
        assert files.get(link).status_code == 404  # the API is not on the content host


def opened(settings: Any) -> int:
    engine = make_engine(settings)
    with open_session(engine) as session:
        count = len(session.exec(select(IceAuditEntry).where(
            IceAuditEntry.action == "file.opened")).all())
    engine.dispose()
    return count
