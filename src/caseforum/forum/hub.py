"""The realtime hub: reads the event log and pushes fragments to websockets.

Each connection keeps its own cursor (the last event id it was sent).  On
connect it first gets every event it missed since ``after``, then live ones,
in order and without duplicates.  Each round of new events costs one hop to a
worker thread and one database session, whatever the number of sockets and
events: the events are read and their fragments rendered together, once per
distinct output (see :mod:`caseforum.forum.live`), the renders sharing what they
read (:mod:`caseforum.readmemo`).

Access ends when it is revoked.  A socket keeps the credential it came with;
the events that can take access away (a user disabled, a log-out, a token
revoked, an office's roles or a category's offices changed) make the hub
re-check the sockets they may concern *before* it handles any later event, so
no fragment of a later post reaches them.  Every host's hub reads the same log,
so this holds across hosts.  As a safety net (an expiry, a change made without
an event) every open socket is re-checked every :data:`RECHECK_SECONDS`, in parts
of at most about :data:`RECHECK_PART` sockets, each part in one query per kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from jinja2 import Environment
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from caseforum.authz import Viewer, can
from caseforum.db import open_session
from caseforum.events import COMMITTED, WAKE_LATER, LocalBroker, cancel_tasks, oldest_event_id
from caseforum.forum.access import thread_targets
from caseforum.forum.live import LiveEvent, topics_of
from caseforum.forum.live_auth import (
    CLOSE_FORBIDDEN,
    CLOSE_RELOAD,
    CLOSE_UNAUTHENTICATED,
    Credential,
    may_watch,
    revalidate,
)
from caseforum.models import Event
from caseforum.plugin_host import PLUGIN_SWITCHED
from caseforum.readmemo import memoized_reads

log = logging.getLogger(__name__)

Fragments = dict[tuple[str, Viewer], str]  # by (topic, viewer)


class TooOld(Exception):
    """The client's last event has left the log window: it must reload."""


QUEUE_LIMIT = 500  # fragments waiting for one slow client before it is told to reload
RECHECK_SECONDS = 2.0  # the safety net: every open socket's credential, this often
RECHECK_SLICES = 4  # ... checked a part at a time, in at most this many parts per round
RECHECK_PART = 125  # ... of about this many sockets each: fewer sockets, fewer parts
#: the longest the consumers wait for the writers after the hub queued an event's fragments
SEND_FIRST_SECONDS = 0.2
TOUCH_SECONDS = 60.0  # how often open sockets mark their sessions and tokens as in use
#: events after which the sockets they concern are checked again at once
REVOKING = frozenset({"account.disabled", "account.logout", "account.token_revoked",
                      "office.changed", "category.changed"})
#: events after which later events' fragments are drawn differently, once this process's
#: followers have applied them (a plugin switched: its cards, embeds, menu entries)
REDRAWING = frozenset({PLUGIN_SWITCHED})
_BATCH = 500  # events read from the log at a time
_REMEMBERED = 1000  # recent revocations kept for sockets that are still connecting


@dataclass(eq=False)
class Subscriber:
    """One socket.  The hub sends a fragment itself when the socket has nothing
    waiting (uvicorn's websocket ``send`` only hands the frame to the transport, so
    five hundred sends in a row cost what the bare broadcast costs, with no task
    switch per socket); otherwise it queues, and the socket's own writer task sends
    in order, so a socket that is behind never holds up the others."""

    viewer: Viewer
    topics: set[str]
    send: Callable[[str], Awaitable[None]]
    credential: Credential | None = None
    thread_id: int | None = None  # the thread a thread socket watches
    #: the hub's position when the credential was read: later revocations may
    #: not be reflected in ``viewer`` yet
    checked_after: int = 0
    viewer_mark: int = 0  # which check set ``viewer`` (see :meth:`Hub._apply`)
    last_sent: int = 0
    live: bool = False
    pending: list[tuple[int, str]] = field(default_factory=list)
    queue: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_LIMIT))
    close_code: int | None = None
    close_reason: str = ""
    sending: bool = False  # a send is under way (the hub's or the writer's)

    @property
    def overflowed(self) -> bool:
        return self.close_code == CLOSE_RELOAD

    def end(self, code: int, reason: str) -> None:
        """Stop at once: what is still queued is dropped, the socket closes with ``code``."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        self.pending.clear()
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def writer(self) -> None:
        """Send queued fragments until the queue says stop (``None``)."""
        while (html := await self.queue.get()) is not None:
            if self.close_code is not None:
                return
            self.sending = True
            try:
                await self.send(html)
            finally:
                self.sending = False

    @property
    def idle(self) -> bool:
        """Nothing queued or being sent: a new fragment may be sent at once."""
        return not self.sending and self.queue.empty() and self.close_code is None

    async def send_now(self, html: str) -> None:
        """Send one fragment from the hub (only when :attr:`idle`).  A failed send
        is queued instead: the writer meets the same error and ends the socket."""
        self.sending = True
        try:
            await self.send(html)
        except Exception:
            self.queue.put_nowait(html)
        finally:
            self.sending = False


def _concerns(revocation: Event, sub: Subscriber) -> bool:
    """Whether a revoking event may change what ``sub`` is allowed."""
    payload = revocation.payload
    if revocation.kind.startswith("account."):
        return payload.get("user_id") == sub.viewer.user_id
    if revocation.kind == "office.changed":
        return payload.get("office_code") == sub.viewer.office_code
    return sub.thread_id is not None  # category.changed: thread sockets; lists check per event


class Hub:
    def __init__(self, engine: Engine, broker: LocalBroker, host: Any, env: Environment,
                 followers: Sequence[Callable[[Event], None]] = ()) -> None:
        self.engine = engine
        self.broker = broker
        self.host = host
        self.env = env
        #: called with every event, in every process: what each worker and host keeps
        #: in memory and must change when any of them changes it (plugin switches,
        #: the identity cache); this hub is the one reader of the log every process has
        self.followers = list(followers)
        self.subscribers: set[Subscriber] = set()
        self.last_id = 0  # every event up to here is handled
        #: the newest event whose watchers have been chosen: a socket that joins now
        #: gets every later event live ("from now" for a new page)
        self.now_id = 0
        self._revocations: deque[Event] = deque(maxlen=_REMEMBERED)
        self._tasks: list[asyncio.Task[None]] = []
        #: fragments rendered by the request that committed the event (:meth:`commit`),
        #: by event id, with the viewers they were rendered for
        self._early: dict[int, tuple[Event, dict[str, set[Viewer]], Fragments]] = {}
        #: :data:`REDRAWING` events followed so far: a render begun before one of them
        #: (in a request, :meth:`commit`) is not kept; the lock makes "not followed
        #: since, so keep it" one step against the follower's "count it, drop them all"
        self._redrawn = 0
        self._redrawn_lock = threading.Lock()
        self.renders = 0  # fragments rendered (for the fan-out benchmark)
        self.rechecks = 0  # sockets re-checked
        self._marks = 0  # numbers the checks in the order they start

    async def start(self) -> None:
        def newest() -> int:
            with open_session(self.engine) as session:
                return session.exec(select(Event.id).order_by(Event.id.desc()).limit(1)
                                    ).first() or 0

        self.last_id = self.now_id = await anyio.to_thread.run_sync(newest)
        self._tasks.append(asyncio.create_task(self._run(), name="realtime-hub"))
        self._tasks.append(asyncio.create_task(self._sweep(), name="realtime-recheck"))

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        self._tasks.clear()

    async def _run(self) -> None:
        flag = self.broker.subscribe()
        self.broker.hub_started()  # the consumers wait for us (LocalBroker.after_hub)
        try:
            while True:
                flag.clear()
                mark = self.broker.hub_reading()
                try:
                    await self._pump()
                except Exception:
                    log.exception("realtime hub failed; retrying")
                await self._sent()  # what was queued goes out before the consumers run
                self.broker.hub_caught_up(mark)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(flag.wait(), timeout=2.0)
        finally:
            self.broker.hub_stopped()
            self.broker.unsubscribe(flag)

    async def _sent(self) -> None:
        """Let the writers send what this round queued (bounded by :data:`SEND_FIRST_SECONDS`:
        a client that does not read is not waited for)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SEND_FIRST_SECONDS
        await asyncio.sleep(0)  # every writer woken by this round sends once
        waiting = [s for s in self.subscribers if not s.queue.empty()]
        while waiting and loop.time() < deadline:
            # a writer waits for a slow client: poll, do not spin (a spinning loop
            # would hold the interpreter against the next request's thread)
            await asyncio.sleep(0.002)
            waiting = [s for s in waiting if not s.queue.empty()]

    async def _sweep(self) -> None:
        """The safety net: re-check every open socket every :data:`RECHECK_SECONDS`,
        in parts of about :data:`RECHECK_PART` sockets, at most :data:`RECHECK_SLICES`
        parts, one each quarter of that time, so that five hundred sockets never take
        the interpreter for one long check in the middle of a post's fan-out; about
        once a minute a whole round also marks their sessions and tokens as in use.
        A check costs about 2 ms of CPU whatever its size (a session and three
        queries) and 0.03 ms per socket: a hundred sockets are checked in one part, not
        four (each host of the two-host benchmark spent more CPU on these checks than
        on anything else while no post was being made)."""
        touched = time.monotonic()
        touch = False
        turn = 0
        parts = 1
        while True:
            await asyncio.sleep(RECHECK_SECONDS / RECHECK_SLICES)
            if turn == 0:  # a new round: is it one that marks the credentials as used?
                touch = time.monotonic() - touched > TOUCH_SECONDS
                if touch:
                    touched = time.monotonic()
                # how many parts this round has: set at its start, so that every
                # socket open now falls in one of them
                parts = max(1, min(RECHECK_SLICES, -(-len(self.subscribers) // RECHECK_PART)))
            # by credential: its sockets are checked together, and the parts come out
            # even (a socket object's own hash follows its address, which does not)
            subs = [s for s in self.subscribers if s.credential is not None
                    and hash(s.credential) % parts == turn] if turn < parts else []
            turn = (turn + 1) % RECHECK_SLICES
            if subs:
                try:
                    await self.recheck(subs, touch=touch)
                except Exception:
                    log.exception("re-checking live sockets failed; retrying")

    def _wanted(self) -> dict[str, set[Viewer]]:
        """Every topic watched now, with the viewers watching it (safe from any
        thread: the set is copied in one step before it is read)."""
        wanted: dict[str, set[Viewer]] = defaultdict(set)
        for sub in list(self.subscribers):
            for topic in sub.topics:
                wanted[topic].add(sub.viewer)
        return wanted

    def _read(self, after: int, wanted: dict[str, set[Viewer]]
              ) -> tuple[list[tuple[Event, dict[str, set[Viewer]], Fragments]], bool]:
        """The events after ``after``, each with the viewers it was rendered for and
        its fragments, in one session: one thread hop per round, not one to read and
        one per event to render (sync: a worker thread).  The round stops after an
        event that may revoke access, so that the sockets it concerns are checked
        before anything later is rendered for them, and after one that changes how
        later events are drawn (:data:`REDRAWING`), so that the followers apply it
        first.  Also says whether more may follow."""
        out: list[tuple[Event, dict[str, set[Viewer]], Fragments]] = []
        with open_session(self.engine) as session, memoized_reads(session):
            events = list(session.exec(select(Event).where(Event.id > after)
                                       .order_by(Event.id).limit(_BATCH)))
            for event in events:
                early = self._early.pop(event.id or 0, None)
                if early is not None:  # rendered by the request that committed it
                    out.append((event, early[1], early[2]))
                    continue
                chosen = {t: wanted[t] for t in topics_of(event) if t in wanted}
                fragments: Fragments = {}
                if chosen:
                    live = LiveEvent(session, self.env, self.host, event)
                    fragments = live.fragments(chosen)
                    self.renders += live.renders
                out.append((event, chosen, fragments))
                if event.kind in REVOKING or event.kind in REDRAWING:
                    return out, True
        return out, len(events) == _BATCH

    def _follow_on(self) -> list[tuple[Event, dict[str, set[Viewer]], Fragments]]:
        """The events right after the last one handled that the requests committing
        them have rendered already (:meth:`commit`): these need no trip to the log,
        since no event can lie between them and the last one handled."""
        out = []
        while (early := self._early.pop(self.last_id + 1 + len(out), None)) is not None:
            out.append(early)
        return out

    async def _pump(self) -> None:
        while True:
            batch = self._follow_on()
            if batch:  # sent at once; then the log is read for anything else
                more = True
            else:
                batch, more = await anyio.to_thread.run_sync(self._read, self.last_id,
                                                             self._wanted())
            for event, rendered_for, fragments in batch:
                self._follow(event)
                if event.kind in REVOKING:
                    self._revocations.append(event)
                    concerned = [s for s in self.subscribers if _concerns(event, s)]
                    if concerned:
                        await self.recheck(concerned)
                self.now_id = max(self.now_id, event.id or 0)
                topics = topics_of(event)
                if topics and self.subscribers:
                    await self._dispatch(event, topics, rendered_for, fragments)
                self.last_id = event.id or self.last_id
            if not more:
                # renders done in a request for events this hub has passed meanwhile
                for stale in [k for k in list(self._early) if k <= self.last_id]:
                    self._early.pop(stale, None)
                return  # that was all: no second trip to the database to learn it

    def _follow(self, event: Event) -> None:
        for follower in self.followers:
            try:
                follower(event)
            except Exception:
                log.exception("following event %s (%s) failed", event.id, event.kind)
        if event.kind in REDRAWING:  # what requests rendered ahead was drawn the old way
            with self._redrawn_lock:
                self._redrawn += 1
                self._early.clear()

    # rendering in the request that made the change ---------------------------------

    def commit(self, session: Session) -> None:
        """Commit a request's session; then render the live fragments of the events
        it emitted right there, in the request's thread and session, and only then
        wake the hub and the consumers.  The hub sends those fragments without a hop
        to its own thread and a second read of the log, and the render does not
        compete with the end of the request for the interpreter: the way from a new
        post to its watchers is what the bare broadcast does in the request that
        made the post.  Should the render fail, the hub renders the events itself,
        as it does for every event committed elsewhere (another process or host)."""
        session.info[WAKE_LATER] = True
        try:
            session.commit()
        finally:
            session.info.pop(WAKE_LATER, None)
        events = session.info.pop(COMMITTED, None)
        if events is None:
            return  # nothing was emitted
        try:
            self._render_early(session, events)
        except Exception:
            log.exception("live fragments of a request's events: the hub renders them")
        finally:
            self.broker.wake()

    def _render_early(self, session: Session, events: list[Event]) -> None:
        """Render ``events`` for the viewers watching now (sync: the request's thread).
        Stops at an event that may revoke access: the hub checks the sockets it
        concerns before anything later is rendered for them."""
        wanted = self._wanted()
        if not wanted:
            return
        redrawn = self._redrawn
        with memoized_reads(session):
            for event in sorted(events, key=lambda e: e.id or 0):
                if event.kind in REVOKING or event.id is None:
                    return
                chosen = {t: wanted[t] for t in topics_of(event) if t in wanted}
                if chosen:
                    live = LiveEvent(session, self.env, self.host, event)
                    fragments = live.fragments(chosen)
                    self.renders += live.renders
                    with self._redrawn_lock:
                        if redrawn != self._redrawn:  # a switch was followed meanwhile
                            return
                        self._early[event.id] = (event, chosen, fragments)

    # re-checking access ---------------------------------------------------------

    def _verdicts(self, subs: list[Subscriber], touch: bool = False
                  ) -> list[Viewer | tuple[int, str]]:
        """For each socket its viewer as of now, or why it must close (sync)."""
        with open_session(self.engine) as session:
            return self._verdicts_in(session, subs, touch)

    @staticmethod
    def _verdicts_in(session: Session, subs: list[Subscriber], touch: bool = False
                     ) -> list[Viewer | tuple[int, str]]:
        viewers = revalidate(session, [s.credential for s in subs if s.credential],
                             touch=touch)
        targets = thread_targets(session, [s.thread_id for s in subs if s.thread_id])
        out: list[Viewer | tuple[int, str]] = []
        for sub in subs:
            if sub.credential is None:
                out.append(sub.viewer)
                continue
            viewer = viewers.get(sub.credential)
            if viewer is None:
                out.append((CLOSE_UNAUTHENTICATED,
                            "signed out: the session or token is no longer valid"))
            elif not can(viewer, "forum.view"):
                out.append((CLOSE_FORBIDDEN, "the forum is no longer open to you"))
            elif sub.thread_id is not None and not may_watch(viewer,
                                                             targets.get(sub.thread_id)):
                out.append((CLOSE_FORBIDDEN, "this thread is no longer open to you"))
            else:  # read as at the handshake: the rules' answers change, not the reader
                out.append(viewer.reading(sub.viewer.language, sub.viewer.time_zone))
        return out

    def _apply(self, subs: list[Subscriber], verdicts: list[Viewer | tuple[int, str]],
               mark: int) -> None:
        """Closing is always safe; a new viewer is taken only from a check that
        started after the one that set the current viewer (the periodic check and
        a revocation's check may overlap, and the older answer must not win)."""
        for sub, verdict in zip(subs, verdicts, strict=True):
            if isinstance(verdict, Viewer):
                if mark > sub.viewer_mark:
                    if verdict != sub.viewer:  # the same viewer keeps its object (and
                        sub.viewer = verdict  # its cached hash): new roles count from now
                    sub.viewer_mark = mark
            else:
                self.subscribers.discard(sub)
                sub.end(*verdict)

    async def recheck(self, subs: list[Subscriber], *, touch: bool = False) -> None:
        """Check ``subs`` against the database now; close those that lost access."""
        subs = [s for s in subs if s.close_code is None]
        if not subs:
            return
        self.rechecks += len(subs)
        self._marks += 1
        mark = self._marks
        verdicts = await anyio.to_thread.run_sync(self._verdicts, subs, touch)
        self._apply(subs, verdicts, mark)

    # fan-out ---------------------------------------------------------------------

    def _render(self, event: Event, wanted: dict[str, set[Viewer]]) -> Fragments:
        """Every fragment of one event, in one session (sync: a worker thread)."""
        with open_session(self.engine) as session, memoized_reads(session):
            live = LiveEvent(session, self.env, self.host, event)
            out = live.fragments(wanted)
            self.renders += live.renders
            return out

    async def _dispatch(self, event: Event, topics: set[str],
                        rendered_for: dict[str, set[Viewer]], fragments: Fragments) -> None:
        subs = [s for s in self.subscribers if s.topics & topics]
        # a socket that joined, or a viewer that changed, while the round was read
        # gets its fragment rendered now (rare: one more hop)
        missing: dict[str, set[Viewer]] = defaultdict(set)
        for sub in subs:
            for topic in topics & sub.topics:
                if sub.viewer not in rendered_for.get(topic, ()):
                    missing[topic].add(sub.viewer)
        if missing:
            more = await anyio.to_thread.run_sync(self._render, event, dict(missing))
            fragments = {**fragments, **more}
        for sub in subs:
            for topic in sorted(topics & sub.topics):
                html = fragments.get((topic, sub.viewer))
                if html and self._deliver(sub, event.id or 0, html):
                    await sub.send_now(html)

    def _deliver(self, sub: Subscriber, event_id: int, html: str) -> bool:
        """Queue ``html`` for ``sub``, or return True: the caller sends it now."""
        if sub.close_code is not None:
            return False
        if not sub.live:
            sub.pending.append((event_id, html))
            return False
        if event_id <= sub.last_sent:
            return False
        sub.last_sent = event_id
        if sub.idle:
            return True
        try:
            sub.queue.put_nowait(html)
        except asyncio.QueueFull:
            # the socket closes with "reload"; it resumes with ?after=
            self.subscribers.discard(sub)
            sub.end(CLOSE_RELOAD, "too far behind: reload")
        return False

    # joining -----------------------------------------------------------------------

    def _revoked_since(self, sub: Subscriber) -> bool:
        """Whether a revocation the hub has seen may postdate ``sub``'s credential check."""
        recent = self._revocations
        if len(recent) == recent.maxlen and (recent[0].id or 0) > sub.checked_after:
            return True  # more than we remember: check to be sure
        return any((r.id or 0) > sub.checked_after and _concerns(r, sub) for r in recent)

    async def subscribe(self, sub: Subscriber, after: int) -> None:
        """Register, send what was missed since ``after``, then go live.  When this
        returns with ``sub.close_code`` set, the socket must close with it."""
        self.subscribers.add(sub)
        sub.last_sent = after
        if self._revoked_since(sub):
            await self.recheck([sub])
        missed: list[tuple[int, str]] = []
        if after < self.now_id and sub.close_code is None:
            self._marks += 1
            mark = self._marks
            missed, verdict = await anyio.to_thread.run_sync(self._missed, sub, after)
            if verdict is not None:
                self._apply([sub], [verdict], mark)
        for event_id, html in missed:
            if sub.close_code is not None:
                return
            if event_id > sub.last_sent:
                sub.last_sent = event_id
                await sub.send(html)
        for event_id, html in sorted(sub.pending):
            if sub.close_code is not None:
                return
            if event_id > sub.last_sent:
                sub.last_sent = event_id
                await sub.send(html)
        sub.pending.clear()
        sub.live = True

    def _missed(self, sub: Subscriber, after: int
                ) -> tuple[list[tuple[int, str]], Viewer | tuple[int, str] | None]:
        """The fragments ``sub`` missed since ``after``, in one session.  A revocation
        met on the way is checked there and then: nothing after it is sent unless
        access still holds."""
        out: list[tuple[int, str]] = []
        viewer = sub.viewer
        verdict: Viewer | tuple[int, str] | None = None
        with open_session(self.engine) as session:
            if after and after < oldest_event_id(session) - 1:
                raise TooOld
            start = after
            while True:
                events = list(session.exec(select(Event).where(Event.id > start)
                                           .order_by(Event.id).limit(500)))
                if not events:
                    return out, verdict
                for event in events:
                    start = event.id or start
                    if event.kind in REVOKING and _concerns(event, sub):
                        verdict = self._verdicts_in(session, [sub])[0]
                        if not isinstance(verdict, Viewer):
                            return out, verdict
                        viewer = verdict
                    wanted = {t: {viewer} for t in topics_of(event) & sub.topics}
                    if not wanted:
                        continue
                    live = LiveEvent(session, self.env, self.host, event)
                    for html in live.fragments(wanted).values():
                        out.append((event.id or 0, html))
                    self.renders += live.renders

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
