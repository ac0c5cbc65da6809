"""Per-process caches of who is calling and of the office table.

Every request needs "bearer token or log-in session -> user, office, scopes" and
most need the offices' public-access flags.  Asking the database each time cost
several queries per request (and, before, a second connection); here the answers
are kept for :data:`CACHE_SECONDS`.

Why this is safe:

* In this process a commit that changes a user, token, log-in session or office
  (disable, revoke, log-out, role change ...) empties both caches at once, through
  SQLAlchemy session events: nothing has to remember to call us.
* A load that began before such a commit cannot put its stale answer back (each
  cache has a generation number, bumped by every clear).
* Other processes (other workers, other hosts, the ``caseforum`` command) do not
  see our commits: there a change takes effect when their live hub reads its event
  (:func:`follow`), at the latest within :data:`CACHE_SECONDS`.
  Expiry of a token or a log-in session is checked on every hit.

Cached ORM objects are detached snapshots shared between threads: callers must
treat them as read-only and ``merge(..., load=False)`` them into their own
session when they need an attached object.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, select

from caseforum.models import ApiToken, Office, User, UserSession

CACHE_SECONDS = 5.0
WATCHED = (User, ApiToken, UserSession, Office)
# columns written on use; changing only these does not change who may do what
HOUSEKEEPING = frozenset({"last_used_at", "last_seen_at"})
_FLAG = "caseforum.authcache.dirty"

V = TypeVar("V")


class TTLCache(Generic[V]):
    """A thread-safe dict whose entries live ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.generation = 0
        self._items: dict[Any, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> V | None:
        found = self._items.get(key)
        if found is None:
            return None
        if found[0] < time.monotonic():
            with self._lock:
                self._items.pop(key, None)
            return None
        return found[1]

    def put(self, key: Any, value: V, generation: int) -> None:
        """Store unless the cache was cleared since ``generation`` was read."""
        with self._lock:
            if generation != self.generation:
                return
            if len(self._items) > 50_000:  # bounded memory, whatever the callers do
                self._items.clear()
            self._items[key] = (time.monotonic() + self.ttl, value)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._items.clear()


@dataclass(frozen=True)
class Identity:
    """What a bearer token or a log-in session resolved to."""

    user: User
    office: Office | None
    scopes: frozenset[str] | None
    expires_at: datetime | None


identities: TTLCache[Identity] = TTLCache(CACHE_SECONDS)
_offices: TTLCache[dict[str, Office]] = TTLCache(CACHE_SECONDS)


def clear() -> None:
    identities.clear()
    _offices.clear()


#: account events that change nobody's rights (most frequent: log-ins)
_HARMLESS = frozenset({"account.login", "account.login_failed", "account.created",
                       "account.token_created"})


def follow(event: Any) -> None:
    """Empty the caches when another process (worker, host, command) changed a user,
    token, session or office: the live hub calls this with every event in the log, so
    a log-out or a disabled account counts on every host within a wake-up rather than
    after :data:`CACHE_SECONDS`."""
    kind = event.kind
    if (kind.startswith("account.") and kind not in _HARMLESS) or kind.startswith("office."):
        clear()


def snapshot(obj: Any) -> Any:
    """A detached copy of a loaded row, safe to share (read-only) between threads."""
    mapper = sa_inspect(type(obj))
    copy = type(obj)(**{attr.key: getattr(obj, attr.key) for attr in mapper.column_attrs})
    make_transient_to_detached(copy)
    return copy


def offices(session: Session) -> dict[str, Office]:
    """Every office by code (shared snapshots: do not modify).

    Kept per database (one in production; a test suite opens many in one process,
    and one test's offices must not answer for the next one's)."""
    key = str(session.get_bind().engine.url)
    found = _offices.get(key)
    if found is None:
        generation = _offices.generation
        found = {o.code: snapshot(o) for o in session.exec(select(Office))}
        _offices.put(key, found, generation)
    return found


def cached_identity(key: Any, load: Callable[[], Identity | None]) -> Identity | None:
    """``load()`` on a miss; its answer is kept unless it is ``None``."""
    found = identities.get(key)
    if found is not None:
        return found
    generation = identities.generation
    found = load()
    if found is not None:
        identities.put(key, found, generation)
    return found


def _matters(obj: Any, new: bool) -> bool:
    if isinstance(obj, Office):
        return True
    if new or not isinstance(obj, WATCHED):
        return False  # a new user, token or log-in session is in no cache yet
    state = sa_inspect(obj)
    return any(attr.history.has_changes() for attr in state.attrs
               if attr.key not in HOUSEKEEPING)


@sa_event.listens_for(OrmSession, "after_flush")
def _note_changes(session: OrmSession, _context: Any) -> None:
    if session.info.get(_FLAG):
        return
    if (any(_matters(o, True) for o in session.new)
            or any(isinstance(o, WATCHED) for o in session.deleted)
            or any(_matters(o, False) for o in session.dirty)):
        session.info[_FLAG] = True


@sa_event.listens_for(OrmSession, "after_commit")
def _clear_on_commit(session: OrmSession) -> None:
    if session.info.pop(_FLAG, False):
        clear()


@sa_event.listens_for(OrmSession, "after_rollback")
def _forget_on_rollback(session: OrmSession) -> None:
    session.info.pop(_FLAG, None)
