"""The few lines of a hit around the words searched for, the words marked.

Whoosh's highlighter runs the whole analyser over a text (up to 32,000 characters)
for each hit: for a page of twenty hits that was most of a query's time, and a
document's extracted text may be far longer.  Here the place is found first by a
regular expression over the raw text (in C): the start of each query word as the
index holds it (an English stem is the start of the word it came from, give or take
its last letter: ``batteri`` from ``battery``; a CJK bigram is itself).  Only the
words around a candidate are analysed, to keep the candidates that really are a
query word, and only the window shown is marked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

from markupsafe import Markup, escape
from whoosh.lang.porter import stem

from caseforum.search.analysis import CJK_CLASS, RUN

WIDTH = 240  # characters shown
BEFORE = 60  # of them, before the first match
#: where a text is looked at for a match at all (a document can hold megabytes)
SCAN_LIMIT = 200_000


@lru_cache(maxsize=50_000)
def _stem(word: str) -> str:
    return str(stem(word.lower()))


_IS_CJK = re.compile(f"[{CJK_CLASS}]")


@lru_cache(maxsize=512)
def _finder(words: frozenset[str]) -> re.Pattern[str] | None:
    starts = sorted({w if _IS_CJK.match(w) else w[:max(len(w) - 1, 1)]
                     for w in words if w}, key=len, reverse=True)
    if not starts:
        return None
    return re.compile("|".join(re.escape(s) for s in starts), re.IGNORECASE)


def _matches(text: str, words: frozenset[str], start: int, end: int) -> Iterator[
        tuple[int, int]]:
    """(start, end) of each query word in ``text[start:end]``, in order."""
    for run in RUN.finditer(text, start, end):
        piece = run.group()
        if _IS_CJK.match(piece):
            if len(piece) == 1:
                if piece in words:
                    yield run.start(), run.end()
                continue
            i = 0
            while i < len(piece) - 1:  # overlapping bigrams: one mark per run of them
                if piece[i:i + 2] in words:
                    j = i + 1
                    while j < len(piece) - 1 and piece[j:j + 2] in words:
                        j += 1
                    yield run.start() + i, run.start() + j + 1
                    i = j + 1
                else:
                    i += 1
        elif _stem(piece) in words:
            yield run.start(), run.end()


def _first(text: str, words: frozenset[str]) -> int | None:
    """Where the first query word starts (``None``: nowhere in the part looked at)."""
    finder = _finder(words)
    if finder is None:
        return None
    for candidate in finder.finditer(text, 0, min(len(text), SCAN_LIMIT)):
        at = candidate.start()
        if _IS_CJK.match(candidate.group()):
            return at  # a bigram (or a lone character) of the query itself
        left = at  # the whole word the candidate starts, or sits in
        while left > 0 and text[left - 1].isalnum() and not _IS_CJK.match(text[left - 1]):
            left -= 1
        found = next(_matches(text, words, left, min(len(text), candidate.end() + 40)), None)
        if found is not None and found[0] <= at + len(candidate.group()):
            return found[0]
    return None


def snippet(text: str, words: Iterable[str]) -> Markup | None:
    """About :data:`WIDTH` characters of ``text`` around the first query word, each
    word marked; ``None`` when none of ``words`` is in it."""
    words = frozenset(words)
    at = _first(text, words) if words else None
    if at is None:
        return None
    start = max(0, at - BEFORE)
    if start:
        space = text.rfind(" ", start - 20, start)
        start = space + 1 if space > 0 else start
    end = min(len(text), start + WIDTH)
    if end < len(text):
        space = text.find(" ", end, end + 20)
        end = space if space > 0 else end
    out, done = [Markup("…") if start else Markup("")], start
    for left, right in _matches(text, words, start, end):
        out += [escape(text[done:left]), Markup('<mark class="hit">'),
                escape(text[left:right]), Markup("</mark>")]
        done = right
    out.append(escape(text[done:end]))
    if end < len(text):
        out.append(Markup("…"))
    return Markup("").join(out)
