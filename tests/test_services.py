"""The same code on PostgreSQL and Redis (required in CI, skipped elsewhere if absent)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import select

from caseforum import accounts
from caseforum.app import create_app
from caseforum.config import load_settings
from caseforum.db import make_engine, open_session
from caseforum.events import (
    AUDITED_OFFICE_EVENTS,
    AccountAuditConsumer,
    RedisBroker,
    process_pending,
)
from caseforum.models import AccountAudit, Event, User
from caseforum.plugin_host import PluginHost
from caseforum.setup_db import init_database, load_demo
from tests.conftest import login

pytestmark = pytest.mark.services


@pytest.fixture
def pg_settings(postgres_url: str, tmp_path):
    settings = load_settings(data_dir=tmp_path, database_url=postgres_url, secret_key="p" * 32)
    engine = make_engine(settings)
    host = PluginHost()
    host.load()
    assert init_database(engine, host) == 20
    assert init_database(engine, host) == 0
    load_demo(engine)
    engine.dispose()
    return settings


def test_postgres_full_log_in_flow_and_audit(pg_settings) -> None:
    app = create_app(pg_settings)
    with TestClient(app) as client:
        login(client, "gb.examiner")
        assert "UK Intellectual Property Office" in client.get("/").text
        login(client, "admin")
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline and "gb.examiner" not in text:
            text = client.get("/admin/audit").text.split("<tbody>")[1]
            time.sleep(0.2)
        assert "gb.examiner" in text and "from testclient" in text


def test_postgres_two_workers_handle_each_event_once(pg_settings) -> None:
    engine = make_engine(pg_settings)
    with open_session(engine) as session:
        for i in range(30):
            accounts.create_user(session, username=f"pg{i}", office_code="GB",
                                 role="examiner", password=None)
        session.commit()
    threads = [threading.Thread(target=process_pending, args=(AccountAuditConsumer(), engine))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open_session(engine) as session:
        audits = session.exec(select(func.count()).select_from(AccountAudit)).one()
        # the audit keeps account events and the audited office ones (public access)
        events = session.exec(select(func.count()).select_from(Event).where(
            Event.kind.like("account.%") | Event.kind.in_(AUDITED_OFFICE_EVENTS))).one()
        assert audits == events
    engine.dispose()


def test_postgres_token_auth(pg_settings) -> None:
    engine = make_engine(pg_settings)
    with open_session(engine) as session:
        user = session.exec(select(User).where(User.username == "au.examiner")).one()
        _, plain = accounts.create_token(session, user=user, scopes=["forum"])
        session.commit()
    with TestClient(create_app(pg_settings)) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"})
    assert me.json()["office"]["code"] == "AU"
    engine.dispose()


def test_redis_broker_wakes_another_process_listener(redis_url: str) -> None:
    async def scenario() -> bool:
        listener = RedisBroker(redis_url)
        sender = RedisBroker(redis_url)
        await listener.start()
        flag = listener.subscribe()
        await asyncio.sleep(0.2)  # let the subscription settle
        await asyncio.to_thread(sender.wake)
        await asyncio.wait_for(flag.wait(), timeout=5)
        await listener.stop()
        await sender.stop()
        return True

    assert asyncio.run(scenario())


def test_app_on_postgres_and_redis_audits_through_redis_wake_ups(
    pg_settings, redis_url: str
) -> None:
    settings = pg_settings.model_copy(update={"redis_url": redis_url})
    app = create_app(settings)
    assert isinstance(app.state.broker, RedisBroker)
    app.state.consumers.poll_seconds = 60  # only a Redis wake-up can make it in time
    with TestClient(app) as client:
        time.sleep(0.5)
        login(client, "kr.examiner")
        deadline = time.monotonic() + 8
        engine = app.state.engine
        found = False
        while time.monotonic() < deadline and not found:
            with open_session(engine) as session:
                found = bool(session.exec(select(AccountAudit)
                                          .where(AccountAudit.kind == "account.login")).first())
            time.sleep(0.1)
    assert found


def test_redis_broker_survives_an_unreachable_server() -> None:
    async def scenario() -> None:
        broker = RedisBroker("redis://127.0.0.1:1/0")  # nothing listens there
        await broker.start()
        await asyncio.sleep(0.3)  # the listener retries in the background
        broker.wake()  # falls back to waking local waiters, no exception
        await broker.stop()

    asyncio.run(scenario())
