"""Keeping the index up to date: a consumer of the event log, and the rebuild.

The indexer reads events past the cursor stored in the index, works out which
dossiers and threads they touch, rebuilds those items from the database and
writes them in one Whoosh commit together with the new cursor.  Batching matters:
a Whoosh commit costs milliseconds, an event would otherwise cost one each.  A
crash before the commit loses nothing (the cursor did not move); a crash after it
repeats nothing visible (items are replaced by id).  The database cursor row is
moved too, for the admin page's lag, but the index's own cursor is the truth: an
index folder copied from elsewhere or deleted by hand knows where it stands.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from caseforum.db import open_session
from caseforum.doccodes import describe
from caseforum.events import Consumer, _cursor, oldest_event_id
from caseforum.models import Event
from caseforum.search.items import Describe

log = logging.getLogger(__name__)

#: the plugins' ``collect_search_items`` hook: (session, events or None) -> raw items
PluginItems = Callable[[Session, "list[Event] | None"], list[Any]]

#: events read per commit
BATCH = 500
#: dossiers or threads rebuilt per commit during a rebuild
CHUNK = 200


@dataclass
class Touched:
    """What a run of events changes: whole dossiers, whole threads (their readers
    may have changed), single posts."""

    apps: set[int] = field(default_factory=set)
    threads: set[int] = field(default_factory=set)
    posts: set[int] = field(default_factory=set)


def _touched(events: list[Event]) -> Touched:
    """A post event touches its post; other thread events (created, locked, its
    members changed) the whole thread.  A category's offices are not in its items
    (they name the category), so a category change touches none."""
    touched = Touched()
    for event in events:
        payload = event.payload or {}
        if payload.get("application_id"):
            touched.apps.add(int(payload["application_id"]))
        elif event.subject_type == "application" and event.subject_id.isdigit():
            touched.apps.add(int(event.subject_id))
        if event.kind.startswith(("post.", "thread.")):
            thread_id = payload.get("thread_id") or (
                event.subject_id if event.subject_type == "thread" else None)
            post_id = payload.get("post_id")
            if event.kind.startswith("post.") and post_id:
                touched.posts.add(int(post_id))
            elif thread_id and str(thread_id).isdigit():
                touched.threads.add(int(thread_id))
    return touched


class SearchIndexer(Consumer):
    """The event-log consumer that feeds the search index (see the module notes)."""

    name = "search-indexer"

    #: one index commit (a new segment) per second at most, however fast posts come:
    #: a busy thread's posts are indexed together, not each with a commit of its own
    settle_seconds = 1.0

    def __init__(self, folder: Path, plugin_items: PluginItems | None = None,
                 describe: Describe = describe) -> None:
        self.folder = folder
        self.plugin_items = plugin_items  # the plugins' collect_search_items hook
        self.describe = describe  # the app's document types: a document's group
        self._lock = threading.Lock()  # one writer in this process
        self._warmed: int | None = None  # the index generation last warmed
        #: the index as this indexer last left it (:func:`_identity`) and its cursor
        self._known: tuple[tuple[int, int, int], int] | None = None

    def handle(self, session: Session, event: Event) -> None:
        """One event at a time (the generic path): the same work as a batch of one."""
        self._apply(session, [event], event.id or 0)

    def _apply(self, session: Session, events: list[Event], last_id: int,
               ix: Any = None) -> int:
        """Write what ``events`` change, and the cursor, in one commit to ``ix`` (by
        default the folder's index, checked first)."""
        from caseforum.search import items, store

        touched = _touched(events)
        batches = []
        if self.plugin_items is not None:
            batches.append(items.plugin_batch(self.plugin_items(session, events)))
        if touched.apps:
            batches.append(items.dossiers(session, touched.apps, self.describe))
        if touched.threads:
            batches.append(items.threads(session, touched.threads))
        if touched.posts:
            batches.append(items.posts(session, touched.posts))
        return store.write(ix if ix is not None else self.index(), batches, cursor_to=last_id)

    def index(self) -> Any:
        from caseforum.search import store

        if not store.exists(self.folder):
            raise RuntimeError(f"no search index in {self.folder}: run caseforum reindex")
        return store.open_index(self.folder)

    def process(self, engine: Engine, broker: Any = None) -> int:
        """Apply every event past the index's cursor, a batch per commit; a missing
        index is rebuilt first.  Returns how many events were read."""
        done = 0
        with self._lock, _only_writer(self.folder) as mine:
            if mine:  # else another worker of this host is writing this index now
                done = self._process(engine, broker)
        # what another worker wrote is warmed here too, for this process's searchers
        generation = _generation(self.folder)
        if (done or generation != self._warmed) and self._warm():
            self._warmed = generation
        return done

    def _process(self, engine: Engine, broker: Any) -> int:
        from caseforum.search import store

        # what this indexer remembers of the index it left counts only while the folder
        # is unchanged, and only after a round that ended well (a failed one forgets it)
        known, self._known = self._known, None
        if known is not None and _identity(self.folder) == known[0]:
            # as this indexer left it: it exists, in the current layout, and its cursor
            # was not behind the log; most rounds (every wake-up of every host, every
            # poll) are answered by one query, instead of opening the index three
            # times, reading its cursor twice and asking for the oldest event
            cursor = known[1]
            with open_session(engine) as session:
                if session.exec(select(Event.id).where(col(Event.id) > cursor)
                                .limit(1)).first() is None:
                    self._known = known
                    return 0
            ix = store.open_index(self.folder)
        else:
            ix, cursor = self._checked(engine)
        done = 0
        while True:
            with open_session(engine, broker) as session:
                events = list(session.exec(select(Event).where(col(Event.id) > cursor)
                                           .order_by(col(Event.id)).limit(BATCH)))
                if not events:
                    break
                cursor = events[-1].id or 0  # the index's cursor once this commits
                self._apply(session, events, cursor, ix)
                cur = _cursor(session, self.name, lock=True)
                cur.last_event_id = max(cur.last_event_id, cursor)
                session.add(cur)
                session.commit()
            done += len(events)
            if len(events) < BATCH:
                break
        # this process holds the writer's lock: the index is as this round left it
        identity = _identity(self.folder)
        self._known = (identity, cursor) if identity is not None else None
        return done

    def _checked(self, engine: Engine) -> tuple[Any, int]:
        """The index and its cursor, read from the folder: rebuilt first when it is
        missing, of an older layout, or behind what the log still holds."""
        from caseforum.search import store

        if not store.exists(self.folder):
            log.warning("search index missing in %s: rebuilding it", self.folder)
            rebuild(engine, self.folder, plugin_items=self.plugin_items,
                    describe=self.describe, holding_lock=True)
        ix = store.open_index(self.folder)
        with open_session(engine) as session:
            oldest = oldest_event_id(session)
        cursor = store.cursor(ix)
        if 0 < cursor < oldest - 1:  # the log was pruned past the cursor
            log.warning("search index cursor %d is older than the event log: rebuilding",
                        cursor)
            rebuild(engine, self.folder, plugin_items=self.plugin_items,
                    describe=self.describe, holding_lock=True)
            ix = store.open_index(self.folder)
            cursor = store.cursor(ix)
        return ix, cursor

    def _warm(self) -> bool:
        """Decode what searches need from the segments just written, here rather
        than in the next searcher's request (a failure only costs that searcher)."""
        from caseforum.search import query

        try:
            query.warm(self.folder)
        except Exception:  # noqa: BLE001  (search answers without it, only slower)
            log.exception("warming the search index in %s failed", self.folder)
            return False
        return True


def _generation(folder: Path) -> int:
    """Which commit of the index is the newest (-1: none yet); reads a folder listing."""
    from whoosh.filedb.filestore import FileStorage
    from whoosh.index import _DEF_INDEX_NAME, TOC

    if not folder.is_dir():
        return -1
    return int(TOC._latest_generation(FileStorage(str(folder)), _DEF_INDEX_NAME))


def _identity(folder: Path) -> tuple[int, int, int] | None:
    """The newest commit of the index in ``folder`` as the file system knows it (its
    generation, and its table of contents' inode and change time: an index rebuilt and
    swapped in, or copied back, has other files, whose generation may be the same
    number; a copy keeps the modification time, not the change time), or None when
    there is none."""
    generation = _generation(folder)
    if generation < 0:
        return None
    from whoosh.index import _DEF_INDEX_NAME, TOC

    try:
        stat = (folder / TOC._filename(_DEF_INDEX_NAME, generation)).stat()
    except OSError:
        return None
    return generation, stat.st_ino, stat.st_ctime_ns


@contextmanager
def _writer_lock(folder: Path) -> Iterator[None]:
    """Wait for the index's lock file (see :func:`_only_writer`), e.g. to swap a
    rebuilt index in while no worker is writing the old one."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / (folder.name + ".lock"), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _only_writer(folder: Path) -> Iterator[bool]:
    """Whether this process may write the index in ``folder`` now.  Every worker of
    ``caseforum serve --workers N`` runs an indexer on the host's one index, and
    Whoosh allows one writer: the worker holding this lock file writes, the others
    pass (the next round of whichever worker comes first takes what arrived since).
    The lock is the operating system's, so a killed worker leaves none behind."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / (folder.name + ".lock"), "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i:i + CHUNK]


def rebuild(engine: Engine, folder: Path,
            progress: Callable[[int, int], None] | None = None, *,
            plugin_items: PluginItems | None = None, describe: Describe = describe,
            holding_lock: bool = False) -> int:
    """Build a fresh index from the database in a new folder and swap it in;
    returns the number of items.  The cursor is the last event id read *before*
    the rows, so events that land meanwhile are applied again afterwards (which
    is harmless: items are replaced by id)."""
    from caseforum.search import items, store

    folder.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix="search-", dir=folder.parent))
    ix = store.create(fresh)
    bulk = store.BulkWriter(ix)
    try:
        with open_session(engine) as session:
            last = session.exec(select(func.max(Event.id))).one() or 0
            app_ids, thread_ids = items.all_ids(session)
            size = len(app_ids) + len(thread_ids)
            done = 0
            for chunk in _chunks(app_ids):
                bulk.add(items.dossiers(session, chunk, describe))
                done += len(chunk)
                if progress:
                    progress(done, size)
                session.expunge_all()
            for chunk in _chunks(thread_ids):
                bulk.add(items.threads(session, chunk))
                done += len(chunk)
                if progress:
                    progress(done, size)
                session.expunge_all()
            if plugin_items:
                bulk.add(items.plugin_batch(plugin_items(session, None)))
        total = bulk.commit(cursor_to=last)  # one segment: a query pays per segment
    except BaseException:
        bulk.cancel()
        ix.close()
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    ix.close()
    # swapped in while no worker writes the old folder (``caseforum reindex`` beside a
    # running host); the indexer's own rebuild already holds the lock
    with contextlib.nullcontext() if holding_lock else _writer_lock(folder):
        store.swap_in(fresh, folder)
    return total


def lag(session: Session, folder: Path) -> int:
    """How many events the index has not applied yet (for the admin page)."""
    from caseforum.search import store

    newest = session.exec(select(func.max(Event.id))).one() or 0
    if not store.exists(folder):
        return newest
    return max(0, newest - store.cursor(store.open_index(folder)))


