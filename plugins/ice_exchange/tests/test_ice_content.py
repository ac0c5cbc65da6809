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

from tests.dossier_helpers import pdf_bytes

SCRIPT = b"fetch('/admin/users', {method: 'POST'});\n"
XHTML = (b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head>'
         b'<script src="/static/vendor/htmx.min.js"></script></head>'
         b'<body hx-post="/admin/users" hx-trigger="load"></body></html>')
PDF = pdf_bytes("Search report")


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
