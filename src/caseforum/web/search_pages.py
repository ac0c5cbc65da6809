"""``/search`` (page and htmx fragment) and ``GET /api/v1/search``: one search, two shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from caseforum import authcache, errors, i18n
from caseforum.authz import Viewer
from caseforum.db import SessionDep
from caseforum.doccodes import DOC_GROUPS
from caseforum.i18n import N_, CMsg
from caseforum.search.grants import Grants, grants_for
from caseforum.search.query import FACETS, KINDS, Results, SearchError, index_cursor, search
from caseforum.web.deps import CurrentViewer
from caseforum.web.dossier_pages import GROUP_NAMES
from caseforum.web.locale import request_locale
from caseforum.web.templating import render

router = APIRouter()

Q = Query("", max_length=500, description="words, a number, and prefixes such as ipc:H01M10/*")
KIND = Query("", max_length=16, description="dossier, document, thread or post")
OFFICE = Query("", max_length=2, description="a WIPO ST.3 office code")
YEAR = Query("", max_length=4, description="four digits")
SOURCE = Query("", max_length=40, description="where a dossier came from: hosted, opd_link, "
               "... (the values of the source facet)")
GROUP = Query("", max_length=16, description="a document group: " + ", ".join(DOC_GROUPS))
CATEGORY = Query("", max_length=100, description="a forum category's name (the values of "
                 "the category facet)")
SORT = Query("relevance", max_length=16, description="relevance or date")
PAGE = Query(1, ge=1, le=500)

FACET_TITLES = {"kind": N_("kind"), "office": N_("office"), "source": N_("source"),
                "group": N_("document group"), "category": N_("category"), "year": N_("year")}
#: what each kind of result is called (the ICE plugin adds exchanges)
KIND_NAMES = {"dossier": CMsg("search result", "dossier"),
              "document": CMsg("search result", "document"),
              "thread": CMsg("search result", "thread"), "post": CMsg("search result", "post"),
              "exchange": CMsg("search result", "exchange")}
HOSTED = N_("hosted here")


def run_search(request: Request, session: Any, viewer: Viewer, q: str,
               filters: dict[str, str], sort: str, page: int) -> tuple[Results, Grants]:
    folder = request.app.state.search_dir
    grants = grants_for(session, viewer, since=index_cursor(folder))
    try:
        return search(folder, grants, q, filters, sort=sort, page=page), grants
    except SearchError as exc:
        raise errors.InvalidInput(str(exc)) from None


def _source_names(request: Request) -> dict[str, str]:
    """Dossier source names and what people call them."""
    names = {"hosted": HOSTED}
    names.update((h.name, h.label) for h in request.app.state.plugins.source_health())
    return names


@dataclass(frozen=True)
class FacetLink:
    value: str
    label: str
    count: int
    url: str
    current: bool


def _url(q: str, chosen: dict[str, str], sort: str, page: int = 1) -> str:
    params = {"q": q, **{k: v for k, v in chosen.items() if v}, "sort": sort}
    if page > 1:
        params["page"] = str(page)
    return "/search?" + urlencode(params)


def facet_links(results: Results, chosen: dict[str, str],
                labels: dict[str, dict[str, str]]) -> dict[str, list[FacetLink]]:
    """Each facet's values as links that narrow the search to them (a chosen value's
    link widens it again), so the page filters without JavaScript too."""
    out = {}
    for name in FACETS:
        links = []
        for value, count in results.facets.get(name, {}).items():
            current = chosen.get(name) == value
            narrowed = {**chosen, name: "" if current else value}
            links.append(FacetLink(value, labels.get(name, {}).get(value, value), count,
                                   _url(results.q, narrowed, results.sort), current))
        if links:
            out[name] = links
    return out


@router.get("/search")
def search_page(request: Request, session: SessionDep, viewer: CurrentViewer, q: str = Q,
                kind: str = KIND, office: str = OFFICE, year: str = YEAR,
                source: str = SOURCE, group: str = GROUP, category: str = CATEGORY,
                sort: str = SORT, page: int = PAGE) -> Response:
    """The search page; an htmx request (filters changed) gets the results block only."""
    chosen = {"kind": kind, "office": office.upper(), "source": source, "group": group,
              "category": category, "year": year}
    error = None
    try:
        results, grants = run_search(request, session, viewer, q, chosen, sort, page)
    except errors.InvalidInput as exc:
        results, grants, error = Results(q=q, sort=sort), Grants(frozenset()), str(exc)
    locale = request_locale(request)

    def names(found: dict[str, str]) -> dict[str, str]:
        return {value: i18n.translate(label, locale) for value, label in found.items()}

    sources = names(_source_names(request))
    kinds = names(KIND_NAMES)
    groups = names({g: GROUP_NAMES.get(g, g) for g in DOC_GROUPS})
    labels = {"source": sources, "group": groups, "kind": kinds}
    return render(request, "search.html", {
        "results": results, "error": error, "chosen": chosen, "sort": sort,
        "options": {
            "kind": [(k, kinds.get(k, k)) for k in KINDS],
            "office": [(c, c) for c, o in sorted(authcache.offices(session).items())
                       if o.providing],
            "source": sorted(sources.items(), key=lambda kv: kv[1].lower()),
            "group": list(groups.items()),
            "category": [(n, n) for n in sorted(grants.categories.values(), key=str.lower)],
        },
        "facets": facet_links(results, chosen, labels), "facet_titles": names(FACET_TITLES),
        "kind_names": kinds,
        "page_url": lambda n: _url(results.q, chosen, sort, n),
    }, block="results", status_code=422 if error else 200)


class SearchHit(BaseModel):
    kind: str
    title: str
    url: str
    snippet: str
    office: str


class SearchOut(BaseModel):
    total: int
    page: int
    pages: int
    results: list[SearchHit]
    facets: dict[str, dict[str, int]]


@router.get("/api/v1/search", response_model=SearchOut, responses=errors.API_ERRORS,
            tags=["search"])
def search_api(request: Request, session: SessionDep, viewer: CurrentViewer, q: str = Q,
               kind: str = KIND, office: str = OFFICE, year: str = YEAR,
               source: str = SOURCE, group: str = GROUP, category: str = CATEGORY,
               sort: str = SORT, page: int = PAGE) -> SearchOut:
    """What the caller may see, with facet counts over all of it (``kind``, ``office``,
    ``source``, ``group``, ``category``, ``year``; a facet's values are what its filter
    parameter takes); ``snippet`` is HTML (escaped text, matches in ``<mark>``)."""
    chosen = {"kind": kind, "office": office, "source": source, "group": group,
              "category": category, "year": year}
    results, _ = run_search(request, session, viewer, q, chosen, sort, page)
    return SearchOut(total=results.total, page=results.page, pages=results.pages,
                     facets=results.facets,
                     results=[SearchHit(kind=h.kind, title=h.title, url=h.url,
                                        snippet=str(h.snippet), office=h.office)
                              for h in results.hits])
