"""Log-in, sessions, throttling, CSRF and API tokens, as a user meets them."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum import accounts
from caseforum.models import ApiToken, User, UserSession, utcnow
from tests.conftest import csrf_of, login


def test_login_with_demo_account_reaches_home(client: TestClient) -> None:
    login(client, "jp.examiner")
    home = client.get("/")
    assert home.status_code == 200
    assert "Japan Patent Office" in home.text
    assert "Examiner Sato" in home.text


def test_session_cookie_is_httponly_and_samesite(client: TestClient) -> None:
    page = client.get("/login")
    response = client.post("/login", data={"username": "jp.examiner",
                                           "password": "caseforum-demo",
                                           "csrf_token": csrf_of(page.text)},
                           follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "cf_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie


def test_wrong_password_is_refused_with_a_message(client: TestClient) -> None:
    page = client.get("/login")
    response = client.post("/login", data={"username": "jp.examiner", "password": "nope",
                                           "csrf_token": csrf_of(page.text)})
    assert response.status_code == 401
    assert "Wrong username or password" in response.text
    assert client.get("/forum", follow_redirects=False).status_code == 303


def test_repeated_failures_are_throttled_even_with_the_right_password(
    client: TestClient,
) -> None:
    token = csrf_of(client.get("/login").text)
    for _ in range(5):
        client.post("/login", data={"username": "kr.examiner", "password": "bad-guess",
                                    "csrf_token": token})
    response = client.post("/login", data={"username": "kr.examiner",
                                           "password": "caseforum-demo", "csrf_token": token})
    assert response.status_code == 429
    assert "Too many failed log-ins" in response.text
    # another account from another address is unaffected
    other = TestClient(client.app)
    login(other, "cn.examiner")


def test_throttling_by_address_across_accounts(client: TestClient, app) -> None:
    app.state.settings.login_max_failures_per_address = 3
    token = csrf_of(client.get("/login").text)
    for name in ("a.one", "b.two", "c.three"):
        client.post("/login", data={"username": name, "password": "x", "csrf_token": token})
    response = client.post("/login", data={"username": "jp.examiner",
                                           "password": "caseforum-demo", "csrf_token": token})
    assert response.status_code == 429


def test_login_issues_a_new_session_id_and_logout_revokes_it(client: TestClient, db) -> None:
    login(client, "jp.examiner")
    first = client.cookies.get("cf_session")
    login(client, "jp.examiner")
    second = client.cookies.get("cf_session")
    assert first != second
    # the first session was ended when the second began
    stale = TestClient(client.app, cookies={"cf_session": first})
    assert stale.get("/forum", follow_redirects=False).status_code == 303

    token = csrf_of(client.get("/").text)
    client.post("/logout", data={"csrf_token": token})
    replay = TestClient(client.app, cookies={"cf_session": second})
    assert replay.get("/forum", follow_redirects=False).status_code == 303
    rows = db.exec(select(UserSession)).all()
    assert rows and all(r.revoked_at is not None for r in rows)


def test_disabling_a_user_revokes_their_open_session(as_user) -> None:
    examiner, _ = as_user("jp.examiner")
    assert examiner.get("/forum", follow_redirects=False).status_code == 200
    admin, token = as_user("admin")
    users = admin.get("/admin/users").text
    # find jp.examiner's id from the page's disable form
    user_id = re.search(r'/admin/users/(\d+)/disable"[^>]*>\s*<input[^>]*>\s*<button[^>]*>'
                        r'Disable<span class="sr-only"> jp.examiner<', users)
    assert user_id
    response = admin.post(f"/admin/users/{user_id.group(1)}/disable",
                          data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert examiner.get("/forum", follow_redirects=False).status_code == 303


def test_state_changing_requests_need_the_csrf_token(as_user) -> None:
    admin, token = as_user("admin")
    missing = admin.post("/admin/plugins/navigation/disable")
    assert missing.status_code == 403
    assert "Security token missing" in missing.text
    wrong = admin.post("/admin/plugins/navigation/disable", data={"csrf_token": "0" * 64})
    assert wrong.status_code == 403
    assert "does not match" in wrong.text
    # htmx sends it as a header
    ok = admin.post("/admin/plugins/navigation/disable",
                    headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert ok.status_code == 200
    assert "disabled" in ok.text


def test_login_form_itself_needs_the_csrf_token(client: TestClient) -> None:
    client.get("/login")
    response = client.post("/login", data={"username": "jp.examiner",
                                           "password": "caseforum-demo"})
    assert response.status_code == 403


def test_csrf_token_of_one_session_does_not_work_for_another(as_user) -> None:
    admin, _ = as_user("admin")
    _, other_token = as_user("jp.admin")
    response = admin.post("/admin/plugins/navigation/disable", data={"csrf_token": other_token})
    assert response.status_code == 403


def test_bearer_token_reaches_the_api_and_me_reports_the_office(client, db) -> None:
    user = db.exec(select(User).where(User.username == "kr.examiner")).one()
    _, plain = accounts.create_token(db, user=user, scopes=["dossiers:read"])
    db.commit()
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"})
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "kr.examiner"
    assert body["office"]["code"] == "KR"
    assert body["office"]["roles"] == ["providing", "accessing"]
    assert body["scopes"] == ["dossiers:read"]


def test_expired_revoked_and_unknown_tokens_get_401_with_reason(client, db) -> None:
    user = db.exec(select(User).where(User.username == "kr.examiner")).one()
    token, plain = accounts.create_token(db, user=user, scopes=["forum"])
    token.expires_at = utcnow() - timedelta(minutes=1)
    db.add(token)
    db.commit()
    expired = client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"})
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]

    token2, plain2 = accounts.create_token(db, user=user, scopes=["forum"])
    accounts.revoke_token(db, token=token2, actor_id=None)
    db.commit()
    revoked = client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain2}"})
    assert revoked.status_code == 401

    unknown = client.get("/api/v1/me", headers={"Authorization": "Bearer cf_nothing"})
    assert unknown.status_code == 401
    assert unknown.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401


def test_tokens_are_stored_hashed(db) -> None:
    user = db.exec(select(User).where(User.username == "kr.examiner")).one()
    _, plain = accounts.create_token(db, user=user, scopes=["forum"])
    db.commit()
    stored = db.exec(select(ApiToken)).all()
    assert all(plain not in (t.token_hash, t.prefix) for t in stored)
    assert all(t.token_hash != plain for t in stored)


def test_token_scope_limits_what_the_caller_may_do(client, db) -> None:
    admin = db.exec(select(User).where(User.username == "admin")).one()
    _, forum_only = accounts.create_token(db, user=admin, scopes=["forum"])
    db.commit()
    # /me accepts any scope, but the admin pages need the admin scope
    headers = {"Authorization": f"Bearer {forum_only}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.get("/admin/plugins", headers=headers).status_code == 403


def test_passwords_are_argon2id(db) -> None:
    user = db.exec(select(User).where(User.username == "admin")).one()
    assert user.password_hash.startswith("$argon2id$")


def test_anonymous_api_call_gets_401_json(client: TestClient) -> None:
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["detail"] == "Log in first"

