"""Searching: the query language, permission filter, facets, snippets, pages.

``q`` is free text (English words are stemmed, CJK text is matched as a phrase
of bigrams) plus optional field prefixes: ``applicant:``, ``ipc:`` (a class or a
class prefix, ``ipc:H01M10/*``), ``office:``, ``cited:`` (any form of a
publication number), ``code:`` (document code), ``kind:``, ``year:``.  Text that
is a number in any form also finds the dossiers it names.

The viewer's permission filter is part of the query (see :mod:`.acl`), so the
total, the facet counts and the snippets only ever come from items the viewer
may see.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape
from whoosh import highlight, sorting
from whoosh.index import Index
from whoosh.qparser import FieldsPlugin, MultifieldParser, QueryParser
from whoosh.query import (
    And,
    ConstantScoreQuery,
    Every,
    NullQuery,
    NumericRange,
    Or,
    Prefix,
    Query,
    Term,
)

from caseforum.authz import Viewer
from caseforum.dossiers.lookup import candidates
from caseforum.numbers import NumberError, read_number
from caseforum.search import acl, store
from caseforum.search.schema import KINDS, make_schema

PER_PAGE = 20
FACETS = ("kind", "office", "year")
SORTS = ("relevance", "date")
PREFIX_RE = re.compile(r'(?<!\S)(applicant|ipc|cpc|office|cited|code|kind|year):'
                       r'("[^"]*"|\S+)', re.IGNORECASE)

_indexes: dict[Path, Index] = {}
_lock = threading.Lock()


def _index(folder: Path) -> Index | None:
    """One open index per folder and process (a searcher sees the latest commit)."""
    with _lock:
        ix = _indexes.get(folder)
        if ix is None and store.exists(folder):
            ix = _indexes[folder] = store.open_index(folder)
        return ix


def forget(folder: Path) -> None:
    """Drop the cached index object (after a rebuild swapped the folder)."""
    with _lock:
        _indexes.pop(folder, None)


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


def _text_query(text: str) -> Query | None:
    parser = MultifieldParser(["title", "body", "applicant"], make_schema())
    parser.remove_plugin_class(FieldsPlugin)  # prefixes are ours (above); ":" is text
    parsed = parser.parse(text)
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
        return QueryParser("applicant", make_schema()).parse(f'"{value}"')
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


def build_query(q: str, filters: dict[str, str]) -> Query | None:
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
            parts.append(_prefix_query(name, value))
    if not parts:
        return None
    if not text:
        parts.insert(0, Every())
    return And(parts) if len(parts) > 1 else parts[0]


def search(folder: Path, viewer: Viewer, public_offices: set[str], q: str, *,
           kind: str = "", office: str = "", year: str = "", sort: str = "relevance",
           page: int = 1, per_page: int = PER_PAGE) -> Results:
    """One page of results the viewer may see, with facet counts over all of them."""
    if sort not in SORTS:
        raise SearchError(f"sort: one of {', '.join(SORTS)} (not {sort!r})")
    results = Results(q=q, page=max(page, 1), sort=sort)
    query = build_query(q, {"kind": kind, "office": office, "year": year})
    tokens = acl.viewer_tokens(viewer, public_offices)
    ix = _index(folder)
    if query is None or not tokens or ix is None:
        return results
    # the permission filter is part of the query (not Whoosh's ``filter=``, which would
    # first list every item the viewer may see): the matcher skips along the posting
    # lists, so the cost follows the matches, not the size of the index
    allowed = ConstantScoreQuery(Or([Term("acl", t) for t in sorted(tokens)]), 0.0)
    facets = {name: sorting.FieldFacet(name, maptype=sorting.Count) for name in FACETS}
    with ix.searcher() as searcher:
        found = searcher.search_page(
            And([query, allowed]), results.page, pagelen=per_page, groupedby=facets,
            sortedby="date" if sort == "date" else None, reverse=sort == "date", terms=True)
        results.total = found.total
        results.pages = (found.total + per_page - 1) // per_page
        raw = found.results
        for name in FACETS:
            counts = raw.groups(name)
            results.facets[name] = {str(k): int(v) for k, v in sorted(
                counts.items(), key=lambda kv: (-kv[1], str(kv[0]))) if k not in (None, "")}
        raw.fragmenter = highlight.ContextFragmenter(maxchars=240, surround=60)
        raw.formatter = highlight.HtmlFormatter(tagname="mark", classname="hit")
        for hit in found:
            snippet = hit.highlights("body", top=2) or hit.highlights("title")
            if not snippet:
                snippet = str(escape((hit.get("body") or "")[:200]))
            results.hits.append(Hit(
                kind=hit["kind"], title=hit.get("title") or "", url=hit.get("url") or "",
                snippet=Markup(snippet), office=hit.get("office") or "",
                date=hit.get("date")))
    return results
