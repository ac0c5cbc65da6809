"""``GET /api/v1/lookup``: what a number is, and which dossiers answer it.

The same parser and resolver as the number box (:mod:`caseforum.dossiers.lookup`),
so a client gets what an examiner typing the number would see: every visible
dossier it names as an application, publication, priority claim or PCT number,
members of one family next to each other; then what the dossier sources know that
is not held here (:func:`caseforum.dossiers.remote.lookup`), stored at once so that
every ``url`` answers.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from caseforum import errors
from caseforum.authz import require
from caseforum.db import SessionDep
from caseforum.dossiers import remote
from caseforum.dossiers.access import Access
from caseforum.web.deps import CurrentViewer
from caseforum.web.dossier_api import may_ask_sources

router = APIRouter(prefix="/api/v1", tags=["dossiers"])


class LookupMatch(BaseModel):
    office: str
    application_number: str
    display_number: str
    matched_as: Literal["application", "publication", "priority", "pct"]
    source: str
    url: str
    family_id: int | None = None


class LookupOut(BaseModel):
    matches: list[LookupMatch]
    unavailable: list[str] = []  # one line per source that could not be asked


@router.get("/lookup", response_model=LookupOut, responses=errors.API_ERRORS,
            summary="Dossiers matching a number in any form, held here or at a source")
def lookup(request: Request, session: SessionDep, viewer: CurrentViewer,
           number: str = Query(..., max_length=200,
                               description="any form: 特願2019-041872, JP 2017187096, ..."),
           office: str | None = Query(None, max_length=2,
                                      description="the office of a number typed without one"),
           ) -> LookupOut:
    """Dossiers the number names that the caller may see (an empty list when none);
    422 with what to type when the text is not a number."""
    if not number.strip():
        raise errors.InvalidInput("give a number, as in ?number=JP 2017-187096")
    require(viewer, "dossier.lookup")
    matches, unavailable = remote.lookup(
        session, Access(session, viewer), request.app.state.plugins, number,
        office.strip().upper() if office else None,
        ask_sources=may_ask_sources(request, viewer))
    session.commit()  # what a source answered is stored: each url opens at once
    return LookupOut(matches=[LookupMatch(
        office=m.office, application_number=m.application_number,
        display_number=m.display_number, matched_as=m.matched_as,  # type: ignore[arg-type]
        source=m.source, url=m.url, family_id=m.family_id) for m in matches],
        unavailable=unavailable)
