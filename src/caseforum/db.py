"""Database engine and the per-request session.

The concurrency budget (docs/configuration.md, ``concurrency``): a request holds
at most one pooled connection, taken by its one session and used for everything
it does (the viewer, the route, the bell and live cursor of the page).  At most
``concurrency`` requests hold a session at once; the others queue for a slot,
holding nothing, for up to :data:`SLOT_WAIT` seconds.  The thread pool is no
larger than ``concurrency`` and the connection pool is a few connections larger
(the event consumers, the hub and websocket handshakes share the threads and
take short sessions of their own), so a request never waits long for a
connection.  If the pool is exhausted anyway, waiting gives up after
:data:`POOL_TIMEOUT` seconds; either way the app answers 503 with
``Retry-After`` (:func:`caseforum.app.install_busy_handler`), never a hang.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from sqlalchemy import ColumnElement, any_, bindparam, inspect
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, create_engine, select

from caseforum.config import Settings

if TYPE_CHECKING:
    from fastapi import Depends
    from starlette.requests import HTTPConnection

POOL_TIMEOUT = 1.0  # seconds a thread waits for a connection before the request gets 503
SLOT_WAIT = 2.0  # seconds a request may queue for one of the `concurrency` slots
EXTRA_CONNECTIONS = 4  # beyond `concurrency`: consumers, hub, websocket handshakes

_request_session: ContextVar[Session | None] = ContextVar("caseforum_request_session",
                                                          default=None)


class ServerBusy(Exception):
    """Every request slot stayed taken for :data:`SLOT_WAIT` seconds (answered 503)."""


#: SQLSTATEs of a PostgreSQL server that will not serve this connection now: too many
#: connections, shutting down or crashed (the connection ends), still starting up
_UNREACHABLE_STATES = frozenset({"53300", "57P01", "57P02", "57P03"})


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database *server* cannot be reached (answered 503 by
    :func:`caseforum.app.install_database_handler`), rather than that a statement failed.

    Yes for a connection that could not be made (nothing listens, the server refused
    it: too many clients, an unknown role or database, the server starting up or
    shutting down) or that was lost (SQLAlchemy saw a disconnect and invalidated it).
    No for every error a statement got back from a working server (a syntax error, a
    missing table, a constraint, a serialization failure): those are bugs or races of
    ours and stay 500s.  No for SQLite either: a local file has no server to be down;
    "database is locked" is a writer that outlasted the 30-second busy timeout and
    "unable to open database file" a data folder an operator must fix, and both keep
    their traceback in the log."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError) or isinstance(exc.orig, sqlite3.Error):
        return False
    if exc.connection_invalidated:
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - every PostgreSQL host has the driver
        return False
    if not isinstance(exc.orig, psycopg.OperationalError):
        return False
    state = exc.orig.sqlstate
    # no SQLSTATE: libpq's own failure to connect, or to talk to a server that went away
    return state is None or state.startswith("08") or state in _UNREACHABLE_STATES


def pool_size(settings: Settings) -> int:
    return settings.concurrency + EXTRA_CONNECTIONS


def make_engine(settings: Settings) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout and foreign keys.

    No ``pool_pre_ping`` on SQLite: a local file does not drop connections, and
    the ping cost a query per checkout."""
    url = settings.sqlalchemy_url
    sizes: dict[str, Any] = {"poolclass": QueuePool, "pool_size": pool_size(settings),
                             "max_overflow": 0, "pool_timeout": POOL_TIMEOUT}
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **sizes)

        @sa_event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **sizes)


def disabled_plugins(engine: Engine) -> set[str]:
    """Plugins an administrator switched off (here, not in app.py, so that the
    ``caseforum`` command can ask without importing the whole web app)."""
    from caseforum.models import PluginState

    if not inspect(engine).has_table("plugin_state"):
        return set()
    with open_session(engine) as session:
        return {p.name for p in session.exec(select(PluginState)) if not p.enabled}


def open_session(engine: Engine, broker: Any = None) -> Session:
    """A session whose commits wake the event consumers through ``broker``."""
    return Session(engine, expire_on_commit=False, info={"broker": broker})


def one_of(session: Session, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN values``, as the database answers it with the least work here.

    On PostgreSQL one array parameter (``column = ANY(:values)``): an ``IN`` list of
    125 values was rendered as 125 placeholders on every call, and psycopg parsed the
    long statement again each time (too long for its cache); the live sockets'
    re-check asks this with every socket's key twice a second, and spent half its
    CPU on it.  SQLite keeps its ``IN`` list (it has no arrays)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))  # type: ignore[no-any-return]


def request_session() -> Session | None:
    """The session of the request being served (in its route's thread too), if any.

    Helpers that are called without a session (the page's live cursor and bell,
    ``app.state.latest_event_id()``) use it rather than taking a second connection."""
    session = _request_session.get()
    return None if session is None or session.info.get("done") else session


async def get_session(conn: HTTPConnection) -> AsyncIterator[Session]:
    """The request's one session, shared by the viewer, the route and rendering.

    An ``async`` dependency on purpose: making a session does no I/O, and the
    context variable it sets is copied into the route's thread by anyio.  The
    connection goes back to the pool when the response is done; that rollback is
    done here on the event loop, not queued for a thread while still holding the
    connection (which could exhaust the pool under load)."""
    state = conn.app.state
    session = open_session(state.engine, state.broker)
    if conn.scope["type"] != "http":
        # a websocket lives for hours: it takes short sessions of its own when it needs
        # them, never this one (unused: no connection is ever taken for it)
        yield session
        return
    slots = _slots(conn)
    try:
        with anyio.fail_after(SLOT_WAIT):
            await slots.acquire()
    except TimeoutError:
        raise ServerBusy from None
    conn.state.db = session
    _request_session.set(session)
    try:
        yield session
    finally:
        _request_session.set(None)
        conn.state.db = None
        session.info["done"] = True  # error pages rendered after this take their own
        try:
            session.close()
        finally:
            slots.release()


def _slots(conn: HTTPConnection) -> anyio.Semaphore:
    """At most ``concurrency`` requests hold a session at once.  A thread limit alone
    is not enough: between its thread hops (the viewer, the route, the response's
    validation) a request holds its connection while it queues for the next thread."""
    state = conn.app.state
    slots = getattr(state, "request_slots", None)
    if slots is None:
        slots = state.request_slots = anyio.Semaphore(state.settings.concurrency)
    return slots


if TYPE_CHECKING:
    SessionDep = Annotated[Session, Depends(get_session)]


def __getattr__(name: str) -> Any:
    """``SessionDep``, made when a route module first imports it: FastAPI is imported
    here and not at the top so that ``caseforum init`` and the other commands, which
    use this module without serving anything, do not pay for it (cold start)."""
    if name != "SessionDep":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from fastapi import Depends
    from starlette.requests import HTTPConnection

    # FastAPI reads get_session's annotations from this module's globals
    globals()["HTTPConnection"] = HTTPConnection
    value = globals()["SessionDep"] = Annotated[Session, Depends(get_session)]
    return value
