"""JSON API, version 1 (OpenAPI at ``/openapi.json``)."""

from fastapi import APIRouter
from pydantic import BaseModel

from caseforum.authz import require
from caseforum.db import SessionDep
from caseforum.models import Office
from caseforum.web.deps import CurrentUser, CurrentViewer

router = APIRouter(prefix="/api/v1", tags=["api"])


class OfficeOut(BaseModel):
    code: str
    name: str
    roles: list[str]
    public_access: bool
    ice_role: str


class MeOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    office: OfficeOut
    scopes: list[str] | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [{
                "id": 3, "username": "jp.examiner", "display_name": "Examiner (JP)",
                "role": "examiner",
                "office": {"code": "JP", "name": "Japan Patent Office",
                           "roles": ["providing", "accessing"], "public_access": True,
                           "ice_role": "both"},
                "scopes": ["dossiers:read"],
            }]
        }
    }


def office_out(office: Office) -> OfficeOut:
    return OfficeOut(code=office.code, name=office.name, roles=office.roles,
                     public_access=office.public_access, ice_role=str(office.ice_role))


@router.get("/me", response_model=MeOut, summary="The caller's user and office")
def me(session: SessionDep, viewer: CurrentViewer, user: CurrentUser) -> MeOut:
    """Who the bearer token (or browser session) belongs to.  ``scopes`` is
    null for a browser session, which has all of the role's rights."""
    require(viewer, "me.view")
    office = session.get(Office, user.office_code)
    assert office is not None
    return MeOut(
        id=user.id or 0, username=user.username, display_name=user.display_name,
        role=str(user.role), office=office_out(office),
        scopes=sorted(viewer.scopes) if viewer.scopes is not None else None,
    )


@router.get("/offices", response_model=list[OfficeOut], summary="Participating offices")
def list_offices(session: SessionDep, viewer: CurrentViewer) -> list[OfficeOut]:
    require(viewer, "me.view")
    from sqlmodel import select

    return [office_out(o) for o in session.exec(select(Office).order_by(Office.code))]
