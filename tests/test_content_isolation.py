"""Uploaded content never runs in CaseForum's origin (issue 8, point 1).

The attack: a providing office's examiner uploads an "XML" document that is an XHTML
page loading our own htmx with hx-* attributes; an admin of another office opens it
and it acts with the admin's session.  Every route that hands out a document's bytes
must sandbox them, type them from the bytes and make markup a download.
"""

from __future__ import annotations

import re
import struct
import time
import zlib
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum import accounts
from caseforum.app import create_app
from caseforum.config import load_settings
from caseforum.models import AccessLog, User
from caseforum.setup_db import DEMO_PASSWORD
from caseforum.storage import served_media_type
from caseforum.web.content import check_link, signed_path
from tests.conftest import login
from tests.dossier_helpers import dossier_json, pdf_bytes, token_for

HOSTILE_XHTML = b"""<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml">
<head><title>Search report</title><script src="/static/vendor/htmx.min.js"></script></head>
<body hx-post="/admin/users" hx-trigger="load"
      hx-vals='{"username": "intruder", "office_code": "KR", "role": "examiner",
                "password": "intruder-password-1"}'>
<p>Search report</p><script>fetch("/admin/users")</script></body></html>
"""
HOSTILE_HTML = b"<!doctype html><html><body><script>fetch('/admin/users')</script></body></html>"
HOSTILE_SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" onload="fetch(\'/admin/users\')">'
               b"<script>fetch('/admin/users')</script></svg>")
SANDBOX = re.compile(r"^sandbox; default-src 'none';")


def png_bytes() -> bytes:
    """A real 4x4 red PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 4 for _ in range(4))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def put_document(client: TestClient, headers: dict[str, str], content: bytes, filename: str,
                 declared: str, **form: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/dossiers/JP/2017187096/documents", headers=headers,
        data={"code": "SRPT", "date": "2019-05-01", "language": "en",
              "visibility": "offices", **form},
        files={"file": (filename, content, declared)})
    assert response.status_code == 201, response.text
    return response.json()


def add_kr_admin(db) -> None:
    """An office admin of an accessing office other than the uploader's (the victim)."""
    accounts.create_user(db, username="kr.admin", office_code="KR", role="office_admin",
                         password=DEMO_PASSWORD, display_name="Office administrator (KIPO)")
    db.commit()


@pytest.fixture
def jp(client, db) -> dict[str, str]:
    add_kr_admin(db)
    headers = token_for(db, "jp.examiner")
    response = client.post("/api/v1/dossiers", headers=headers, json=dossier_json(
        "JP", "2017-187096", publication_number="JP 2019-054321 A", filing_date="2017-09-28"))
    assert response.status_code == 201, response.text
    return headers


def assert_sandboxed(response: Any, media_type: str, disposition: str) -> None:
    assert response.status_code == 200, response.text
    assert SANDBOX.match(response.headers["content-security-policy"])
    assert "allow-scripts" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"] == media_type
    assert response.headers["content-disposition"].startswith(disposition + ";")


def user_id(db, username: str) -> int:
    return db.exec(select(User).where(User.username == username)).one().id


def test_every_document_route_sandboxes_a_pdf(client, jp, as_user, db) -> None:
    doc = put_document(client, jp, pdf_bytes("Search report"), "report.pdf", "application/pdf")
    us, _ = as_user("kr.admin")
    assert_sandboxed(us.get(f"/documents/{doc['id']}/content"), "application/pdf", "inline")
    assert_sandboxed(us.get(f"/documents/{doc['id']}/download"), "application/pdf",
                     "attachment")
    assert_sandboxed(client.get(f"/api/v1/documents/{doc['id']}/content",
                                headers=token_for(db, "kr.admin")),
                     "application/pdf", "attachment")
    link = signed_path(us.app.state.settings, "documents", str(doc["id"]),
                       user_id(db, "kr.admin"))
    shown = us.get(link)
    assert_sandboxed(shown, "application/pdf", "inline")
    assert shown.content.startswith(b"%PDF-")
    # the app's own pages keep the strict policy: no sandbox, never framed
    page = us.get(f"/documents/{doc['id']}")
    assert "sandbox" not in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert f'src="/documents/{doc["id"]}/content"' in page.text


def test_a_png_may_be_shown_but_text_is_downloaded(client, jp, as_user) -> None:
    png = put_document(client, jp, png_bytes(), "figure.png", "image/png")
    text = put_document(client, jp, b"Claim 1. A lamp.\n", "claims.txt", "text/html")
    us, _ = as_user("kr.admin")
    assert_sandboxed(us.get(f"/documents/{png['id']}/content"), "image/png", "inline")
    assert_sandboxed(us.get(f"/documents/{text['id']}/content"), "text/plain; charset=utf-8",
                     "attachment")


@pytest.mark.parametrize(("content", "filename", "declared"), [
    (HOSTILE_XHTML, "report.xml", "application/xml"),
    (HOSTILE_XHTML, "report.pdf", "application/pdf"),
    (HOSTILE_XHTML, "figure.png", "image/png"),
    (HOSTILE_XHTML, "report.html", "text/html"),
    (HOSTILE_HTML, "report.pdf", "text/html"),
    (HOSTILE_SVG, "figure.png", "image/svg+xml"),
    (b"\xef\xbb\xbf  \n" + HOSTILE_HTML, "notes.txt", "text/plain"),
])
def test_markup_disguised_as_a_document_is_never_active(
    client, jp, as_user, db, content, filename, declared
) -> None:
    doc = put_document(client, jp, content, filename, declared)
    us, _ = as_user("kr.admin")
    routes = [us.get(f"/documents/{doc['id']}/content"),
              us.get(f"/documents/{doc['id']}/download"),
              us.get(signed_path(us.app.state.settings, "documents", str(doc["id"]),
                                 user_id(db, "kr.admin"))),
              client.get(f"/api/v1/documents/{doc['id']}/content",
                         headers=token_for(db, "kr.admin"))]
    for response in routes:
        assert_sandboxed(response, "application/octet-stream", "attachment")
        assert response.content == content
    page = us.get(f"/documents/{doc['id']}")
    assert "<iframe" not in page.text  # nothing of it is embedded
    assert "<script>fetch" not in page.text  # its text is shown escaped
    for route in (f"/documents/{doc['id']}/print",):
        assert "<script>fetch" not in us.get(route).text


def test_served_type_comes_from_the_bytes() -> None:
    assert served_media_type(b"%PDF-1.7 ...") == "application/pdf"
    assert served_media_type(b"\xff\xd8\xff\xe0 jpeg") == "image/jpeg"
    assert served_media_type(b"II*\x00tiff") == "image/tiff"
    assert served_media_type(b"plain words only\n") == "text/plain; charset=utf-8"
    for active in (HOSTILE_XHTML, HOSTILE_HTML, HOSTILE_SVG, b"GIF89a\x01\x00\x01\x00\x00",
                   b"words then <script>alert(1)</script>", b"MZ\x90\x00", b""):
        assert served_media_type(active) == "application/octet-stream"


# Signed links ---------------------------------------------------------------------


@pytest.fixture
def report(client, jp) -> dict[str, Any]:
    return put_document(client, jp, pdf_bytes("Search report"), "report.pdf",
                        "application/pdf")


def _with(link: str, **changes: str) -> str:
    parts = urlsplit(link)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return parts.path + "?" + "&".join(f"{k}={v}" for k, v in query.items())


def test_signed_link_works_for_its_user_and_is_refused_when_changed(
    client, report, db, settings, as_user
) -> None:
    kr_id, admin_id = user_id(db, "kr.examiner"), user_id(db, "kr.admin")
    link = signed_path(settings, "documents", str(report["id"]), kr_id)
    assert client.get(link).status_code == 200  # no session needed: the link is the key
    assert client.get(_with(link, u=str(admin_id))).status_code == 403  # other user
    assert client.get(_with(link, s="A" * 43)).status_code == 403  # tampered
    assert client.get(_with(link, d="a")).status_code == 403  # inline turned into download
    other_doc = link.replace(f"/documents/{report['id']}?", f"/documents/{report['id'] + 1}?")
    assert client.get(other_doc).status_code == 403
    expired = signed_path(settings, "documents", str(report["id"]), kr_id,
                          now=time.time() - 301)
    refused = client.get(expired)
    assert refused.status_code == 403 and "expired" in refused.text
    # on the app's origin, a logged-in user cannot use someone else's link
    us, _ = as_user("kr.admin")
    assert us.get(link).status_code == 403
    kr, _ = as_user("kr.examiner")
    assert kr.get(link).status_code == 200


def test_signed_link_for_a_user_who_may_not_see_the_document_is_404(
    client, jp, db, settings
) -> None:
    secret = put_document(client, jp, pdf_bytes("Restricted"), "r.pdf", "application/pdf",
                          visibility="restricted", offices="CN")
    kr_link = signed_path(settings, "documents", str(secret["id"]), user_id(db, "kr.admin"))
    assert client.get(kr_link).status_code == 404
    cn_link = signed_path(settings, "documents", str(secret["id"]), user_id(db, "cn.examiner"))
    assert client.get(cn_link).status_code == 200


def test_link_check_refuses_incomplete_queries(settings) -> None:
    from caseforum.web.content import ContentLinkError

    for query in ({}, {"u": "x", "e": "1"}, {"u": "1", "e": "9999999999"}):
        with pytest.raises(ContentLinkError):
            check_link(settings, "documents", "1", query)


# A content host of its own ----------------------------------------------------------

CONTENT_HOST = "https://files.example.org"


@pytest.fixture
def split_app(data_dir) -> Any:
    return create_app(load_settings(data_dir=data_dir, secret_key="s" * 32,
                                    base_url="https://caseforum.example.org",
                                    content_base_url=CONTENT_HOST))


def test_with_a_content_host_pages_embed_only_signed_links_there(
    split_app, jp, client, db
) -> None:
    pdf = put_document(client, jp, pdf_bytes("Claims as filed"), "a.pdf", "application/pdf")
    scan = put_document(client, jp, png_bytes(), "b.png", "image/png")
    with TestClient(split_app, base_url="https://caseforum.example.org") as app_client:
        login(app_client, "kr.admin")
        pages = {
            "view": app_client.get(f"/documents/{pdf['id']}").text,
            "print": app_client.get(f"/documents/{scan['id']}/print").text,
            "compare": app_client.get("/compare", params={"doc": [pdf["id"], scan["id"]]}).text,
        }
        sources = {name: re.findall(r'<iframe[^>]* src="([^"]+)"', text)
                   for name, text in pages.items()}
        assert [len(sources[n]) for n in ("view", "print", "compare")] == [1, 1, 2]
        for found in sources.values():
            for src in found:
                assert src.startswith(CONTENT_HOST + "/content/documents/"), src
                assert "&amp;s=" in src
        assert f"frame-src 'self' {CONTENT_HOST}" in app_client.get(
            f"/documents/{pdf['id']}").headers["content-security-policy"]
        # the old routes on the app's origin hand over to the content host, never the bytes
        moved = app_client.get(f"/documents/{pdf['id']}/content", follow_redirects=False)
        assert moved.status_code == 303
        assert moved.headers["location"].startswith(CONTENT_HOST + "/content/documents/")
        download = app_client.get(f"/documents/{pdf['id']}/download", follow_redirects=False)
        assert download.status_code == 303 and "&d=a&" in download.headers["location"]
        assert db.exec(select(AccessLog).where(AccessLog.action == "download")).first()
        api = app_client.get(f"/api/v1/documents/{pdf['id']}/content", follow_redirects=False)
        assert api.status_code == 303 and api.headers["location"].startswith(CONTENT_HOST)
        scripted = app_client.get(f"/api/v1/documents/{pdf['id']}/content",
                                  headers=token_for(db, "kr.admin"))
        assert_sandboxed(scripted, "application/pdf", "attachment")  # tokens: no detour
        signed = sources["view"][0].replace("&amp;", "&")
        here = app_client.get(signed.removeprefix(CONTENT_HOST), follow_redirects=False)
        assert here.status_code == 307 and here.headers["location"] == signed  # never here

    with TestClient(split_app, base_url=CONTENT_HOST) as files:
        shown = files.get(signed.removeprefix(CONTENT_HOST))
        assert_sandboxed(shown, "application/pdf", "inline")
        assert shown.headers["content-security-policy"].endswith(
            "frame-ancestors https://caseforum.example.org")
        assert "x-frame-options" not in shown.headers
        # nothing else of the application answers on the content host
        for path in ("/", "/login", "/admin/users", f"/documents/{pdf['id']}",
                     f"/documents/{pdf['id']}/content", "/api/v1/document-types"):
            assert files.get(path).status_code == 404, path
        assert files.post(signed.removeprefix(CONTENT_HOST)).status_code == 404


def test_content_host_ignores_session_cookies_and_tokens(split_app, jp, client, db) -> None:
    pdf = put_document(client, jp, pdf_bytes("Claims"), "a.pdf", "application/pdf")
    with TestClient(split_app, base_url="https://caseforum.example.org") as app_client:
        login(app_client, "kr.admin")
        cookies = dict(app_client.cookies)
    kr_link = signed_path(split_app.state.settings, "documents", str(pdf["id"]),
                          user_id(db, "kr.examiner"))
    with TestClient(split_app, base_url=CONTENT_HOST, cookies=cookies) as files:
        # kr.admin's session would refuse kr's link on the app origin; here it is not read
        assert files.get(kr_link).status_code == 200
        # a bearer token opens nothing either: the link alone decides
        assert files.get(f"/content/documents/{pdf['id']}",
                         headers=token_for(db, "kr.admin")).status_code == 403


@pytest.mark.parametrize(("value", "message"), [
    ("files.example.org", "use an origin such as https://files.example.org (no path)"),
    ("https://files.example.org/docs", "use an origin such as https://files.example.org"),
    ("https://caseforum.example.org", "use another host than base_url"),
])
def test_content_base_url_must_be_an_origin_of_its_own(tmp_path, value, message) -> None:
    from caseforum.config import SettingsError

    with pytest.raises(SettingsError) as info:
        load_settings(data_dir=tmp_path, base_url="https://caseforum.example.org",
                      content_base_url=value)
    assert str(info.value).startswith("bad setting CASEFORUM_CONTENT_BASE_URL: " + message)
    ok = load_settings(data_dir=tmp_path, content_base_url="https://Files.Example.org/")
    assert ok.content_base_url == "https://files.example.org"
