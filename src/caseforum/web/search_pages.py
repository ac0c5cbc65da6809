"""``/search`` (page and htmx fragment) and ``GET /api/v1/search``: one search, two shapes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from caseforum import authcache, errors
from caseforum.authz import Viewer
from caseforum.db import SessionDep
from caseforum.search.query import FACETS, KINDS, Results, SearchError, search
from caseforum.web.deps import CurrentViewer
from caseforum.web.templating import render

router = APIRouter()

Q = Query("", max_length=500, description="words, a number, and prefixes such as ipc:H01M10/*")
KIND = Query("", max_length=16, description="dossier, document, thread or post")
OFFICE = Query("", max_length=2, description="a WIPO ST.3 office code")
YEAR = Query("", max_length=4, description="four digits")
SORT = Query("relevance", max_length=16, description="relevance or date")
PAGE = Query(1, ge=1, le=500)


def run_search(request: Request, session: Any, viewer: Viewer, q: str, kind: str, office: str,
               year: str, sort: str, page: int) -> Results:
    public = {code for code, o in authcache.offices(session).items() if o.public_access}
    try:
        return search(request.app.state.search_dir, viewer, public, q, kind=kind,
                      office=office, year=year, sort=sort, page=page)
    except SearchError as exc:
        raise errors.InvalidInput(str(exc)) from None


@router.get("/search")
def search_page(request: Request, session: SessionDep, viewer: CurrentViewer, q: str = Q,
                kind: str = KIND, office: str = OFFICE, year: str = YEAR,
                sort: str = SORT, page: int = PAGE) -> Response:
    """The search page; an htmx request (filters changed) gets the results block only."""
    error = None
    try:
        results = run_search(request, session, viewer, q, kind, office, year, sort, page)
    except errors.InvalidInput as exc:
        results, error = Results(q=q), str(exc)
    return render(request, "search.html", {
        "results": results, "error": error, "kinds": KINDS, "facet_names": FACETS,
        "selected": {"kind": kind, "office": office.upper(), "year": year}, "sort": sort,
        "offices": sorted(code for code, o in authcache.offices(session).items()
                          if o.providing),
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
               kind: str = KIND, office: str = OFFICE, year: str = YEAR, sort: str = SORT,
               page: int = PAGE) -> SearchOut:
    """What the caller may see, with facet counts over all of it; ``snippet`` is HTML
    (escaped text, matches in ``<mark>``)."""
    results = run_search(request, session, viewer, q, kind, office, year, sort, page)
    return SearchOut(total=results.total, page=results.page, pages=results.pages,
                     facets=results.facets,
                     results=[SearchHit(kind=h.kind, title=h.title, url=h.url,
                                        snippet=str(h.snippet), office=h.office)
                              for h in results.hits])
