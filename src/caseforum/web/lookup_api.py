"""``GET /api/v1/lookup``: what a number is, and which dossiers answer it.

The same parser and resolver as the number box (:mod:`caseforum.dossiers.lookup`),
so a client gets what an examiner typing the number would see: every visible
dossier it names as an application, publication, priority claim or PCT number,
members of one family next to each other.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from caseforum import errors
from caseforum.db import SessionDep
from caseforum.dossiers.access import Access
from caseforum.dossiers.lookup import find_matches
from caseforum.web.deps import CurrentViewer
from caseforum.web.dossier_pages import dossier_url

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


@router.get("/lookup", response_model=LookupOut, responses=errors.API_ERRORS)
def lookup(session: SessionDep, viewer: CurrentViewer,
           number: str = Query(..., max_length=200,
                               description="any form: 特願2019-041872, JP 2017187096, ..."),
           office: str | None = Query(None, max_length=2,
                                      description="the office of a number typed without one"),
           ) -> LookupOut:
    """Dossiers the number names that the caller may see (an empty list when none);
    422 with what to type when the text is not a number."""
    if not number.strip():
        raise errors.InvalidInput("give a number, as in ?number=JP 2017-187096")
    matches = find_matches(session, Access(session, viewer), number, office=office)
    return LookupOut(matches=[LookupMatch(
        office=m.app.office_code, application_number=m.app.number,
        display_number=m.app.display_number, matched_as=m.matched_as, source=m.app.source,
        url=dossier_url(m.app), family_id=m.app.family_id) for m in matches])
