"""Answering a query with bit sets: matches, permissions, counts, facets, best hits.

Whoosh's collectors visit every matching item in Python (a matcher step, a score,
the permission check and a facet lookup each): a few microseconds per item, so a
word found in thirty thousand items cost over a hundred milliseconds.  Here a set
of items of one segment is a Python integer used as a bit set, so a query's
matches, the viewer's permission filter, the total and each facet count are a few
big-integer operations done in C, whatever the number of matches.

- A term's items come from its postings once and are kept per segment
  (:mod:`.segments`), with their BM25 scores for the text fields.
- ``And`` / ``Or`` / ``Not`` combine bits; a phrase takes the items holding all
  its words and keeps those where the words follow each other (positions read
  once per segment and phrase, then kept like a term).
- Only the page is ranked one item at a time.  When the score comes from a single
  scored set (one word in its three fields, a phrase) its items are walked best
  first until the page is full; otherwise each match is scored.  Filters
  (``office:``, ``ipc:``, the page's facets) do not change the order.
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from whoosh import query as wq
from whoosh.searching import Searcher

from caseforum.search.schema import FACET_FIELDS, TEXT_FIELDS
from caseforum.search.segments import (
    CACHE,
    LENGTH_OF_BYTE,
    Part,
    Segment,
    View,
    bits_of,
    bits_size,
    docs_of,
)

K1, B = 1.2, 0.75  # BM25, as Whoosh's default weighting
#: the score of an item found by one of its numbers (or a publication it cites):
#: above what words give, so the dossier a typed number names comes first
NUMBER_SCORE = 50.0
NUMBER_FIELDS = ("numbers", "cited")
#: what a step costs, relative to scoring one match, when the page is found by
#: walking the scored set best first (a bit test) instead of scoring every match
WALK_STEP = 0.3


class Scored:
    """Some items of a segment with a score each (``docs`` ascending, ``bits`` the
    same items as a bit set)."""

    __slots__ = ("docs", "scores", "bits", "_best")

    def __init__(self, docs: array, scores: array, size: int) -> None:
        self.docs, self.scores = docs, scores
        self.bits = bits_of(docs, size)
        self._best: list[int] | None = None

    def score(self, d: int) -> float:
        i = bisect_left(self.docs, d)
        return self.scores[i] if i < len(self.docs) and self.docs[i] == d else 0.0

    def best(self) -> list[int]:
        """The items from the highest score down (computed once)."""
        if self._best is None:
            order = sorted(range(len(self.docs)), key=self.scores.__getitem__, reverse=True)
            self._best = [self.docs[i] for i in order]
        return self._best

    @property
    def nbytes(self) -> int:
        return 16 * len(self.docs) + bits_size(self.bits)


@dataclass(frozen=True)
class Found:
    """The items of one segment that match, and the scored sets whose sum ranks them."""

    bits: int
    ranked: tuple[Scored, ...] = ()

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.ranked) + (
            0 if any(s.bits is self.bits for s in self.ranked) else bits_size(self.bits))


NOTHING = Found(0)


class Stats:
    """Index-wide numbers for BM25 (one view: the index as it is now)."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.count = max(view.doc_count, 1)
        self._df: dict[tuple[str, bytes], int] = {}
        self._avg: dict[str, float] = {}

    def idf(self, name: str, btext: bytes) -> float:
        key = (name, btext)
        df = self._df.get(key)
        if df is None:
            df = self._df[key] = sum(p.segment.reader.doc_frequency(name, btext)
                                     for p in self.view.parts)
        return math.log(self.count / (df + 1)) + 1

    def avg_length(self, name: str) -> float:
        found = self._avg.get(name)
        if found is None:
            total = sum(p.segment.reader.field_length(name) for p in self.view.parts)
            found = self._avg[name] = (total / self.count) or 1.0
        return found


def _scored(segment: Segment, stats: Stats, name: str, btext: bytes) -> Found:
    postings = segment.postings(name, btext, weights=True)
    idf, avg = stats.idf(name, btext), stats.avg_length(name)
    lengths = segment.lengths(name)
    norm = [K1 * (1 - B + B * length / avg) for length in LENGTH_OF_BYTE]
    weights = postings.weights
    if weights is None:
        weights = array("d", [1.0] * len(postings.docs))
    scores = array("d", [idf * w * (K1 + 1) / (w + norm[lengths[d]])
                         for d, w in zip(postings.docs, weights, strict=True)])
    scored = Scored(postings.docs, scores, segment.size)
    return Found(scored.bits, (scored,))


def _merge(founds: Sequence[Found], size: int) -> Found:
    """An ``Or`` of ranked sets as one scored set (each item's scores summed)."""
    bits = 0
    for found in founds:
        bits |= found.bits
    ranked = [s for f in founds for s in f.ranked]
    if not ranked:
        return Found(bits)
    if len(ranked) == 1 and ranked[0].bits == bits:
        return Found(bits, (ranked[0],))
    total: dict[int, float] = dict.fromkeys(docs_of(bits), 0.0)
    for scored in ranked:  # an And's scored sets hold items beyond the And's own
        for d, s in zip(scored.docs, scored.scores, strict=True):
            if d in total:
                total[d] += s
    return Found(bits, (Scored(array("i", total), array("d", total.values()), size),))


def _ordered(lists: list[list[int]], slop: int) -> bool:
    """Whether the positions lists hold a run, each word at most ``slop`` after
    the one before (``slop`` 1: right after)."""
    later = [set(positions) for positions in lists[1:]]
    for start in lists[0]:
        at = start
        for positions in later:
            step = next((at + k for k in range(1, slop + 1) if at + k in positions), None)
            if step is None:
                break
            at = step
        else:
            return True
    return False


class Evaluator:
    """Evaluates Whoosh query objects on one segment."""

    def __init__(self, part: Part, stats: Stats, schema: Any) -> None:
        self.segment = part.segment
        self.stats = stats
        self.schema = schema
        self._searcher: Searcher | None = None

    def _btext(self, name: str, text: Any) -> bytes:
        if isinstance(text, bytes):
            return text
        return self.schema[name].to_bytes(text)

    def term(self, name: str, text: Any) -> Found:
        btext = self._btext(name, text)
        segment = self.segment
        if name in TEXT_FIELDS:
            return CACHE.get((segment.id, "scored", name, btext),
                             lambda: _scored(segment, self.stats, name, btext),
                             lambda f: f.nbytes)
        bits = CACHE.get((segment.id, "bits", name, btext),
                         lambda: bits_of(segment.postings(name, btext, weights=False).docs,
                                         segment.size), bits_size)
        if name in NUMBER_FIELDS and bits:
            docs = array("i", docs_of(bits))
            return Found(bits, (Scored(docs, array("d", [NUMBER_SCORE] * len(docs)),
                                       segment.size),))
        return Found(bits)

    def any_of(self, name: str, texts: Iterable[Any]) -> int:
        bits = 0
        for text in texts:
            bits |= self.term(name, text).bits
        return bits

    def node(self, q: Any) -> Found:
        if isinstance(q, wq.Term):
            return self.term(q.fieldname, q.text)
        if isinstance(q, wq.And):
            return self._and(q.subqueries)
        if isinstance(q, (wq.Or, wq.DisjunctionMax)):
            key: tuple[Any, ...] = (self.segment.id, "or", repr(q))
            return CACHE.get(key, lambda: _merge([self.node(s) for s in q.subqueries],
                                                 self.segment.size), lambda f: f.nbytes)
        if isinstance(q, wq.Not):
            return Found(self.segment.all & ~self.node(q.query).bits)
        if isinstance(q, wq.AndNot):
            positive = self.node(q.a)
            return Found(positive.bits & ~self.node(q.b).bits, positive.ranked)
        if isinstance(q, wq.AndMaybe):
            required, optional = self.node(q.a), self.node(q.b)
            return Found(required.bits, required.ranked + optional.ranked)
        if isinstance(q, wq.Phrase):
            key = (self.segment.id, "phrase", q.fieldname, tuple(q.words), q.slop)
            return CACHE.get(key, lambda: self._phrase(q), lambda f: f.nbytes)
        if isinstance(q, wq.Every):
            return Found(self.segment.all)
        if q is wq.NullQuery or isinstance(q, type(wq.NullQuery)):
            return NOTHING
        if isinstance(q, wq.ConstantScoreQuery):
            return Found(self.node(q.child).bits)
        if isinstance(q, wq.MultiTerm):  # prefix, wildcard, fuzzy, range: a filter
            return Found(self.any_of(q.fieldname, q._btexts(self.segment.reader)))
        if isinstance(q, wq.NumericRange):
            return Found(self.node(q._compile_query(self.segment.reader)).bits)
        return self._fallback(q)

    def _and(self, subqueries: Sequence[Any]) -> Found:
        # phrases last: they are the dear ones, and nothing may be left to check
        order = sorted(subqueries, key=lambda s: isinstance(s, wq.Phrase))
        bits, ranked = self.segment.all, tuple[Scored, ...]()
        for sub in order:
            found = self.node(sub)
            bits &= found.bits
            ranked += found.ranked
            if not bits:
                return NOTHING
        return Found(bits, ranked)

    def _phrase(self, q: wq.Phrase) -> Found:
        words = [self.term(q.fieldname, w) for w in q.words]
        candidates = self.segment.all
        for found in words:
            candidates &= found.bits
        if not candidates or not words:
            return NOTHING
        kept = self._verify(q.fieldname, [self._btext(q.fieldname, w) for w in q.words],
                            docs_of(candidates), max(q.slop, 1))
        scored = Scored(array("i", kept), array("d", [
            sum(s.score(d) for f in words for s in f.ranked) for d in kept]), self.segment.size)
        return Found(scored.bits, (scored,))

    def _verify(self, name: str, btexts: list[bytes], candidates: list[int],
                slop: int) -> list[int]:
        wanted = bytearray(self.segment.size)
        for d in candidates:
            wanted[d] = 1
        found = [self.segment.positions(name, b, bytes(wanted)) for b in btexts]
        return [d for d in candidates
                if all(d in f for f in found) and _ordered([f[d] for f in found], slop)]

    def _fallback(self, q: Any) -> Found:
        """A query type this module does not know: Whoosh's matcher finds its items
        (a filter: it does not change the order)."""
        if self._searcher is None:
            self._searcher = Searcher(self.segment.reader, closereader=False)
        return Found(bits_of(q.docs(self._searcher), self.segment.size))


# Answering ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Overlay:
    """Items whose access changed since the index last saw them: the viewer's
    filter does not decide them; ``shown`` (a subset) are the ones the viewer may
    see now.  Each is a ``(field, value)`` term: ``("id", "document:7")``,
    ``("thread", "12")`` for a thread and its posts."""

    changed: frozenset[tuple[str, str]] = frozenset()
    shown: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Hit:
    part: Part
    docnum: int
    score: float


@dataclass
class Answer:
    total: int = 0
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)


def _facet_values(evaluator: Evaluator, name: str) -> list[tuple[str, bytes]]:
    """(value, term) of every value of a facet field in the segment."""
    segment = evaluator.segment
    key = (segment.id, "values", name)

    def make() -> list[tuple[str, bytes]]:
        spec = evaluator.schema[name]
        if name == "year":  # numeric: its full-precision terms only
            return [(str(spec.from_bytes(b)), b)
                    for b in spec.sortable_terms(segment.reader, name)]
        return [(b.decode("utf-8"), b) for b in segment.reader.lexicon(name)]

    return CACHE.get(key, make, lambda values: 64 * len(values))


def _walk(order: Iterable[int], allowed: int, size: int, wanted: int) -> list[int]:
    """The first ``wanted`` items of ``order`` that are in ``allowed``."""
    mask = allowed.to_bytes((size + 7) // 8, "little")
    out = []
    for d in order:
        if mask[d >> 3] >> (d & 7) & 1:
            out.append(d)
            if len(out) == wanted:
                break
    return out


def _top(found: Found, allowed: int, part: Part, wanted: int, by_date: bool) -> list[Hit]:
    """The ``wanted`` best (or newest) of the allowed matches of one segment.

    Either every match is scored (or dated) and the best kept, or a list already in
    order (the one scored set best first, or the segment newest first) is walked
    until ``wanted`` matches have come by: about ``wanted * len(list) / matches``
    steps, which wins unless the matches are few."""
    if not allowed:
        return []
    segment = part.segment
    matches = allowed.bit_count()
    ranked = found.ranked
    if by_date or not ranked:
        if wanted * segment.size * WALK_STEP < matches * matches:
            return [Hit(part, d, 0.0) for d in _walk(segment.newest_first(), allowed,
                                                        segment.size, wanted)]
        best = heapq.nlargest(wanted, docs_of(allowed), key=segment.dates().__getitem__)
        return [Hit(part, d, 0.0) for d in best]
    scored = ranked[0]
    if (len(ranked) == 1 and not allowed & ~scored.bits
            and wanted * len(scored.docs) * WALK_STEP < matches * matches):
        return [Hit(part, d, scored.score(d))
                for d in _walk(scored.best(), allowed, segment.size, wanted)]
    scores = ((sum(s.score(d) for s in ranked), d) for d in docs_of(allowed))
    return [Hit(part, d, score) for score, d in heapq.nlargest(wanted, scores)]


def answer(view: View, q: Any, tokens: Iterable[str], overlay: Overlay, *,
           by_date: bool, first: int, count: int) -> Answer:
    """Items ``first`` to ``first + count`` (best first, or newest first) of those
    matching ``q`` that the holder of ``tokens`` may see, with the total and the
    facet counts over all of them."""
    stats = Stats(view)
    tokens = sorted(tokens)
    out = Answer(facets={name: {} for name in FACET_FIELDS})
    candidates: list[Hit] = []
    for part in view.parts:
        evaluator = Evaluator(part, stats, view.schema)
        found = evaluator.node(q)
        matched = found.bits & part.live
        if not matched:
            continue
        allowed = matched & evaluator.any_of("acl", tokens)
        if overlay.changed:
            changed = shown = 0
            for name, value in overlay.changed:
                changed |= evaluator.term(name, value).bits
            for name, value in overlay.shown:
                shown |= evaluator.term(name, value).bits
            allowed = (allowed & ~changed) | (matched & shown)
        if not allowed:
            continue
        out.total += allowed.bit_count()
        for name in FACET_FIELDS:
            counts = out.facets[name]
            for value, btext in _facet_values(evaluator, name):
                n = (allowed & evaluator.term(name, btext).bits).bit_count()
                if n:
                    counts[value] = counts.get(value, 0) + n
        candidates += _top(found, allowed, part, first + count, by_date)
    if by_date or not any(h.score for h in candidates):
        def key(h: Hit) -> tuple[Any, ...]:
            return (h.part.segment.dates()[h.docnum], h.docnum)
    else:
        def key(h: Hit) -> tuple[Any, ...]:
            return (h.score, h.part.segment.dates()[h.docnum])
    candidates.sort(key=key, reverse=True)
    out.hits = candidates[first:first + count]
    return out


def warm(view: View) -> None:
    """Decode what most queries need, for the segments that have not had it yet:
    each facet value's items, the access tokens that one item in a hundred or more
    carries, the newest-first order.  The indexer calls it after each round, so that
    a searcher does not pay for a segment the indexer has just written (or, after a
    start or a rebuild, for the whole index)."""
    stats = Stats(view)
    for part in view.parts:
        evaluator = Evaluator(part, stats, view.schema)
        for name in FACET_FIELDS:
            for _, btext in _facet_values(evaluator, name):
                evaluator.term(name, btext)
        reader = part.segment.reader
        for btext in reader.lexicon("acl"):
            if reader.doc_frequency("acl", btext) * 100 >= part.segment.size:
                evaluator.term("acl", btext)
        part.segment.newest_first()
