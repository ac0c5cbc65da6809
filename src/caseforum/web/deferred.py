"""Routes built on first use, so that ``caseforum serve`` answers sooner.

Building a FastAPI route is costly (it inspects the endpoint's signature and makes a
pydantic field for every parameter and response model): CaseForum's hundred-odd
routes and the modules that define them took about a third of the time from
``caseforum serve`` to its first answer.  The app therefore starts with the few routes
it needs at once (health check, home page) and one :class:`DeferredRoutes` entry at
the end of its route list.  The first request that no eager route matches, or the
warm-up that the app schedules right after start-up, whichever comes first, builds
all the others in place of that entry and hands the request on, much as Django loads
its URL configuration on the first request.  Nothing is ever answered differently:
a request that arrives before the warm-up waits for the build (tens of
milliseconds, once per process).

The warm-up, and the other work start-up leaves for later (starting the event
consumers, whose first pass over the log takes the thread pool and the interpreter
for a while), is run by :class:`AfterStartUp`: not while a request is in hand.  A
health check asked as the server comes up is thus answered at once instead of
after a hundred milliseconds or more of imports and route building that happened to
fall due while it was being served.
"""

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

#: a step of :class:`AfterStartUp`: a function, or a coroutine function run as a task
Step = Callable[[], Awaitable[None] | None]
#: the longest a due step waits for the server to have no request in hand: a steady
#: flow of requests (or one slow download) must not put it off for good
PATIENCE = 0.5


class DeferredRoutes(BaseRoute):
    """A placeholder at the end of the app's route list: it matches every request
    and websocket that no earlier route took, and on the first one runs ``build``
    (which adds the real routes to the app), takes itself out of the list and
    dispatches the request again."""

    def __init__(self, app: FastAPI, build: Callable[[FastAPI], None]) -> None:
        self.app = app
        self._build: Callable[[FastAPI], None] | None = build

    @property
    def loaded(self) -> bool:
        return self._build is None

    def load(self) -> None:
        """Build the routes now, once.  Synchronous on purpose: it runs in the event
        loop's thread, so two first requests can never build twice."""
        if self._build is None:
            return
        self.app.router.routes.remove(self)
        try:
            self._build(self.app)
        finally:
            self._build = None

    def prepare(self) -> None:
        """Make now what FastAPI makes on the first request that passes an included
        router: each of its routes again with the app's prefix, dependencies and error
        responses (tens of milliseconds for some routers, paid by whichever request
        first crossed them).  Asking for the URL of a name no route has walks them all."""
        with contextlib.suppress(NoMatchFound):
            self.app.router.url_path_for("\x00")

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self._build is not None and scope["type"] in ("http", "websocket"):
            return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.load()
        await self.app.router(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)


class AfterStartUp:
    """Work that start-up leaves for later, run in the event loop's thread one step
    at a time and in order: each step no sooner than its delay after :meth:`start`,
    then as soon as no HTTP request is in hand (:class:`RequestsInHand` counts them),
    or :data:`PATIENCE` seconds after it fell due if requests keep coming.  The loop
    gets a turn between two steps."""

    def __init__(self) -> None:
        self.in_hand = 0
        self._steps: deque[tuple[float, Step]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def pending(self) -> bool:
        return bool(self._steps)

    def start(self, steps: Iterable[tuple[float, Step]]) -> None:
        """Schedule ``(delay in seconds, step)`` pairs; called in the lifespan."""
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()
        self._steps = deque(steps)
        self._arm()

    async def stop(self) -> None:
        """Forget the steps not run yet; cancel a coroutine step not finished."""
        self._steps.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = asyncio.get_running_loop()
        for task in list(self._tasks):
            if task.done():
                continue
            owner = task.get_loop()
            if owner is loop:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            elif not owner.is_closed():  # the same app started again on another loop
                owner.call_soon_threadsafe(task.cancel)

    def request_began(self) -> None:
        self.in_hand += 1

    def request_ended(self) -> None:
        self.in_hand -= 1
        if not self.in_hand and self._steps:
            self._arm()  # a step waiting for this request runs now

    def _arm(self) -> None:
        """Set the timer for the next step: when it falls due, or while requests are
        in hand when its patience runs out (the last request's end comes sooner)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._steps or self._loop is None:
            return
        due = self._started + self._steps[0][0]
        self._timer = self._loop.call_at(due + PATIENCE if self.in_hand else due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        assert self._loop is not None
        if not self._steps:
            return
        delay, step = self._steps[0]
        if self.in_hand and self._loop.time() < self._started + delay + PATIENCE:
            self._arm()
            return
        self._steps.popleft()
        try:
            result = step()
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._finished)
        finally:
            self._arm()

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("work after start-up failed", exc_info=task.exception())


class RequestsInHand:
    """Counts the HTTP requests being answered for :class:`AfterStartUp` (websockets,
    which stay open for hours, are not counted); once its work is done, a pass-through."""

    def __init__(self, app: ASGIApp, *, work: AfterStartUp) -> None:
        self.app = app
        self.work = work

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        work = self.work
        if scope["type"] != "http" or not work.pending:
            await self.app(scope, receive, send)
            return
        work.request_began()
        try:
            await self.app(scope, receive, send)
        finally:
            work.request_ended()
