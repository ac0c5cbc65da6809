"""The webhook channel against real HTTP receivers on loopback: signatures,
retries, switching off after failures, once per delivery, nobody waits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import anyio
import pytest
from sqlalchemy import update
from sqlmodel import select

from caseforum.app import create_app
from caseforum.channels import ChannelHost, DeliveryWorker, claim
from caseforum.db import open_session
from caseforum.models import Delivery, WebhookEndpoint, utcnow
from caseforum.plugins.webhook_channel import sign
from tests.conftest import login
from tests.dossier_helpers import pdf_bytes, token_for, upload
from tests.notify_helpers import (
    RECEIVERS_ON_LOOPBACK,
    Receiver,
    notify_now,
    send_now,
    start_log_after_history,
)

JP_APP = "JP 2019-041872"


@pytest.fixture
def app(settings: Any) -> Any:
    return create_app(settings.model_copy(update={
        "run_consumers": False,
        "plugins": {"webhook_channel": {"max_failures": 4, "timeout_seconds": 5,
                                        "allowed_hosts": RECEIVERS_ON_LOOPBACK}}}))


@pytest.fixture(autouse=True)
def fresh_log(engine: Any) -> None:
    start_log_after_history(engine)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def hook_up(client: Any, db: Any, username: str, receiver: Receiver) -> None:
    """Log in, add the receiver as endpoint (its secret from the page), follow family 1."""
    csrf = login(client, username)
    shown = client.post("/settings/webhooks", data={"csrf_token": csrf, "url": receiver.url})
    receiver.secret = shown.text.split('id="webhook-secret">')[1].split("<")[0]
    made = client.post("/api/v1/subscriptions", headers=token_for(db, username, "dossiers:read"),
                       json={"kind": "family", "target": JP_APP, "channels": ["webhook"]})
    assert made.status_code == 201, made.text


def jp_upload(client: Any, db: Any, n: int = 1) -> list[int]:
    ids = []
    for i in range(n):
        response = upload(client, token_for(db, "jp.admin"), "JP", "2019-041872",
                          pdf_bytes(f"Report {i}"), code="SRPT", date="2021-02-03")
        assert response.status_code == 201, response.text
        ids.append(int(response.json()["id"]))
    return ids


def make_due(app: Any) -> None:
    """Time passes: every waiting delivery is due now."""
    with open_session(app.state.engine) as session:
        session.exec(update(Delivery).values(due_at=utcnow() - timedelta(seconds=1)))
        session.commit()


def test_a_signed_post_per_notification(app, client, db, receiver) -> None:
    hook_up(client, db, "cn.examiner", receiver)
    [doc_id] = jp_upload(client, db)
    notify_now(app)
    assert send_now(app, "webhook") == 1
    [got] = receiver.received
    assert receiver.bad_signatures == 0
    assert got["notification"]["document_id"] == doc_id
    assert got["notification"]["text"] == "New SRPT in JP 2019-041872"
    assert got["user"] == "cn.examiner" and got["header_delivery"] == str(got["delivery"])
    # the signature covers timestamp and body: another secret gives another value
    assert sign("a", "1", b"{}") != sign("b", "1", b"{}") != sign("a", "2", b"{}")


def test_a_receiver_down_for_a_while_gets_every_event_once(app, client, db,
                                                           receiver) -> None:
    hook_up(client, db, "cn.examiner", receiver)
    docs = jp_upload(client, db, 3)
    notify_now(app)
    receiver.status = 503
    send_now(app, "webhook")
    assert receiver.received == []
    rows = db.exec(select(Delivery)).all()
    assert {(d.state, d.attempts) for d in rows} == {("pending", 1)}
    assert all("503" in d.last_error and d.due_at > utcnow() for d in rows)  # backing off
    receiver.status = 200
    make_due(app)
    send_now(app, "webhook")
    send_now(app, "webhook")
    assert sorted(r["notification"]["document_id"] for r in receiver.received) == docs
    db.expire_all()
    [endpoint] = db.exec(select(WebhookEndpoint)).all()
    assert endpoint.active and endpoint.failures == 0


def test_an_endpoint_failing_again_and_again_is_switched_off_visibly(app, client, db,
                                                                     receiver) -> None:
    hook_up(client, db, "cn.examiner", receiver)
    jp_upload(client, db, 2)
    notify_now(app)
    receiver.status = 500
    for _ in range(2):  # 2 deliveries x 2 rounds = 4 failures in a row: switched off
        send_now(app, "webhook")
        make_due(app)
    db.expire_all()
    [endpoint] = db.exec(select(WebhookEndpoint)).all()
    assert not endpoint.active and endpoint.failures == 4
    settings_page = client.get("/settings").text
    assert "switched off after 4 failures" in settings_page
    admin = type(client)(app)
    login(admin, "admin")
    assert "switched off" in admin.get("/admin/deliveries").text
    # while off, its deliveries wait without using up their tries
    send_now(app, "webhook")
    assert {(d.state, d.attempts) for d in db.exec(select(Delivery))} == {("pending", 2)}
    # switched on by its owner: what waited goes out
    receiver.status = 200
    csrf = settings_page.split('name="csrf-token" content="')[1].split('"')[0]
    client.post(f"/settings/webhooks/{endpoint.id}/enable", data={"csrf_token": csrf})
    send_now(app, "webhook")
    assert len(receiver.received) == 2


def test_two_workers_never_take_the_same_delivery(app, client, db, receiver) -> None:
    hook_up(client, db, "cn.examiner", receiver)
    jp_upload(client, db, 6)
    notify_now(app)
    taken: list[list[int]] = []
    start = threading.Barrier(2)

    def worker() -> None:
        start.wait()
        taken.append(claim(app.state.engine, "webhook", limit=10))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken[0] + taken[1]) == sorted(d.id for d in db.exec(select(Delivery)))
    assert not set(taken[0]) & set(taken[1])


def test_a_worker_killed_mid_delivery_loses_nothing_and_doubles_nothing(app, client, db,
                                                                        receiver) -> None:
    hook_up(client, db, "cn.examiner", receiver)
    docs = jp_upload(client, db, 3)
    notify_now(app)
    assert send_now(app, "webhook") == 3
    docs += jp_upload(client, db, 2)
    notify_now(app)
    dying = claim(app.state.engine, "webhook", limit=10)  # a worker claims them, then dies
    assert len(dying) == 2
    assert send_now(app, "webhook") == 0  # claimed by the dead worker: nobody sends it yet
    with open_session(app.state.engine) as session:  # its lease runs out
        session.exec(update(Delivery).where(Delivery.id.in_(dying))  # type: ignore[union-attr]
                     .values(lease_until=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert send_now(app, "webhook") == 2
    assert sorted(r["notification"]["document_id"] for r in receiver.received) == docs


def test_a_delivery_that_waited_past_its_lease_goes_out_once(app, client, db, receiver,
                                                             monkeypatch) -> None:
    """A worker claims deliveries and its sends wait (a busy process) longer than the
    lease; another claim takes them meanwhile and sends them.  When the first worker's
    turn comes, the delivery is no longer its to send."""
    from caseforum import channels

    hook_up(client, db, "cn.examiner", receiver)
    docs = jp_upload(client, db, 2)
    notify_now(app)
    webhook = next(c for c in app.state.plugins.notification_channels()
                   if c.name == "webhook")
    host = ChannelHost(app.state.engine, app.state.settings)
    monkeypatch.setattr(channels, "LEASE", timedelta(seconds=-1))  # as if it waited long
    slow, slow_lease = channels.claim_leased(app.state.engine, "webhook", limit=10)
    monkeypatch.undo()
    quick, quick_lease = channels.claim_leased(app.state.engine, "webhook", limit=10)
    assert sorted(quick) == sorted(slow)  # the lease ran out: claimed again
    assert [channels.send_one(app.state.engine, webhook, d, host, quick_lease)
            for d in quick] == ["sent", "sent"]
    assert [channels.send_one(app.state.engine, webhook, d, host, slow_lease)
            for d in slow] == ["taken", "taken"]
    assert sorted(r["notification"]["document_id"] for r in receiver.received) == docs
    assert {d.state for d in db.exec(select(Delivery))} == {"sent"}


def test_a_slow_endpoint_delays_nobody_else(app, client, db) -> None:
    slow, fast = Receiver(delay=3.0).start(), Receiver().start()
    try:
        hook_up(client, db, "cn.examiner", slow)
        other = type(client)(app)
        hook_up(other, db, "kr.examiner", fast)
        jp_upload(client, db)
        notify_now(app)
        worker = DeliveryWorker(app.state.engine, app.state.plugins.notification_channels,
                                ChannelHost(app.state.engine, app.state.settings),
                                poll_seconds=0.05)

        async def run() -> float:
            started = time.monotonic()
            await worker.start()
            try:
                while not fast.received:
                    await asyncio.sleep(0.02)
                return time.monotonic() - started
            finally:
                await worker.stop()

        took = anyio.run(run)
        assert took < 2.0, f"the fast receiver waited {took:.1f} s for the slow one"
        assert slow.received == []  # still waiting for its answer
    finally:
        slow.stop()
        fast.stop()


def test_deliveries_done_long_ago_are_forgotten(app, client, db, receiver) -> None:
    from caseforum.channels import prune_deliveries

    hook_up(client, db, "cn.examiner", receiver)
    jp_upload(client, db, 2)
    notify_now(app)
    send_now(app, "webhook")
    with open_session(app.state.engine) as session:
        first = session.exec(select(Delivery).order_by(Delivery.id)).first()
        first.created_at = utcnow() - timedelta(days=40)
        session.add(first)
        session.commit()
    assert prune_deliveries(app.state.engine, 30) == 1
    assert len(db.exec(select(Delivery)).all()) == 1


def test_administrators_send_failed_deliveries_again(app, client, db, receiver) -> None:
    hook_up(client, db, "cn.examiner", receiver)
    jp_upload(client, db)
    notify_now(app)
    with open_session(app.state.engine) as session:  # it gave up long ago
        session.exec(update(Delivery).values(state="failed", attempts=10,
                                             last_error="RuntimeError: 500"))
        session.commit()
    admin = type(client)(app)
    csrf = login(admin, "admin")
    page = admin.get("/admin/deliveries").text
    assert "RuntimeError: 500" in page and "Send the failed ones again" in page
    jp_admin = type(client)(app)
    jp_csrf = login(jp_admin, "jp.admin")  # not their office's user: nothing happens
    jp_admin.post("/admin/deliveries/retry", data={"csrf_token": jp_csrf})
    assert send_now(app, "webhook") == 0
    admin.post("/admin/deliveries/retry", data={"csrf_token": csrf})
    assert send_now(app, "webhook") == 1 and len(receiver.received) == 1


def test_only_a_commit_that_queued_deliveries_wakes_the_delivery_workers(engine) -> None:
    """A post seen by many watchers queues no delivery: the workers must not claim
    (one query per channel) while the live hub renders and sends it."""
    from caseforum import channels
    from caseforum.events import emit

    async def watch() -> tuple[bool, bool]:
        flag = asyncio.Event()
        waiting = (asyncio.get_running_loop(), flag)
        channels._waiting.add(waiting)
        try:
            def plain_event() -> None:
                with open_session(engine) as session:
                    emit(session, kind="test.other")
                    session.commit()

            await anyio.to_thread.run_sync(plain_event)
            await asyncio.sleep(0.05)
            after_event = flag.is_set()

            def queued() -> None:
                with open_session(engine) as session:
                    session.info[channels._QUEUED] = True  # as channels.queue() marks it
                    session.commit()

            await anyio.to_thread.run_sync(queued)
            await asyncio.wait_for(flag.wait(), timeout=2)
            return after_event, flag.is_set()
        finally:
            channels._waiting.discard(waiting)

    assert asyncio.run(watch()) == (False, True)
