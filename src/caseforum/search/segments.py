"""Reading the index a segment at a time, with what was decoded kept per segment.

A Whoosh index is a list of segments.  A segment's postings never change once
written (a commit adds segments; merges replace some by new ones with new ids);
only the set of its deleted items grows, and that set is in the index's table of
contents.  So what is decoded from a segment's postings (the items of a term as
bits, their scores, a phrase's verified items) stays true as long as the segment
exists, and is kept here in one size-bounded cache for the whole process, keyed by
segment id.  Deletions are applied separately (``Part.live``).

:class:`IndexHandle` keeps one open reader per segment and, per query, looks at
the newest generation number (a directory listing) to see whether a commit
happened; only then does it read the table of contents again.  Opening a Whoosh
searcher per query instead cost tens of milliseconds (it copies every segment
file into memory), and Whoosh's own ``refresh`` keeps a segment's *old* deletions
when it reuses a reader, which made an updated item show twice.

Whoosh readers are not safe to share between threads (their files seek), so
everything that reads the index runs under the handle's lock (:func:`reading`).
This module is the only one that reads Whoosh's storage internals (a segment's
postings a block at a time without its reader's deletion filter, a whole column at
once); :mod:`.engine` also calls two query methods Whoosh keeps private (the terms of
a prefix or a numeric range), and ``store`` replaces one constructor that copied whole
segment files into memory.  whoosh-reloaded is pinned; ``tests/test_search_engine.py``
checks every query shape against Whoosh's own matching.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any, TypeVar

from whoosh.codec.whoosh3 import LENGTHS_COLUMN, _lenfield
from whoosh.index import Index
from whoosh.reading import SegmentReader
from whoosh.util.numeric import byte_to_length

from caseforum.search import store

#: bytes of decoded postings kept per process (every segment and index together)
CACHE_BYTES = 160 * 2**20
#: a field length as Whoosh stores it (one byte) -> the length
LENGTH_OF_BYTE = [byte_to_length(b) for b in range(256)]

V = TypeVar("V")


class DecodedCache:
    """Least recently used first out, bounded by the (approximate) bytes held."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._items: OrderedDict[Hashable, tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V], size: Callable[[V], int]) -> V:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found[1]
        value = make()
        cost = size(value) + 100
        with self._lock:
            if key not in self._items:
                self._items[key] = (cost, value)
                self.held += cost
                while self.held > self.limit and len(self._items) > 1:
                    _, (old, _) = self._items.popitem(last=False)
                    self.held -= old
        return value

    def drop(self, segment_id: str) -> None:
        """Forget a segment that no longer exists (merged away, index rebuilt)."""
        with self._lock:
            for key in [k for k in self._items if isinstance(k, tuple) and k[0] == segment_id]:
                self.held -= self._items.pop(key)[0]


CACHE = DecodedCache(CACHE_BYTES)


def bits_size(bits: int) -> int:
    return (bits.bit_length() + 7) // 8


def bits_of(docs: Any, size: int) -> int:
    """An int with bit ``d`` set for each ``d`` in ``docs`` (all below ``size``).

    Written as a string of binary digits, highest item first, and read by ``int``
    (linear for base 2): twice as fast as setting bits in a byte array."""
    digits = bytearray(b"0") * size
    for d in docs:
        digits[d] = 49  # "1"
    digits.reverse()
    return int(digits, 2) if size else 0


_ONE = re.compile("1")


def docs_of(bits: int) -> list[int]:
    """The numbers of the bits set in ``bits``, ascending (a C-speed scan of the
    binary digits for the ones)."""
    if not bits:
        return []
    return [m.start() for m in _ONE.finditer(format(bits, "b")[::-1])]


@dataclass(frozen=True)
class Postings:
    """One term's items in one segment, ascending, with their weights (term
    frequency times the field's boost) when the field records them."""

    docs: array
    weights: array | None


class Segment:
    """One segment's reader and the per-segment facts read whole (lengths, dates)."""

    def __init__(self, reader: SegmentReader) -> None:
        self.reader = reader
        self.id: str = reader.segment().segment_id()
        self.size: int = reader.doc_count_all()
        self.all = (1 << self.size) - 1
        self._lengths: dict[str, bytes] = {}
        self._dates: array | list[int] | None = None
        self._newest: list[int] | None = None

    def postings(self, field: str, btext: bytes, weights: bool) -> Postings:
        """Every item of the term, deleted ones too (deletions are applied by the
        caller), decoded a block at a time."""
        docs, found = array("i"), array("f") if weights else None
        if (field, btext) not in self.reader:
            return Postings(docs, found)
        fmt = self.reader.schema[field].format
        # the raw matcher: SegmentReader.postings filters by the reader's deletions
        m = self.reader._terms.matcher(field, btext, fmt)
        if hasattr(m, "_read_data") and hasattr(m, "_next_block"):  # a W3LeafMatcher
            while m.is_active():
                m._read_data()  # one block: (ids as deltas, weights, values)
                ids = m._data[0]
                docs.extend(ids if m._byteids else accumulate(ids))
                if found is not None:
                    m._read_weights()
                    found.extend(m._weights)
                m._next_block()
        else:  # a short posting list stored inline with the term
            while m.is_active():
                docs.append(m.id())
                if found is not None:
                    found.append(m.weight())
                m.next()
        return Postings(docs, found)

    def positions(self, field: str, btext: bytes, wanted: bytes) -> dict[int, list[int]]:
        """Where the term stands in each item whose byte in ``wanted`` is not zero
        (a phrase's candidates): every block is read, positions decoded for those."""
        out: dict[int, list[int]] = {}
        if (field, btext) not in self.reader:
            return out
        fmt = self.reader.schema[field].format
        decode = fmt.decoder("positions")
        m = self.reader._terms.matcher(field, btext, fmt)
        if hasattr(m, "_read_data") and hasattr(m, "_next_block"):  # a W3LeafMatcher
            while m.is_active():
                m._read_data()
                ids = m._data[0] if m._byteids else accumulate(m._data[0])
                values = None
                for i, d in enumerate(ids):
                    if wanted[d]:
                        if values is None:
                            m._read_values()
                            values = m._values
                        out[d] = decode(values[i])
                m._next_block()
        else:  # a short posting list stored inline with the term
            while m.is_active():
                if wanted[m.id()]:
                    out[m.id()] = decode(m.value())
                m.next()
        return out

    def lengths(self, field: str) -> bytes:
        """Each item's length of ``field``, one byte each (Whoosh's encoding;
        :data:`LENGTH_OF_BYTE` decodes), read as one block."""
        found = self._lengths.get(field)
        if found is None:
            column = self.reader._perdoc._cached_reader(_lenfield(field), LENGTHS_COLUMN)
            if column is None:
                found = bytes(self.size)
            else:
                found = column._dbfile.get(column._basepos, column._count)
                found += bytes(self.size - len(found))
            self._lengths[field] = found
        return found

    def dates(self) -> array | list[int]:
        """Each item's date as a number that sorts like the date (0: none)."""
        if self._dates is None:
            column = self.reader.column_reader("date", translate=False)
            raw = getattr(column, "_dbfile", None)
            if raw is not None and getattr(column, "_fixedlen", 0) == 8:
                values = array("q" if column._typecode == "q" else "Q")
                values.frombytes(raw.get(column._basepos, column._count * 8))
                if sys.byteorder == "little":
                    values.byteswap()  # stored big-endian
                values.extend([0] * (self.size - len(values)))
                self._dates = values
            else:  # a layout this code does not know: slower, item by item
                self._dates = [column[d] for d in range(self.size)]
        return self._dates

    def newest_first(self) -> list[int]:
        """Every item, the newest first (computed once per segment)."""
        if self._newest is None:
            dates = self.dates()
            self._newest = sorted(range(self.size), key=dates.__getitem__, reverse=True)
        return self._newest

    def stored(self, docnum: int) -> dict[str, Any]:
        return dict(self.reader.stored_fields(docnum))


@dataclass(frozen=True)
class Part:
    """A segment as one generation of the index sees it: which of its items are live."""

    segment: Segment
    live: int


@dataclass(frozen=True)
class View:
    """The index at one generation: its segments and live items."""

    generation: int
    parts: tuple[Part, ...]
    schema: Any

    @property
    def doc_count(self) -> int:
        return sum(p.live.bit_count() for p in self.parts)


def _live(segment: Any, opened: Segment) -> int:
    deleted = list(segment.deleted_docs())
    if not deleted:
        return opened.all
    key = (opened.id, "deleted", len(deleted))
    return CACHE.get(key, lambda: opened.all & ~bits_of(deleted, opened.size), bits_size)


class IndexHandle:
    """One open index folder: a reader per segment, refreshed when a commit lands."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.inode = os.stat(folder).st_ino
        self.ix: Index = store.open_index(folder)
        self.lock = threading.RLock()
        self._segments: dict[str, Segment] = {}
        self._view: View | None = None
        self.closed = False

    def current(self) -> View:
        """The newest view (call with the lock held)."""
        for attempt in range(5):
            generation = self.ix.latest_generation()
            if self._view is not None and self._view.generation == generation:
                return self._view
            try:
                return self._load()
            except OSError:  # a commit replaced that table of contents, or merged
                if attempt == 4:  # away a segment, between the listing and the reading
                    raise
        raise AssertionError("unreachable")

    def _load(self) -> View:
        toc = self.ix._read_toc()  # the segments and their deletions, as committed
        opened: dict[str, Segment] = {}
        try:
            for segment in toc.segments:
                sid = segment.segment_id()
                opened[sid] = self._segments.get(sid) or Segment(SegmentReader(
                    self.ix.storage, toc.schema, segment, generation=toc.generation))
        except BaseException:
            for sid, new in opened.items():
                if sid not in self._segments:
                    new.reader.close()
            raise
        parts = tuple(Part(opened[s.segment_id()], _live(s, opened[s.segment_id()]))
                      for s in toc.segments)
        for sid, gone in self._segments.items():
            if sid not in opened:
                gone.reader.close()
                CACHE.drop(sid)
        self._segments = opened
        self._view = View(toc.generation, parts, toc.schema)
        return self._view

    def close(self) -> None:
        self.closed = True
        for segment in self._segments.values():
            segment.reader.close()
            CACHE.drop(segment.id)
        self._segments = {}
        self._view = None


#: open index folders kept per process (one in production; a test run opens many)
OPEN_INDEXES = 8
_handles: OrderedDict[Path, IndexHandle] = OrderedDict()
_handles_lock = threading.Lock()


def _close(found: IndexHandle) -> None:
    with found.lock:
        found.close()


def handle(folder: Path) -> IndexHandle | None:
    """The open index in ``folder`` (one per folder and process), or ``None`` when
    there is none; a folder swapped by a rebuild (a new inode) is opened afresh."""
    with _handles_lock:
        found = _handles.get(folder)
        try:
            inode = os.stat(folder).st_ino
        except OSError:
            inode = None
        if found is not None and found.inode == inode:
            _handles.move_to_end(folder)
            return found
        if found is not None:
            _close(_handles.pop(folder))
        if inode is None or not store.exists(folder):
            return None
        found = _handles[folder] = IndexHandle(folder)
        while len(_handles) > OPEN_INDEXES:
            _close(_handles.popitem(last=False)[1])
        return found



@contextmanager
def reading(folder: Path) -> Iterator[View | None]:
    """The index in ``folder`` as it is now, read under its lock (``None``: no index)."""
    for _ in range(3):
        found = handle(folder)
        if found is None:
            yield None
            return
        with found.lock:
            if found.closed:  # closed by another thread meanwhile: open it again
                continue
            yield found.current()
            return
    raise RuntimeError(f"the search index in {folder} keeps being closed")
