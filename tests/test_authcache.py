"""Who is calling is cached for a few seconds, yet a revocation in this process
takes effect at once (authcache.py)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import select

from caseforum import accounts, authcache, offices
from caseforum.models import ApiToken, User, utcnow
from tests.conftest import login

DOSSIER = "/api/v1/dossiers/JP/2019041872"


def user(db: Any, name: str) -> User:
    return db.exec(select(User).where(User.username == name)).one()


def bearer(db: Any, name: str) -> tuple[ApiToken, dict[str, str]]:
    token, plain = accounts.create_token(db, user=user(db, name), scopes=["dossiers:read"])
    db.commit()
    return token, {"Authorization": f"Bearer {plain}"}


@pytest.fixture
def api(app: Any) -> Any:
    with TestClient(app) as client:
        yield client


def test_a_revoked_token_is_refused_on_the_next_request(api, db) -> None:
    token, headers = bearer(db, "kr.examiner")
    assert api.get(DOSSIER, headers=headers).status_code == 200
    assert api.get("/api/v1/me", headers=headers).json()["username"] == "kr.examiner"
    accounts.revoke_token(db, token=token, actor_id=None)
    db.commit()
    refused = api.get(DOSSIER, headers=headers)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]


def test_a_disabled_user_loses_token_and_browser_session_at_once(app, api, db) -> None:
    _, headers = bearer(db, "kr.examiner")
    browser = TestClient(app)
    login(browser, "kr.examiner")
    assert browser.get("/api/v1/me").status_code == 200
    assert api.get(DOSSIER, headers=headers).status_code == 200
    accounts.set_active(db, user=user(db, "kr.examiner"), active=False, actor_id=None)
    db.commit()
    assert api.get(DOSSIER, headers=headers).status_code == 401
    assert browser.get("/api/v1/me").status_code == 401


def test_an_office_losing_its_accessing_role_sees_no_dossier_at_once(api, db) -> None:
    _, headers = bearer(db, "kr.examiner")
    assert api.get(DOSSIER, headers=headers).status_code == 200
    offices.set_roles(db, code="KR", roles=["none"])
    db.commit()
    assert api.get(DOSSIER, headers=headers).status_code in (403, 404)


def test_an_expired_token_is_refused_although_cached(api, db) -> None:
    token, headers = bearer(db, "kr.examiner")
    token.expires_at = utcnow() + timedelta(seconds=1)
    db.add(token)
    db.commit()
    assert api.get(DOSSIER, headers=headers).status_code == 200  # now cached
    time.sleep(1.1)
    refused = api.get(DOSSIER, headers=headers)
    assert refused.status_code == 401 and "expired" in refused.json()["detail"]


class Clock:
    """authcache's view of time, moved by hand (no sleeping, no flakiness)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now


def test_a_change_made_elsewhere_counts_within_the_cache_time(api, db, engine,
                                                              monkeypatch) -> None:
    """Another worker or host (here: SQL that bypasses this process's sessions)
    revokes a token: it keeps working at most CACHE_SECONDS (documented)."""
    clock = Clock()
    monkeypatch.setattr(authcache, "time", clock)
    token, headers = bearer(db, "kr.examiner")
    assert api.get(DOSSIER, headers=headers).status_code == 200
    with engine.begin() as conn:
        conn.execute(text("UPDATE api_token SET revoked_at = :now WHERE id = :id"),
                     {"now": utcnow(), "id": token.id})
    clock.now += authcache.CACHE_SECONDS - 1
    assert api.get(DOSSIER, headers=headers).status_code == 200  # still cached here
    clock.now += 1.1
    assert api.get(DOSSIER, headers=headers).status_code == 401
