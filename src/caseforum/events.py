"""The spine: a durable event log read by consumers with stored cursors.

A change and its :class:`~caseforum.models.Event` row commit together
(transactional outbox).  After the commit the broker wakes the consumers;
each reads the log past its cursor, handles every event and moves its cursor
in the same transaction as its own writes, so a restart in the middle neither
loses nor repeats work that was committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import anyio
from sqlalchemy import delete, func, text, update
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from caseforum.db import open_session
from caseforum.models import AccountAudit, ConsumerCursor, Event, utcnow

log = logging.getLogger(__name__)

#: how often a consumer fails on one event before it is skipped and logged
MAX_ATTEMPTS = 5
#: how often a consumer writes its cursor past events it does not want (process_pending)
SKIP_WRITE_SECONDS = 5.0
#: the longest a woken consumer waits for the realtime hub to push the event first
HUB_FIRST_SECONDS = 0.25


def emit(
    session: Session,
    *,
    kind: str,
    actor_id: int | None = None,
    office_code: str | None = None,
    subject_type: str = "",
    subject_id: str | int = "",
    payload: dict[str, Any] | None = None,
) -> Event:
    """Add an event to ``session``; it is written when the caller commits."""
    event = Event(
        kind=kind,
        actor_id=actor_id,
        office_code=office_code,
        subject_type=subject_type,
        subject_id=str(subject_id),
        payload=payload or {},
    )
    session.add(event)
    session.info["events_emitted"] = True
    session.info.setdefault("emitted", []).append(event)
    return event


#: set in a session's ``info`` while a committer that wakes the broker itself commits
#: (:meth:`caseforum.forum.hub.Hub.commit`); the events it committed are then left in
#: ``info[COMMITTED]``
WAKE_LATER = "wake_later"
COMMITTED = "committed_events"


#: PostgreSQL hands out event ids when a row is inserted, but transactions commit in
#: their own order: a reader that has seen event 101 would never look back for 100,
#: committed a moment later by a slower transaction (another request, worker or host),
#: and the live hub, every consumer and every resuming socket would skip it.  So a
#: transaction takes this lock before it writes its first event and holds it until it
#: ends: ids become visible in order.  Events are written at the end of short
#: transactions, so the wait is short; SQLite has one writer at a time anyway.
EVENT_ORDER_LOCK = 0x63665F6576656E74  # "cf_event"
_ORDER_LOCKED = "event_order_locked"


@sa_event.listens_for(OrmSession, "before_flush")
def _events_in_commit_order(session: OrmSession, _context: Any, _instances: Any) -> None:
    emitted = session.info.get("emitted")
    if not emitted or session.info.get(_ORDER_LOCKED):
        return
    if not any(event in session.new for event in emitted):
        return  # this flush writes no event (see _events_written_last)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_ORDER_LOCK})
    session.info[_ORDER_LOCKED] = True


@sa_event.listens_for(OrmSession, "before_commit")
def _events_written_last(session: OrmSession) -> None:
    """On PostgreSQL the commit writes everything else first and only then takes the
    lock and writes the events, so the lock is the last thing the transaction asks
    for.  Taken earlier (at the flush that also updates a row), two transactions
    could each hold what the other waits for: a post that updated its thread's
    counters and waits for the lock, and a moderator's change to the same thread
    that holds the lock and waits for the row (PostgreSQL would abort one)."""
    emitted = session.info.get("emitted")
    if not emitted or session.info.get(_ORDER_LOCKED):
        return
    if session.get_bind().dialect.name != "postgresql":
        return
    unwritten = [event for event in emitted if event in session.new]
    for event in unwritten:
        session.expunge(event)
    session.flush()
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_ORDER_LOCK})
    session.info[_ORDER_LOCKED] = True
    session.add_all(unwritten)


@sa_event.listens_for(OrmSession, "after_transaction_end")
def _order_lock_released(session: OrmSession, transaction: Any) -> None:
    """The lock ends with the transaction (commit, rollback or close); a savepoint
    rolled back may have released it too, so after a savepoint the next flush with
    events asks again (PostgreSQL counts a lock taken twice; it ends with the
    transaction).  A flush's own inner transaction changes nothing."""
    if transaction.parent is None or transaction.nested:
        session.info.pop(_ORDER_LOCKED, None)


@sa_event.listens_for(OrmSession, "after_commit")
def _wake_after_commit(session: OrmSession) -> None:
    emitted = session.info.pop("emitted", [])
    if session.info.pop("events_emitted", False):
        if session.info.get(WAKE_LATER):
            session.info[COMMITTED] = emitted
            return
        broker = session.info.get("broker")
        if broker is not None:
            broker.wake()


@sa_event.listens_for(OrmSession, "after_rollback")
def _forget_after_rollback(session: OrmSession) -> None:
    session.info.pop("events_emitted", None)
    session.info.pop("emitted", None)


# Brokers -----------------------------------------------------------------


class LocalBroker:
    """Wakes waiters in this process.  ``wake`` is safe from any thread."""

    def __init__(self) -> None:
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()
        # the realtime hub goes first (see :meth:`hub_behind`): wake-ups counted,
        # and the count the hub had read up to when it last finished
        self._wakes = 0
        self._hub_done = 0
        self._hubs = 0
        self._after_hub: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def subscribe(self) -> asyncio.Event:
        flag = asyncio.Event()
        with self._lock:
            self._waiters.add((asyncio.get_running_loop(), flag))
        return flag

    def unsubscribe(self, flag: asyncio.Event) -> None:
        with self._lock:
            self._waiters = {w for w in self._waiters if w[1] is not flag}

    def wake(self) -> None:
        self._wake_local()

    def _wake_local(self) -> None:
        with self._lock:
            self._wakes += 1
            waiters = list(self._waiters)
        for loop, flag in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(flag.set)

    # the realtime hub first ------------------------------------------------------
    #
    # Pushing a new post to watchers is what a user waits for; the consumers
    # (notifier, audit, plugins, bots) wake on the same event and, running at the
    # same time in worker threads, would share the interpreter with the hub's
    # render and sends and roughly double their time.  So consumers let the hub
    # finish first, for at most :data:`HUB_FIRST_SECONDS`.

    def hub_started(self) -> None:
        with self._lock:
            self._hubs += 1

    def hub_stopped(self) -> None:
        with self._lock:
            self._hubs -= 1
        self._hub_moved()

    def hub_reading(self) -> int:
        """What the hub is about to catch up with: pass it to :meth:`hub_caught_up`."""
        return self._wakes

    def hub_caught_up(self, mark: int) -> None:
        with self._lock:
            self._hub_done = max(self._hub_done, mark)
        self._hub_moved()

    def _hub_moved(self) -> None:
        """Wake whoever waits in :meth:`after_hub` to look again (any thread)."""
        with self._lock:
            waiting = list(self._after_hub)
        for loop, flag in waiting:
            if not loop.is_closed():
                loop.call_soon_threadsafe(flag.set)

    def hub_behind(self) -> bool:
        """Whether a hub in this process has wake-ups it has not handled yet."""
        return self._hubs > 0 and self._wakes > self._hub_done

    async def after_hub(self, limit: float | None = None) -> None:
        """Wait (bounded) until this process's hub has handled every wake-up so far."""
        if not self.hub_behind():
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (HUB_FIRST_SECONDS if limit is None else limit)
        # woken when the hub moves on, not by polling: a few consumers polling every
        # few milliseconds took the interpreter from the hub's render thread
        flag = asyncio.Event()
        waiting = (loop, flag)
        with self._lock:
            self._after_hub.add(waiting)
        try:
            while self.hub_behind():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                flag.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(flag.wait(), timeout=remaining)
        finally:
            with self._lock:
                self._after_hub.discard(waiting)

    async def start(self) -> None:
        """Nothing to connect in-process."""

    async def stop(self) -> None:
        """Nothing to disconnect in-process."""


class RedisBroker(LocalBroker):
    """Fans wake-ups out to every worker and host through Redis pub/sub."""

    channel = "caseforum:events"

    def __init__(self, url: str) -> None:
        super().__init__()
        import redis

        self._url = url
        self._client = redis.Redis.from_url(url)
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        try:
            self._client.publish(self.channel, b"1")
        except Exception:  # Redis down: consumers still poll, so only latency suffers
            log.warning("could not publish wake-up to Redis; consumers will poll")
            self._wake_local()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="redis-broker")

    async def _listen(self) -> None:
        """Relay wake-ups from Redis; reconnect with backoff when it goes away
        (meanwhile consumers keep polling, so nothing is lost, only delayed)."""
        import redis.asyncio as aioredis

        delay = 0.5
        while True:
            client = aioredis.Redis.from_url(self._url)
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(self.channel)
                delay = 0.5
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._wake_local()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Redis wake-ups unavailable (%s); retrying in %.1fs", exc, delay)
            finally:
                await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._client.close()


async def cancel_tasks(tasks: list[asyncio.Task[Any]], *, wait: float = 5.0) -> None:
    """Cancel background tasks at shut-down.

    A task stuck in a database call gets ``wait`` seconds, then is left behind
    rather than holding up the shutdown.  Tasks of another event loop (the same
    app started twice, as tests do) are cancelled on their own loop.
    """
    loop = asyncio.get_running_loop()
    mine = []
    for task in tasks:
        owner = task.get_loop()
        if owner is loop:
            task.cancel()
            mine.append(task)
        elif not owner.is_closed():
            owner.call_soon_threadsafe(task.cancel)
    if mine:
        await asyncio.wait(mine, timeout=wait)


def make_broker(redis_url: str | None) -> LocalBroker:
    return RedisBroker(redis_url) if redis_url else LocalBroker()


# Consumers ---------------------------------------------------------------


class Consumer(ABC):
    """Reads the log past its cursor.  Subclasses implement :meth:`handle`.

    ``handle`` runs inside the transaction that moves the cursor, so database
    writes it makes commit exactly once.  Side effects outside the database
    (e-mail, HTTP) may repeat after a crash and must be idempotent.
    """

    name: str = ""
    batch_size: int = 200
    passed_over_at: float = 0.0  # when unwanted events last moved the cursor
    cursor_made: bool = False  # this process has made sure the cursor's row exists
    #: a pause after each round, for a consumer whose every round costs a commit of its
    #: own (the search index): at most one round per pause however fast events come
    settle_seconds: float = 0.0

    def wants(self, event: Event) -> bool:
        return True

    @abstractmethod
    def handle(self, session: Session, event: Event) -> None:
        """Act on one event; runs in the transaction that moves the cursor."""

    def after_commit(self) -> None:  # noqa: B027  (optional hook, empty by default)
        """Called after each committed event: side effects outside the database."""


def _cursor(session: Session, name: str, *, lock: bool = False) -> ConsumerCursor:
    """Read a consumer's cursor; ``lock`` holds it until the transaction ends.

    The lock is taken with a write (PostgreSQL locks the row, SQLite the
    database), so two workers never handle the same event at once.
    """
    if lock:
        session.exec(
            update(ConsumerCursor).where(col(ConsumerCursor.name) == name)
            .values(updated_at=utcnow())
        )
    query = select(ConsumerCursor).where(ConsumerCursor.name == name)
    cursor = session.exec(query).first()
    if cursor is None:
        try:  # two workers may meet a new consumer at once: one insert wins
            with session.begin_nested():
                session.add(ConsumerCursor(name=name))
        except IntegrityError:
            pass
        cursor = session.exec(query).one()
    return cursor


def process_pending(consumer: Consumer, engine: Engine, broker: Any = None) -> int:
    """Handle every event past the consumer's cursor; return how many were handled.

    Events the consumer does not want cost no transaction of their own: handling a
    wanted one moves the cursor past those before it, and a run of unwanted ones at
    the end is passed over in one write, at most every :data:`SKIP_WRITE_SECONDS`
    (or at once when it fills a batch).  Until then they are read again next time
    and passed over again: nothing is handled twice, since they are not handled.
    A consumer with its own ``process(engine, broker)`` (the search indexer, which
    writes a batch of events per commit) does the reading itself."""
    own = getattr(consumer, "process", None)
    if own is not None:
        return int(own(engine, broker))
    handled = 0
    while True:
        with open_session(engine, broker) as session:
            if consumer.cursor_made:
                # the cursor read inside the one query: every consumer of every host
                # does this on every wake-up, and a query with a commit of its own
                # before it cost as much again
                start: Any = func.coalesce(select(ConsumerCursor.last_event_id).where(
                    col(ConsumerCursor.name) == consumer.name).scalar_subquery(), 0)
            else:  # the first round makes the cursor's row if it has none yet
                start = _cursor(session, consumer.name).last_event_id
                session.commit()
                consumer.cursor_made = True
            batch = session.exec(
                select(Event).where(col(Event.id) > start).order_by(col(Event.id))
                .limit(consumer.batch_size)
            ).all()
        if not batch:
            return handled
        passed_over = 0
        for event in batch:
            if not consumer.wants(event):
                passed_over = event.id or passed_over
                continue
            passed_over = 0
            if not _handle_one(consumer, engine, broker, event):
                return handled
            handled += 1
        full = len(batch) >= consumer.batch_size
        if passed_over and (full or time.monotonic() - consumer.passed_over_at
                            > SKIP_WRITE_SECONDS):
            _pass_over(consumer, engine, passed_over)
        if not full:
            return handled


def _pass_over(consumer: Consumer, engine: Engine, event_id: int) -> None:
    """Move the cursor to ``event_id`` over events the consumer does not want."""
    with open_session(engine) as session:
        cursor = _cursor(session, consumer.name, lock=True)
        if cursor.last_event_id < event_id:
            cursor.last_event_id = event_id
            cursor.attempts = 0
            cursor.last_error = ""
            cursor.updated_at = utcnow()
            session.add(cursor)
        session.commit()
    consumer.passed_over_at = time.monotonic()


def _handle_one(consumer: Consumer, engine: Engine, broker: Any, event: Event) -> bool:
    with open_session(engine, broker) as session:
        cursor = _cursor(session, consumer.name, lock=True)
        if cursor.last_event_id >= (event.id or 0):
            return True  # another worker got there first
        try:
            if consumer.wants(event):
                consumer.handle(session, event)
            cursor.last_event_id = event.id or 0
            cursor.attempts = 0
            cursor.last_error = ""
            cursor.updated_at = utcnow()
            session.add(cursor)
            session.commit()
        except Exception as exc:
            session.rollback()
            log.exception("consumer %s failed on event %s", consumer.name, event.id)
            return _record_failure(consumer, engine, event, exc)
    try:
        consumer.after_commit()
    except Exception:
        log.exception("consumer %s: after-commit step failed on event %s",
                      consumer.name, event.id)
    return True


def _record_failure(consumer: Consumer, engine: Engine, event: Event, exc: Exception) -> bool:
    """Count the failure; after MAX_ATTEMPTS skip the event so the rest flows."""
    with open_session(engine) as session:
        cursor = _cursor(session, consumer.name, lock=True)
        cursor.attempts += 1
        cursor.last_error = f"event {event.id} ({event.kind}): {type(exc).__name__}: {exc}"[:500]
        skip = cursor.attempts >= MAX_ATTEMPTS
        if skip:
            log.error("consumer %s skips event %s after %d attempts",
                      consumer.name, event.id, cursor.attempts)
            cursor.last_event_id = event.id or 0
            cursor.attempts = 0
        session.add(cursor)
        session.commit()
    return skip


class ConsumerRunner:
    """Runs consumers as asyncio tasks: woken by the broker, polling as a fallback."""

    def __init__(
        self,
        engine: Engine,
        broker: LocalBroker,
        consumers: Sequence[Consumer],
        *,
        poll_seconds: float = 2.0,
        keep_days: int = 30,
    ) -> None:
        self.engine = engine
        self.broker = broker
        self.consumers = list(consumers)
        self.poll_seconds = poll_seconds
        self.keep_days = keep_days
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for consumer in self.consumers:
            self._tasks.append(asyncio.create_task(self._run(consumer), name=consumer.name))
        self._tasks.append(asyncio.create_task(self._prune(), name="event-pruner"))

    async def _prune(self) -> None:
        """Keep the log to its window; clients older than it are told to reload."""
        while True:
            def once() -> int:
                with open_session(self.engine) as session:
                    return prune_events(session, keep_days=self.keep_days)

            try:
                removed = await anyio.to_thread.run_sync(once)
                if removed:
                    log.info("pruned %d events older than %d days", removed, self.keep_days)
            except Exception:
                log.exception("event pruning failed")
            await asyncio.sleep(3600)

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        self._tasks.clear()

    async def _run(self, consumer: Consumer) -> None:
        flag = self.broker.subscribe()
        try:
            while True:
                flag.clear()
                await self.broker.after_hub()  # watchers first (LocalBroker.after_hub)
                try:
                    await anyio.to_thread.run_sync(
                        process_pending, consumer, self.engine, self.broker
                    )
                except Exception:
                    log.exception("consumer %s crashed; retrying", consumer.name)
                if consumer.settle_seconds:
                    # what arrives meanwhile is taken in one round (one commit) after it
                    await asyncio.sleep(consumer.settle_seconds)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(flag.wait(), timeout=self.poll_seconds)
        finally:
            self.broker.unsubscribe(flag)


def prune_events(session: Session, *, keep_days: int) -> int:
    """Drop events older than the retention window; returns how many."""
    cutoff = utcnow() - timedelta(days=keep_days)
    result = session.exec(
        delete(Event).where(col(Event.at) < cutoff))
    session.commit()
    return result.rowcount or 0


def newest_event_id(session: Session) -> int:
    """The last event committed (0: none): where "from now" starts."""
    return session.exec(select(Event.id).order_by(col(Event.id).desc()).limit(1)).first() or 0


def oldest_event_id(session: Session) -> int:
    first = session.exec(select(Event.id).order_by(col(Event.id)).limit(1)).first()
    return first or 0


# Built-in consumers ------------------------------------------------------


#: office events that the account history records too (admin decisions, not roles)
AUDITED_OFFICE_EVENTS = frozenset({"office.public_access"})


class AccountAuditConsumer(Consumer):
    """Keeps the account history page: every ``account.*`` event and each switch of
    an office's public access, once."""

    name = "account-audit"

    def wants(self, event: Event) -> bool:
        return event.kind.startswith("account.") or event.kind in AUDITED_OFFICE_EVENTS

    def handle(self, session: Session, event: Event) -> None:
        exists = session.exec(
            select(AccountAudit.id).where(AccountAudit.event_id == event.id)
        ).first()
        if exists:
            return
        user_id = event.payload.get("user_id")
        session.add(
            AccountAudit(
                event_id=event.id or 0,
                at=event.at,
                kind=event.kind,
                user_id=int(user_id) if user_id is not None else None,
                actor_id=event.actor_id,
                office_code=event.office_code,
                detail=str(event.payload.get("detail", "")),
            )
        )


class PluginEventsConsumer(Consumer):
    """Hands each event to the plugins' ``on_event`` hook."""

    name = "plugin-events"

    def __init__(self, call: Callable[[Event], object],
                 wanted: Callable[[], bool] = lambda: True) -> None:
        self._call = call
        self._wanted = wanted  # whether any plugin implements on_event now

    def wants(self, event: Event) -> bool:
        return self._wanted()

    def handle(self, session: Session, event: Event) -> None:
        self._call(event)
