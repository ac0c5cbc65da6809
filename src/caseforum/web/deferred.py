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
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send


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

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self._build is not None and scope["type"] in ("http", "websocket"):
            return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.load()
        await self.app.router(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)
