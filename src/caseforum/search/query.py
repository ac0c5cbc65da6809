"""Searching: the query language, the viewer's filter, facets, snippets, pages.

``q`` is free text (English words are stemmed, CJK text is matched as a phrase
of bigrams) plus optional field prefixes: ``applicant:``, ``ipc:`` (a class or a
class prefix, ``ipc:H01M10/*``), ``office:``, ``cited:`` (any form of a
publication number), ``code:`` (document code), ``kind:``, ``year:``.  Text that
is a number in any form also finds the dossiers it names.  The page's filters
(kind, office, year, source, document group, category) narrow the same way.

The viewer's permission filter is applied to the matches before anything is
counted (see :mod:`.grants` and :mod:`.engine`), so the total, the facet counts
and the snippets only ever come from items the viewer may see.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape
from whoosh.qparser import FieldsPlugin, MultifieldParser, QueryParser
from whoosh.query import And, NullQuery, NumericRange, Or, Prefix, Query, Term

from caseforum.doccodes import DOC_GROUPS
from caseforum.dossiers.lookup import candidates
from caseforum.numbers import NumberError, read_number
from caseforum.search import engine, segments
from caseforum.search.grants import Grants
from caseforum.search.schema import FACET_FIELDS, KINDS, make_schema
from caseforum.search.snippets import snippet
from caseforum.search.store import CURSOR_ID

PER_PAGE = 20
FACETS = FACET_FIELDS
SORTS = ("relevance", "date")
PREFIX_RE = re.compile(r'(?<!\S)(applicant|ipc|cpc|office|cited|code|kind|year):'
                       r'("[^"]*"|\S+)', re.IGNORECASE)
SOURCE_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")  # a dossier source's name (sources.py)


@dataclass(frozen=True)
class Hit:
    kind: str
    title: str
    url: str
    snippet: Markup
    office: str
    date: Any


@dataclass
class Results:
    q: str
    total: int = 0
    hits: list[Hit] = field(default_factory=list)
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    page: int = 1
    pages: int = 0
    sort: str = "relevance"


class SearchError(ValueError):
    """A query we cannot run; the message says what to change."""


@cache
def _schema() -> Any:
    return make_schema()


@cache
def _parser() -> MultifieldParser:
    parser = MultifieldParser(["title", "body", "applicant"], _schema())
    parser.remove_plugin_class(FieldsPlugin)  # prefixes are ours (above); ":" is text
    return parser


def _text_query(text: str) -> Query | None:
    parsed = _parser().parse(text)
    if parsed is NullQuery:
        parsed = None
    try:
        reading = read_number(text)
    except NumberError:
        return parsed
    numbers = [Term("numbers", ("IB" if m == "pct" else o) + n)
               for m, o, n in candidates(reading)]
    if reading.publication is not None:
        numbers.append(Term("cited", reading.publication.office + reading.publication.number))
    return Or([*numbers, parsed]) if parsed is not None else Or(numbers)


def _prefix_query(name: str, value: str) -> Query:
    value = value.strip('"').strip()
    if not value:
        raise SearchError(f"{name}: needs a value, as in {name}:{_EXAMPLES[name]}")
    if name == "applicant":
        return QueryParser("applicant", _schema()).parse(f'"{value}"')
    if name in ("ipc", "cpc"):
        return Prefix("ipc", value.rstrip("*").replace(" ", "").upper())
    if name == "cited":
        try:
            pub = read_number(value).publication
        except NumberError as exc:
            raise SearchError(f"cited: {exc}") from None
        if pub is None:
            raise SearchError(f"cited: {value!r} is not a publication number, "
                              "as in cited:WO2015/123450")
        return Term("cited", pub.office + pub.number)
    if name == "year":
        if not value.isdigit() or len(value) != 4:
            raise SearchError(f"year: give four digits, as in year:2020 (not {value!r})")
        return NumericRange("year", int(value), int(value))
    if name == "kind" and value.lower() not in KINDS:
        raise SearchError(f"kind: one of {', '.join(KINDS)} (not {value!r})")
    return Term(name if name != "kind" else "kind",
                value.lower() if name == "kind" else value.upper())


_EXAMPLES = {"applicant": '"Daikin"', "ipc": "H01M10/*", "cpc": "F28F1/32", "office": "JP",
             "cited": "WO2015/123450", "code": "SRPT", "kind": "post", "year": "2020"}


def _filter_query(name: str, value: str, grants: Grants) -> Query:
    """One of the page's facet filters (the values the facets show)."""
    value = value.strip()
    if name == "source":
        if not SOURCE_RE.fullmatch(value):
            raise SearchError(f"source: a source name such as hosted (not {value!r})")
        return Term("source", value)
    if name == "group":
        if value not in DOC_GROUPS:
            raise SearchError(f"group: one of {', '.join(DOC_GROUPS)} (not {value!r})")
        return Term("group", value)
    if name == "category":
        ids = [cid for cid, title in grants.categories.items() if title == value]
        if not ids:  # absent or not readable: the same answer, nothing revealed
            raise SearchError(f"category: you can read no category called {value!r}")
        return Term("category", str(ids[0]))
    return _prefix_query(name, value)


def build_query(q: str, filters: dict[str, str], grants: Grants | None = None) -> Query | None:
    """The query for ``q`` and the page's filters; None when there is nothing to ask."""
    parts: list[Query] = []
    for m in PREFIX_RE.finditer(q):
        parts.append(_prefix_query(m.group(1).lower(), m.group(2)))
    text = PREFIX_RE.sub(" ", q).strip()
    if text:
        text_query = _text_query(text)
        if text_query is not None:
            parts.append(text_query)
        elif not parts:
            return None
    for name, value in filters.items():
        if value:
            parts.append(_filter_query(name, value, grants or Grants(frozenset())))
    if not parts:
        return None
    return And(parts) if len(parts) > 1 else parts[0]


def index_cursor(folder: Path) -> int | None:
    """The last event the index in ``folder`` has applied (``None``: no index)."""
    with segments.reading(folder) as view:
        if view is None:
            return None
        for part in view.parts:
            bits = engine.Evaluator(part, engine.Stats(view), view.schema).term(
                "id", CURSOR_ID).bits & part.live
            if bits:
                return int(part.segment.stored(bits.bit_length() - 1).get("cursor", 0))
    return 0


def warm(folder: Path) -> None:
    """Decode in advance what most searches need (see :func:`.engine.warm`)."""
    with segments.reading(folder) as view:
        if view is not None:
            engine.warm(view)


def _words(q: Query, reader: Any, name: str) -> frozenset[str]:
    """The words of ``q`` in field ``name``, prefixes expanded (for highlighting).
    (Whoosh's ``existing_terms`` skips fields after the first it meets.)"""
    words: set[str] = set()
    for leaf in q.leaves():
        if leaf.field() == name:
            words.update(text if isinstance(text, str) else _schema()[name].from_bytes(text)
                         for _, text in leaf.expanded_terms(reader, phrases=True))
    return frozenset(words)


def _snippet(stored: dict[str, Any], words: dict[str, frozenset[str]]) -> Markup:
    """Where the words are: in the body, else the title, else the body's start."""
    for name in ("body", "title"):
        found = snippet(stored.get(name) or "", words[name])
        if found is not None:
            return found
    return Markup(escape((stored.get("body") or "")[:200]))


def search(folder: Path, grants: Grants, q: str, filters: Mapping[str, str] | None = None,
           *, sort: str = "relevance", page: int = 1, per_page: int = PER_PAGE) -> Results:
    """One page of results the grants allow, with facet counts over all of them;
    ``filters``: facet name -> chosen value (kind, office, year, source, group,
    category)."""
    if sort not in SORTS:
        raise SearchError(f"sort: one of {', '.join(SORTS)} (not {sort!r})")
    results = Results(q=q, page=max(page, 1), sort=sort)
    query = build_query(q, dict(filters or {}), grants)
    if query is None or not grants.tokens:
        return results
    with segments.reading(folder) as view:
        if view is None:
            return results
        answer = engine.answer(view, query, grants.tokens, grants.overlay,
                               by_date=sort == "date", first=(results.page - 1) * per_page,
                               count=per_page)
        words: dict[str, dict[str, frozenset[str]]] = {}  # by segment, then field
        for hit in answer.hits:
            stored = hit.part.segment.stored(hit.docnum)
            reader = hit.part.segment.reader
            if hit.part.segment.id not in words:
                words[hit.part.segment.id] = {name: _words(query, reader, name)
                                              for name in ("body", "title")}
            when = stored.get("date")
            results.hits.append(Hit(
                kind=stored.get("kind") or "", title=stored.get("title") or "",
                url=stored.get("url") or "",
                snippet=_snippet(stored, words[hit.part.segment.id]),
                office=stored.get("office") or "",
                date=when if isinstance(when, datetime) else None))
    results.total = answer.total
    results.pages = (answer.total + per_page - 1) // per_page
    for name in FACETS:
        counts = answer.facets.get(name, {})
        if name == "category":  # ids in the index, names on the page
            counts = {grants.categories[int(k)]: v for k, v in counts.items()
                      if k.isdigit() and int(k) in grants.categories}
        results.facets[name] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return results
