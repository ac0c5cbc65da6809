"""The realtime hub: reads the event log and pushes fragments to websockets.

Each connection keeps its own cursor (the last event id it was sent).  On
connect it first gets every event it missed since ``after``, then live ones,
in order and without duplicates.  A fragment is rendered once per distinct
viewer profile (office, role…) and per topic, not once per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from jinja2 import Environment
from sqlalchemy.engine import Engine
from sqlmodel import select

from caseforum.authz import Viewer
from caseforum.db import open_session
from caseforum.events import LocalBroker, cancel_tasks, oldest_event_id
from caseforum.forum.live import bell_fragment, forum_row_fragment, thread_fragment, topics_of
from caseforum.models import Event

log = logging.getLogger(__name__)


class TooOld(Exception):
    """The client's last event has left the log window: it must reload."""


QUEUE_LIMIT = 500  # fragments waiting for one slow client before it is told to reload


@dataclass(eq=False)
class Subscriber:
    """One socket.  The hub only queues for it; the socket's own writer task
    sends, so a client that stops reading never holds up the others."""

    viewer: Viewer
    topics: set[str]
    send: Callable[[str], Awaitable[None]]
    last_sent: int = 0
    live: bool = False
    pending: list[tuple[int, str]] = field(default_factory=list)
    queue: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_LIMIT))
    overflowed: bool = False

    async def writer(self) -> None:
        """Send queued fragments until the queue says stop (``None``)."""
        while (html := await self.queue.get()) is not None:
            await self.send(html)


class Hub:
    def __init__(self, engine: Engine, broker: LocalBroker, host: Any, env: Environment) -> None:
        self.engine = engine
        self.broker = broker
        self.host = host
        self.env = env
        self.subscribers: set[Subscriber] = set()
        self.last_id = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.renders = 0  # fragments rendered (for the fan-out benchmark)

    async def start(self) -> None:
        def newest() -> int:
            with open_session(self.engine) as session:
                return session.exec(select(Event.id).order_by(Event.id.desc()).limit(1)
                                    ).first() or 0

        self.last_id = await anyio.to_thread.run_sync(newest)
        self._tasks.append(asyncio.create_task(self._run(), name="realtime-hub"))

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        self._tasks.clear()

    async def _run(self) -> None:
        flag = self.broker.subscribe()
        try:
            while True:
                flag.clear()
                try:
                    await self._pump()
                except Exception:
                    log.exception("realtime hub failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(flag.wait(), timeout=2.0)
        finally:
            self.broker.unsubscribe(flag)

    def _fetch(self, after: int) -> list[Event]:
        with open_session(self.engine) as session:
            return list(session.exec(select(Event).where(Event.id > after)
                                     .order_by(Event.id).limit(500)))

    async def _pump(self) -> None:
        while True:
            events = await anyio.to_thread.run_sync(self._fetch, self.last_id)
            if not events:
                return
            for event in events:
                topics = topics_of(event)
                if topics and self.subscribers:
                    await self._dispatch(event, topics)
                self.last_id = event.id or self.last_id

    def render(self, event: Event, topic: str, viewer: Viewer) -> str | None:
        """One fragment (sync: runs in a worker thread)."""
        self.renders += 1
        with open_session(self.engine) as session:
            if topic.startswith("thread:"):
                return thread_fragment(session, self.env, self.host, viewer, event)
            if topic.startswith("user:"):
                return bell_fragment(session, self.env, int(topic[5:]), event.id)
            if topic == "forum":
                return forum_row_fragment(session, self.env, viewer, event)
        return None

    async def _dispatch(self, event: Event, topics: set[str]) -> None:
        groups: dict[tuple[str, Any], list[Subscriber]] = defaultdict(list)
        for sub in list(self.subscribers):
            for topic in topics & sub.topics:
                # the forum list carries per-user unread counts; the rest per profile
                key = sub.viewer.user_id if topic in ("forum",) else sub.viewer.profile
                groups[(topic, key)].append(sub)
        for (topic, _), subs in groups.items():
            html = await anyio.to_thread.run_sync(self.render, event, topic, subs[0].viewer)
            if not html:
                continue
            for sub in subs:
                await self._deliver(sub, event.id or 0, html)

    async def _deliver(self, sub: Subscriber, event_id: int, html: str) -> None:
        if not sub.live:
            sub.pending.append((event_id, html))
            return
        if event_id <= sub.last_sent:
            return
        sub.last_sent = event_id
        try:
            sub.queue.put_nowait(html)
        except asyncio.QueueFull:
            sub.overflowed = True  # the socket closes with "reload"; it resumes with ?after=
            self.subscribers.discard(sub)
            sub.queue = asyncio.Queue(maxsize=1)
            sub.queue.put_nowait(None)

    async def subscribe(self, sub: Subscriber, after: int) -> None:
        """Register, send what was missed since ``after``, then go live."""
        self.subscribers.add(sub)
        sub.last_sent = after
        missed = await anyio.to_thread.run_sync(self._missed, sub, after)
        for event_id, html in missed:
            if event_id > sub.last_sent:
                sub.last_sent = event_id
                await sub.send(html)
        for event_id, html in sorted(sub.pending):
            if event_id > sub.last_sent:
                sub.last_sent = event_id
                await sub.send(html)
        sub.pending.clear()
        sub.live = True

    def _missed(self, sub: Subscriber, after: int) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        with open_session(self.engine) as session:
            if after and after < oldest_event_id(session) - 1:
                raise TooOld
        start = after
        while True:
            events = self._fetch(start)
            if not events:
                return out
            for event in events:
                start = event.id or start
                for topic in topics_of(event) & sub.topics:
                    html = self.render(event, topic, sub.viewer)
                    if html:
                        out.append((event.id or 0, html))

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
