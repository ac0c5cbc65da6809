"""Shared fixtures: a real SQLite database per test, app clients, log-in helper,
and the PostgreSQL / Redis servers when they are there (required in CI)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import caseforum.app as app_module
from caseforum import passwords
from caseforum.app import build_doc_types, create_app
from caseforum.config import Settings, load_settings
from caseforum.db import make_engine, open_session
from caseforum.events import process_pending
from caseforum.plugin_host import PluginHost
from caseforum.setup_db import DEMO_PASSWORD, init_database, load_demo
from tests.s3_helpers import s3_bucket, s3_env, s3_server  # noqa: F401  (S3 fixtures)

REQUIRE_SERVICES = os.environ.get("CASEFORUM_REQUIRE_SERVICES") == "1"
# argon2's cheapest parameters for every hash the suite makes (demo users, new accounts), in
# this process and in the servers it starts: a log-in costs microseconds instead of ~0.4 s
HASH_PROFILE = "CASEFORUM_PASSWORD_HASH_PROFILE"
os.environ[HASH_PROFILE] = "test"
passwords.configure("test")
# no start-up freeze in the test process: its one full collection of the suite's heap,
# a second after some app started, stalls whichever test's server is running then
app_module._frozen = True
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CASEFORUM_") and not key.startswith("CASEFORUM_TEST_") \
                and key not in ("CASEFORUM_REQUIRE_SERVICES", HASH_PROFILE):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up the developer's own CASEFORUM_* settings."""
    _clean_env(monkeypatch)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised database with the demo users and dossiers, copied for each test
    (fast)."""
    folder = tmp_path_factory.mktemp("template")
    settings = Settings(data_dir=folder, secret_key="t" * 32)
    engine = make_engine(settings)
    host = PluginHost()
    host.load()
    init_database(engine, host)
    load_demo(engine, storage_dir=settings.storage_dir, doc_types=build_doc_types(host))
    # let the app's consumers catch up once here, so no test starts with a backlog
    app = create_app(load_settings(data_dir=folder, secret_key="t" * 32), plugins=host)
    for consumer in app.state.consumers.consumers:
        process_pending(consumer, app.state.engine)
    app.state.engine.dispose()
    engine.dispose()
    return folder / "caseforum.db"


@pytest.fixture
def data_dir(tmp_path: Path, template_db: Path) -> Path:
    """The template database and its document files, copied for one test."""
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(template_db, folder / "caseforum.db")
    shutil.copytree(template_db.parent / "files", folder / "files")
    shutil.copytree(template_db.parent / "search", folder / "search")  # its search index
    return folder


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir, secret_key="s" * 32)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Any]:
    eng = make_engine(settings)
    yield eng
    eng.dispose()


@pytest.fixture
def db(engine: Any) -> Iterator[Any]:
    with open_session(engine) as session:
        yield session


@pytest.fixture
def app(settings: Settings) -> Any:
    return create_app(settings)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no csrf-token meta tag"
    return match.group(1)


def login(client: TestClient, username: str, password: str = DEMO_PASSWORD) -> str:
    """Log in through the real form; returns the CSRF token of the new session."""
    form = client.get("/login")
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/").text)


@pytest.fixture
def as_user(app: Any) -> Iterator[Any]:
    """``as_user("jp.examiner")`` gives a logged-in client and its CSRF token
    (``on=`` another app, e.g. a plugin test's own instance)."""
    opened: list[TestClient] = []

    def make(username: str, *, on: Any = None) -> tuple[TestClient, str]:
        c = TestClient(on if on is not None else app)
        c.__enter__()
        opened.append(c)
        return c, login(c, username)

    yield make
    for c in opened:
        c.__exit__(None, None, None)


# Real servers ------------------------------------------------------------------


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _service_or_skip(name: str, url: str | None, port: int) -> str:
    if url and _reachable("127.0.0.1", port):
        return url
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} is required in CI but not reachable ({url})")
    pytest.skip(f"{name} not configured (set CASEFORUM_TEST_{name.upper()}_URL)")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    base = _service_or_skip("postgres", os.environ.get("CASEFORUM_TEST_POSTGRES_URL"), 5432)
    name = f"cf_test_{uuid.uuid4().hex[:12]}"
    admin = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + "/" + name
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> str:
    return _service_or_skip("redis", os.environ.get("CASEFORUM_TEST_REDIS_URL"), 6379)


# A live server for browsers and websocket clients ---------------------------------


class LiveServer:
    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                ws="websockets-sansio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app: Any) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    yield server
    server.stop()


from tests.browser import browser, page  # noqa: E402, F401  (browser fixtures)
from tests.live_helpers import people  # noqa: E402, F401  (two examiners side by side)


@pytest.fixture
def steady_identity_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests that count SQL statements: the caller's identity stays cached for the
    whole test.  Otherwise the 5 s lifetime, or a commit to users, tokens or sessions
    by anything else running in the process (which clears the process-wide cache), may
    add one look-up to one measurement and not to another."""
    from caseforum import authcache

    for cache in (authcache.identities, authcache._offices):
        monkeypatch.setattr(cache, "ttl", 3600.0)
    monkeypatch.setattr(authcache, "clear", lambda: None)


def demo_engine(settings: Settings) -> Any:
    """A migrated database with the demo data, on whatever ``settings`` name (the
    PostgreSQL tests make their own; SQLite tests copy the template instead)."""
    engine = make_engine(settings)
    host = PluginHost()
    host.load()
    init_database(engine, host)
    load_demo(engine)
    return engine
