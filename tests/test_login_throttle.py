"""Log-in throttling: parallel guesses cannot overrun the limit, an attacker cannot
lock the owner out, and the wait doubles with each further failure."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum import accounts
from caseforum.config import load_settings
from caseforum.db import make_engine, open_session
from caseforum.models import LoginFailure
from caseforum.plugin_host import PluginHost
from caseforum.setup_db import DEMO_PASSWORD, init_database
from tests.conftest import csrf_of, login


def _guess(engine: Any, username: str, password: str, address: str) -> str:
    with open_session(engine) as session:
        try:
            user = accounts.authenticate(session, username=username, password=password,
                                         address=address)
        except accounts.Throttled:
            return "throttled"
        session.commit()
        return "in" if user else "wrong"


def _fifty_parallel_guesses(engine: Any, username: str) -> list[str]:
    with ThreadPoolExecutor(max_workers=25) as pool:
        return list(pool.map(lambda i: _guess(engine, username, f"guess-{i}", "203.0.113.9"),
                             range(50)))


def test_fifty_parallel_wrong_passwords_get_five_guesses_on_sqlite(engine) -> None:
    results = _fifty_parallel_guesses(engine, "kr.examiner")
    assert results.count("wrong") == 5  # the race once let 19 through
    assert results.count("throttled") == 45
    with open_session(engine) as session:
        rows = session.exec(select(LoginFailure).where(
            LoginFailure.username == "kr.examiner")).all()
        assert len(rows) == 5


@pytest.mark.services
def test_fifty_parallel_wrong_passwords_get_five_guesses_on_postgres(postgres_url: str,
                                                                     tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, database_url=postgres_url, secret_key="l" * 32)
    engine = make_engine(settings)
    host = PluginHost()
    host.load()
    init_database(engine, host)
    with open_session(engine) as session:
        accounts.create_user(session, username="pg.owner", office_code="GB", role="examiner",
                             password="the-right-password")
        session.commit()
    try:
        results = _fifty_parallel_guesses(engine, "pg.owner")
        assert results.count("wrong") == 5
        assert results.count("throttled") == 45
    finally:
        engine.dispose()


def _post_login(client: TestClient, username: str, password: str) -> Any:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token}, follow_redirects=False)


def test_owner_from_another_address_gets_in_while_an_attacker_hammers(app) -> None:
    with TestClient(app, client=("198.51.100.7", 4000)) as attacker, \
            TestClient(app, client=("192.0.2.10", 5000)) as owner:
        answers = [_post_login(attacker, "jp.examiner", f"guess-{i}").status_code
                   for i in range(12)]
        assert answers[:5] == [401] * 5 and set(answers[5:]) == {429}
        refused = _post_login(attacker, "jp.examiner", DEMO_PASSWORD)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert "Too many failed log-ins" in refused.text
        login(owner, "jp.examiner")  # the owner is not locked out
        assert "Japan Patent Office" in owner.get("/").text


def test_the_wait_doubles_with_each_further_failure(engine) -> None:
    def guess() -> int:
        """0 when the guess was checked, else the seconds to wait."""
        with open_session(engine) as session:
            try:
                accounts.authenticate(session, username="au.examiner", password="nope",
                                      address="203.0.113.50", backoff_seconds=30)
            except accounts.Throttled as exc:
                return exc.retry_after
            return 0

    def time_passes(seconds: int) -> None:
        with open_session(engine) as session:
            for row in session.exec(select(LoginFailure)):
                row.at -= timedelta(seconds=seconds)
                session.add(row)
            session.commit()

    assert [guess() for _ in range(5)] == [0] * 5
    waits = []
    for _ in range(4):
        wait = guess()
        assert wait > 0
        waits.append(wait)
        time_passes(wait + 1)
        assert guess() == 0  # after the wait one more guess is checked
    assert [round(w / 30) for w in waits] == [1, 2, 4, 8]
