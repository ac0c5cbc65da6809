"""The web shell: pages, fragments, headers, errors, admin screens."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum.models import Office, User


def test_home_of_a_visitor_is_the_public_landing_page(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 200
    assert "What is new for me" not in response.text and 'href="/login"' in response.text
    assert "Offices sharing with the public" in response.text


def test_full_page_on_reload_and_fragment_for_htmx(as_user) -> None:
    client, _ = as_user("jp.admin")
    full = client.get("/admin/offices")
    assert full.text.lstrip().startswith("<!doctype html>")
    assert 'class="sidenav"' in full.text
    fragment = client.get("/admin/offices", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text
    assert "sidenav" not in fragment.text
    assert "<h1>Offices</h1>" in fragment.text
    boosted = client.get("/admin/offices", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in boosted.text


def test_strict_security_headers_everywhere(client: TestClient) -> None:
    for path in ("/login", "/healthz", "/static/css/app.css", "/nowhere"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"


def test_no_inline_scripts_and_no_cdn(as_user) -> None:
    client, _ = as_user("admin")
    for path in ("/", "/admin", "/admin/plugins", "/admin/offices", "/admin/users", "/login"):
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        assert "https://" not in html.split("<body")[0], path


def test_vendor_htmx_is_served_locally(client: TestClient) -> None:
    response = client.get("/static/vendor/htmx.min.js")
    assert response.status_code == 200
    assert "htmx" in response.text[:2000]
    assert client.get("/static/vendor/ws.js").status_code == 200


def test_healthz_reports_database(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"


def test_openapi_lists_the_versioned_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/v1/me" in spec["paths"]
    assert not any(p.startswith("/admin") for p in spec["paths"])


def test_unknown_page_is_a_friendly_404(as_user) -> None:
    client, _ = as_user("jp.examiner")
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Not found" in response.text
    assert "Traceback" not in response.text


def test_examiner_cannot_open_admin(as_user) -> None:
    client, _ = as_user("jp.examiner")
    response = client.get("/admin/plugins")
    assert response.status_code == 403
    assert "Not allowed" in response.text
    assert 'href="/admin"' not in client.get("/").text


def test_offices_page_lists_reference_offices_with_roles(as_user) -> None:
    client, _ = as_user("admin")
    page = client.get("/admin/offices").text
    for code in ("AU", "CA", "CN", "IL", "JP", "KR", "GB", "US", "IB", "CL", "VN"):
        assert f">{code}</span>" in page


def test_platform_admin_changes_office_roles(as_user, db) -> None:
    client, token = as_user("admin")
    response = client.post("/admin/offices/SG", data={
        "csrf_token": token, "providing": "true", "accessing": "true",
        "public_access": "true", "ice_role": "recipient"}, follow_redirects=False)
    assert response.status_code == 303
    db.expire_all()
    office = db.get(Office, "SG")
    assert office.providing and office.accessing and office.ice_role.value == "recipient"
    # public access has its own switch: saving the roles leaves it as it was
    assert office.public_access is False


def test_office_admin_may_only_switch_own_public_access(as_user, db) -> None:
    client, token = as_user("jp.admin")
    denied = client.post("/admin/offices/KR/public-access",
                         data={"csrf_token": token, "public_access": "true"})
    assert denied.status_code == 403
    roles = client.post("/admin/offices/JP", data={"csrf_token": token, "providing": "false"})
    assert roles.status_code == 403  # roles are the platform's decision
    client.post("/admin/offices/JP/public-access",
                data={"csrf_token": token, "public_access": "false"})
    db.expire_all()
    jp = db.get(Office, "JP")
    assert jp.public_access is False
    assert jp.providing is True
    assert db.get(Office, "KR").public_access is False


def test_office_admin_creates_users_only_in_own_office(as_user, db) -> None:
    client, token = as_user("jp.admin")
    made = client.post("/admin/users", data={
        "csrf_token": token, "username": "jp.newcomer", "office_code": "JP",
        "role": "examiner", "password": "a-long-password"}, follow_redirects=False)
    assert made.status_code == 303
    assert db.exec(select(User).where(User.username == "jp.newcomer")).first()
    other = client.post("/admin/users", data={
        "csrf_token": token, "username": "kr.intruder", "office_code": "KR",
        "role": "examiner", "password": "a-long-password"})
    assert other.status_code == 403
    escalate = client.post("/admin/users", data={
        "csrf_token": token, "username": "jp.boss", "office_code": "JP",
        "role": "platform_admin", "password": "a-long-password"})
    assert escalate.status_code == 403
    assert not db.exec(select(User).where(User.username.in_(["kr.intruder", "jp.boss"]))).all()


def test_bad_user_form_gets_422_with_the_reason(as_user) -> None:
    client, token = as_user("admin")
    response = client.post("/admin/users", data={
        "csrf_token": token, "username": "x y", "office_code": "JP",
        "role": "examiner", "password": "a-long-password"})
    assert response.status_code == 422
    assert "username must be" in response.text


def test_token_created_in_the_admin_page_is_shown_once_and_works(as_user, client) -> None:
    admin, token = as_user("admin")
    users = admin.get("/admin/users").text
    row = next(r for r in users.split("<tr>") if '<th scope="row">kr.examiner' in r)
    user_id = re.search(r"/admin/users/(\d+)/tokens", row).group(1)
    page = admin.post(f"/admin/users/{user_id}/tokens", data={
        "csrf_token": token, "scopes": ["forum", "dossiers:read"], "expires_days": "30"})
    assert page.status_code == 200
    plain = re.search(r'<pre class="token" id="new-token">([^<]+)</pre>', page.text).group(1)
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"}).json()
    assert me["username"] == "kr.examiner"
    assert plain not in admin.get("/admin/users").text
