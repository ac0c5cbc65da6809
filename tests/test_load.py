"""Many users at once: the server keeps answering, quickly, and says "busy" rather
than hanging.

Before the concurrency budget (docs/configuration.md, ``concurrency``) a page held
two pooled connections while the thread pool was larger than the connection pool:
at about fifteen simultaneous page views every page stalled for the pool's 30-second
time-out and then failed with 500s.  Here 64 clients hit the thread page, the dossier
page and the dossier API of a live uvicorn server for a few seconds.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from itsdangerous import URLSafeSerializer
from sqlmodel import select

from caseforum import accounts
from caseforum.app import build_doc_types, create_app
from caseforum.config import Settings, SettingsError, load_settings
from caseforum.db import make_engine, open_session
from caseforum.forum import service
from caseforum.models import Category, User
from caseforum.plugin_host import PluginHost
from caseforum.setup_db import init_database, load_demo

CLIENTS = 64
SECONDS = 4.0
SLOWEST = 5.0  # seconds: no answer may take longer
DOSSIER = "JP/2019041872"  # the largest demo family


def seed(settings: Settings) -> tuple[int, str, str]:
    """A thread with a dossier card, a log-in session cookie and an API token for
    kr.examiner, made through the data functions (no password hashing per client)."""
    engine = make_engine(settings)
    with open_session(engine) as db:
        jp = db.exec(select(User).where(User.username == "jp.examiner")).one()
        kr = db.exec(select(User).where(User.username == "kr.examiner")).one()
        category = service.create_category(db, name="Load", offices=[])
        db.flush()
        thread, _ = service.create_thread(
            db, author=jp, category=db.get(Category, category.id), title="Cooling under load",
            body="What did the others cite for JP 2019-041872?")
        secret = accounts.start_session(db, user=kr, days=1)
        _, token = accounts.create_token(db, user=kr, scopes=["dossiers:read"])
        db.commit()
        thread_id = thread.id or 0
    engine.dispose()
    cookie = URLSafeSerializer(settings.secret_key or "", salt="session").dumps(secret)
    return thread_id, cookie, token


async def hammer(base: str, plan: list[tuple[str, dict[str, str]]]) -> list[dict[str, Any]]:
    """``CLIENTS`` clients, each sending the next request of ``plan`` as soon as its
    previous one is answered, for ``SECONDS``."""
    results: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SECONDS

        async def client(number: int) -> None:
            turn = number
            while loop.time() < deadline:
                path, headers = plan[turn % len(plan)]
                turn += 1
                started = loop.time()
                try:
                    response = await http.get(path, headers=headers)
                    status, retry = response.status_code, response.headers.get("retry-after")
                except httpx.HTTPError as exc:
                    status, retry = type(exc).__name__, None
                results.append({"path": path, "status": status, "retry_after": retry,
                                "seconds": round(loop.time() - started, 3)})

        await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    return results


class ServeProcess:
    """The app served by uvicorn in its own process, as in production: the clients
    in this process do not compete with the server for one interpreter lock (with
    the server in a thread here, the 64 clients' own Python work shows up as server
    latency)."""

    def __init__(self, settings: Settings) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEFORUM_")}
        env.update(CASEFORUM_DATA_DIR=str(settings.data_dir),
                   CASEFORUM_SECRET_KEY=settings.secret_key or "",
                   CASEFORUM_DATABASE_URL=settings.database_url or "")
        self.log = settings.data_dir / "serve.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "caseforum.app:create_app",
                 "--port", str(self.port), "--log-level", "warning"],
                env=env, stdout=subprocess.DEVNULL, stderr=log)

    def start(self) -> ServeProcess:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.url + "/healthz", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start: " + self.log.read_text()[-2000:])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def check_under_load(settings: Settings) -> None:
    thread_id, cookie, token = seed(settings)
    browser = {"Cookie": f"cf_session={cookie}"}
    machine = {"Authorization": f"Bearer {token}"}
    plan = [(f"/threads/{thread_id}", browser), (f"/dossiers/{DOSSIER}", browser),
            (f"/api/v1/dossiers/{DOSSIER}", machine)]
    server = ServeProcess(settings).start()
    try:
        # each page answers, as that user, before the load starts
        for path, headers in plan:
            answer = httpx.get(server.url + path, headers=headers, timeout=10)
            assert answer.status_code == 200, (path, answer.status_code)
        assert 'name="user-id"' in httpx.get(server.url + plan[0][0], headers=browser).text
        results = asyncio.run(hammer(server.url, plan))
        after = time.monotonic()
        health = httpx.get(server.url + "/healthz", timeout=10)
        recovered_in = time.monotonic() - after
    finally:
        server.stop()

    broken = [r for r in results if not isinstance(r["status"], int)
              or (r["status"] >= 500 and r["status"] != 503)]
    assert not broken, f"{len(broken)} failed requests, e.g. {broken[:3]}"
    slow = [r for r in results if r["seconds"] > SLOWEST]
    assert not slow, f"{len(slow)} requests over {SLOWEST} s, e.g. {slow[:3]}"
    busy = [r for r in results if r["status"] == 503]
    assert all(r["retry_after"] for r in busy), "a 503 without Retry-After"
    ok = [r for r in results if r["status"] == 200]
    assert len(results) >= CLIENTS and len(ok) > 0.5 * len(results), (
        f"{len(ok)} of {len(results)} answered 200")
    for path, _ in plan:
        assert any(r["path"] == path for r in ok), f"{path} never answered 200"
    assert health.status_code == 200 and recovered_in < 1.0


@pytest.mark.slow
def test_64_clients_on_sqlite_get_answers_within_5_seconds(settings: Settings) -> None:
    check_under_load(settings)


@pytest.mark.slow
@pytest.mark.services
def test_64_clients_on_postgresql_get_answers_within_5_seconds(postgres_url: str,
                                                                tmp_path: Any) -> None:
    settings = load_settings(data_dir=tmp_path, database_url=postgres_url, secret_key="p" * 32)
    engine = make_engine(settings)
    host = PluginHost()
    host.load()
    init_database(engine, host)
    load_demo(engine, storage_dir=settings.storage_dir, doc_types=build_doc_types(host))
    engine.dispose()
    check_under_load(settings)


# The budget, one request at a time ------------------------------------------------


def test_concurrency_sizes_both_pools_and_is_checked(settings: Settings,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio
    from fastapi.testclient import TestClient

    app = create_app(settings.model_copy(update={"concurrency": 3}))
    assert app.state.engine.pool.size() == 3 + 4
    with TestClient(app) as client:
        tokens = client.portal.call(
            lambda: anyio.to_thread.current_default_thread_limiter().total_tokens)
    assert tokens == 3
    monkeypatch.setenv("CASEFORUM_CONCURRENCY", "0")
    with pytest.raises(SettingsError, match="CASEFORUM_CONCURRENCY"):
        load_settings(data_dir=settings.data_dir)


def test_a_page_needs_one_connection_and_a_full_pool_answers_503_at_once(
        settings: Settings) -> None:
    from fastapi.testclient import TestClient

    thread_id, cookie, token = seed(settings)
    app = create_app(settings.model_copy(update={"concurrency": 1}))
    engine = app.state.engine
    size = engine.pool.size()
    client = TestClient(app, cookies={"cf_session": cookie})  # no lifespan: no consumers
    held = [engine.connect() for _ in range(size - 1)]
    try:
        # one free connection is enough for a whole page: viewer, thread, bell, live cursor
        page = client.get(f"/threads/{thread_id}")
        assert page.status_code == 200 and "Cooling under load" in page.text
        assert client.get(f"/api/v1/dossiers/{DOSSIER}",
                          headers={"Authorization": f"Bearer {token}"}).status_code == 200
        held.append(engine.connect())  # now none is free
        started = time.monotonic()
        busy = client.get(f"/threads/{thread_id}")
        api = client.get(f"/api/v1/dossiers/{DOSSIER}",
                         headers={"Authorization": f"Bearer {token}"})
        took = time.monotonic() - started
    finally:
        for connection in held:
            connection.close()
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert "busy" in busy.text
    assert api.status_code == 503 and "busy" in api.json()["detail"]
    assert took < 5.0
    assert client.get(f"/threads/{thread_id}").status_code == 200  # and back at once

