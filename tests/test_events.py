"""The durable event log: outbox writes, consumers, cursors, restarts."""

from __future__ import annotations

import asyncio
import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from caseforum import accounts
from caseforum.app import create_app
from caseforum.db import open_session
from caseforum.events import (
    AUDITED_OFFICE_EVENTS,
    MAX_ATTEMPTS,
    AccountAuditConsumer,
    Consumer,
    LocalBroker,
    emit,
    process_pending,
)
from caseforum.models import AccountAudit, ConsumerCursor, Event
from tests.conftest import login
from tests.sql_helpers import counted


def _count(session: Session, model) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def _account_events(session: Session) -> int:
    return session.exec(
        select(func.count()).select_from(Event).where(
            Event.kind.like("account.%") | Event.kind.in_(AUDITED_OFFICE_EVENTS))
    ).one()


def test_an_event_commits_with_its_change_or_not_at_all(engine) -> None:
    with open_session(engine) as session:
        before = _count(session, Event)
        accounts.create_user(session, username="rolled.back", office_code="JP",
                             role="examiner", password="long-enough-pw")
        session.rollback()
        assert _count(session, Event) == before
        accounts.create_user(session, username="kept", office_code="JP", role="examiner",
                             password="long-enough-pw")
        session.commit()
        assert _count(session, Event) == before + 1


def test_account_audit_fills_while_the_app_runs(settings) -> None:
    app = create_app(settings)
    with TestClient(app) as client:
        login(client, "jp.admin")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            page = client.get("/admin/audit").text
            if "from testclient" in page:
                break
            time.sleep(0.1)
        assert "logged in" in page and "from testclient" in page


def test_restart_in_the_middle_loses_and_repeats_nothing(settings, engine) -> None:
    app = create_app(settings)
    with TestClient(app) as client:
        login(client, "cn.examiner")
    # the app is down; more account events happen meanwhile (e.g. from the CLI)
    with open_session(engine) as session:
        for i in range(3):
            accounts.create_user(session, username=f"offline{i}", office_code="CN",
                                 role="examiner", password="long-enough-pw")
        session.commit()
    app2 = create_app(settings)
    with TestClient(app2):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open_session(engine) as session:
                if _count(session, AccountAudit) == _account_events(session):
                    break
            time.sleep(0.1)
    with open_session(engine) as session:
        assert _count(session, AccountAudit) == _account_events(session)
        ids = session.exec(select(AccountAudit.event_id)).all()
        assert len(ids) == len(set(ids))
        details = " ".join(session.exec(select(AccountAudit.detail)).all())
        assert "offline2 (examiner)" in details


class FlakyOnce(Consumer):
    """Fails on its third event the first time: a crash half-way through."""

    name = "flaky"

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.failed = False

    def handle(self, session, event) -> None:
        if len(self.seen) == 2 and not self.failed:
            self.failed = True
            raise RuntimeError("power cut")
        self.seen.append(event.id)


def test_a_failure_half_way_resumes_at_the_failed_event(engine) -> None:
    with open_session(engine) as session:
        start = session.exec(select(func.max(Event.id))).one() or 0
        session.add(ConsumerCursor(name="flaky", last_event_id=start))
        for i in range(5):
            emit(session, kind="test.flaky", payload={"i": i})
        session.commit()
    consumer = FlakyOnce()
    assert process_pending(consumer, engine) == 2
    with open_session(engine) as session:
        cursor = session.get(ConsumerCursor, "flaky")
        assert cursor.last_event_id == start + 2
        assert "power cut" in cursor.last_error
    assert process_pending(consumer, engine) == 3
    assert consumer.seen == list(range(start + 1, start + 6))


class OnlyMarked(Consumer):
    """Wants one kind of event among many others."""

    name = "only-marked"
    batch_size = 10

    def __init__(self) -> None:
        self.seen: list[int] = []

    def wants(self, event) -> bool:
        return event.kind == "test.marked"

    def handle(self, session, event) -> None:
        self.seen.append(event.id)


def _log(engine, kinds: list[str], cursor: str) -> int:
    with open_session(engine) as session:
        start = session.exec(select(func.max(Event.id))).one() or 0
        session.add(ConsumerCursor(name=cursor, last_event_id=start))
        for kind in kinds:
            emit(session, kind=kind)
        session.commit()
    return start


def test_events_a_consumer_does_not_want_cost_it_no_transaction_each(engine) -> None:
    start = _log(engine, ["test.other"] * 3 + ["test.marked"] + ["test.other"] * 3, "only-marked")
    consumer = OnlyMarked()
    with counted(engine) as statements:
        assert process_pending(consumer, engine) == 1
    assert consumer.seen == [start + 4]
    cursor_writes = [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    # the marked event's own transaction (lock, then the new position), and one more for
    # the three after it, since the consumer has not written for a while: 4, not 14
    assert len(cursor_writes) == 4
    with open_session(engine) as session:
        assert session.get(ConsumerCursor, "only-marked").last_event_id == start + 7
    assert process_pending(consumer, engine) == 0 and consumer.seen == [start + 4]


def test_unwanted_events_are_passed_over_lazily_but_never_block_a_full_batch(engine) -> None:
    consumer = OnlyMarked()
    consumer.passed_over_at = time.monotonic()  # it has just written its cursor
    start = _log(engine, ["test.other"] * 3, "only-marked")
    assert process_pending(consumer, engine) == 0
    with open_session(engine) as session:  # read again next time, not written now
        assert session.get(ConsumerCursor, "only-marked").last_event_id == start
    _log_more = ["test.other"] * 12 + ["test.marked"]
    with open_session(engine) as session:
        for kind in _log_more:
            emit(session, kind=kind)
        session.commit()
    # a batch (10) full of unwanted events moves the cursor, so the marked one is reached
    assert process_pending(consumer, engine) == 1
    assert consumer.seen == [start + 16]


class Poisoned(Consumer):
    name = "poisoned"

    def handle(self, session, event) -> None:
        if event.payload.get("poison"):
            raise ValueError("cannot digest")


def test_a_poison_event_is_skipped_after_max_attempts_and_recorded(engine, caplog) -> None:
    with open_session(engine) as session:
        start = session.exec(select(func.max(Event.id))).one() or 0
        session.add(ConsumerCursor(name="poisoned", last_event_id=start))
        emit(session, kind="test.poison", payload={"poison": True})
        emit(session, kind="test.fine")
        session.commit()
    consumer = Poisoned()
    for _ in range(MAX_ATTEMPTS - 1):
        assert process_pending(consumer, engine) == 0
    process_pending(consumer, engine)
    with open_session(engine) as session:
        cursor = session.get(ConsumerCursor, "poisoned")
        assert cursor.last_event_id == start + 2
    assert f"consumer poisoned skips event {start + 1} after {MAX_ATTEMPTS} attempts" \
        in caplog.text


def test_two_workers_on_one_log_handle_each_event_once(engine) -> None:
    with open_session(engine) as session:
        cursor = session.get(ConsumerCursor, "account-audit") or \
            ConsumerCursor(name="account-audit")
        cursor.last_event_id = 0  # both workers start from the beginning of the log
        session.add(cursor)
        session.commit()
        for i in range(20):
            accounts.create_user(session, username=f"parallel{i}", office_code="AU",
                                 role="examiner", password=None)
        session.commit()
    threads = [threading.Thread(target=process_pending, args=(AccountAuditConsumer(), engine))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open_session(engine) as session:
        assert _count(session, AccountAudit) == _account_events(session)


def test_local_broker_wakes_a_waiter_from_another_thread() -> None:
    async def scenario() -> bool:
        broker = LocalBroker()
        flag = broker.subscribe()
        threading.Timer(0.05, broker.wake).start()
        await asyncio.wait_for(flag.wait(), timeout=2)
        return flag.is_set()

    assert asyncio.run(scenario())


def test_commit_with_events_wakes_the_broker(engine) -> None:
    class Counting(LocalBroker):
        wakes = 0

        def wake(self) -> None:
            Counting.wakes += 1

    broker = Counting()
    with open_session(engine, broker) as session:
        session.exec(select(Event)).first()
        session.commit()
        assert Counting.wakes == 0  # nothing emitted, nobody woken
        emit(session, kind="test.wake")
        session.commit()
    assert Counting.wakes == 1


def test_prune_drops_only_events_older_than_the_window(engine) -> None:
    from datetime import timedelta

    from caseforum.events import oldest_event_id, prune_events
    from caseforum.models import utcnow

    with open_session(engine) as session:
        old = emit(session, kind="test.old")
        new = emit(session, kind="test.new")
        session.commit()
        old.at = utcnow() - timedelta(days=40)
        session.add(old)
        for e in session.exec(select(Event).where(Event.id < old.id)):
            e.at = utcnow() - timedelta(days=41)
            session.add(e)
        session.commit()
        assert prune_events(session, keep_days=30) >= 1
        assert session.get(Event, old.id) is None
        assert session.get(Event, new.id) is not None
        assert oldest_event_id(session) == new.id


def test_consumers_let_the_realtime_hub_push_a_new_event_first() -> None:
    """A woken consumer starts only once the hub has handled the wake-up, so the
    watchers' render and sends do not share the interpreter with it."""

    async def scenario() -> tuple[bool, bool]:
        broker = LocalBroker()
        broker.hub_started()
        mark = broker.hub_reading()
        broker.wake()  # a post committed: the hub has not read it yet
        waiting = asyncio.create_task(broker.after_hub(limit=5))
        await asyncio.sleep(0.05)
        held = not waiting.done()
        broker.hub_caught_up(mark + 1)
        await asyncio.wait_for(waiting, timeout=1)
        return held, waiting.done()

    assert asyncio.run(scenario()) == (True, True)


def test_consumers_wait_for_a_stuck_hub_only_a_bounded_time() -> None:
    async def scenario() -> tuple[float, float]:
        broker = LocalBroker()
        t0 = time.perf_counter()
        broker.wake()
        await broker.after_hub(limit=5)  # no hub in this process: no waiting at all
        alone = time.perf_counter() - t0
        broker.hub_started()  # a hub that never catches up (stuck on a slow query)
        broker.wake()
        t0 = time.perf_counter()
        await broker.after_hub(limit=0.1)
        return alone, time.perf_counter() - t0

    alone, stuck = asyncio.run(scenario())
    assert alone < 0.05
    assert 0.09 <= stuck < 1.0
