"""The Whoosh index on disk: opening, writing batches, the indexer's own cursor.

Whoosh allows one writer at a time; only the indexer consumer (and
``caseforum reindex``, which builds a fresh folder and swaps it in) writes.  The
last event id applied is stored *in* the index, committed with the items it
covers, so an index copied, restored or deleted by hand always knows where it
stands in the event log (a missing one is rebuilt; see :mod:`.indexer`).
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from whoosh import index as whoosh_index
from whoosh.filedb.structfile import BufferFile
from whoosh.index import Index
from whoosh.query import Term

from caseforum.search.items import Batch
from caseforum.search.schema import make_schema

CURSOR_ID = "__cursor__"


class _MemoryRaw(io.RawIOBase):
    """A read-only file over a memory-mapped slice, read without copying it."""

    def __init__(self, buf: memoryview) -> None:
        self._buf = buf
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = max(0, min(len(b), len(self._buf) - self._pos))
        b[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._buf)}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos


def _buffer_file_init(self: BufferFile, buf: Any, name: str | None = None,
                      onclose: Any = None) -> None:
    """``BufferFile.__init__`` without its ``BytesIO(buf)``, which copied every file of
    a segment into memory each time a reader opened it: 0.18 s per reader for the
    terms of a 300,000-item segment, three readers per indexer round (most of a
    round's 0.7 s).  Random reads (``get``) already slice the mapped buffer; the
    sequential ones now read through a small buffer over it."""
    self._buf = buf
    self._name = name
    self.file = io.BufferedReader(_MemoryRaw(memoryview(buf)))
    self.onclose = onclose
    self.is_real = False
    self.is_closed = False


BufferFile.__init__ = _buffer_file_init  # whoosh-reloaded is pinned: see segments.py


def index_dir(data_dir: Path) -> Path:
    return data_dir / "search"


def exists(folder: Path) -> bool:
    """Whether ``folder`` holds an index of the current layout: one written with
    an older schema counts as missing, so the indexer rebuilds it at start-up."""
    if not (folder.is_dir() and whoosh_index.exists_in(str(folder))):
        return False
    return set(open_index(folder).schema.names()) == set(make_schema().names())


def create(folder: Path) -> Index:
    folder.mkdir(parents=True, exist_ok=True)
    return whoosh_index.create_in(str(folder), make_schema())


def open_index(folder: Path) -> Index:
    return whoosh_index.open_dir(str(folder))


def cursor(ix: Index) -> int:
    with ix.searcher() as searcher:
        stored = searcher.document(id=CURSOR_ID)
    return int(stored["cursor"]) if stored else 0


def write(ix: Index, batches: Iterable[Batch], *, cursor_to: int | None = None) -> int:
    """Apply the batches in one commit (and move the stored cursor); returns the
    number of items written.  Re-applying a batch changes nothing (ids are unique)."""
    # one item once per commit: Whoosh's update_document replaces what is committed,
    # not what the same writer added a moment before
    latest: dict[str, dict] = {}
    gone: set[str] = set()
    for batch in batches:
        gone |= batch.gone
        latest.update((item["id"], item) for item in batch.items)
    writer = ix.writer(limitmb=128)
    try:
        for item_id in gone - set(latest):
            writer.delete_by_term("id", item_id)
        for item in latest.values():
            writer.update_document(**item)
        if cursor_to is not None:
            writer.update_document(id=CURSOR_ID, kind="marker", cursor=cursor_to)
    except BaseException:
        writer.cancel()
        raise
    writer.commit()
    return len(latest)


class BulkWriter:
    """Fills a *fresh* index (a rebuild) with one Whoosh writer and one commit.

    :func:`write` commits per batch and replaces items by id, which an incremental
    round needs; a rebuild needs neither.  Committing every few hundred items made
    Whoosh merge its small segments again and again (most of a 300,000-item build's
    hour), and replacing by id looked every item up first.  Here items are added,
    the writer's pool spills sorted runs to disk (``limitmb``), and the one commit
    writes one segment: the rebuilt index lands whole or not at all."""

    def __init__(self, ix: Index, limitmb: int = 256) -> None:
        self._writer = ix.writer(limitmb=limitmb)
        self._seen: set[str] = set()
        self.count = 0

    def add(self, batch: Batch) -> int:
        """Add a batch's items (an id seen before in this build is skipped)."""
        added = 0
        for item in batch.items:
            if item["id"] in self._seen:
                continue
            self._seen.add(item["id"])
            self._writer.add_document(**item)
            added += 1
        self.count += added
        return added

    def commit(self, cursor_to: int | None = None) -> int:
        if cursor_to is not None:
            self._writer.add_document(id=CURSOR_ID, kind="marker", cursor=cursor_to)
        self._writer.commit(optimize=True)
        return self.count

    def cancel(self) -> None:
        self._writer.cancel()


def swap_in(fresh: Path, folder: Path) -> None:
    """Replace ``folder`` by ``fresh`` (a rebuilt index)."""
    old = folder.with_name(folder.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.rename(old)
    fresh.rename(folder)
    if old.exists():
        shutil.rmtree(old)


def item_count(ix: Index) -> int:
    with ix.searcher() as searcher:
        return searcher.doc_count() - (1 if searcher.document(id=CURSOR_ID) else 0)


__all__ = ["CURSOR_ID", "BulkWriter", "Term", "create", "cursor", "exists", "index_dir",
           "open_index", "swap_in", "write"]
