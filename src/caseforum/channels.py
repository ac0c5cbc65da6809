"""Notification channels and their delivery: at least once, never twice, nobody waits.

A channel is what a plugin returns from ``register_notification_channels``
(:class:`NotificationChannel`).  The notifier stores each notification and, in
the same transaction, one :class:`~caseforum.models.Delivery` row per channel
(and endpoint) the user chose; *immediate* channels (the in-app bell: database
only) are served right there instead.  The :class:`DeliveryWorker` then sends
the rows, outside any transaction:

* **once per (notification, channel, endpoint)**: the row is unique, and a worker
  claims it with a conditional ``UPDATE`` (``pending`` → ``sending`` with a lease),
  so two workers or processes never both send it;
* **at least once**: a send that fails is retried with exponential backoff; a
  process killed mid-send leaves a ``sending`` row whose lease runs out, and it
  is sent again (with the same delivery id, which e-mail carries as its
  ``Message-ID`` and webhooks as ``X-CaseForum-Delivery``, so a receiver can drop
  the rare repeat);
* **nobody waits**: each channel has its own task and its own small thread pool,
  and within a channel each send is a task of its own, so a slow SMTP server or
  webhook endpoint holds up only its own deliveries (up to the channel's
  ``concurrency`` of them hanging at once, each until its time-out);
* **permission at send time**: right before sending, the worker checks that the
  user may still see the thread or document; if not, the row is ``dropped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import anyio
from sqlalchemy import delete, insert, or_, update
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from caseforum import authcache
from caseforum.authz import Viewer
from caseforum.db import open_session
from caseforum.forum import inbox
from caseforum.forum.access import in_chunks
from caseforum.models import Delivery, Notification, User, utcnow

log = logging.getLogger(__name__)

#: how long a claimed delivery may take before another worker may send it again
LEASE = timedelta(minutes=2)
#: the deliveries' table, for statements that need no ORM objects (claims, outcomes)
_TABLE = Delivery.__table__  # type: ignore[attr-defined]


class ChannelPaused(Exception):
    """Raised by a channel that cannot send now through no fault of the delivery
    (a disabled webhook endpoint): the delivery waits without using up attempts."""

    def __init__(self, message: str, *, wait: timedelta = timedelta(hours=1)) -> None:
        super().__init__(message)
        self.wait = wait


@dataclass
class Outgoing:
    """One notification on its way to one user through one channel."""

    notification: Notification
    user: User
    #: the channel's own target (a webhook endpoint's id); 0 when it has none
    endpoint_id: int = 0
    #: the Delivery row's id (0 for an immediate channel): a stable id for receivers
    delivery_id: int = 0
    attempt: int = 1
    #: what the channel may use: ``engine``, ``settings`` and ``base_url``
    host: Any = None
    #: the notifier's session, for immediate channels only (no network calls!)
    session: Session | None = None
    #: other deliveries (ids) of this channel and user that ``deliver`` sent along with
    #: this one and claimed itself (a digest's): recorded as sent together with it
    along: list[int] = field(default_factory=list)


@runtime_checkable
class NotificationChannel(Protocol):
    """What ``register_notification_channels`` returns a list of.

    Optional attributes, read with defaults: ``immediate`` (``False``; ``True``
    means ``deliver`` runs in the notifier's transaction and must only write to
    ``outgoing.session``), ``concurrency`` (4 sends at once), ``max_attempts``
    (10), ``retry_seconds`` (5, doubled on each failure), ``endpoints(session,
    user) -> list[int]`` (one delivery per endpoint; default ``[0]``) and
    ``available(settings) -> bool`` (whether users may choose it) and
    ``due_at(user, now) -> datetime | None`` (hold deliveries back, e.g. a digest)
    and ``one_per_user`` (``False``; claim one delivery per user at a time)."""

    name: str
    label: str

    def deliver(self, outgoing: Outgoing) -> None:
        """Send it; raise to have it retried (``ChannelPaused`` to wait)."""


def option(channel: Any, name: str, default: Any) -> Any:
    return getattr(channel, name, default)


def available(channel: Any, settings: Any) -> bool:
    check = getattr(channel, "available", None)
    return True if check is None else bool(check(settings))


@dataclass
class ChannelHost:
    """What a channel's ``deliver`` may reach: the database and the settings."""

    engine: Engine
    settings: Any

    @property
    def base_url(self) -> str:
        return str(self.settings.base_url).rstrip("/")


# Permission at send time ---------------------------------------------------


def still_visible(session: Session, user: User | None, note: Notification) -> bool:
    """Whether ``user`` may still see what ``note`` is about (the thread, the
    document): rights change between the event and the send."""
    return bool(visible_notes(session, user, [note]))


def visible_notes(session: Session, user: User | None,
                  notes: list[Notification]) -> list[Notification]:
    """Those of ``user``'s ``notes`` they may still see, judged together
    (:func:`caseforum.forum.inbox.readable`: a digest of fifty is one query, not fifty)."""
    if user is None or not user.is_active:
        return []
    office = authcache.offices(session).get(user.office_code)  # cached per process
    return inbox.readable(session, Viewer.of(user, office), notes)


# Queueing (in the notifier's transaction) -----------------------------------


def queue(session: Session, items: list[tuple[Notification, User, list[str]]],
          channels: list[Any], host: Any) -> int:
    """Serve each stored notification of ``items`` (with its user and the channel
    names they chose) through those of ``channels`` that are available: immediate
    ones now (``deliver_many`` once for all, where the channel has it, else
    ``deliver`` for each), the others as Delivery rows, written in one statement.
    Returns the rows added."""
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for channel in channels:
        if host is not None and not available(channel, host.settings):
            continue
        wanted = [(note, user) for note, user, names in items if channel.name in names]
        if not wanted:
            continue
        if option(channel, "immediate", False):
            outgoing = [Outgoing(notification=note, user=user, host=host, session=session)
                        for note, user in wanted]
            many = getattr(channel, "deliver_many", None)
            if many is not None:
                many(outgoing)
            else:
                for one in outgoing:
                    channel.deliver(one)
            continue
        finder = getattr(channel, "endpoints", None)
        timing = getattr(channel, "due_at", None)  # e.g. an e-mail digest holds it back
        for note, user in wanted:
            due = (timing(user, now) if timing is not None else None) or now
            for endpoint_id in (finder(session, user) if finder is not None else [0]):
                rows.append({"notification_id": note.id or 0, "user_id": user.id or 0,
                             "channel": channel.name, "endpoint_id": endpoint_id,
                             "state": "pending", "attempts": 0, "due_at": due,
                             "lease_until": None, "last_error": "", "sent_at": None,
                             "created_at": now})
    if rows:
        session.connection().execute(insert(Delivery), rows)
        session.info[_QUEUED] = True  # the commit wakes this process's delivery workers
    return len(rows)


# Waking the delivery workers ------------------------------------------------------
#
# Only a commit that queued deliveries wakes them (not every event: a post to a thread
# with 500 watchers must not set off a claim per channel while the hub renders and
# sends).  Workers in other processes and hosts find new rows by polling.

_QUEUED = "caseforum.deliveries_queued"
_waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
_waiting_lock = threading.Lock()


@sa_event.listens_for(OrmSession, "after_commit")
def _wake_workers(session: OrmSession) -> None:
    if session.info.pop(_QUEUED, False):
        with _waiting_lock:
            waiting = list(_waiting)
        for loop, flag in waiting:
            if not loop.is_closed():
                loop.call_soon_threadsafe(flag.set)


@sa_event.listens_for(OrmSession, "after_rollback")
def _forget_queued(session: OrmSession) -> None:
    session.info.pop(_QUEUED, None)


# Sending ----------------------------------------------------------------------


def claim(engine: Engine, channel: str, *, limit: int, one_per_user: bool = False) -> list[int]:
    """Take up to ``limit`` due deliveries of ``channel`` for this worker (with
    ``one_per_user``, at most one per user: the channel gathers the rest itself,
    as the e-mail digest does).  See :func:`claim_leased`."""
    return claim_leased(engine, channel, limit=limit, one_per_user=one_per_user)[0]


def claim_leased(engine: Engine, channel: str, *, limit: int,
                 one_per_user: bool = False) -> tuple[list[int], datetime]:
    """:func:`claim`, and the lease the deliveries were taken with (hand it to
    :func:`send_one`, which sends only while the lease is still this one).

    They are taken with one conditional ``UPDATE … RETURNING``: of two workers, one
    changes a row and the other does not get it back, and leaves it."""
    now = utcnow()
    lease = now + LEASE
    due = or_(_TABLE.c.state == "pending",
              (_TABLE.c.state == "sending") & (_TABLE.c.lease_until < now))
    with open_session(engine) as session:
        # two queries, not one with an OR: each walks the state index in id order and
        # stops at the limit (the OR made SQLite sort every pending row, 10^5 in a burst)
        rows = sorted({*session.exec(select(Delivery.id, Delivery.user_id).where(
            col(Delivery.state) == "pending", Delivery.channel == channel,
            col(Delivery.due_at) <= now).order_by(col(Delivery.id)).limit(limit)),
            *session.exec(select(Delivery.id, Delivery.user_id).where(
                col(Delivery.state) == "sending", Delivery.channel == channel,
                col(Delivery.lease_until) < now).order_by(col(Delivery.id)).limit(limit))
        })[:limit]
        users: set[int] = set()
        candidates = []
        for delivery_id, user_id in rows:
            if one_per_user and user_id in users:
                continue
            users.add(user_id)
            candidates.append(delivery_id)
        taken: set[int] = set()
        if candidates:
            taken = set(session.connection().execute(
                update(_TABLE).where(_TABLE.c.id.in_(candidates), due)
                .values(state="sending", lease_until=lease, attempts=_TABLE.c.attempts + 1)
                .returning(_TABLE.c.id)).scalars())
        session.commit()
    return [d for d in candidates if d in taken], lease


def _still_ours(session: Session, delivery_id: int, lease: datetime) -> bool:
    """Renew the lease of a claimed delivery if it is still the one it was claimed
    with.  A delivery that waited for a free sender longer than :data:`LEASE` (a
    busy process) may have been claimed again meanwhile, by another worker or by
    this one: then the other claim sends it, not this one (it went out twice when
    a burst held the sends back for minutes)."""
    held = session.connection().execute(
        update(_TABLE).where(_TABLE.c.id == delivery_id, _TABLE.c.state == "sending",
                             _TABLE.c.lease_until == lease)
        .values(lease_until=utcnow() + LEASE)).rowcount
    session.commit()  # at once: a write transaction held across reads makes writers wait
    return bool(held)


def send_one(engine: Engine, channel: Any, delivery_id: int, host: Any,
             lease: datetime | None = None) -> str:
    """Send one claimed delivery and record the outcome; returns the new state
    (``"taken"``: claimed again by someone else since ``lease``, left to them)."""
    with open_session(engine) as session:
        if lease is not None and not _still_ours(session, delivery_id, lease):
            return "taken"
        found = session.exec(
            select(Delivery, Notification, User)
            .outerjoin(Notification, col(Notification.id) == col(Delivery.notification_id))
            .outerjoin(User, col(User.id) == col(Delivery.user_id))
            .where(col(Delivery.id) == delivery_id)).first()
        if found is None:
            return "gone"
        delivery, note, user = found
        visible = note is not None and still_visible(session, user, note)
    # the session is closed here: no transaction stays open across the network call
    if not visible or note is None or user is None:
        return _finish(engine, delivery_id, state="dropped",
                       error="the user may no longer see this, or it is gone")
    outgoing = Outgoing(notification=note, user=user, endpoint_id=delivery.endpoint_id,
                        delivery_id=delivery_id, attempt=delivery.attempts, host=host)
    try:
        channel.deliver(outgoing)
    except ChannelPaused as exc:
        return _finish(engine, delivery_id, state="pending", error=str(exc),
                       due_at=utcnow() + exc.wait, refund=True)
    except Exception as exc:
        log.warning("channel %s: delivery %s failed: %s", channel.name, delivery_id, exc)
        error = f"{type(exc).__name__}: {exc}"
        if delivery.attempts >= option(channel, "max_attempts", 10):
            return _finish(engine, delivery_id, state="failed", error=error)
        wait = option(channel, "retry_seconds", 5.0) * 2 ** (delivery.attempts - 1)
        return _finish(engine, delivery_id, state="pending", error=error,
                       due_at=utcnow() + timedelta(seconds=wait))
    return _finish(engine, delivery_id, state="sent", error="", sent=True,
                   along=outgoing.along)


def _finish(engine: Engine, delivery_id: int, *, state: str, error: str,
            due_at: datetime | None = None, sent: bool = False, refund: bool = False,
            along: list[int] | None = None) -> str:
    values: dict[str, Any] = {"state": state, "last_error": error[:500], "lease_until": None}
    if due_at is not None:
        values["due_at"] = due_at
    if sent:
        values["sent_at"] = utcnow()
    if refund:
        values["attempts"] = _TABLE.c.attempts - 1
    with open_session(engine) as session:
        for chunk in in_chunks([delivery_id, *(along or [])]):
            session.connection().execute(update(_TABLE).where(_TABLE.c.id.in_(chunk))
                                         .values(**values))
        session.commit()
    return state


def retry_now(session: Session, *, channel: str, endpoint_id: int | None = None,
              user_id: int | None = None) -> int:
    """Make waiting and failed deliveries due at once (an endpoint switched back on,
    an administrator's "retry"); returns how many."""
    query = update(Delivery).where(col(Delivery.channel) == channel,
                                   col(Delivery.state).in_(("pending", "failed")))
    if endpoint_id is not None:
        query = query.where(col(Delivery.endpoint_id) == endpoint_id)
    if user_id is not None:
        query = query.where(col(Delivery.user_id) == user_id)
    result = session.exec(query.values(state="pending", due_at=utcnow()))
    return result.rowcount or 0


@dataclass
class DeliveryWorker:
    """One task per channel; each sends its due deliveries, a batch at a time,
    its sends side by side in a thread pool of its own."""

    engine: Engine
    channels: Callable[[], list[Any]]
    host: Any
    broker: Any = None
    poll_seconds: float = 1.0
    batch: int = 50
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def start(self) -> None:
        self._tasks["*"] = asyncio.create_task(self._supervise(), name="delivery")

    async def stop(self) -> None:
        from caseforum.events import cancel_tasks

        await cancel_tasks(list(self._tasks.values()))
        self._tasks.clear()

    async def _supervise(self) -> None:
        """Start a task for each channel that is not immediate (plugins may be
        switched on later, so this looks again now and then); once an hour drop
        the rows of deliveries done longer ago than the event log is kept."""
        pruned_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            for channel in self.channels():
                if option(channel, "immediate", False) or channel.name in self._tasks:
                    continue
                self._tasks[channel.name] = asyncio.create_task(
                    self._run(channel.name), name=f"delivery-{channel.name}")
            if loop.time() - pruned_at > 3600:
                pruned_at = loop.time()
                days = getattr(self.host.settings, "event_retention_days", 30)
                try:
                    await anyio.to_thread.run_sync(prune_deliveries, self.engine, days)
                except Exception:
                    log.exception("pruning deliveries failed")
            await asyncio.sleep(5)

    def _channel(self, name: str) -> Any:
        return next((c for c in self.channels() if c.name == name), None)

    async def _run(self, name: str) -> None:
        """Claim what is due while there is room, send each in its own task: a send
        that hangs until its time-out holds one place, not the whole channel."""
        flag = asyncio.Event()
        waiting = (asyncio.get_running_loop(), flag)
        with _waiting_lock:
            _waiting.add(waiting)
        sending: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            """A send ended: once half the batch is through, claim more at once
            (waiting for the next poll held a busy channel to a batch a second)."""
            sending.discard(task)
            if len(sending) <= self.batch // 2:
                flag.set()

        claiming = anyio.CapacityLimiter(1)
        limiter: anyio.CapacityLimiter | None = None
        try:
            while True:
                flag.clear()
                if self.broker is not None:
                    await self.broker.after_hub()  # live watchers first, as the consumers
                channel = self._channel(name)
                if channel is not None:
                    if limiter is None:
                        limiter = anyio.CapacityLimiter(option(channel, "concurrency", 4))
                    try:
                        for task in await self._start_sends(channel, limiter, claiming,
                                                            self.batch - len(sending)):
                            sending.add(task)
                            task.add_done_callback(done)
                    except Exception:
                        log.exception("delivery through %s failed; retrying", name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(flag.wait(), timeout=self.poll_seconds)
        finally:
            for task in sending:
                task.cancel()
            with _waiting_lock:
                _waiting.discard(waiting)

    async def _start_sends(self, channel: Any, limiter: anyio.CapacityLimiter,
                           claiming: anyio.CapacityLimiter,
                           room: int) -> list[asyncio.Task[None]]:
        if room <= 0:
            return []
        ids, lease = await anyio.to_thread.run_sync(
            lambda: claim_leased(self.engine, channel.name, limit=room,
                                 one_per_user=option(channel, "one_per_user", False)),
            limiter=claiming)

        async def one(delivery_id: int) -> None:
            await anyio.to_thread.run_sync(
                send_one, self.engine, channel, delivery_id, self.host, lease,
                limiter=limiter)

        return [asyncio.create_task(one(i), name=f"deliver-{channel.name}-{i}") for i in ids]


def prune_deliveries(engine: Engine, keep_days: int) -> int:
    """Forget deliveries that ended (sent, dropped, failed) more than ``keep_days`` ago."""
    cutoff = utcnow() - timedelta(days=keep_days)
    with open_session(engine) as session:
        result = session.exec(delete(Delivery).where(
            col(Delivery.state).in_(("sent", "dropped", "failed")),
            col(Delivery.created_at) < cutoff))
        session.commit()
    return result.rowcount or 0


def deliver_pending(engine: Engine, channel: Any, host: Any, *, limit: int = 1000) -> int:
    """Send every due delivery of ``channel`` now, in this thread (commands, tests)."""
    done = 0
    while True:
        ids, lease = claim_leased(engine, channel.name, limit=limit,
                                  one_per_user=option(channel, "one_per_user", False))
        if not ids:
            return done
        for delivery_id in ids:
            send_one(engine, channel, delivery_id, host, lease)
            done += 1
