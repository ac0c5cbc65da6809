"""When the database server refuses connections, requests get a 503 that says so.

A PostgreSQL server that is down, restarting or out of connection slots is something
the user can only wait out: a page, an API call and an htmx request each get the
error family's 503 (``unavailable``, ``Retry-After``) with a message that says the
database cannot be reached, and the log gets one warning line per request rather
than a traceback.  A statement that fails on a working server is still a bug (500
with its traceback), and so are SQLite's locked or unopenable files: the
classification is checked against real errors from real servers and files.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from starlette.websockets import WebSocketDisconnect

from caseforum.app import create_app
from caseforum.config import Settings, load_settings
from caseforum.db import make_engine, open_session, unreachable
from caseforum.plugin_host import PluginHost
from caseforum.setup_db import init_database, load_demo
from tests.conftest import login
from tests.dossier_helpers import token_for

MESSAGE = "The database is not reachable; try again shortly."


def _error_of(url: str, statement: str = "SELECT 1", **kwargs: Any) -> DBAPIError:
    """The error SQLAlchemy raises for ``statement`` on a new engine at ``url``."""
    engine = create_engine(url, **kwargs)
    try:
        with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
            conn.execute(text(statement))
        return caught.value
    finally:
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# SQLite: no server, never "unreachable" -------------------------------------------


def test_sqlite_locked_or_unopenable_files_stay_errors_of_ours(tmp_path: Path) -> None:
    """A locked SQLite file (a writer holding it past the busy timeout) and a file that
    cannot be opened are raised as OperationalError like a lost server, but are not
    one: they must keep their 500 and traceback for the operator."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = _error_of(f"sqlite:///{path}", "INSERT INTO t VALUES (1)",
                           connect_args={"timeout": 0})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "database is locked" in str(locked)
    assert not unreachable(locked)

    unopenable = _error_of(f"sqlite:///{tmp_path}/no/such/folder/x.db")
    assert "unable to open database file" in str(unopenable)
    assert not unreachable(unopenable)

    missing_table = _error_of(f"sqlite:///{tmp_path}/ok.db", "SELECT * FROM no_such_table")
    assert not unreachable(missing_table)


def test_a_bug_in_sql_on_sqlite_is_still_a_logged_500(app: Any,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    def broken_sql() -> None:
        with open_session(app.state.engine) as session:
            session.exec(text("SELECT * FROM no_such_table"))  # type: ignore[call-overload]

    app.add_api_route("/api/v1/broken-sql", broken_sql)
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.get("/api/v1/broken-sql")
    assert response.status_code == 500 and response.json()["code"] == "server_error"
    assert any(r.exc_info and "no_such_table" in str(r.exc_info[1]) for r in caplog.records)


# PostgreSQL: the real server refusing -----------------------------------------------


@pytest.mark.services
def test_postgres_refusals_are_unreachable_and_sql_errors_are_not(postgres_url: str) -> None:
    """Each way a PostgreSQL server refuses a connection counts as unreachable; errors
    of statements it ran do not."""
    import psycopg

    base = postgres_url.rsplit("/", 1)[0]
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    role = f"cf_nolimit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'x' CONNECTION LIMIT 0")
    try:
        host_part = base.split("@", 1)[1]
        too_many = _error_of(f"postgresql+psycopg://{role}:x@{host_part}/postgres")
        assert "too many connections" in str(too_many)
        assert unreachable(too_many)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")
    nobody_listens = _error_of(f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/x")
    assert unreachable(nobody_listens)
    assert unreachable(_error_of(base + "/cf_no_such_database"))
    assert not unreachable(_error_of(postgres_url, "SELECT * FROM no_such_table"))
    assert not unreachable(_error_of(postgres_url, "SELEC 1"))
    assert not unreachable(_error_of(postgres_url, "SELECT 1/0"))


@pytest.fixture
def pg_settings(postgres_url: str, tmp_path: Path) -> Settings:
    settings = load_settings(data_dir=tmp_path, database_url=postgres_url, secret_key="p" * 32)
    engine = make_engine(settings)
    host = PluginHost()
    host.load()
    init_database(engine, host)
    load_demo(engine)
    engine.dispose()
    return settings


class Outage:
    """The app's PostgreSQL database stops taking connections (as while it restarts)
    and its open ones are ended, until :meth:`end`."""

    def __init__(self, postgres_url: str) -> None:
        import psycopg

        self.connect = lambda: psycopg.connect(
            postgres_url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://")
            + "/postgres", autocommit=True)
        self.name = postgres_url.rsplit("/", 1)[1]

    def begin(self) -> None:
        with self.connect() as conn:
            conn.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s", (self.name,))

    def end(self) -> None:
        with self.connect() as conn:
            conn.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@pytest.fixture
def outage(postgres_url: str) -> Iterator[Outage]:
    cut = Outage(postgres_url)
    yield cut
    cut.end()


@pytest.mark.services
def test_pages_api_and_htmx_get_a_503_while_postgres_refuses(
        pg_settings: Settings, outage: Outage, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(pg_settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        login(client, "gb.examiner")
        with open_session(app.state.engine) as db:
            api = token_for(db, "gb.examiner", "forum")
        assert client.get("/forum").status_code == 200
        outage.begin()
        caplog.clear()
        caplog.set_level(logging.WARNING)

        page = client.get("/forum")
        assert page.status_code == 503, page.text
        assert page.headers["retry-after"] == "5"
        assert "<html" in page.text.lower() and MESSAGE in page.text
        assert "ws-connect" not in page.text  # nothing on the page asks the database

        fragment = client.get("/forum", headers={"HX-Request": "true"})
        assert fragment.status_code == 503 and fragment.headers["retry-after"] == "5"
        assert "<html" not in fragment.text.lower()
        assert "error-box" in fragment.text and MESSAGE in fragment.text  # app.js shows it

        answer = client.get("/api/v1/threads", headers=api)
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
        assert answer.json() == {"detail": MESSAGE, "code": "unavailable"}

        japanese = client.get("/forum", headers={"Accept-Language": "ja"})
        assert japanese.status_code == 503 and "データベースに接続できません" in japanese.text

        # a page's live socket reconnecting is told to try again later (1013), which
        # the browser's ws extension does with back-off
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(
                "/ws/forum?after=1", headers={"Origin": "http://testserver"}) as ws:
            ws.receive_text()
        assert closed.value.code == 1013

        ready = client.get("/readyz")
        assert ready.status_code == 503 and "database" in ready.json()["failed"]

        requests = [r for r in caplog.records if r.name == "caseforum.app"]
        assert len(requests) == 5, [r.getMessage() for r in requests]
        assert all(r.levelno == logging.WARNING and r.exc_info is None
                   and "database not reachable on" in r.getMessage() for r in requests)

        outage.end()  # the server is back: the same page works without a restart
        assert client.get("/forum").status_code == 200
